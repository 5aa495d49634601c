//! What operators see (SPEC §3): the control plane's Prometheus metrics, and structured log
//! lines that carry the request id of the request they are about, on both planes.

#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_tests::upstream::EchoUpstream;
use gatehouse_tests::{
    ControlPlane, Gateway, Metrics, config_version, fresh_database, http_client, wait_until,
};
use serde_json::{Value, json};
use shared::logging::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[tokio::test]
async fn api_requests_are_counted_by_route_template_with_no_names_or_keys() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let api = cp.admin();
    let r = api
        .post("/provider-accounts", json!({"name": "secretive"}))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(api.get("/provider-accounts/secretive").await.status, 200);
    assert_eq!(api.get("/provider-accounts/missing-one").await.status, 404);
    assert_eq!(
        cp.client("gh_wrongkey")
            .get("/provider-accounts")
            .await
            .status,
        401
    );

    let metrics = Metrics::scrape(&cp.url).await;
    let value = |line_start: &str| metrics.value(line_start);
    let requests = |route: &str, method: &str, class: &str| {
        value(&format!(
            r#"gatehouse_api_requests_total{{route="/api/v1{route}",method="{method}",status_class="{class}"}}"#
        ))
    };
    assert_eq!(requests("/provider-accounts", "POST", "2xx"), 1.0);
    assert_eq!(requests("/provider-accounts/{account}", "GET", "2xx"), 1.0);
    assert_eq!(requests("/provider-accounts/{account}", "GET", "4xx"), 1.0);
    assert_eq!(requests("/provider-accounts", "GET", "4xx"), 1.0);
    assert_eq!(
        value(
            r#"gatehouse_api_request_duration_seconds_count{route="/api/v1/provider-accounts/{account}",method="GET"}"#
        ),
        2.0
    );
    assert_eq!(value("gatehouse_db_pool_max_connections"), 5.0);
    assert!(value("gatehouse_db_pool_connections") >= 1.0);
    value("gatehouse_db_pool_idle_connections");
    for leak in [
        "secretive",
        "missing-one",
        "gh_wrongkey",
        &cp.admin_key,
        "admin@",
    ] {
        assert!(!metrics.contains(leak), "{leak} in\n{metrics}");
    }
}

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for Captured {
    type Writer = Captured;
    fn make_writer(&'w self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// Every line, each of which must be a JSON object.
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The lines mentioning `request_id` anywhere, by message.
    fn about(&self, request_id: &str) -> Vec<(String, Value)> {
        self.lines()
            .into_iter()
            .filter(|l| l.to_string().contains(request_id))
            .map(|l| (l["message"].as_str().unwrap_or_default().to_owned(), l))
            .collect()
    }
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn json_log_lines_about_a_request_carry_its_request_id() {
    // The binaries' own subscriber, on this test's thread: the single-threaded test runtime runs
    // both planes' tasks here too.
    let captured = Captured::default();
    let filter = EnvFilter::new("info,data_plane=debug");
    let _logging = tracing::subscriber::set_default(shared::logging::subscriber(
        LogFormat::Json,
        filter,
        captured.clone(),
    ));
    let echo = EchoUpstream::start().await;
    let gw = Gateway::start(&echo.url(), json!({}), &[]).await;
    let api = gw.cp.admin();
    let r = api
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "down", "base_url": "http://127.0.0.1:9"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    gw.dp
        .wait_applied(config_version(&gw.cp.db).await, Duration::from_secs(5))
        .await;

    let proxied = gw.get("/v1/x").await;
    assert_eq!(proxied.status(), 200);
    let proxied = request_id(&proxied);
    let failed = http_client()
        .get(gw.dp.proxy("acme/down/v1/x"))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);
    let failed = request_id(&failed);
    let api_call = http_client()
        .get(format!("{}/api/v1/provider-accounts/acme", gw.cp.url))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap();
    assert_eq!(api_call.status(), 200);
    let api_call = request_id(&api_call);

    wait_until(Duration::from_secs(5), "request lines written", || async {
        captured.about(&proxied).len() == 1
            && captured.about(&failed).len() == 2
            && !captured.about(&api_call).is_empty()
    })
    .await;
    let about = captured.about(&proxied);
    assert_eq!(about[0].0, "proxied request finished");
    assert_eq!(about[0].1["request_id"], proxied);
    assert_eq!(about[0].1["status"], 200);
    let about = captured.about(&failed);
    let messages: Vec<&str> = about.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(messages, ["forwarding failed", "proxied request finished"]);
    assert!(about.iter().all(|(_, l)| l["request_id"] == failed));
    let about = captured.about(&api_call);
    let (message, line) = about.last().unwrap();
    assert_eq!(message, "api request");
    assert_eq!(line["span"]["request_id"], api_call);
    assert_eq!(line["span"]["route"], "/api/v1/provider-accounts/{account}");
    assert_eq!(line["status"], 200);

    // Every line written while an API request was handled names its request.
    for line in captured.lines() {
        if line["span"]["name"] == "request" {
            assert!(line["span"]["request_id"].is_string(), "{line}");
        }
    }
}
