//! The spine end to end: accounts and integrations created over REST are served by running
//! data planes within a second, forwarded per SPEC §2.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use gatehouse_tests::upstream::EchoUpstream;
use gatehouse_tests::{ControlPlane, DataPlane, fresh_database, http_client, wait_until};
use serde_json::json;

/// Status of a GET through a data plane with `key`.
async fn proxied_status(client: &reqwest::Client, url: &str, key: &str) -> u16 {
    client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn forwards_path_query_method_body_and_headers() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let upstream = EchoUpstream::start().await;
    let api = cp.admin();
    let r = api
        .post(
            "/provider-accounts",
            json!({
                "name": "acme",
                "endpoint_type": "other",
                "header_auth": {"type": "header", "headers": {"X-Api-Key": "account-secret"}},
                "custom_headers": {"X-Account": "a", "X-Both": "account"}
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = api
        .post(
            "/provider-accounts/acme/integrations",
            json!({
                "name": "speech",
                "base_url": format!("{}/base/v1", upstream.url()),
                "custom_headers": {"X-Both": "integration", "X-Integration": "i"}
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let dp = DataPlane::start_ready(&db).await;
    let client = http_client();

    let url = dp.proxy("acme/speech/files/group%2Fname/a%20b.wav?x=1&y=%2F&x=2");
    let response = client
        .post(&url)
        .bearer_auth(&cp.admin_key)
        .header("x-api-key", "caller-tries-its-own")
        .header("x-caller", "kept")
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 1, 2, 255, 254])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let seen = upstream.last().unwrap();
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.target,
        "/base/v1/files/group%2Fname/a%20b.wav?x=1&y=%2F&x=2"
    );
    assert_eq!(seen.body, vec![0u8, 1, 2, 255, 254]);
    assert_eq!(
        seen.header("host"),
        Some(upstream.addr.to_string().as_str())
    );
    assert_eq!(seen.header_values("x-api-key"), vec!["account-secret"]);
    assert_eq!(seen.header("x-account"), Some("a"));
    assert_eq!(seen.header("x-both"), Some("integration"));
    assert_eq!(seen.header("x-integration"), Some("i"));
    assert_eq!(seen.header("x-caller"), Some("kept"));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(dp.addr.to_string().as_str())
    );
    assert!(
        seen.header("traceparent")
            .is_some_and(|t| t.starts_with("00-"))
    );

    // Without a path the request goes to the base URL itself; with "/" to base URL + "/".
    for (suffix, target) in [("", "/base/v1"), ("/", "/base/v1/")] {
        let r = client
            .delete(dp.proxy(&format!("acme/speech{suffix}")))
            .bearer_auth(&cp.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let seen = upstream.last().unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("DELETE", target)
        );
    }
}

#[tokio::test]
async fn integration_header_auth_replaces_the_accounts() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let upstream = EchoUpstream::start().await;
    let api = cp.admin();
    api.post(
        "/provider-accounts",
        json!({"name": "acme", "header_auth": {"type": "header", "headers": {"X-Account-Key": "acct"}}}),
    )
    .await;
    let base = upstream.url();
    for body in [
        json!({"name": "inherits", "base_url": base}),
        json!({"name": "own", "base_url": base,
               "header_auth": {"type": "header", "headers": {"Authorization": "Bearer upstream-token"}}}),
    ] {
        assert_eq!(
            api.post("/provider-accounts/acme/integrations", body)
                .await
                .status,
            201
        );
    }
    let dp = DataPlane::start_ready(&db).await;
    let client = http_client();

    client
        .get(dp.proxy("acme/inherits/x"))
        .bearer_auth(&cp.admin_key)
        .send()
        .await
        .unwrap();
    let seen = upstream.last().unwrap();
    assert_eq!(seen.header_values("x-account-key"), vec!["acct"]);
    assert_eq!(seen.header("authorization"), None);

    client
        .get(dp.proxy("acme/own/x"))
        .bearer_auth(&cp.admin_key)
        .send()
        .await
        .unwrap();
    let seen = upstream.last().unwrap();
    assert_eq!(
        seen.header_values("authorization"),
        vec!["Bearer upstream-token"]
    );
    assert_eq!(
        seen.header("x-account-key"),
        None,
        "header auth replaces, never merges"
    );
}

#[tokio::test]
async fn two_data_planes_follow_changes_and_deletes_within_a_second() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let first = EchoUpstream::start().await;
    let second = EchoUpstream::start().await;
    let planes = [
        DataPlane::start_ready(&db).await,
        DataPlane::start_ready(&db).await,
    ];
    let api = cp.admin();
    let client = http_client();
    let key = cp.admin_key.clone();

    assert_eq!(
        api.post("/provider-accounts", json!({"name": "acme"}))
            .await
            .status,
        201
    );
    let r = api
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "svc", "base_url": first.url(),
                   "header_auth": {"type": "header", "headers": {"X-Key": "old"}}}),
        )
        .await;
    assert_eq!(r.status, 201);
    for plane in &planes {
        let url = plane.proxy("acme/svc/ping");
        let took = wait_until(Duration::from_secs(1), "new integration served", || async {
            proxied_status(&client, &url, &key).await == 200
        })
        .await;
        println!("created → served in {took:?}");
    }

    // A new base URL and rotated credentials.
    let r = api
        .put(
            "/provider-accounts/acme/integrations/svc",
            json!({"name": "svc", "base_url": second.url(),
                   "header_auth": {"type": "header", "headers": {"X-Key": "new"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for plane in &planes {
        let url = plane.proxy("acme/svc/ping");
        let took = wait_until(
            Duration::from_secs(1),
            "changed integration served",
            || async {
                client.get(&url).bearer_auth(&key).send().await.unwrap();
                second
                    .last()
                    .is_some_and(|r| r.header("x-key") == Some("new"))
            },
        )
        .await;
        println!("changed → served in {took:?}");
    }
    let before = first.requests().len();
    client
        .get(planes[0].proxy("acme/svc/ping"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        first.requests().len(),
        before,
        "the old upstream gets nothing more"
    );

    assert_eq!(
        api.delete("/provider-accounts/acme/integrations/svc")
            .await
            .status,
        204
    );
    for plane in &planes {
        let url = plane.proxy("acme/svc/ping");
        let took = wait_until(
            Duration::from_secs(1),
            "deleted integration gone",
            || async { proxied_status(&client, &url, &key).await == 404 },
        )
        .await;
        println!("deleted → 404 in {took:?}");
    }
}

#[tokio::test]
async fn a_lost_listener_connection_triggers_a_full_resync() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let upstream = EchoUpstream::start().await;
    let plane = DataPlane::start_ready(&db).await;
    let api = cp.admin();
    let client = http_client();
    api.post("/provider-accounts", json!({"name": "acme"}))
        .await;

    // Kill every other backend of this database, the data plane's listener among them.
    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()",
    )
    .fetch_all(&cp.db)
    .await
    .unwrap();
    assert!(!killed.is_empty());
    let r = api
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "svc", "base_url": upstream.url()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let url = plane.proxy("acme/svc/x");
    let took = wait_until(
        Duration::from_secs(5),
        "change served after listener loss",
        || async { proxied_status(&client, &url, &cp.admin_key).await == 200 },
    )
    .await;
    println!("served {took:?} after the listener was killed");
}

#[tokio::test]
async fn gateway_errors_are_json_with_a_request_id() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let plane = DataPlane::start_ready(&db).await;
    let client = http_client();
    let cases = [
        (None, "acme/svc/x", 401, "unauthorized"),
        (Some("gh_not-a-key"), "acme/svc/x", 401, "unauthorized"),
        (
            Some("gh_000000000000000000000000000000000000000000000000"),
            "acme/svc/x",
            401,
            "unauthorized",
        ),
        (Some(cp.admin_key.as_str()), "acme/svc/x", 404, "not_found"),
    ];
    let mut unauthorized_bodies = Vec::new();
    for (key, path, status, kind) in cases {
        let mut request = client.get(plane.proxy(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{key:?}");
        assert_eq!(response.headers()["x-gatehouse-error"], kind);
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], kind);
        assert_eq!(body["error"]["request_id"], id.as_str());
        if status == 401 {
            unauthorized_bodies.push(body["error"]["message"].clone());
        }
    }
    unauthorized_bodies.dedup();
    assert_eq!(unauthorized_bodies.len(), 1, "one body for every 401");
}

#[tokio::test]
async fn readiness_waits_for_a_table_and_liveness_does_not() {
    // Nothing listens on port 1: the data plane cannot load a table.
    let plane = DataPlane::start("postgres://postgres@127.0.0.1:1/none", &[]).await;
    let client = http_client();
    let get = |path: &'static str| {
        let client = client.clone();
        let url = format!("{}{path}", plane.url);
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/healthz").await, 200);
    assert_eq!(get("/readyz").await, 503);
    let key = "gh_000000000000000000000000000000000000000000000000";
    let status = client
        .get(plane.proxy("a/b"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 503);
}
