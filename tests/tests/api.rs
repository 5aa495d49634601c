//! The control plane's REST contract for accounts and integrations: validation, conflicts,
//! masking, authentication, merge patch.

#![allow(clippy::unwrap_used)]

use gatehouse_tests::{ControlPlane, fresh_database};
use serde_json::json;

#[tokio::test]
async fn invalid_input_is_422_naming_the_field() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let api = cp.admin();
    let accounts = [
        (json!({"name": "AB"}), "name"),
        (json!({"name": "a_b_c"}), "name"),
        (json!({"name": "x".repeat(33)}), "name"),
        (
            json!({"name": "okay", "endpoint_type": "ftp"}),
            "endpoint_type",
        ),
        (
            json!({"name": "okay", "custom_headers": {"Bad Header": "x"}}),
            "custom_headers.Bad Header",
        ),
        (
            json!({"name": "okay", "header_auth": {"type": "header", "headers": {}}}),
            "header_auth.headers",
        ),
        (json!({"endpoint_type": "other"}), "name"),
        (
            json!({"name": "okay", "collaborators": [{"subject": "user:nobody@x.io", "role": "provider-account-access"}]}),
            "collaborators[0]",
        ),
    ];
    for (body, field) in accounts {
        let r = api.post("/provider-accounts", body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.content_type, "application/problem+json");
        assert_eq!(r.json["field"], field, "{body}: {}", r.text);
    }
    assert_eq!(
        api.post("/provider-accounts", json!({"name": "acme"}))
            .await
            .status,
        201
    );
    let integrations = [
        (json!({"name": "1abc", "base_url": "http://x.io"}), "name"),
        (json!({"name": "a b", "base_url": "http://x.io"}), "name"),
        (
            json!({"name": "svc", "base_url": "http://x.io/"}),
            "base_url",
        ),
        (
            json!({"name": "svc", "base_url": "http://x.io/v1/"}),
            "base_url",
        ),
        (
            json!({"name": "svc", "base_url": "http://x.io?q=1"}),
            "base_url",
        ),
        (
            json!({"name": "svc", "base_url": "http://user:pw@x.io"}),
            "base_url",
        ),
        (json!({"name": "svc", "base_url": "ftp://x.io"}), "base_url"),
        (
            json!({"name": "svc", "base_url": "http://x.io#frag"}),
            "base_url",
        ),
        (json!({"name": "svc"}), "base_url"),
        (
            json!({"name": "svc", "base_url": "http://x.io", "tls": {"ca_certs": "garbage"}}),
            "tls.ca_certs",
        ),
        (
            json!({"name": "svc", "base_url": "http://x.io", "authorized_subjects": ["robot:x"]}),
            "authorized_subjects[0]",
        ),
        (
            json!({"name": "svc", "base_url": "http://x.io", "authorized_subjects": ["team:ghosts"]}),
            "authorized_subjects[0]",
        ),
    ];
    for (body, field) in integrations {
        let r = api
            .post("/provider-accounts/acme/integrations", body.clone())
            .await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.json["field"], field, "{body}: {}", r.text);
    }
    let nothing: i64 = sqlx::query_scalar("select count(*) from integrations")
        .fetch_one(&cp.db)
        .await
        .unwrap();
    assert_eq!(nothing, 0, "refused input loses nothing and stores nothing");
}

