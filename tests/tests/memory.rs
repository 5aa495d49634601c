//! Peak memory of a data plane process streaming 1 GiB up and 1 GiB down (issue 4: growth
//! under 64 MiB). The data plane runs in a child process (this test binary, re-executed in
//! [`child_data_plane`]) so that its VmHWM counts nothing but the gateway. Fast enough on a
//! debug build (about a second each way) to run with every test run.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Instant;

use futures_util::StreamExt;
use gatehouse_tests::pattern::{self, Checker};
use gatehouse_tests::upstream::serve;
use gatehouse_tests::{DataPlane, Gateway, http_client};
use serde_json::json;

const GIB: u64 = 1 << 30;
const CHILD_ENV: &str = "GATEHOUSE_CHILD_DATA_PLANE_DB";
const READY: &str = "child data plane listening on ";

/// The child side: serves a data plane on the database named in [`CHILD_ENV`] until stdin
/// closes. Does nothing in an ordinary test run.
#[test]
#[ignore = "runs only as the child of one_gib_each_way_keeps_data_plane_memory_flat"]
fn child_data_plane() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let plane = DataPlane::start_ready(&db).await;
        println!("{READY}{}", plane.addr);
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()))
            .await
            .unwrap()
            .unwrap();
    });
}

/// `VmRSS` and `VmHWM` of process `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
async fn one_gib_each_way_keeps_data_plane_memory_flat() {
    let app = pattern::upstream();
    let gw = Gateway::start(&serve(app).await, json!({}), &[]).await;
    let database_url = gw.dp.database_url.clone();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_data_plane", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, &database_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix(READY).map(str::to_owned))
        .expect("the child data plane starts");
    let url = |rest: &str| format!("http://{addr}/proxy-api/acme/svc{rest}");
    let client = http_client();

    // Warm up: one small request each way, so pools and buffers exist before the baseline.
    for _ in 0..2 {
        let r = client
            .get(url("/download/65536"))
            .bearer_auth(&gw.key)
            .send()
            .await
            .unwrap();
        r.bytes().await.unwrap();
    }
    let (baseline, _) = memory_kib(pid);

    let started = Instant::now();
    let upload = futures_util::stream::iter(pattern::chunks(GIB).map(Ok::<_, Infallible>));
    let reply: serde_json::Value = client
        .post(url("/upload"))
        .bearer_auth(&gw.key)
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply, json!({"received": GIB, "intact": true}));
    let upload_took = started.elapsed();

    let started = Instant::now();
    let response = client
        .get(url(&format!("/download/{GIB}")))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap();
    let mut checker = Checker::default();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        checker.feed(&chunk.unwrap());
    }
    assert_eq!((checker.received, checker.intact), (GIB, true));
    let download_took = started.elapsed();

    let (rss, peak) = memory_kib(pid);
    drop(child.stdin.take());
    child.wait().unwrap();
    let growth_mib = peak.saturating_sub(baseline) as f64 / 1024.0;
    println!(
        "data plane RSS: baseline {:.1} MiB, peak {:.1} MiB, after {:.1} MiB, peak growth \
         {growth_mib:.1} MiB; 1 GiB up in {upload_took:?}, 1 GiB down in {download_took:?}",
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss as f64 / 1024.0,
    );
    assert!(growth_mib < 64.0, "peak RSS grew by {growth_mib:.1} MiB");
}
