//! Command line and environment configuration of a data plane.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use secrecy::SecretString;
use shared::address::DenyList;
use shared::crypto::Keyring;
use shared::logging::LogFormat;

/// Gatehouse data plane: a stateless proxy. It loads the routing table from PostgreSQL, follows
/// changes with LISTEN/NOTIFY, and forwards /proxy-api/{account}/{endpoint}/{path} upstream with
/// the integration's credentials injected.
#[derive(Debug, Clone, Parser)]
#[command(name = "data-plane", version)]
pub struct Config {
    /// PostgreSQL connection URL (a session connection: LISTEN does not work through
    /// transaction pooling).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,

    /// Address (host:port) the proxy listens on; it also serves /healthz, /readyz and /status.
    #[arg(long = "listen", env = "LISTEN_ADDR", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Threads serving requests; default: one per CPU. Set it to the CPUs the data plane is
    /// given (a container's CPU limit) so that idle threads do not compete for them.
    #[arg(long, env = "WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,

    /// Keys that open upstream credentials sealed by the control plane:
    /// `id:64-hex-digits[,id:64-hex-digits…]`, the same list the control plane has.
    #[arg(long, env = "GATEHOUSE_ENCRYPTION_KEYS", hide_env_values = true, value_parser = Keyring::parse)]
    pub encryption_keys: Keyring,

    /// Maximum PostgreSQL connections for snapshot reads (the listener holds one more).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 2)]
    pub database_max_connections: u32,

    /// Milliseconds between heartbeats on the listening connection; each one also compares the
    /// config version, as a backstop for lost notifications (RELIABILITY P9).
    #[arg(long, env = "SYNC_POLL_INTERVAL_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub sync_poll_interval_ms: u64,

    /// Milliseconds a heartbeat may take before the listener is deemed deaf and replaced.
    #[arg(long, env = "SYNC_HEARTBEAT_TIMEOUT_MS", default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub sync_heartbeat_timeout_ms: u64,

    /// Milliseconds a snapshot read may take before the reload counts as failed: a database
    /// that stops answering mid-read must not stall the sync task and its heartbeats for long
    /// (a 100k-integration snapshot reads in about 0.4 s: docs/propagation.md).
    #[arg(long, env = "SYNC_RELOAD_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub sync_reload_timeout_ms: u64,

    /// Seconds between full reloads while connected. In between, a change is applied from the
    /// change log by re-reading only what it touched; a periodic full reload also bounds what
    /// a write that mis-named its extent could leave stale.
    #[arg(long, env = "SYNC_FULL_RESYNC_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub sync_full_resync_seconds: u64,

    /// Milliseconds to wait for an upstream TCP (and TLS) connection.
    #[arg(long, env = "UPSTREAM_CONNECT_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub upstream_connect_timeout_ms: u64,

    /// Milliseconds to wait for the upstream's response headers (504 after that). Bodies are
    /// never cut by a total timeout.
    #[arg(long, env = "UPSTREAM_RESPONSE_TIMEOUT_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub upstream_response_timeout_ms: u64,

    /// Milliseconds a request or response body may go without sending data before the gateway
    /// gives up on it (a stream that keeps sending is never cut).
    #[arg(long, env = "BODY_IDLE_TIMEOUT_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_idle_timeout_ms: u64,

    /// Milliseconds an upgraded connection (WebSocket) may pass no byte either way before the
    /// gateway closes both sides of it (traffic in either direction keeps it open).
    #[arg(long, env = "TUNNEL_IDLE_TIMEOUT_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub tunnel_idle_timeout_ms: u64,

    /// Most proxied requests in flight at once, streams and tunnels included; beyond it the
    /// gateway answers 503 at once instead of running out of memory.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Milliseconds a client may take to send its request headers (slowloris guard).
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_ms: u64,

    /// Address ranges upstreams may not resolve to, comma-separated CIDRs (e.g.
    /// `169.254.0.0/16,127.0.0.0/8,::1/128,fe80::/10`); checked on every address before
    /// connecting, so DNS rebinding cannot reach them. Empty: no check.
    #[arg(long, env = "DENY_UPSTREAM_RANGES", default_value = "")]
    pub deny_upstream_ranges: DenyList,

    /// Seconds in-flight requests get to finish after a shutdown signal.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,

    /// Keep an encrypted copy of the last applied snapshot in this file, and start from it when
    /// the database is unreachable at start (RELIABILITY P14). Requires --snapshot-key.
    #[arg(long, env = "SNAPSHOT_FILE", requires = "snapshot_key")]
    pub snapshot_file: Option<PathBuf>,

    /// AES-256-GCM key of the snapshot file: 64 hex digits. The snapshot holds upstream
    /// credentials, so it is never written in clear.
    #[arg(long, env = "SNAPSHOT_KEY", hide_env_values = true, value_parser = SnapshotKey::parse)]
    pub snapshot_key: Option<SnapshotKey>,

    /// Stop serving a table not confirmed current for this many seconds (RELIABILITY P15): the
    /// bound on how long a key revoked during a database outage keeps working here. Unset: serve
    /// the last good table for as long as the outage lasts.
    #[arg(long, env = "MAX_CONFIG_AGE_SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_config_age_seconds: Option<u64>,

    /// Request-log records that may wait for the database; when full, records are dropped and
    /// counted rather than slowing requests. 0 turns request logging off.
    #[arg(long, env = "REQUEST_LOG_QUEUE", default_value_t = 10_000)]
    pub request_log_queue: usize,

