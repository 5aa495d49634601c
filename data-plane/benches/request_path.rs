//! Micro-benchmarks of the request path's pure parts (issue #8): route lookup at 10k and 100k
//! integrations (must stay flat), header rewrite, and API key verification against the table.
//! `cargo bench -p data-plane --bench request_path`; figures in docs/benchmark.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use data_plane::proxy::{self, headers};
use data_plane::routing::RoutingTable;
use data_plane::upstream::Clients;
use http::{HeaderMap, HeaderValue};
use shared::crypto::Keyring;
use shared::model::TlsSettings;
use shared::snapshot::{
    AccountSnapshot, IntegrationSnapshot, KeySnapshot, Snapshot, SubjectSnapshot,
};
use uuid::Uuid;

/// Integrations per provider account in the synthetic tables.
const PER_ACCOUNT: usize = 10;

struct Fixture {
    table: RoutingTable,
    /// Every (account, endpoint) pair, in a scattered order so lookups miss the cache as real
    /// traffic over many routes would.
    names: Vec<(String, String)>,
    keys: Vec<String>,
}

fn fixture(integrations: usize, key_count: usize) -> Fixture {
    let subject = Uuid::now_v7();
    let accounts: Vec<AccountSnapshot> = (0..integrations.div_ceil(PER_ACCOUNT))
        .map(|a| AccountSnapshot {
            id: Uuid::now_v7(),
            name: format!("account-{a}"),
            header_auth: None,
            custom_headers: BTreeMap::from([("x-tenant".to_owned(), format!("t{a}"))]),
            secret_custom_headers: vec![],
            collaborators: vec![subject],
        })
        .collect();
    let integrations: Vec<IntegrationSnapshot> = (0..integrations)
        .map(|i| {
            let account = &accounts[i / PER_ACCOUNT];
            IntegrationSnapshot {
                id: Uuid::now_v7(),
                account_id: account.id,
                name: format!("endpoint-{}", i % PER_ACCOUNT),
                base_url: format!("http://127.0.0.1:9/v1/{i}"),
                header_auth: None,
                custom_headers: BTreeMap::from([("x-upstream-key".to_owned(), format!("k{i}"))]),
                secret_custom_headers: vec![],
                tls: TlsSettings::default(),
                authorized_subjects: vec![],
                max_request_body_bytes: None,
            }
        })
        .collect();
    let keys: Vec<String> = (0..key_count)
        .map(|_| shared::api_key::generate().secret)
        .collect();
    let snapshot = Snapshot {
        version: 1,
        subjects: vec![SubjectSnapshot {
            id: subject,
            name: "user:bench".to_owned(),
            is_admin: false,
            teams: vec![],
        }],
        keys: keys
            .iter()
            .map(|k| KeySnapshot {
                id: Uuid::now_v7(),
                digest: shared::api_key::digest_of(k).expect("well-formed").to_vec(),
                subject_id: subject,
                expires_at: None,
            })
            .collect(),
        accounts: accounts.clone(),
        integrations: integrations.clone(),
    };
    let keyring = Keyring::parse(&Keyring::generate_spec("bench")).expect("keyring");
    let mut clients = Clients::new(Duration::from_secs(1), Default::default());
    let table = RoutingTable::build(&snapshot, &keyring, &mut clients).expect("table");
    // A fixed stride through the list: deterministic, and neighbours are far apart.
    let names = (0..integrations.len())
        .map(|i| (i * 7_919) % integrations.len())
        .map(|i| {
            (
                accounts[i / PER_ACCOUNT].name.clone(),
                integrations[i].name.clone(),
            )
        })
        .collect();
    Fixture { table, names, keys }
}

/// Routes a busy gateway's traffic concentrates on, in the hot-set variant.
const HOT_ROUTES: usize = 1_000;

/// Two access patterns per table size: requests spread uniformly over every route (each lookup
/// likely a cache miss once the table outgrows the CPU caches) and requests over a hot set of
/// routes (the structure's own cost, as table size grows).
fn route_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for size in [10_000, 100_000] {
        let fixture = fixture(size, 1);
        for (pattern, names) in [
            ("uniform", &fixture.names[..]),
            ("hot1000", &fixture.names[..HOT_ROUTES]),
        ] {
            let mut i = 0;
            group.bench_function(BenchmarkId::new(pattern, size), |b| {
                b.iter(|| {
                    let (account, endpoint) = &names[i % names.len()];
                    i += 1;
                    black_box(fixture.table.route(black_box(account), black_box(endpoint)))
                })
            });
        }
    }
    group.finish();
}

fn caller_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "gateway.example.com"),
        ("user-agent", "python-requests/2.32.3"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate"),
        (
            "authorization",
            "Bearer gh_0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        ("content-type", "application/json"),
        ("content-length", "1024"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("connection", "keep-alive"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    headers
}

fn header_rewrite(c: &mut Criterion) {
    let fixture = fixture(10, 1);
    let route = fixture
        .table
        .route("account-0", "endpoint-0")
        .expect("route");
    let peer = HeaderValue::from_static("127.0.0.1");
    let (_, request_id) = proxy::new_request_id();
    let caller = caller_headers();
    c.bench_function("header_rewrite/to_upstream", |b| {
        b.iter_batched(
            || caller.clone(),
            |h| headers::to_upstream(h, route, &peer, &request_id, None),
            BatchSize::SmallInput,
        )
    });
    let mut upstream = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("content-length", "1024"),
        ("date", "Thu, 26 Nov 2026 00:00:00 GMT"),
        ("server", "upstream"),
        ("connection", "keep-alive"),
    ] {
        upstream.append(name, HeaderValue::from_static(value));
    }
    c.bench_function("header_rewrite/to_caller", |b| {
        b.iter_batched(
            || upstream.clone(),
            |h| headers::to_caller(h, &request_id, None),
            BatchSize::SmallInput,
        )
    });
}

fn key_verification(c: &mut Criterion) {
    let fixture = fixture(10, 10_000);
    let requests: Vec<HeaderMap> = fixture
        .keys
        .iter()
        .map(|k| {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {k}")).expect("header"),
            );
            h
        })
        .collect();
    let mut i = 0;
    c.bench_function("key_verification/10k_keys", |b| {
        b.iter(|| {
            let headers = &requests[i % requests.len()];
            i += 1;
            black_box(proxy::authenticate(&fixture.table, black_box(headers)).is_ok())
        })
    });
}

criterion_group!(benches, route_lookup, header_rewrite, key_verification);
criterion_main!(benches);
