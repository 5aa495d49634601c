//! Identity and access end to end: who may manage (SPEC "Who may manage") and who may call
//! (SPEC "Who may call"), over the real API and a real data plane; key revocation and expiry
//! reaching two data planes.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use gatehouse_tests::upstream::EchoUpstream;
use gatehouse_tests::{Api, ControlPlane, DataPlane, fresh_database, http_client, wait_until};
use serde_json::{Value, json};

async fn created(reply: gatehouse_tests::Reply) -> Value {
    assert!(reply.status == 201, "{} {}", reply.status, reply.text);
    reply.json
}

/// Creates user `email` and an API key for it, returning the key.
async fn user_with_key(admin: &Api, email: &str) -> String {
    created(admin.post("/users", json!({"email": email})).await).await;
    let key = created(
        admin
            .post(
                "/api-keys",
                json!({"name": "k", "owner": format!("user:{email}")}),
            )
            .await,
    )
    .await;
    key["secret"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_role_gets_what_the_spec_prescribes() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let upstream = EchoUpstream::start().await;
    let admin = cp.admin();

    let mut keys = vec![("admin", cp.admin_key.clone())];
    for who in [
        "manager",
        "access",
        "teammate",
        "authorized",
        "authteammate",
        "stranger",
    ] {
        keys.push((
            who,
            user_with_key(&admin, &format!("{who}@example.com")).await,
        ));
    }
    created(
        admin
            .post(
                "/teams",
                json!({"name": "collab-team", "members": [{"user": "teammate@example.com"}]}),
            )
            .await,
    )
    .await;
    created(
        admin
            .post(
                "/teams",
                json!({"name": "auth-team", "members": [{"user": "authteammate@example.com"}]}),
            )
            .await,
    )
    .await;
    created(
        admin
            .post(
                "/provider-accounts",
                json!({"name": "acme", "collaborators": [
                    {"subject": "user:manager@example.com", "role": "provider-account-manager"},
                    {"subject": "user:access@example.com", "role": "provider-account-access"},
                    {"subject": "team:collab-team", "role": "provider-account-access"}
                ]}),
            )
            .await,
    )
    .await;
    let base = upstream.url();
    created(
        admin
            .post(
                "/provider-accounts/acme/integrations",
                json!({"name": "open", "base_url": base}),
            )
            .await,
    )
    .await;
    created(
        admin
            .post(
                "/provider-accounts/acme/integrations",
                json!({"name": "closed", "base_url": base,
                       "authorized_subjects": ["user:authorized@example.com", "team:auth-team"]}),
            )
            .await,
    )
    .await;
    let plane = DataPlane::start_ready(&db).await;
    let client = http_client();

    // (read account, edit account, call open, call closed)
    let expected = [
        ("admin", [200, 200, 200, 200]),
        ("manager", [200, 200, 200, 403]),
        ("access", [200, 403, 200, 403]),
        ("teammate", [200, 403, 200, 403]),
        ("authorized", [404, 404, 403, 200]),
        ("authteammate", [404, 404, 403, 200]),
        ("stranger", [404, 404, 403, 403]),
    ];
    for ((who, key), (name, want)) in keys.iter().zip(expected) {
        assert_eq!(*who, name);
        let api = cp.client(key);
        let read = api.get("/provider-accounts/acme").await.status;
        let edit = api
            .patch(
                "/provider-accounts/acme",
                json!({"custom_headers": {"X-Edited": who}}),
            )
            .await
            .status;
        let mut calls = [0u16; 2];
        for (i, endpoint) in ["open", "closed"].iter().enumerate() {
            let response = client
                .get(plane.proxy(&format!("acme/{endpoint}/x")))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            calls[i] = response.status().as_u16();
        }
        assert_eq!([read, edit, calls[0], calls[1]], want, "{who}");
        // Lists show only what the caller may see.
        let listed = api.get("/provider-accounts").await.json;
        assert_eq!(
            listed.as_array().unwrap().len(),
            usize::from(want[0] == 200),
            "{who}"
        );
    }
}

#[tokio::test]
async fn revoked_and_expired_keys_are_refused_by_every_data_plane_within_a_second() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let upstream = EchoUpstream::start().await;
    let admin = cp.admin();
    created(
        admin
            .post("/provider-accounts", json!({"name": "acme"}))
            .await,
    )
    .await;
    created(
        admin
            .post(
                "/provider-accounts/acme/integrations",
                json!({"name": "svc", "base_url": upstream.url()}),
            )
            .await,
    )
    .await;
    let revoked = created(admin.post("/api-keys", json!({"name": "to-revoke"})).await).await;
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let expiring = created(
        admin
            .post(
                "/api-keys",
                json!({"name": "to-expire", "expires_at": expires_at}),
            )
            .await,
    )
    .await;
    let planes = [
        DataPlane::start_ready(&db).await,
        DataPlane::start_ready(&db).await,
    ];
    let client = http_client();
    let status = |url: String, key: String| {
        let client = client.clone();
        async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let revoked_key = revoked["secret"].as_str().unwrap().to_owned();
    let expiring_key = expiring["secret"].as_str().unwrap().to_owned();
    for plane in &planes {
        let url = plane.proxy("acme/svc/x");
        wait_until(Duration::from_secs(2), "new keys served", || async {
            status(url.clone(), revoked_key.clone()).await == 200
                && status(url.clone(), expiring_key.clone()).await == 200
        })
        .await;
    }

    let listed = admin.get("/api-keys").await.text;
    assert!(
        !listed.contains(&revoked_key) && !listed.contains(&expiring_key),
        "secrets are shown once"
    );
    let id = revoked["id"].as_str().unwrap();
    assert_eq!(admin.delete(&format!("/api-keys/{id}")).await.status, 204);
    for plane in &planes {
        let url = plane.proxy("acme/svc/x");
        let took = wait_until(Duration::from_secs(1), "revoked key refused", || async {
            status(url.clone(), revoked_key.clone()).await == 401
        })
        .await;
        println!("revoked → 401 in {took:?}");
    }

    let until_expiry = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(until_expiry).await;
    for plane in &planes {
        let url = plane.proxy("acme/svc/x");
        let took = wait_until(Duration::from_secs(1), "expired key refused", || async {
            status(url.clone(), expiring_key.clone()).await == 401
        })
        .await;
        println!("expired → 401 in {took:?} after expiry");
    }
    // The control plane refuses them too.
    assert_eq!(
        cp.client(&revoked_key)
            .get("/provider-accounts")
            .await
            .status,
        401
    );
    assert_eq!(
        cp.client(&expiring_key)
            .get("/provider-accounts")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn membership_and_collaborator_changes_reach_the_data_plane() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let upstream = EchoUpstream::start().await;
    let admin = cp.admin();
    let key = user_with_key(&admin, "ada@example.com").await;
    created(admin.post("/teams", json!({"name": "ml"})).await).await;
    created(
        admin
            .post("/provider-accounts", json!({"name": "acme", "collaborators": [{"subject": "team:ml", "role": "provider-account-access"}]}))
            .await,
    )
    .await;
    created(
        admin
            .post(
                "/provider-accounts/acme/integrations",
                json!({"name": "svc", "base_url": upstream.url()}),
            )
            .await,
    )
    .await;
    let plane = DataPlane::start_ready(&db).await;
    let client = http_client();
    let url = plane.proxy("acme/svc/x");
    let status = || async {
        client
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status().await, 403);

    let r = admin
        .post("/teams/ml/members", json!({"user": "ada@example.com"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until(
        Duration::from_secs(1),
        "membership grants access",
        || async { status().await == 200 },
    )
    .await;

    assert_eq!(
        admin
            .put("/provider-accounts/acme/collaborators", json!([]))
            .await
            .status,
        200
    );
    wait_until(
        Duration::from_secs(1),
        "collaborator removal denies access",
        || async { status().await == 403 },
    )
    .await;
}

#[tokio::test]
async fn subjects_are_managed_by_admins_and_team_managers() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let admin = cp.admin();
    let ada = cp.client(&user_with_key(&admin, "ada@example.com").await);
    user_with_key(&admin, "bob@example.com").await;

    // Only admins manage users and virtual accounts.
    assert_eq!(
        ada.post("/users", json!({"email": "eve@example.com"}))
            .await
            .status,
        403
    );
    assert_eq!(
        ada.post("/virtual-accounts", json!({"name": "ci-bot"}))
            .await
            .status,
        403
    );
    assert_eq!(
        ada.get("/users").await.json.as_array().unwrap().len(),
        1,
        "a user sees itself only"
    );
    created(
        admin
            .post("/virtual-accounts", json!({"name": "ci-bot"}))
            .await,
    )
    .await;
    assert_eq!(
        admin
            .post("/virtual-accounts", json!({"name": "ci-bot"}))
            .await
            .status,
        409
    );
    let bot_key = created(
        admin
            .post(
                "/api-keys",
                json!({"name": "ci", "owner": "virtualaccount:ci-bot"}),
            )
            .await,
    )
    .await;
    assert_eq!(bot_key["owner"], "virtualaccount:ci-bot");
    assert_eq!(
        ada.post(
            "/api-keys",
            json!({"name": "x", "owner": "virtualaccount:ci-bot"})
        )
        .await
        .status,
        403
    );

    // A user creates a team and manages it; another member cannot.
    created(
        ada.post(
            "/teams",
            json!({"name": "ml", "members": [{"user": "bob@example.com"}]}),
        )
        .await,
    )
    .await;
    let members = ada.get("/teams/ml/members").await.json;
    assert_eq!(members.as_array().unwrap().len(), 2);
    let bob_key = created(
        admin
            .post(
                "/api-keys",
                json!({"name": "b", "owner": "user:bob@example.com"}),
            )
            .await,
    )
    .await;
    let bob = cp.client(bob_key["secret"].as_str().unwrap());
    assert_eq!(bob.get("/teams/ml").await.status, 200);
    assert_eq!(
        bob.post("/teams/ml/members", json!({"user": "ada@example.com"}))
            .await
            .status,
        403
    );
    let outsider = cp.client(&user_with_key(&admin, "out@example.com").await);
    assert_eq!(outsider.get("/teams/ml").await.status, 404);
    assert_eq!(
        ada.post("/teams/ml/members", json!({"user": "ghost@example.com"}))
            .await
            .status,
        422
    );

    // Collaborators must exist; the last admin stays.
    let r = admin
        .post("/provider-accounts", json!({"name": "acme", "collaborators": [{"subject": "team:ghosts", "role": "provider-account-access"}]}))
        .await;
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (422, Some("collaborators[0]"))
    );
    assert_eq!(admin.delete("/users/admin@test.local").await.status, 409);
    assert_eq!(
        admin
            .patch("/users/ada@example.com", json!({"is_admin": true}))
            .await
            .status,
        200
    );
    assert_eq!(
        ada.post("/users", json!({"email": "eve@example.com"}))
            .await
            .status,
        201
    );
}
