//! The traces API over records written by the data plane's request-log writer: filters, paging,
//! visibility, and retention.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use data_plane::request_log::{self, Record, RequestLog};
use gatehouse_tests::{ControlPlane, Metrics, fresh_database, wait_until};
use serde_json::json;
use shared::request_log::RequestRecord;
use tokio::sync::watch;
use uuid::Uuid;

/// What a test record borrows from.
struct Owned {
    request_id: Uuid,
    started_at: chrono::DateTime<chrono::Utc>,
    account: Arc<str>,
    account_id: Uuid,
    status: u16,
}

const ENDPOINT: &str = "svc";
const SUBJECT: &str = "user:admin@test.local";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn record(account: &str, account_id: Uuid, status: u16, minutes_ago: i64) -> Owned {
    let started_at = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    Owned {
        request_id: shared::request_log::request_id(started_at, &rand::random()),
        started_at,
        account: account.into(),
        account_id,
        status,
    }
}

/// Records `r` as the proxy would, with the fixed figures the assertions expect.
fn log_record(log: &RequestLog, r: &Owned) {
    let (endpoint, subject): (Arc<str>, Arc<str>) = (ENDPOINT.into(), SUBJECT.into());
    let path = http::uri::PathAndQuery::from_static("/v1/x?secret=1");
    let traceparent = http::HeaderValue::from_static(TRACEPARENT);
    log.record(&Record {
        request_id: r.request_id,
        started_at: r.started_at,
        account: &r.account,
        endpoint: &endpoint,
        account_id: Some(r.account_id),
        integration_id: None,
        subject: Some(&subject),
        key_id: None,
        method: &http::Method::GET,
        path: &path,
        status: r.status,
        latency_us: 1500,
        upstream_ttfb_us: Some(900),
        bytes_in: 10,
        bytes_out: 20,
        error_type: None,
        traceparent: Some(&traceparent),
    });
}

