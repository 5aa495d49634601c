//! Secrets stay secret: nothing in plaintext at rest, ciphertexts bound to their rows, and no
//! secret in any API response or log line, even at trace level (RELIABILITY S8–S10).

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_tests::upstream::EchoUpstream;
use gatehouse_tests::{
    ControlPlane, DataPlane, TEST_ENCRYPTION_KEYS, fresh_database, http_client, wait_until,
};
use serde_json::json;

/// Everything the process logs, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sets up an account and integration with `secret` as header auth, a user key, and a data
/// plane that has served one request; returns the planes and every API answer seen.
async fn exercise(secret: &str) -> (ControlPlane, DataPlane, EchoUpstream, String, Vec<String>) {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let upstream = EchoUpstream::start().await;
    let api = cp.admin();
    let mut answers = Vec::new();
    for (path, body) in [
        (
            "/provider-accounts",
            json!({"name": "acme", "header_auth": {"type": "header", "headers": {"X-Account-Key": secret}}}),
        ),
        (
            "/provider-accounts/acme/integrations",
            json!({"name": "svc", "base_url": upstream.url(),
            "header_auth": {"type": "header", "headers": {"Authorization": format!("Bearer {secret}")}},
            "custom_headers": {"X-Custom-Secret": format!("{secret}-custom"), "X-Plain": "visible"},
            "secret_custom_headers": ["x-custom-secret"]}),
        ),
        ("/users", json!({"email": "ada@example.com"})),
        (
            "/api-keys",
            json!({"name": "ada", "owner": "user:ada@example.com"}),
        ),
    ] {
        let r = api.post(path, body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        answers.push(r.text);
    }
    let user_key =
        serde_json::from_str::<serde_json::Value>(answers.last().unwrap()).unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_owned();
    for path in [
        "/provider-accounts",
        "/provider-accounts/acme",
        "/provider-accounts/acme/integrations",
        "/provider-accounts/acme/integrations/svc",
        "/api-keys",
    ] {
        answers.push(api.get(path).await.text);
    }
    let plane = DataPlane::start_ready(&db).await;
    let url = plane.proxy("acme/svc/x");
    let client = http_client();
    wait_until(Duration::from_secs(2), "integration served", || async {
        client
            .get(&url)
            .bearer_auth(&cp.admin_key)
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    let seen = upstream.last().unwrap();
    assert_eq!(
        seen.header_values("authorization"),
        vec![format!("Bearer {secret}")],
        "injected exactly once"
    );
    assert_eq!(
        seen.header("x-custom-secret"),
        Some(format!("{secret}-custom").as_str())
    );
    assert_eq!(seen.header("x-plain"), Some("visible"));
    (cp, plane, upstream, user_key, answers)
}

#[tokio::test]
async fn no_secret_in_responses_or_logs_at_trace_level() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();
    let secret = "canary-93b1e2-header-auth";
    let (cp, _plane, _upstream, user_key, answers) = exercise(secret).await;
    let key_material = TEST_ENCRYPTION_KEYS.split_once(':').unwrap().1;
    for answer in &answers {
        for canary in [secret, key_material, cp.admin_key.as_str()] {
            assert!(
                !answer.contains(canary),
                "secret in an API answer: {answer}"
            );
        }
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.len() > 10_000,
        "trace logging was captured ({} bytes)",
        logs.len()
    );
    for canary in [
        secret,
        key_material,
        user_key.as_str(),
        cp.admin_key.as_str(),
    ] {
        assert!(!logs.contains(canary), "a secret reached the logs");
    }
}

#[tokio::test]
async fn nothing_secret_is_stored_in_plaintext() {
    let secret = "canary-5d0c4a-at-rest";
    let (cp, _plane, _upstream, user_key, _) = exercise(secret).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = 'public'",
    )
    .fetch_all(&cp.db)
    .await
    .unwrap();
    assert!(tables.len() >= 10, "{tables:?}");
    let mut dump = String::new();
    for table in &tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("select t::text from {table} t"))
            .fetch_all(&cp.db)
            .await
            .unwrap();
        dump.extend(rows);
    }
    assert!(dump.contains("v1.test."), "sealed values are there");
    let key_material = TEST_ENCRYPTION_KEYS.split_once(':').unwrap().1;
    for canary in [
        secret,
        user_key.as_str(),
        cp.admin_key.as_str(),
        key_material,
    ] {
        assert!(!dump.contains(canary), "plaintext secret at rest");
    }
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_is_refused_not_served() {
    let (cp, plane, upstream, _, _) = exercise("canary-original").await;
    let api = cp.admin();
    let r = api
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "other", "base_url": upstream.url(),
                   "header_auth": {"type": "header", "headers": {"Authorization": "Bearer canary-other"}}}),
        )
        .await;
    assert_eq!(r.status, 201);
    let client = http_client();
    let other = plane.proxy("acme/other/x");
    wait_until(
        Duration::from_secs(2),
        "second integration served",
        || async {
            client
                .get(&other)
                .bearer_auth(&cp.admin_key)
                .send()
                .await
                .unwrap()
                .status()
                == 200
        },
    )
    .await;
    let status_url = format!("{}/status", plane.url);
    let failures = || async {
        let status: serde_json::Value = client
            .get(&status_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status["reload_failures"].as_u64().unwrap()
    };
    let failures_before = failures().await;

    // Someone with database access swaps the two sealed values, then a change is announced.
    let mut tx = cp.db.begin().await.unwrap();
    sqlx::query(
        "update integrations i set header_auth = o.header_auth
         from integrations o where i.name = 'svc' and o.name = 'other'",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("update config_version set version = version + 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("select pg_notify('gatehouse_config', (select json_build_object('version', version)::text from config_version))")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    wait_until(
        Duration::from_secs(2),
        "the bad snapshot refused",
        || async { failures().await > failures_before },
    )
    .await;
    client
        .get(plane.proxy("acme/svc/x"))
        .bearer_auth(&cp.admin_key)
        .send()
        .await
        .unwrap();
    let seen = upstream.last().unwrap();
    assert_eq!(
        seen.header_values("authorization"),
        vec!["Bearer canary-original"],
        "the swapped value is never served"
    );
}

#[tokio::test]
async fn reseal_moves_every_value_to_the_new_key() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let api = cp.admin();
    let auth = json!({"type": "header", "headers": {"X-Key": "rotate-me"}});
    let r = api
        .post(
            "/provider-accounts",
            json!({"name": "acme", "header_auth": auth}),
        )
        .await;
    assert_eq!(r.status, 201);
    let new_key = "new:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let rotated =
        shared::crypto::Keyring::parse(&format!("{new_key},{TEST_ENCRYPTION_KEYS}")).unwrap();
    let changed = control_plane::reseal::reseal_all(&cp.db, &rotated)
        .await
        .unwrap();
    assert_eq!(changed, 1);
    assert_eq!(
        control_plane::reseal::reseal_all(&cp.db, &rotated)
            .await
            .unwrap(),
        0
    );
    let (id, sealed): (uuid::Uuid, sqlx::types::Json<shared::model::HeaderAuth>) =
        sqlx::query_as("select id, header_auth from provider_accounts")
            .fetch_one(&cp.db)
            .await
            .unwrap();
    let only_new = shared::crypto::Keyring::parse(new_key).unwrap();
    let opened =
        shared::crypto::open_header_auth(&only_new, shared::crypto::ACCOUNTS, id, &sealed.0)
            .unwrap();
    assert_eq!(opened.headers()["X-Key"], "rotate-me");
}
