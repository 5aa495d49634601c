//! Streaming both ways with no added delay or buffering, back-pressure, cancellation, limits
//! and upstream failures (SPEC §2, RELIABILITY S11, S12). Each test prints its figures.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use futures_util::StreamExt;
use gatehouse_tests::pattern::{self, Checker};
use gatehouse_tests::raw::{RawUpstream, exchange, read_head};
use gatehouse_tests::upstream::{EchoUpstream, serve};
use gatehouse_tests::{Gateway, http_client, wait_until};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const EVENTS: usize = 10;

#[tokio::test]
async fn server_sent_events_reach_the_caller_as_the_upstream_sends_them() {
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let log = Arc::clone(&sent);
    let app = axum::Router::new().route(
        "/events",
        get(move || {
            let log = Arc::clone(&log);
            async move {
                let events = futures_util::stream::unfold(0, move |i| {
                    let log = Arc::clone(&log);
                    async move {
                        if i == EVENTS {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        log.lock().unwrap().push(Instant::now());
                        let event = Bytes::from(format!("id: {i}\ndata: event {i}\n\n"));
                        Some((Ok::<_, Infallible>(event), i + 1))
                    }
                });
                axum::http::Response::builder()
                    .header("content-type", "text/event-stream")
                    .header("cache-control", "no-cache")
                    .body(Body::from_stream(events))
                    .unwrap()
            }
        }),
    );
    let gw = Gateway::start(&serve(app).await, json!({}), &[]).await;
    let response = http_client()
        .get(gw.url("/events"))
        .bearer_auth(&gw.key)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let mut arrived = Vec::new();
    let mut text = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        let now = Instant::now();
        while arrived.len() < text.matches("\n\n").count() {
            arrived.push(now);
        }
    }
    let sent = sent.lock().unwrap().clone();
    assert_eq!((sent.len(), arrived.len()), (EVENTS, EVENTS), "{text}");
    let latencies: Vec<Duration> = sent.iter().zip(&arrived).map(|(s, a)| *a - *s).collect();
    let worst = latencies.iter().max().unwrap();
    println!("SSE per-event latency through the gateway: {latencies:?}, worst {worst:?}");
    assert!(*worst < Duration::from_millis(50), "{latencies:?}");
    for i in 0..EVENTS {
        assert!(text.contains(&format!("data: event {i}\n\n")));
    }
}

const LARGE: u64 = 128 * 1024 * 1024;

#[tokio::test]
async fn large_uploads_and_downloads_stream_byte_exact() {
    let app = pattern::upstream();
    let gw = Gateway::start(&serve(app).await, json!({}), &[]).await;
    let client = http_client();

    let started = Instant::now();
    let upload = futures_util::stream::iter(pattern::chunks(LARGE).map(Ok::<_, Infallible>));
    let reply: serde_json::Value = client
        .post(gw.url("/upload"))
        .bearer_auth(&gw.key)
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply, json!({"received": LARGE, "intact": true}));
    let took = started.elapsed();
    println!(
        "upload {} MiB in {took:?} ({:.0} MiB/s)",
        LARGE >> 20,
        (LARGE >> 20) as f64 / took.as_secs_f64()
    );

    let started = Instant::now();
    let response = gw.get(&format!("/download/{LARGE}")).await;
    let mut checker = Checker::default();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        checker.feed(&chunk.unwrap());
    }
    assert_eq!((checker.received, checker.intact), (LARGE, true));
    let took = started.elapsed();
    println!(
        "download {} MiB in {took:?} ({:.0} MiB/s)",
        LARGE >> 20,
        (LARGE >> 20) as f64 / took.as_secs_f64()
    );
}

/// A download the upstream produces only as fast as it is read; returns its base URL and the
/// count of bytes produced so far.
async fn metered_download() -> (String, Arc<AtomicU64>) {
    let produced = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&produced);
    let app = axum::Router::new().route(
        "/endless",
        get(move || {
            let counter = Arc::clone(&counter);
            async move {
                let chunk = pattern::chunk();
                let chunks = futures_util::stream::repeat_with(move || {
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Ok::<_, Infallible>(chunk.clone())
                });
                Body::from_stream(chunks)
            }
        }),
    );
    (serve(app).await, produced)
}