#[tokio::test]
async fn written_records_are_found_filtered_paged_and_only_by_those_who_may() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let api = cp.admin();
    let mut ids = Vec::new();
    for name in ["acme", "other"] {
        let r = api.post("/provider-accounts", json!({"name": name})).await;
        ids.push(r.json["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    api.post("/users", json!({"email": "ada@example.com"}))
        .await;
    let ada_key = api
        .post(
            "/api-keys",
            json!({"name": "a", "owner": "user:ada@example.com"}),
        )
        .await
        .json["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = json!([{"subject": "user:ada@example.com", "role": "provider-account-access"}]);
    assert_eq!(
        api.put("/provider-accounts/acme/collaborators", put)
            .await
            .status,
        200
    );

    let log = Arc::new(RequestLog::new(100, 2, "test"));
    let (_stop, shutdown) = watch::channel(false);
    let writer = Arc::clone(&log);
    let pool = cp.db.clone();
    tokio::spawn(async move { request_log::write(&writer, pool, shutdown).await });
    let mut records = Vec::new();
    for (i, status) in [200, 201, 404, 502, 200].into_iter().enumerate() {
        records.push(record("acme", ids[0], status, i as i64));
    }
    records.push(record("other", ids[1], 200, 0));
    // As records were written before request ids carried their start time.
    records[2].request_id = Uuid::new_v4();
    for r in &records {
        log_record(&log, r);
    }
    wait_until(Duration::from_secs(5), "records written", || async {
        log.written() == 6
    })
    .await;

    let all = api.get("/traces").await.json;
    assert_eq!(all.as_array().unwrap().len(), 6);
    let one = api.get(&format!("/traces/{}", records[3].request_id)).await;
    assert_eq!(one.status, 200);
    let found: RequestRecord = serde_json::from_value(one.json).unwrap();
    assert_eq!(found.request_id, records[3].request_id);
    assert_eq!(
        (found.status, found.bytes_out, found.latency_us),
        (502, 20, 1500)
    );
    let legacy = api.get(&format!("/traces/{}", records[2].request_id)).await;
    assert_eq!(
        (legacy.status, legacy.json["status"].as_u64()),
        (200, Some(404))
    );
    let unknown = shared::request_log::request_id(records[3].started_at, &[7; 10]);
    assert_eq!(api.get(&format!("/traces/{unknown}")).await.status, 404);

    let class = api.get("/traces?account=acme&status=2xx").await.json;
    assert_eq!(class.as_array().unwrap().len(), 3);
    let exact = api.get("/traces?status=404").await.json;
    assert_eq!(exact.as_array().unwrap().len(), 1);
    let since = (chrono::Utc::now() - chrono::Duration::seconds(90)).to_rfc3339();
    let recent = api
        .get(&format!("/traces?since={}", urlencode(&since)))
        .await
        .json;
    assert_eq!(
        recent.as_array().unwrap().len(),
        3,
        "two minutes-old records excluded"
    );
    assert_eq!(api.get("/traces?status=9xx").await.status, 422);

    // Pages of two, newest first, no repeats.
    let (pages, _) = api.all_pages("/traces", 2).await;
    let seen: Vec<RequestRecord> = pages
        .into_iter()
        .map(|r| serde_json::from_value(r).unwrap())
        .collect();
    let seen: Vec<_> = seen.iter().map(|r| r.started_at).collect();
    assert_eq!(seen.len(), 6);
    assert!(seen.windows(2).all(|w| w[0] >= w[1]));

    // Ada collaborates on acme only.
    let ada = cp.client(&ada_key);
    let visible = ada.get("/traces").await.json;
    assert_eq!(visible.as_array().unwrap().len(), 5);
    let hidden = records.last().unwrap().request_id;
    assert_eq!(ada.get(&format!("/traces/{hidden}")).await.status, 404);

    // Retention.
    let purged = control_plane::traces::purge_older_than(
        &cp.db,
        chrono::Utc::now() - chrono::Duration::seconds(150),
    )
    .await
    .unwrap();
    assert_eq!(purged, 2);
    assert_eq!(api.get("/traces").await.json.as_array().unwrap().len(), 4);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let log = RequestLog::new(2, 1, "test");
    for _ in 0..5 {
        log_record(&log, &record("acme", Uuid::nil(), 200, 0));
    }
    assert_eq!((log.queued(), log.dropped()), (2, 3));
}

#[tokio::test]
async fn proxied_requests_are_found_with_their_figures_and_only_by_those_who_may() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let upstream = gatehouse_tests::upstream::EchoUpstream::start().await;
    let api = cp.admin();
    api.post("/provider-accounts", json!({"name": "acme"}))
        .await;
    let r = api
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "svc", "base_url": format!("{}/v1", upstream.url())}),
        )
        .await;
    assert_eq!(r.status, 201);
    api.post("/users", json!({"email": "eve@example.com"}))
        .await;
    let eve_key = api
        .post(
            "/api-keys",
            json!({"name": "e", "owner": "user:eve@example.com"}),
        )
        .await
        .json["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let plane = gatehouse_tests::DataPlane::start_ready(&db).await;
    let client = gatehouse_tests::http_client();
    let mut sent = Vec::new();
    for (path, body) in [
        ("acme/svc/a?token=hidden", "x".repeat(100)),
        ("acme/svc/b", String::new()),
    ] {
        let response = client
            .post(plane.proxy(path))
            .bearer_auth(&cp.admin_key)
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap().len() as u64;
        sent.push((id, status, bytes, body.len() as u64));
    }
    let refused = client
        .get(plane.proxy("acme/nope/x"))
        .bearer_auth(&cp.admin_key)
        .send()
        .await
        .unwrap();
    let refused_id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(refused.status(), 404);

    for (id, status, bytes_out, bytes_in) in &sent {
        let found = wait_for_trace(&api, id).await;
        assert_eq!(found.account, "acme");
        assert_eq!(found.endpoint, "svc");
        assert_eq!(found.subject.as_deref(), Some("user:admin@test.local"));
        assert_eq!(found.status, *status);
        assert_eq!(found.bytes_out, *bytes_out);
        assert_eq!(found.bytes_in, *bytes_in);
        assert_eq!(found.method, "POST");
        assert!(found.upstream_path.starts_with("/v1/") && !found.upstream_path.contains('?'));
        assert_eq!(found.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert!(found.latency_us > 0 && found.upstream_ttfb_us.unwrap() <= found.latency_us);
        // The id carries the millisecond the request started in.
        let (from, until) = shared::request_log::started_within(found.request_id).unwrap();
        assert!(from <= found.started_at && found.started_at < until);
    }
    let refused = wait_for_trace(&api, &refused_id).await;
    assert_eq!(
        (
            refused.status,
            refused.endpoint.as_str(),
            refused.error_type.as_deref()
        ),
        (404, "nope", Some("not_found"))
    );

    // The same requests in the metrics: per route and status class, no ids, no paths.
    let refused_key = client
        .get(plane.proxy("acme/svc/x"))
        .bearer_auth("gh_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(refused_key.status(), 401);
    let metrics = Metrics::scrape(&plane.url).await;
    let value = |line_start: &str| metrics.value(line_start);
    assert_eq!(
        value(r#"gatehouse_requests_total{account="acme",endpoint="svc",status_class="2xx"}"#),
        2.0
    );
    assert_eq!(
        value(r#"gatehouse_requests_total{account="",endpoint="",status_class="4xx"}"#),
        2.0,
        "the unknown endpoint and the refused key"
    );
    assert_eq!(value("gatehouse_auth_failures_total"), 1.0);
    assert_eq!(
        value(r#"gatehouse_request_duration_seconds_count{account="acme",endpoint="svc"}"#),
        2.0
    );
    assert_eq!(
        value(r#"gatehouse_request_bytes_total{account="acme",endpoint="svc"}"#),
        100.0
    );
    assert!(metrics.contains("gatehouse_upstream_ttfb_seconds_bucket"));
    assert!(
        !metrics.contains("user:") && !metrics.contains("/v1/"),
        "no subjects, no paths"
    );

    let eve = cp.client(&eve_key);
    assert_eq!(eve.get("/traces").await.json.as_array().unwrap().len(), 0);
    assert_eq!(eve.get(&format!("/traces/{}", sent[0].0)).await.status, 404);
}

async fn wait_for_trace(api: &gatehouse_tests::Api, id: &str) -> RequestRecord {
    let path = format!("/traces/{id}");
    wait_until(Duration::from_secs(5), "request record written", || async {
        api.get(&path).await.status == 200
    })
    .await;
    serde_json::from_value(api.get(&path).await.json).unwrap()
}
