//! `PUT /api/v1/apply` end to end: manifests reach running data planes, re-applying changes
//! nothing (no config version bump), pruning removes what a manifest no longer lists, invalid
//! manifests change nothing and name the object and field, and dry runs only report.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use gatehouse_tests::upstream::EchoUpstream;
use gatehouse_tests::{
    Api, ControlPlane, DataPlane, Reply, config_version, fresh_database, http_client,
};
use serde_json::{Value, json};

/// A manifest of account `acme` (header auth `secret`) with one integration per name.
fn manifest(upstream: &str, secret: &str, integrations: &[&str]) -> Value {
    let integrations: Vec<Value> = integrations
        .iter()
        .map(|name| json!({"name": name, "base_url": format!("{upstream}/{name}")}))
        .collect();
    json!([{
        "apiVersion": "gatehouse/v1",
        "kind": "ProviderAccount",
        "metadata": {"name": "acme"},
        "spec": {
            "endpoint_type": "other",
            "header_auth": {"type": "header", "headers": {"X-Upstream-Key": secret}},
            "custom_headers": {"X-Team": "ml"},
            "integrations": integrations
        }
    }])
}

async fn apply(api: &Api, documents: Value, dry_run: bool) -> Reply {
    api.put(
        "/apply",
        json!({"documents": documents, "dry_run": dry_run}),
    )
    .await
}

/// `action` of each object of a report, as `name=action`.
fn actions(report: &Value) -> Vec<String> {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}={}",
                o["name"].as_str().unwrap(),
                o["action"].as_str().unwrap()
            )
        })
        .collect()
}