#[tokio::test]
async fn a_slow_reader_holds_the_upstream_back() {
    let (base, produced) = metered_download().await;
    let gw = Gateway::start(&base, json!({}), &[]).await;
    let response = http_client()
        .get(gw.url("/endless"))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    // The reader stops; the upstream must stall once the buffers between are full.
    let mut last = 0;
    wait_until(Duration::from_secs(5), "the upstream to stall", || {
        let now = produced.load(Ordering::Relaxed);
        let stalled = now == last;
        last = now;
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stalled
        }
    })
    .await;
    let in_flight = produced.load(Ordering::Relaxed);
    println!(
        "upstream stalled after {:.1} MiB with the reader paused",
        in_flight as f64 / 1048576.0
    );
    assert!(in_flight < 32 << 20, "{in_flight} bytes produced");
    // Reading again resumes the stream.
    let mut read = 0;
    while read < 64 << 20 {
        read += body.next().await.unwrap().unwrap().len();
    }
    assert!(produced.load(Ordering::Relaxed) > in_flight);
}

/// An upstream that takes one request per connection and reports, through `closed`, when the
/// gateway closes that connection. With `stream_body` it answers with headers and then a chunk
/// every 20 ms for as long as it can write; otherwise it never answers.
async fn watching_upstream(stream_body: bool) -> (String, Arc<AtomicBool>, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (received, closed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (got, gone) = (Arc::clone(&received), Arc::clone(&closed));
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream).await.expect("a request head");
        got.store(true, Ordering::SeqCst);
        if stream_body {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            while stream.write_all(b"5\r\nhello\r\n").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            let mut buf = [0u8; 4096];
            while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        }
        gone.store(true, Ordering::SeqCst);
    });
    (format!("http://{addr}"), received, closed)
}

#[tokio::test]
async fn a_caller_that_disconnects_cancels_the_upstream_request() {
    for stream_body in [false, true] {
        let (base, received, closed) = watching_upstream(stream_body).await;
        let gw = Gateway::start(&base, json!({}), &[]).await;
        let mut caller = tokio::net::TcpStream::connect(gw.dp.addr).await.unwrap();
        let request = format!(
            "GET /proxy-api/acme/svc/wait HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\r\n",
            gw.key
        );
        caller.write_all(request.as_bytes()).await.unwrap();
        wait_until(
            Duration::from_secs(3),
            "the upstream to get the request",
            || {
                let received = received.load(Ordering::SeqCst);
                async move { received }
            },
        )
        .await;
        if stream_body {
            let mut buf = [0u8; 256];
            let _ = caller.read(&mut buf).await.unwrap();
        }
        drop(caller);
        let took = wait_until(
            Duration::from_secs(3),
            "the upstream connection to close",
            || {
                let closed = closed.load(Ordering::SeqCst);
                async move { closed }
            },
        )
        .await;
        gw.dp.wait_idle().await;
        let phase = if stream_body {
            "while streaming"
        } else {
            "before the response"
        };
        println!("caller gone {phase}: upstream connection closed {took:?} later");
    }
}