#[tokio::test]
async fn duplicates_conflict_and_secrets_are_masked() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let api = cp.admin();
    let secret = "canary-7f3a9c-secret";
    let account =
        json!({"name": "acme", "header_auth": {"type": "header", "headers": {"X-Key": secret}}});
    let created = api.post("/provider-accounts", account.clone()).await;
    assert_eq!(created.status, 201);
    assert_eq!(api.post("/provider-accounts", account).await.status, 409);
    let integration = json!({"name": "svc", "base_url": "https://api.example.com/v1",
                             "header_auth": {"type": "header", "headers": {"Authorization": secret}}});
    let created_i = api
        .post("/provider-accounts/acme/integrations", integration.clone())
        .await;
    assert_eq!(created_i.status, 201);
    assert_eq!(
        api.post("/provider-accounts/acme/integrations", integration)
            .await
            .status,
        409
    );

    let reads = [
        created.text,
        created_i.text,
        api.get("/provider-accounts").await.text,
        api.get("/provider-accounts/acme").await.text,
        api.get("/provider-accounts/acme/integrations").await.text,
        api.get("/provider-accounts/acme/integrations/svc")
            .await
            .text,
    ];
    for text in &reads {
        assert!(!text.contains(secret), "secret leaked in {text}");
    }
    assert!(reads[3].contains("********"));

    // Read, edit, write back: masked values keep the stored secret.
    let mut current = api
        .get("/provider-accounts/acme/integrations/svc")
        .await
        .json;
    current["base_url"] = json!("https://api.example.com/v2");
    for generated in ["id", "account", "created_at", "updated_at"] {
        current.as_object_mut().unwrap().remove(generated);
    }
    let r = api
        .put("/provider-accounts/acme/integrations/svc", current)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stored: serde_json::Value =
        sqlx::query_scalar("select header_auth from integrations where name = 'svc'")
            .fetch_one(&cp.db)
            .await
            .unwrap();
    let keyring = shared::crypto::Keyring::parse(gatehouse_tests::TEST_ENCRYPTION_KEYS).unwrap();
    let stored: shared::model::HeaderAuth = serde_json::from_value(stored).unwrap();
    let id: uuid::Uuid = sqlx::query_scalar("select id from integrations where name = 'svc'")
        .fetch_one(&cp.db)
        .await
        .unwrap();
    let opened =
        shared::crypto::open_header_auth(&keyring, shared::crypto::INTEGRATIONS, id, &stored)
            .unwrap();
    assert_eq!(opened.headers()["Authorization"], secret);

    // A custom header marked secret is masked too, and kept when written back masked.
    let r = api
        .patch(
            "/provider-accounts/acme/integrations/svc",
            json!({"custom_headers": {"X-Token": "tok-secret-9"}, "secret_custom_headers": ["X-Token"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["custom_headers"]["X-Token"], "********");
    let r = api
        .patch(
            "/provider-accounts/acme/integrations/svc",
            json!({"custom_headers": {"X-Token": null}}),
        )
        .await;
    assert_eq!(
        r.status, 422,
        "a secret name must stay one of the custom headers: {}",
        r.text
    );
    assert_eq!(r.json["field"], "secret_custom_headers[0]");
    let r = api
        .patch(
            "/provider-accounts/acme/integrations/svc",
            json!({"secret_custom_headers": [], "custom_headers": {"X-Token": null}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Merge patch changes only what it names.
    let r = api
        .patch(
            "/provider-accounts/acme/integrations/svc",
            json!({"custom_headers": {"X-New": "1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["base_url"], "https://api.example.com/v2");
    assert_eq!(r.json["custom_headers"]["X-New"], "1");
    let r = api
        .patch(
            "/provider-accounts/acme",
            json!({"endpoint_type": "azure-speech-service"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["endpoint_type"], "azure-speech-service");
    assert!(r.json["header_auth"]["headers"]["X-Key"] == "********");
}

#[tokio::test]
async fn management_needs_a_valid_key_and_hides_what_it_cannot_see() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    for key in [
        "",
        "gh_nope",
        "gh_000000000000000000000000000000000000000000000000",
    ] {
        let r = cp.client(key).get("/provider-accounts").await;
        assert_eq!(r.status, 401, "{key}");
        assert_eq!(r.content_type, "application/problem+json");
    }
    let api = cp.admin();
    assert_eq!(
        api.post("/provider-accounts", json!({"name": "acme"}))
            .await
            .status,
        201
    );
    assert_eq!(api.get("/provider-accounts/nope").await.status, 404);
    assert_eq!(
        api.get("/provider-accounts/acme/integrations/nope")
            .await
            .status,
        404
    );
    assert_eq!(api.delete("/provider-accounts/acme").await.status, 204);
    assert_eq!(api.get("/provider-accounts/acme").await.status, 404);

    // Every write bumped the config version, with a change-log row each.
    let (version, changes): (i64, i64) = sqlx::query_as(
        "select (select version from config_version), (select count(*) from config_changes)",
    )
    .fetch_one(&cp.db)
    .await
    .unwrap();
    assert!(version >= 3, "{version}");
    assert_eq!(version, changes);
}

#[tokio::test]
async fn etags_guard_concurrent_writes() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let api = cp.admin();
    assert_eq!(
        api.post("/provider-accounts", json!({"name": "acme"}))
            .await
            .status,
        201
    );
    let body = json!({"name": "svc", "base_url": "http://x.io"});
    assert_eq!(
        api.post("/provider-accounts/acme/integrations", body)
            .await
            .status,
        201
    );
    let http = gatehouse_tests::http_client();
    for path in [
        "/provider-accounts/acme",
        "/provider-accounts/acme/integrations/svc",
    ] {
        let url = format!("{}/api/v1{path}", cp.url);
        let read = http
            .get(&url)
            .bearer_auth(&cp.admin_key)
            .send()
            .await
            .unwrap();
        assert!(read.headers().contains_key("x-request-id"));
        let tag = read.headers()["etag"].to_str().unwrap().to_owned();
        let patch = |tag: String| {
            http.patch(&url)
                .bearer_auth(&cp.admin_key)
                .header("if-match", tag)
                .json(&json!({"custom_headers": {"X-V": "1"}}))
                .send()
        };
        let first = patch(tag.clone()).await.unwrap();
        assert_eq!(first.status(), 200, "{path}");
        let new_tag = first.headers()["etag"].to_str().unwrap().to_owned();
        assert_ne!(new_tag, tag);
        assert_eq!(
            patch(tag.clone()).await.unwrap().status(),
            412,
            "stale tag on {path}"
        );
        let stale_delete = http
            .delete(&url)
            .bearer_auth(&cp.admin_key)
            .header("if-match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(stale_delete.status(), 412);
        assert_eq!(patch("*".into()).await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn lists_page_with_stable_cursors() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let api = cp.admin();
    for i in 0..7 {
        let r = api
            .post("/provider-accounts", json!({"name": format!("acct-{i}")}))
            .await;
        assert_eq!(r.status, 201);
    }
    let http = gatehouse_tests::http_client();
    let mut seen = Vec::new();
    let mut url = format!("{}/api/v1/provider-accounts?page_size=3", cp.url);
    let mut pages = 0;
    loop {
        let response = http
            .get(&url)
            .bearer_auth(&cp.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let next = response
            .headers()
            .get("x-next-page-token")
            .map(|v| v.to_str().unwrap().to_owned());
        let items: Vec<serde_json::Value> = response.json().await.unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|i| i["name"].as_str().unwrap().to_owned()));
        pages += 1;
        if pages == 1 {
            // An insert behind the cursor and one ahead of it while paging.
            api.post("/provider-accounts", json!({"name": "acct-00"}))
                .await;
            api.post("/provider-accounts", json!({"name": "acct-9"}))
                .await;
        }
        match next {
            Some(token) => {
                url = format!(
                    "{}/api/v1/provider-accounts?page_size=3&page_token={token}",
                    cp.url
                )
            }
            None => break,
        }
    }
    let expected: Vec<String> = [
        "acct-0", "acct-1", "acct-2", "acct-3", "acct-4", "acct-5", "acct-6", "acct-9",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(seen, expected, "no repeats, no skips of what was there");
    let bad = api.get("/provider-accounts?page_token=zz").await;
    assert_eq!(
        (bad.status, bad.json["field"].as_str()),
        (422, Some("page_token"))
    );
    let bad = api.get("/provider-accounts?page_size=0").await;
    assert_eq!(
        (bad.status, bad.json["field"].as_str()),
        (422, Some("page_size"))
    );
}

#[tokio::test]
async fn subjects_and_keys_have_etags_and_pages() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let api = cp.admin();
    let http = gatehouse_tests::http_client();
    assert_eq!(
        api.post("/users", json!({"email": "ada@example.com"}))
            .await
            .status,
        201
    );
    assert_eq!(api.post("/teams", json!({"name": "ml"})).await.status, 201);
    let key = api.post("/api-keys", json!({"name": "k"})).await.json;
    let key_path = format!("/api-keys/{}", key["id"].as_str().unwrap());
    let writes = [
        (
            "/users/ada@example.com",
            reqwest::Method::PATCH,
            "/users/ada@example.com",
            json!({"is_admin": false}),
        ),
        (
            "/teams/ml",
            reqwest::Method::POST,
            "/teams/ml/members",
            json!({"user": "ada@example.com"}),
        ),
        (
            key_path.as_str(),
            reqwest::Method::DELETE,
            key_path.as_str(),
            json!(null),
        ),
    ];
    for (read, method, write, body) in writes {
        let url = |path: &str| format!("{}/api/v1{path}", cp.url);
        let tag = http
            .get(url(read))
            .bearer_auth(&cp.admin_key)
            .send()
            .await
            .unwrap()
            .headers()["etag"]
            .to_str()
            .unwrap()
            .to_owned();
        let send = |tag: &str| {
            http.request(method.clone(), url(write))
                .bearer_auth(&cp.admin_key)
                .header("if-match", tag)
                .json(&body)
                .send()
        };
        assert_eq!(send("\"1\"").await.unwrap().status(), 412, "{write}");
        assert!(send(&tag).await.unwrap().status().is_success(), "{write}");
    }
    for i in 0..4 {
        api.post("/api-keys", json!({"name": format!("more-{i}")}))
            .await;
    }
    let (keys, pages) = api.all_pages("/api-keys", 2).await;
    let count = keys.len();
    assert_eq!(pages, 3);
    assert_eq!(count, 6, "the admin's test key, k and four more");
}