    /// OTLP collector base URL (plain `http://`, e.g. a collector agent beside the data plane):
    /// `CustomEndpoint` spans go to `<url>/v1/traces`. Unset, with --otlp-traces-endpoint
    /// unset too: no span is built at all.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = otlp_url)]
    pub otlp_endpoint: Option<String>,

    /// Full OTLP traces URL, used as is; takes precedence over --otlp-endpoint.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value_parser = otlp_url)]
    pub otlp_traces_endpoint: Option<String>,

    /// OTLP encoding over HTTP (gRPC is not built in).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", value_enum, default_value_t = OtlpProtocol::HttpProtobuf)]
    pub otlp_protocol: OtlpProtocol,

    /// `service.name` of the exported spans.
    #[arg(
        long,
        env = "OTEL_SERVICE_NAME",
        default_value = "gatehouse-data-plane"
    )]
    pub otel_service_name: String,

    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.sync_poll_interval_ms)
    }
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.sync_heartbeat_timeout_ms)
    }
    pub fn reload_timeout(&self) -> Duration {
        Duration::from_millis(self.sync_reload_timeout_ms)
    }
    pub fn full_resync_interval(&self) -> Duration {
        Duration::from_secs(self.sync_full_resync_seconds)
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_connect_timeout_ms)
    }
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_response_timeout_ms)
    }
    pub fn body_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.body_idle_timeout_ms)
    }
    pub fn tunnel_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.tunnel_idle_timeout_ms)
    }
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    pub fn max_config_age(&self) -> Option<Duration> {
        self.max_config_age_seconds.map(Duration::from_secs)
    }
    /// Where spans are exported, when anywhere (OpenTelemetry's endpoint rules).
    pub fn otlp_traces_url(&self) -> Option<String> {
        self.otlp_traces_endpoint.clone().or_else(|| {
            let base = self.otlp_endpoint.as_deref()?;
            Some(format!("{}/v1/traces", base.trim_end_matches('/')))
        })
    }
}

/// The OTLP encodings over HTTP, named as `OTEL_EXPORTER_OTLP_PROTOCOL` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    #[value(name = "http/json")]
    HttpJson,
}

/// An `http://` URL with a host: the exporter is built without TLS.
fn otlp_url(text: &str) -> Result<String, String> {
    let uri: http::Uri = text.parse().map_err(|e| format!("not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(_)) => Ok(text.to_owned()),
        _ => Err(
            "expected http://host[:port][/path] (OTLP is exported without TLS: \
                  send it to a collector agent beside the data plane)"
                .to_owned(),
        ),
    }
}

/// The snapshot file's 256-bit key; never printed.
#[derive(Clone)]
pub struct SnapshotKey(pub [u8; 32]);

impl SnapshotKey {
    fn parse(text: &str) -> Result<SnapshotKey, String> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key)
            .map_err(|_| "expected 64 hex digits (a 256-bit key)".to_owned())?;
        Ok(SnapshotKey(key))
    }
}

impl fmt::Debug for SnapshotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SnapshotKey(********)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, clap::Error> {
        let keys = format!("k:{}", "cd".repeat(32));
        let mut args = vec![
            "data-plane",
            "--database-url",
            "postgres://h/db",
            "--encryption-keys",
            &keys,
        ];
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
    }

    #[test]
    fn otlp_urls_follow_the_opentelemetry_endpoint_rules() {
        assert_eq!(parse(&[]).unwrap().otlp_traces_url(), None);
        let base = parse(&["--otlp-endpoint", "http://collector:4318/"]).unwrap();
        assert_eq!(
            base.otlp_traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let both = parse(&[
            "--otlp-endpoint",
            "http://collector:4318",
            "--otlp-traces-endpoint",
            "http://other:4318/custom",
        ])
        .unwrap();
        assert_eq!(
            both.otlp_traces_url().as_deref(),
            Some("http://other:4318/custom")
        );
        for bad in ["", "collector:4318", "https://collector:4318", "http://"] {
            assert!(parse(&["--otlp-endpoint", bad]).is_err(), "{bad:?}");
        }
        assert!(parse(&["--otlp-protocol", "grpc"]).is_err());
        let json = parse(&["--otlp-protocol", "http/json"]).unwrap();
        assert_eq!(json.otlp_protocol, OtlpProtocol::HttpJson);
    }

    #[test]
    fn snapshot_file_needs_a_256_bit_hex_key_that_is_never_printed() {
        let key = "ab".repeat(32);
        let config = parse(&["--snapshot-file", "/tmp/s", "--snapshot-key", &key]).unwrap();
        assert_eq!(config.snapshot_key.as_ref().unwrap().0, [0xab; 32]);
        assert!(!format!("{config:?}").contains(&key));
        assert!(!format!("{config:?}").to_lowercase().contains("abab"));
        assert!(!format!("{config:?}").to_lowercase().contains("cdcd"));
        assert!(parse(&["--snapshot-file", "/tmp/s"]).is_err());
        for bad in [
            "",
            "ab",
            &"ab".repeat(31),
            &"zz".repeat(32),
            &"ab".repeat(33),
        ] {
            assert!(
                parse(&["--snapshot-file", "/tmp/s", "--snapshot-key", bad]).is_err(),
                "{bad:?}"
            );
        }
    }
}