#[tokio::test]
async fn idle_bodies_are_cut_in_both_directions() {
    // An upstream that sends one chunk, then holds the connection open in silence.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idle_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            .await
            .unwrap();
        while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    let gw = Gateway::start(
        &format!("http://{idle_addr}"),
        json!({}),
        &["--body-idle-timeout-ms", "300"],
    )
    .await;
    let response = http_client()
        .get(gw.url("/slow"))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    let mut body = response.bytes_stream();
    assert_eq!(&body.next().await.unwrap().unwrap()[..], b"first");
    let end = tokio::time::timeout(Duration::from_secs(3), body.next())
        .await
        .unwrap();
    assert!(
        matches!(end, Some(Err(_))),
        "the cut stream must not look complete"
    );
    println!("idle upstream body cut after {:?}", started.elapsed());

    // The caller's body stalls halfway: 408, and the upstream request is abandoned.
    let echo = EchoUpstream::start().await;
    let gw = Gateway::start(&echo.url(), json!({}), &["--body-idle-timeout-ms", "300"]).await;
    let request = format!(
        "POST /proxy-api/acme/svc/upload HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 10\r\n\r\nhalf.",
        gw.key
    );
    let started = Instant::now();
    let reply = exchange(gw.dp.addr, request.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(reply.status(), 408, "{}", reply.text);
    assert!(reply.text.contains("x-gatehouse-error: request_timeout"));
    println!(
        "idle caller body answered 408 after {:?}",
        started.elapsed()
    );
    gw.dp.wait_idle().await;
    // Whatever the upstream saw of it, it never saw the whole body.
    assert!(echo.requests().iter().all(|r| r.body.len() < 10));
}

#[tokio::test]
async fn beyond_the_in_flight_cap_requests_get_503_at_once() {
    let (base, _) = metered_download().await;
    let gw = Gateway::start(&base, json!({}), &["--max-in-flight", "2"]).await;
    let client = http_client();
    let open = || client.get(gw.url("/endless")).bearer_auth(&gw.key).send();
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let shed = open().await.unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["x-gatehouse-error"], "overloaded");
    drop(first);
    wait_until(Duration::from_secs(3), "a slot to free up", || async {
        open().await.unwrap().status() == 200
    })
    .await;
    drop(second);
    gw.dp.wait_idle().await;
}

#[tokio::test]
async fn upstream_failures_map_to_502_and_504_and_upstream_errors_pass_through() {
    let error_of = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let marker = response.headers()["x-gatehouse-error"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], marker.as_str());
        (status, marker)
    };

    // Nothing listens on port 1: connection refused.
    let gw = Gateway::start("http://127.0.0.1:1", json!({}), &[]).await;
    let r = gw.get("/x").await;
    assert_eq!(error_of(r).await, (502, "upstream_unreachable".to_owned()));

    // An upstream that closes without answering.
    let reset = RawUpstream::start(b"").await;
    let gw = Gateway::start(&reset.url(), json!({}), &[]).await;
    let r = gw.get("/x").await;
    assert_eq!(error_of(r).await, (502, "upstream_unreachable".to_owned()));

    // An upstream that resets the connection (RST) on receiving the request.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reset_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.read(&mut [0u8; 4096]).await;
            stream.set_zero_linger().unwrap();
        }
    });
    let gw = Gateway::start(&format!("http://{reset_addr}"), json!({}), &[]).await;
    let r = gw.get("/x").await;
    assert_eq!(error_of(r).await, (502, "upstream_unreachable".to_owned()));

    // An upstream that never answers.
    let (base, _, _) = watching_upstream(false).await;
    let gw = Gateway::start(&base, json!({}), &["--upstream-response-timeout-ms", "300"]).await;
    let started = Instant::now();
    let r = gw.get("/x").await;
    assert_eq!(error_of(r).await, (504, "upstream_timeout".to_owned()));
    println!("504 after {:?}", started.elapsed());
    gw.dp.wait_idle().await;

    // A connection that cannot be set up: a listener whose accept queue is full drops SYNs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = socket.listen(0).unwrap();
    let full_addr = full.local_addr().unwrap();
    let mut fillers = Vec::new();
    while let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::TcpStream::connect(full_addr),
    )
    .await
    {
        fillers.push(stream);
    }
    let gw = Gateway::start(
        &format!("http://{full_addr}"),
        json!({}),
        &["--upstream-connect-timeout-ms", "300"],
    )
    .await;
    let started = Instant::now();
    let r = gw.get("/x").await;
    assert_eq!(error_of(r).await, (504, "upstream_timeout".to_owned()));
    println!("connect timeout → 504 after {:?}", started.elapsed());
    drop((full, fillers));

    // The upstream's own errors are relayed untouched.
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "7")],
            "busy upstream",
        )
    });
    let gw = Gateway::start(&serve(app).await, json!({}), &[]).await;
    let r = gw.get("/x").await;
    assert_eq!(r.status(), 503);
    assert!(!r.headers().contains_key("x-gatehouse-error"));
    assert_eq!(r.headers()["retry-after"], "7");
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.text().await.unwrap(), "busy upstream");
}