async fn proxied_status(dp: &DataPlane, path: &str, key: &str) -> u16 {
    http_client()
        .get(dp.proxy(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn applied_manifests_are_served_reapplied_without_change_and_pruned() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let dp = DataPlane::start_ready(&db).await;
    let upstream = EchoUpstream::start().await;
    let api = cp.admin();

    let r = apply(
        &api,
        manifest(&upstream.url(), "s1", &["svc", "other"]),
        false,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        actions(&r.json),
        ["acme=created", "acme/svc=created", "acme/other=created"]
    );
    assert!(
        !r.text.contains("s1"),
        "secrets are masked in the report: {}",
        r.text
    );
    let version = r.json["version"].as_i64().unwrap();
    dp.wait_applied(version, Duration::from_secs(5)).await;
    assert_eq!(
        proxied_status(&dp, "acme/svc/hello", &cp.admin_key).await,
        200
    );
    let seen = upstream.last().unwrap();
    assert_eq!(seen.target, "/svc/hello");
    assert_eq!(seen.header("x-upstream-key"), Some("s1"));
    assert_eq!(seen.header("x-team"), Some("ml"));

    // The same manifest again: nothing written, no version bump.
    let r = apply(
        &api,
        manifest(&upstream.url(), "s1", &["svc", "other"]),
        false,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["changed"], false, "{}", r.text);
    assert_eq!(
        actions(&r.json),
        [
            "acme=unchanged",
            "acme/svc=unchanged",
            "acme/other=unchanged"
        ]
    );
    assert_eq!(r.json["version"].as_i64().unwrap(), version);
    assert_eq!(config_version(&cp.db).await, version);

    // A new secret value is a change although reads show both masked; `other` is pruned.
    let r = apply(&api, manifest(&upstream.url(), "s2", &["svc"]), false).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        actions(&r.json),
        ["acme=updated", "acme/svc=unchanged", "acme/other=deleted"]
    );
    let changes = &r.json["objects"][0]["changes"];
    assert_eq!(changes[0]["field"], "header_auth", "{changes}");
    assert!(
        !r.text.contains("s2") && !r.text.contains("s1"),
        "{}",
        r.text
    );
    let version = r.json["version"].as_i64().unwrap();
    dp.wait_applied(version, Duration::from_secs(5)).await;
    assert_eq!(
        proxied_status(&dp, "acme/other/x", &cp.admin_key).await,
        404
    );
    assert_eq!(proxied_status(&dp, "acme/svc/x", &cp.admin_key).await, 200);
    assert_eq!(
        upstream.last().unwrap().header("x-upstream-key"),
        Some("s2")
    );
}

#[tokio::test]
async fn an_invalid_manifest_changes_nothing_and_names_object_and_field() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let api = cp.admin();
    let upstream = "http://127.0.0.1:9";
    let r = apply(&api, manifest(upstream, "s1", &["svc"]), false).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let version = config_version(&cp.db).await;

    // Found while parsing: a base URL with a trailing slash.
    let mut bad = manifest(upstream, "s2", &["svc", "bad"]);
    bad[0]["spec"]["integrations"][1]["base_url"] = json!("http://127.0.0.1:9/");
    let r = apply(&api, bad, false).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json");
    assert_eq!(r.json["object"], "integration acme/bad");
    assert_eq!(r.json["field"], "base_url");

    // Found by shape: an unknown field of the account's spec.
    let mut bad = manifest(upstream, "s2", &["svc"]);
    bad[0]["spec"]["colaborators"] = json!([]);
    let r = apply(&api, bad, false).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["object"], "provider account acme");
    assert!(
        r.json["field"].as_str().unwrap().contains("colaborators"),
        "{}",
        r.text
    );

    // Found only against the database, after a valid document was already written in the
    // transaction: an unknown subject. All or nothing: the new account is not created either.
    let mut bad = manifest(upstream, "s2", &["svc"]);
    bad[0]["metadata"]["name"] = json!("first");
    let mut second = manifest(upstream, "s2", &["svc"])[0].clone();
    second["spec"]["integrations"][0]["authorized_subjects"] = json!(["team:nobody"]);
    bad.as_array_mut().unwrap().push(second);
    let r = apply(&api, bad, false).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["object"], "integration acme/svc");
    assert_eq!(r.json["field"], "authorized_subjects[0]");
    assert_eq!(api.get("/provider-accounts/first").await.status, 404);

    // Two documents for one account.
    let mut bad = manifest(upstream, "s1", &["svc"]);
    let twin = bad[0].clone();
    bad.as_array_mut().unwrap().push(twin);
    let r = apply(&api, bad, false).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["field"], "metadata.name");

    assert_eq!(config_version(&cp.db).await, version);
    let r = api.get("/provider-accounts/acme/integrations").await;
    assert_eq!(r.json.as_array().unwrap().len(), 1, "{}", r.text);
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_reports_the_diff() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let api = cp.admin();
    let upstream = "http://127.0.0.1:9";
    let r = apply(&api, manifest(upstream, "s1", &["svc", "old"]), false).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let version = config_version(&cp.db).await;

    let mut changed = manifest(upstream, "s2", &["svc", "new"]);
    changed[0]["spec"]["integrations"][0]["base_url"] = json!("http://127.0.0.1:9/moved");
    for dry_run in ["body", "query"] {
        let r = match dry_run {
            "body" => apply(&api, changed.clone(), true).await,
            _ => {
                api.put("/apply?dry_run=true", json!({"documents": changed.clone()}))
                    .await
            }
        };
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["dry_run"], true);
        assert_eq!(r.json["changed"], true);
        assert_eq!(
            actions(&r.json),
            [
                "acme=updated",
                "acme/svc=updated",
                "acme/new=created",
                "acme/old=deleted"
            ]
        );
        let svc = &r.json["objects"][1]["changes"][0];
        assert_eq!(svc["field"], "base_url");
        assert_eq!(svc["before"], "http://127.0.0.1:9/svc");
        assert_eq!(svc["after"], "http://127.0.0.1:9/moved");
        assert!(!r.text.contains("s2"), "{}", r.text);
        assert_eq!(r.json["version"].as_i64().unwrap(), version);
    }
    assert_eq!(config_version(&cp.db).await, version);
    let r = api.get("/provider-accounts/acme/integrations/svc").await;
    assert_eq!(r.json["base_url"], "http://127.0.0.1:9/svc");
    assert_eq!(
        api.get("/provider-accounts/acme/integrations/old")
            .await
            .status,
        200
    );
    assert_eq!(
        api.get("/provider-accounts/acme/integrations/new")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn apply_follows_who_may_manage() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let admin = cp.admin();
    let upstream = "http://127.0.0.1:9";
    assert_eq!(
        apply(&admin, manifest(upstream, "s1", &["svc"]), false)
            .await
            .status,
        200
    );
    let r = admin
        .post("/users", json!({"email": "dev@test.local"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin
        .post(
            "/api-keys",
            json!({"name": "dev", "owner": "user:dev@test.local"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let dev = cp.client(r.json["secret"].as_str().unwrap());

    // Someone else's account: as if it did not exist, and nothing changes.
    let r = apply(&dev, manifest(upstream, "s2", &[]), false).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.json["object"], "provider account acme");
    assert_eq!(
        admin
            .get("/provider-accounts/acme/integrations/svc")
            .await
            .status,
        200
    );

    // A user may create an account and stays its manager: re-applying is a no-op.
    let mut own = manifest(upstream, "s1", &["svc"]);
    own[0]["metadata"]["name"] = json!("devs");
    let r = apply(&dev, own.clone(), false).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = apply(&dev, own, false).await;
    assert_eq!(r.json["changed"], false, "{}", r.text);
    let r = dev.get("/provider-accounts/devs/collaborators").await;
    assert_eq!(
        r.json,
        json!([{"subject": "user:dev@test.local", "role": "provider-account-manager"}])
    );
}
