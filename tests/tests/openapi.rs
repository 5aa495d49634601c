//! The OpenAPI document: valid references, exactly the routes of SPEC §6 that exist, and every
//! route it lists actually served by the router.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use gatehouse_tests::{ControlPlane, fresh_database, http_client};
use serde_json::Value;

/// Every `$ref` in `node` points at something in `doc`.
fn check_refs(doc: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let pointer = target.strip_prefix('#').unwrap();
                assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
            }
            map.values().for_each(|v| check_refs(doc, v));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_lists_exactly_the_served_routes() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let client = http_client();
    let doc: Value = client
        .get(format!("{}/api/v1/openapi.json", cp.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    check_refs(&doc, &doc);
    assert!(doc.pointer("/components/securitySchemes/bearer").is_some());

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = [
        "PUT /api/v1/apply",
        "GET /api/v1/provider-accounts",
        "POST /api/v1/provider-accounts",
        "GET /api/v1/provider-accounts/{account}",
        "PUT /api/v1/provider-accounts/{account}",
        "PATCH /api/v1/provider-accounts/{account}",
        "DELETE /api/v1/provider-accounts/{account}",
        "GET /api/v1/provider-accounts/{account}/collaborators",
        "PUT /api/v1/provider-accounts/{account}/collaborators",
        "GET /api/v1/provider-accounts/{account}/integrations",
        "POST /api/v1/provider-accounts/{account}/integrations",
        "GET /api/v1/provider-accounts/{account}/integrations/{endpoint}",
        "PUT /api/v1/provider-accounts/{account}/integrations/{endpoint}",
        "PATCH /api/v1/provider-accounts/{account}/integrations/{endpoint}",
        "DELETE /api/v1/provider-accounts/{account}/integrations/{endpoint}",
        "GET /api/v1/users",
        "POST /api/v1/users",
        "GET /api/v1/users/{email}",
        "PATCH /api/v1/users/{email}",
        "DELETE /api/v1/users/{email}",
        "GET /api/v1/virtual-accounts",
        "POST /api/v1/virtual-accounts",
        "GET /api/v1/virtual-accounts/{name}",
        "DELETE /api/v1/virtual-accounts/{name}",
        "GET /api/v1/teams",
        "POST /api/v1/teams",
        "GET /api/v1/teams/{team}",
        "DELETE /api/v1/teams/{team}",
        "GET /api/v1/teams/{team}/members",
        "PUT /api/v1/teams/{team}/members",
        "POST /api/v1/teams/{team}/members",
        "DELETE /api/v1/teams/{team}/members/{email}",
        "GET /api/v1/api-keys",
        "POST /api/v1/api-keys",
        "GET /api/v1/api-keys/{id}",
        "DELETE /api/v1/api-keys/{id}",
        "GET /api/v1/traces",
        "GET /api/v1/data-planes",
        "GET /api/v1/traces/{request_id}",
    ]
    .iter()
    .map(|line| {
        let (method, path) = line.split_once(' ').unwrap();
        (method.to_owned(), path.to_owned())
    })
    .collect();
    assert_eq!(documented, expected);

    // Each documented operation reaches a handler: never 405, never the catch-all's answer.
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", "0190a5d0-0000-7000-8000-000000000000")
            .replace("{request_id}", "0190a5d0-0000-7000-8000-000000000000")
            .replace(['{', '}'], "");
        let response = client
            .request(method.parse().unwrap(), format!("{}{concrete}", cp.url))
            .bearer_auth(&cp.admin_key)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path}");
        assert_ne!(
            body["detail"], "resource not found",
            "{method} {path} is not routed"
        );
    }
    let unknown: Value = client
        .get(format!("{}/api/v1/no-such-thing", cp.url))
        .bearer_auth(&cp.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        unknown["detail"], "resource not found",
        "the catch-all is what the check relies on"
    );
}
