//! The incremental sync path (SPEC §4): random sequences of control-plane writes, and after
//! each one the table the data plane maintained from the change log must equal a table built
//! from a fresh full read of the same version. The writes go through the API, so this also
//! checks that every write path names what it touched. `GATEHOUSE_SYNC_SEED` replays a run;
//! `GATEHOUSE_SYNC_STEPS` sets its length.
//!
//! Also: a database schema this data plane does not understand is refused (RELIABILITY P13).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use data_plane::routing::RoutingTable;
use data_plane::sync::snapshot;
use data_plane::sync::snapshot_file::SnapshotFile;
use gatehouse_tests::upstream::EchoUpstream;
use gatehouse_tests::{
    Api, ControlPlane, DataPlane, Gateway, Metrics, config_version, fresh_database,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

/// Names of what exists, to aim writes at.
#[derive(Default)]
struct World {
    accounts: Vec<String>,
    /// (account, endpoint)
    integrations: Vec<(String, String)>,
    /// `kind:name`, the admin excluded (it must survive).
    subjects: Vec<String>,
    users: Vec<String>,
    teams: Vec<String>,
    keys: Vec<String>,
    next: u32,
}

impl World {
    fn name(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn some_subjects(&self, rng: &mut StdRng) -> Vec<String> {
        let n = rng.random_range(0..=self.subjects.len().min(3));
        self.subjects.choose_multiple(rng, n).cloned().collect()
    }

    fn collaborators(&self, rng: &mut StdRng) -> Value {
        let roles = ["provider-account-manager", "provider-account-access"];
        self.some_subjects(rng)
            .into_iter()
            .map(|s| json!({"subject": s, "role": roles.choose(rng).unwrap()}))
            .collect()
    }

    fn members(&self, rng: &mut StdRng) -> Value {
        let n = rng.random_range(0..=self.users.len().min(3));
        let users: Vec<&String> = self.users.choose_multiple(rng, n).collect();
        json!(
            users
                .into_iter()
                .map(|u| json!({"user": u}))
                .collect::<Vec<_>>()
        )
    }
}

fn headers(rng: &mut StdRng) -> Value {
    let mut headers = serde_json::Map::new();
    for _ in 0..rng.random_range(0..3) {
        let n = rng.random_range(0..4);
        headers.insert(
            format!("X-H{n}"),
            json!(format!("v{}", rng.random::<u16>())),
        );
    }
    Value::Object(headers)
}

fn header_auth(rng: &mut StdRng) -> Value {
    if rng.random_bool(0.5) {
        Value::Null
    } else {
        json!({"type": "header", "headers": {"X-Key": format!("secret-{}", rng.random::<u16>())}})
    }
}

/// One random write; what it was, and whether the API accepted it.
async fn random_write(api: &Api, world: &mut World, rng: &mut StdRng, upstream: &str) -> String {
    let account = world.accounts.choose(rng).cloned();
    let integration = world.integrations.choose(rng).cloned();
    let (what, reply) = match rng.random_range(0..16) {
        0 | 1 => {
            let name = world.name("acct");
            let body = json!({"name": name, "collaborators": world.collaborators(rng),
                "header_auth": header_auth(rng), "custom_headers": headers(rng)});
            let reply = api.post("/provider-accounts", body).await;
            if reply.status == 201 {
                world.accounts.push(name.clone());
            }
            (format!("create account {name}"), reply)
        }
        2 if account.is_some() => {
            let account = account.unwrap();
            let mut body = json!({"custom_headers": headers(rng), "header_auth": header_auth(rng),
                "collaborators": world.collaborators(rng)});
            let renamed = rng.random_bool(0.3).then(|| world.name("acct"));
            if let Some(new) = &renamed {
                body["name"] = json!(new);
            }
            let reply = api
                .patch(&format!("/provider-accounts/{account}"), body)
                .await;
            if let (Some(new), 200) = (&renamed, reply.status) {
                world.accounts.retain(|a| *a != account);
                world.accounts.push(new.clone());
                for (a, _) in world.integrations.iter_mut().filter(|(a, _)| *a == account) {
                    *a = new.clone();
                }
            }
            (
                format!("patch account {account} (renamed {renamed:?})"),
                reply,
            )
        }
        // Rarer than creations, so that the tables grow.
        3 if account.is_some() && rng.random_bool(0.4) => {
            let account = account.unwrap();
            let reply = api.delete(&format!("/provider-accounts/{account}")).await;
            if reply.status == 204 {
                world.accounts.retain(|a| *a != account);
                world.integrations.retain(|(a, _)| *a != account);
            }
            (format!("delete account {account}"), reply)
        }
        4 if account.is_some() => {
            let account = account.unwrap();
            let path = format!("/provider-accounts/{account}/collaborators");
            let reply = api.put(&path, world.collaborators(rng)).await;
            (format!("put collaborators of {account}"), reply)
        }
        5 | 6 if account.is_some() => {
            let account = account.unwrap();
            let name = world.name("svc");
            let body = json!({"name": name, "base_url": format!("{upstream}/v{}", rng.random::<u8>()),
                "authorized_subjects": world.some_subjects(rng), "custom_headers": headers(rng),
                "header_auth": header_auth(rng)});
            let path = format!("/provider-accounts/{account}/integrations");
            let reply = api.post(&path, body).await;
            if reply.status == 201 {
                world.integrations.push((account.clone(), name.clone()));
            }
            (format!("create integration {account}/{name}"), reply)
        }
        7 if integration.is_some() => {
            let (account, endpoint) = integration.unwrap();
            let mut body = json!({"authorized_subjects": world.some_subjects(rng),
                "custom_headers": headers(rng),
                "max_request_body_bytes": rng.random_bool(0.5).then_some(1024),
                "tls": {"reject_unauthorized": rng.random_bool(0.5)}});
            let renamed = rng.random_bool(0.3).then(|| world.name("svc"));
            if let Some(new) = &renamed {
                body["name"] = json!(new);
            }
            let path = format!("/provider-accounts/{account}/integrations/{endpoint}");
            let reply = api.patch(&path, body).await;
            if let (Some(new), 200) = (&renamed, reply.status) {
                for (_, e) in world
                    .integrations
                    .iter_mut()
                    .filter(|(a, e)| *a == account && *e == endpoint)
                {
                    *e = new.clone();
                }
            }
            let what = format!("patch integration {account}/{endpoint} (renamed {renamed:?})");
            (what, reply)
        }
        8 if integration.is_some() => {
            let (account, endpoint) = integration.unwrap();
            let path = format!("/provider-accounts/{account}/integrations/{endpoint}");
            let reply = api.delete(&path).await;
            if reply.status == 204 {
                world
                    .integrations
                    .retain(|(a, e)| !(*a == account && *e == endpoint));
            }
            (format!("delete integration {account}/{endpoint}"), reply)
        }
        9 => {
            let email = format!("{}@example.com", world.name("user"));
            let body = json!({"email": email, "is_admin": rng.random_bool(0.2)});
            let reply = api.post("/users", body).await;
            if reply.status == 201 {
                world.users.push(email.clone());
                world.subjects.push(format!("user:{email}"));
            }
            (format!("create user {email}"), reply)
        }
        10 if !world.users.is_empty() => {
            let email = world.users.choose(rng).cloned().unwrap();
            let body = json!({"is_admin": rng.random_bool(0.5)});
            let reply = api.patch(&format!("/users/{email}"), body).await;
            (format!("patch user {email}"), reply)
        }
        11 => {
            let name = world.name("team");
            let body = json!({"name": name, "members": world.members(rng)});
            let reply = api.post("/teams", body).await;
            if reply.status == 201 {
                world.teams.push(name.clone());
                world.subjects.push(format!("team:{name}"));
            }
            (format!("create team {name}"), reply)
        }
        12 if !world.teams.is_empty() => {
            let team = world.teams.choose(rng).cloned().unwrap();
            let path = format!("/teams/{team}/members");
            let reply = match (rng.random_range(0..3), world.users.choose(rng)) {
                (0, Some(user)) => api.post(&path, json!({"user": user})).await,
                (1, Some(user)) => api.delete(&format!("{path}/{user}")).await,
                _ => api.put(&path, world.members(rng)).await,
            };
            (format!("change members of {team}"), reply)
        }
        13 if !world.subjects.is_empty() => {
            let subject = world.subjects.choose(rng).cloned().unwrap();
            let (kind, name) = subject.split_once(':').unwrap();
            let path = match kind {
                "user" => format!("/users/{name}"),
                "team" => format!("/teams/{name}"),
                _ => format!("/virtual-accounts/{name}"),
            };
            let reply = api.delete(&path).await;
            if reply.status == 204 {
                world.subjects.retain(|s| *s != subject);
                world.users.retain(|u| u != name);
                world.teams.retain(|t| t != name);
            }
            (format!("delete {subject}"), reply)
        }
        14 => {
            let name = world.name("bot");
            let reply = api.post("/virtual-accounts", json!({"name": name})).await;
            if reply.status == 201 {
                world.subjects.push(format!("virtualaccount:{name}"));
            }
            (format!("create virtual account {name}"), reply)
        }
        _ => {
            if world.keys.is_empty() || rng.random_bool(0.6) {
                let owner = world.subjects.choose(rng).cloned();
                let body = json!({"name": world.name("key"), "owner": owner});
                let reply = api.post("/api-keys", body).await;
                if reply.status == 201 {
                    world
                        .keys
                        .push(reply.json["id"].as_str().unwrap().to_owned());
                }
                (format!("create key for {owner:?}"), reply)
            } else {
                let id = world
                    .keys
                    .swap_remove(rng.random_range(0..world.keys.len()));
                let reply = api.delete(&format!("/api-keys/{id}")).await;
                (format!("revoke key {id}"), reply)
            }
        }
    };
    format!("{what}: {}", reply.status)
}

/// A table built from a full read of the database as it is now.
async fn full_table(db: &sqlx::PgPool) -> RoutingTable {
    let keyring = shared::crypto::Keyring::parse(gatehouse_tests::TEST_ENCRYPTION_KEYS).unwrap();
    let mut clients =
        data_plane::upstream::Clients::new(Duration::from_secs(5), Default::default());
    let snapshot = snapshot::load(db).await.unwrap();
    RoutingTable::build(&snapshot, &keyring, &mut clients).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_tables_equal_full_reloads_after_every_random_write() {
    let seed: u64 = std::env::var("GATEHOUSE_SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let steps: usize = std::env::var("GATEHOUSE_SYNC_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    println!("GATEHOUSE_SYNC_SEED={seed} GATEHOUSE_SYNC_STEPS={steps}");
    let mut rng = StdRng::seed_from_u64(seed);
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let upstream = EchoUpstream::start().await;
    let api = cp.admin();
    let dir = std::env::temp_dir().join(format!("gatehouse-inc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("snapshot");
    let key = "22".repeat(32);
    let flags = [
        "--snapshot-file",
        file.to_str().unwrap(),
        "--snapshot-key",
        &key,
    ];
    let plane = DataPlane::start_ready_with(&db, &flags).await;
    let start = plane.status();

    let mut world = World::default();
    let mut writes = 0_u64;
    for step in 0..steps {
        let before = config_version(&cp.db).await;
        let what = random_write(&api, &mut world, &mut rng, &upstream.url()).await;
        let version = config_version(&cp.db).await;
        if version == before {
            continue;
        }
        writes += 1;
        plane.wait_applied(version, Duration::from_secs(5)).await;
        let served = plane.gateway.table.load_full();
        assert_eq!(served.version, version);
        assert!(
            *served == full_table(&cp.db).await,
            "step {step} ({what}): the incrementally maintained table differs from a full \
             reload; replay with GATEHOUSE_SYNC_SEED={seed}"
        );
    }
    let end = plane.status();
    println!(
        "{writes} writes of {steps} steps; routes {}; incremental reloads {}",
        plane.gateway.table.load().route_count(),
        end.incremental_reloads - start.incremental_reloads
    );
    assert!(
        writes as usize > steps / 2,
        "too few writes to mean anything"
    );
    // Every write was applied incrementally: the path under test really ran.
    assert_eq!(end.incremental_reloads - start.incremental_reloads, writes);
    assert_eq!(end.reloads - start.reloads, writes);
    assert_eq!(end.reload_failures, 0);

    // The snapshot file followed the deltas too: it rebuilds to the same table.
    let version = config_version(&cp.db).await;
    let sealed = SnapshotFile::new(file.clone(), &[0x22; 32]);
    gatehouse_tests::wait_until(Duration::from_secs(5), "snapshot file current", || async {
        sealed.read().is_ok_and(|s| s.snapshot.version == version)
    })
    .await;
    let saved = sealed.read().unwrap().snapshot;
    let keyring = shared::crypto::Keyring::parse(gatehouse_tests::TEST_ENCRYPTION_KEYS).unwrap();
    let mut clients =
        data_plane::upstream::Clients::new(Duration::from_secs(5), Default::default());
    let from_file = RoutingTable::build(&saved, &keyring, &mut clients).unwrap();
    assert!(from_file == full_table(&cp.db).await);
    plane.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_schema_the_data_plane_does_not_understand_is_not_applied() {
    let upstream = EchoUpstream::start().await;
    // Frequent polls, so that refusals are retried quickly.
    let gateway = Gateway::start(
        &upstream.url(),
        json!({}),
        &["--sync-poll-interval-ms", "200"],
    )
    .await;
    let (cp, plane) = (&gateway.cp, &gateway.dp);
    let api = cp.admin();
    let supported = snapshot::supported_schemas();
    assert_eq!(plane.status().schema_version, *supported.end());
    assert!(plane.status().schema_supported);
    assert_eq!(gateway.get("/x").await.status(), 200);

    // A newer schema (as a migration this build does not know would leave), then a change.
    let newer = supported.end() + 1;
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
         values ($1, 'from the future', true, '\\x00', 0)",
    )
    .bind(newer)
    .execute(&cp.db)
    .await
    .unwrap();
    let failures = plane.status().reload_failures;
    let r = api.delete("/provider-accounts/acme/integrations/svc").await;
    assert_eq!(r.status, 204);
    let version = config_version(&cp.db).await;
    gatehouse_tests::wait_until(Duration::from_secs(5), "schema refused", || async {
        plane.status().reload_failures > failures
    })
    .await;
    let status = plane.status();
    assert_eq!(status.schema_version, newer);
    assert!(!status.schema_supported);
    assert!(status.applied_version < version, "nothing applied");
    // The last good table keeps serving, and the refusal shows in the metrics.
    assert_eq!(gateway.get("/x").await.status(), 200);
    let metrics = Metrics::scrape(&plane.url).await;
    assert!(
        metrics.contains("gatehouse_config_schema_supported 0"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("gatehouse_config_schema_version {newer}")));
    // An older one than this build needs is refused as well.
    sqlx::query("delete from _sqlx_migrations where version >= $1")
        .bind(supported.start())
        .execute(&cp.db)
        .await
        .unwrap();
    let failures = plane.status().reload_failures;
    gatehouse_tests::wait_until(Duration::from_secs(10), "older schema refused", || async {
        plane.status().reload_failures > failures
    })
    .await;
    assert!(!plane.status().schema_supported);
    assert_eq!(gateway.get("/x").await.status(), 200);

    // Back to the schema it understands: the pending change is applied.
    let restore = control_plane::db::MIGRATOR
        .iter()
        .filter(|m| m.version >= *supported.start());
    for migration in restore {
        sqlx::query(
            "insert into _sqlx_migrations (version, description, success, checksum, execution_time)
             values ($1, $2, true, $3, 0)",
        )
        .bind(migration.version)
        .bind(&*migration.description)
        .bind(&*migration.checksum)
        .execute(&cp.db)
        .await
        .unwrap();
    }
    plane.wait_applied(version, Duration::from_secs(10)).await;
    assert!(plane.status().schema_supported);
    assert_eq!(gateway.get("/x").await.status(), 404);
}