#[tokio::test]
async fn a_caller_that_sends_its_headers_too_slowly_is_disconnected() {
    let upstream = EchoUpstream::start().await;
    let gw = Gateway::start(
        &upstream.url(),
        json!({}),
        &["--header-read-timeout-ms", "300"],
    )
    .await;
    let full = format!(
        "GET /proxy-api/acme/svc/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\r\n",
        gw.key
    );
    let half = "GET /proxy-api/acme/svc/x HTTP/1.1\r\nHost: gw\r\nX-Slow: ";
    // Half a request head, then nothing (slowloris); nothing at all; and a slow second head on
    // a kept-alive connection.
    for (sent, answered) in [
        (half.to_owned(), 0),
        (String::new(), 0),
        (format!("{full}{half}"), 1),
    ] {
        let started = Instant::now();
        let reply = exchange(gw.dp.addr, sent.as_bytes(), Duration::from_secs(3)).await;
        assert!(reply.closed, "connection still open after {sent:?}");
        assert_eq!(reply.responses(), answered, "{}", reply.text);
        println!("slow header sender dropped after {:?}", started.elapsed());
    }
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn request_bodies_over_the_integration_limit_get_413() {
    let upstream = EchoUpstream::start().await;
    let gw = Gateway::start(
        &upstream.url(),
        json!({"max_request_body_bytes": 1024}),
        &[],
    )
    .await;
    let api = gw.cp.admin();
    let view = api.get("/provider-accounts/acme/integrations/svc").await;
    assert_eq!(view.json["max_request_body_bytes"], 1024);
    for bad in [json!(0), json!(-1), json!("1k")] {
        let r = api
            .patch(
                "/provider-accounts/acme/integrations/svc",
                json!({"max_request_body_bytes": bad}),
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    let client = http_client();

    let r = client
        .post(gw.url("/in"))
        .bearer_auth(&gw.key)
        .body(vec![7u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.last().unwrap().body.len(), 1024);
    let forwarded = upstream.requests().len();

    // A declared length over the limit: 413 at once, the body never read, nothing forwarded.
    let request = format!(
        "POST /proxy-api/acme/svc/big HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 1000000000\r\n\r\nfirst bytes of a gigabyte",
        gw.key
    );
    let reply = exchange(gw.dp.addr, request.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(reply.status(), 413, "{}", reply.text);
    assert!(reply.closed && reply.text.contains("x-gatehouse-error: body_too_large"));
    assert_eq!(upstream.requests().len(), forwarded);

    // No declared length: cut when the limit is crossed.
    let chunks = futures_util::stream::iter((0..4).map(|_| Ok::<_, Infallible>(vec![1u8; 512])));
    let r = client
        .post(gw.url("/chunked"))
        .bearer_auth(&gw.key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["x-gatehouse-error"], "body_too_large");
    assert!(upstream.requests().iter().all(|r| r.body.len() <= 1024));
}

#[tokio::test]
async fn a_truncated_upstream_body_is_never_passed_off_as_complete() {
    for reply in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten.."[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nonly ten..\r\n",
    ] {
        let upstream = RawUpstream::start(reply).await;
        let gw = Gateway::start(&upstream.url(), json!({}), &[]).await;
        let response = http_client()
            .get(gw.url("/cut"))
            .bearer_auth(&gw.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.bytes().await.is_err(),
            "a cut body must fail, not end"
        );
    }
}
