//! Command line and environment configuration of the control plane.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use secrecy::SecretString;
use shared::address::DenyList;
use shared::crypto::Keyring;
use shared::logging::LogFormat;

/// Gatehouse control plane: the REST API over PostgreSQL that stores provider accounts, their
/// integrations, subjects and API keys, and notifies data planes of every change.
#[derive(Debug, Parser)]
#[command(name = "control-plane", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API (the default).
    Serve,
    /// Create an admin user (or reuse the one with this e-mail) and print a new API key for it,
    /// alone on stdout.
    CreateAdmin {
        /// E-mail address of the admin user.
        #[arg(long)]
        email: String,
        /// Name of the new API key.
        #[arg(long, default_value = "create-admin")]
        key_name: String,
    },
    /// Re-seal every stored upstream credential with the first key of
    /// GATEHOUSE_ENCRYPTION_KEYS (key rotation); prints how many objects changed.
    Reseal,
}

#[derive(Debug, Clone, Parser)]
pub struct Config {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,

    /// Address (host:port) the REST API listens on.
    #[arg(long = "listen", env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// E-mail of the admin user created at first start, when no user exists yet.
    #[arg(
        long,
        env = "GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL",
        default_value = "admin@gatehouse.local"
    )]
    pub bootstrap_admin_email: String,

    /// API key of the bootstrap admin (format `gh_` + 48 hex digits). When unset, a key is
    /// generated at first start and printed once.
    #[arg(long, env = "GATEHOUSE_BOOTSTRAP_ADMIN_KEY", hide_env_values = true)]
    pub bootstrap_admin_key: Option<SecretString>,

    /// Keys sealing upstream credentials at rest: `id:64-hex-digits[,id:64-hex-digits…]`. The
    /// first key seals new values; every listed key opens. Data planes need the same list.
    /// Required to serve.
    #[arg(long, env = "GATEHOUSE_ENCRYPTION_KEYS", hide_env_values = true, value_parser = Keyring::parse)]
    pub encryption_keys: Option<Keyring>,

    /// Hours request-log records are kept; older ones are deleted every ten minutes.
    #[arg(long, env = "REQUEST_LOG_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_log_retention_hours: u64,

    /// Maximum number of PostgreSQL connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,

    /// Address ranges an integration's base URL may not point at, comma-separated CIDRs (e.g.
    /// `169.254.0.0/16,127.0.0.0/8,::1/128,fe80::/10`): refused with 422 when the host is, or
    /// resolves to, such an address. Give data planes the same list: they check every address
    /// again when connecting. Empty: no check.
    #[arg(long, env = "DENY_UPSTREAM_RANGES", default_value = "")]
    pub deny_upstream_ranges: DenyList,

    /// The data plane's URL as API clients reach it (`http(s)://host[:port][/prefix]`): the
    /// dashboard's usage snippets call it.
    #[arg(long, env = "GATEHOUSE_PUBLIC_GATEWAY_URL", default_value = "http://127.0.0.1:8081", value_parser = crate::ui::parse_gateway_url)]
    pub public_gateway_url: String,

    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
