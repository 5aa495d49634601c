//! Faithful forwarding (SPEC §2): every method, header order and repeats, bodies byte-exact and
//! still encoded, trailers both ways, and WebSocket upgrades tunnelled with credentials injected
//! and closed when idle.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use gatehouse_tests::raw::{RawUpstream, exchange, read_head};
use gatehouse_tests::upstream::{EchoUpstream, serve};
use gatehouse_tests::{Gateway, UPSTREAM_KEY, http_client, wait_until};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(3);

#[tokio::test]
async fn every_method_and_body_passes_byte_exact() {
    let upstream = EchoUpstream::start().await;
    let gw = Gateway::start(&upstream.url(), json!({}), &[]).await;
    let client = http_client();
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let mut multipart =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\
        Content-Type: application/octet-stream\r\n\r\n"
            .to_vec();
    multipart.extend_from_slice(&binary);
    multipart.extend_from_slice(b"\r\n--XyZ--\r\n");
    let cases: [(&str, &str, Vec<u8>); 7] = [
        (
            "PATCH",
            "application/merge-patch+json",
            b"{\"a\":null}".to_vec(),
        ),
        ("PURGE", "text/plain", Vec::new()),
        ("PROPFIND", "application/xml", b"<propfind/>".to_vec()),
        ("OPTIONS", "text/plain", Vec::new()),
        ("PUT", "application/octet-stream", binary.clone()),
        (
            "POST",
            "multipart/form-data; boundary=XyZ",
            multipart.clone(),
        ),
        ("DELETE", "text/plain", Vec::new()),
    ];
    for (method, content_type, body) in cases {
        let response = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                gw.url("/m?x=1"),
            )
            .bearer_auth(&gw.key)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method}");
        let seen = upstream.last().unwrap();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            (method, "/m?x=1")
        );
        assert_eq!(seen.body, body, "{method}");
        assert_eq!(seen.header("content-type"), Some(content_type));
    }

    let head = client
        .head(gw.url("/h"))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().contains_key("content-length"));
    assert!(head.bytes().await.unwrap().is_empty());
    assert_eq!(upstream.last().unwrap().method, "HEAD");
}

#[tokio::test]
async fn encoded_bodies_pass_untouched() {
    // Not valid gzip on purpose: the gateway must neither decode nor check it.
    const GZIPPED: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03opaque\xff\x00";
    let app = axum::Router::new().fallback(|| async {
        (
            [
                ("content-encoding", "gzip"),
                ("content-type", "application/json"),
            ],
            GZIPPED,
        )
    });
    let gw = Gateway::start(&serve(app).await, json!({}), &[]).await;
    let response = http_client()
        .get(gw.url("/z"))
        .bearer_auth(&gw.key)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(&response.bytes().await.unwrap()[..], GZIPPED);

    let echo = EchoUpstream::start().await;
    let gw = Gateway::start(&echo.url(), json!({}), &[]).await;
    http_client()
        .post(gw.url("/z"))
        .bearer_auth(&gw.key)
        .header("content-encoding", "gzip")
        .body(GZIPPED)
        .send()
        .await
        .unwrap();
    let seen = echo.last().unwrap();
    assert_eq!(seen.header("content-encoding"), Some("gzip"));
    assert_eq!(seen.body, GZIPPED);
}

/// Positions of `names` in `headers`, to compare orders.
fn order(headers: &[(String, String)], names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|n| headers.iter().position(|(h, _)| h == n).unwrap())
        .collect()
}

#[tokio::test]
async fn header_order_and_repeats_are_kept_both_ways() {
    let upstream = EchoUpstream::start().await;
    let gw = Gateway::start(&upstream.url(), json!({}), &[]).await;
    let request = format!(
        "GET /proxy-api/acme/svc/o HTTP/1.1\r\nAuthorization: Bearer {}\r\nX-Zeta: 1\r\n\
         Keep-Alive: 5\r\nX-Multi: a\r\nHost: gw\r\nX-Multi: b\r\nX-Alpha: 1\r\n\
         Connection: close, x-gone\r\nX-Gone: 1\r\nAccept: */*\r\nX-Mid: 1\r\n\r\n",
        gw.key
    );
    assert_eq!(
        exchange(gw.dp.addr, request.as_bytes(), DEADLINE)
            .await
            .status(),
        200
    );
    let seen = upstream.last().unwrap();
    let positions = order(
        &seen.headers,
        &["x-zeta", "x-multi", "x-alpha", "accept", "x-mid"],
    );
    assert!(positions.is_sorted(), "{:?}", seen.headers);
    assert_eq!(seen.header_values("x-multi"), ["a", "b"]);
    assert_eq!(seen.header("x-gone"), None);

    let raw = RawUpstream::start(
        b"HTTP/1.1 200 OK\r\nX-Zeta: 1\r\nConnection: close\r\nSet-Cookie: a=1\r\n\
          X-Alpha: 1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let gw = Gateway::start(&raw.url(), json!({}), &[]).await;
    let request = format!(
        "GET /proxy-api/acme/svc/o HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\n\r\n",
        gw.key
    );
    let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
    let head = reply.text.to_ascii_lowercase();
    let at = |needle: &str| head.find(needle).unwrap();
    assert!(
        at("x-zeta") < at("set-cookie: a=1")
            && at("set-cookie: a=1") < at("set-cookie: b=2")
            && at("set-cookie: b=2") < at("x-alpha"),
        "{head}"
    );
}

#[tokio::test]
async fn trailers_are_relayed_both_ways() {
    let app = axum::Router::new().fallback(|request: axum::extract::Request| async move {
        let collected = request.into_body().collect().await.unwrap();
        let got = collected
            .trailers()
            .and_then(|t| t.get("x-request-sum"))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-response-sum", "42".parse().unwrap());
        let frames = [
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"body"))),
            Ok(Frame::trailers(trailers)),
        ];
        axum::http::Response::builder()
            .header("trailer", "x-response-sum")
            .header("x-got-request-sum", got)
            .body(Body::new(StreamBody::new(futures_util::stream::iter(
                frames,
            ))))
            .unwrap()
    });
    let gw = Gateway::start(&serve(app).await, json!({}), &[]).await;

    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-request-sum", "7".parse().unwrap());
    let frames = [
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"upload"))),
        Ok(Frame::trailers(trailers)),
    ];
    let request = http::Request::post(gw.url("/t"))
        .header("authorization", format!("Bearer {}", gw.key))
        .header("te", "trailers")
        .header("trailer", "x-request-sum")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-got-request-sum"], "7");
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-response-sum"], "42");
    assert_eq!(&collected.to_bytes()[..], b"body");
}

/// An upstream that accepts WebSocket-style upgrades, sends back the request head it saw, then
/// echoes every byte until the tunnel closes; it counts the tunnels the gateway has closed.
async fn upgrading_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&closed);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Some(head) = read_head(&mut stream).await else {
                    return;
                };
                let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
                stream.write_all(reply.as_bytes()).await.unwrap();
                let (mut reader, mut writer) = stream.split();
                writer.write_all(&head).await.unwrap();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
                counter.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (format!("http://{addr}"), closed)
}

fn upgrade_request(key: &str, connection: &str) -> String {
    format!(
        "GET /proxy-api/acme/svc/realtime?model=x HTTP/1.1\r\nHost: gw\r\n\
         Authorization: Bearer {key}\r\nConnection: {connection}\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Opens a tunnel through the gateway: the caller's end, and what it received first (the 101,
/// then the upstream's copy of the request head it saw), lowercased.
async fn open_tunnel(gw: &Gateway) -> (TcpStream, String) {
    let mut caller = TcpStream::connect(gw.dp.addr).await.unwrap();
    caller
        .write_all(upgrade_request(&gw.key, "Upgrade").as_bytes())
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while received.windows(4).filter(|w| *w == b"\r\n\r\n").count() < 2 {
        let n = tokio::time::timeout(DEADLINE, caller.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
    }
    (
        caller,
        String::from_utf8_lossy(&received).to_ascii_lowercase(),
    )
}

/// A WebSocket frame, and the check that it comes back through the tunnel.
async fn echo_frame(caller: &mut TcpStream) {
    let frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    caller.write_all(frame).await.unwrap();
    let mut echoed = vec![0u8; frame.len()];
    tokio::time::timeout(DEADLINE, caller.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, frame);
}

#[tokio::test]
async fn websocket_upgrades_are_tunnelled_with_credentials_injected() {
    let (url, _) = upgrading_upstream().await;
    let gw = Gateway::start(&url, json!({}), &[]).await;
    let (mut caller, text) = open_tunnel(&gw).await;
    let (response, upstream_saw) = text.split_once("\r\n\r\n").unwrap();
    assert!(response.starts_with("http/1.1 101"), "{response}");
    assert!(response.contains("upgrade: websocket") && response.contains("sec-websocket-accept"));
    assert!(
        upstream_saw.starts_with("get /realtime?model=x http/1.1"),
        "{upstream_saw}"
    );
    assert_eq!(
        upstream_saw
            .matches(&format!("x-upstream-key: {UPSTREAM_KEY}"))
            .count(),
        1
    );
    assert!(!upstream_saw.contains("authorization"));
    assert!(
        upstream_saw.contains("connection: upgrade") && upstream_saw.contains("upgrade: websocket")
    );
    assert!(upstream_saw.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq=="));

    // Bytes flow both ways through the tunnel.
    echo_frame(&mut caller).await;
    // The tunnel counts as in flight until either side closes it.
    assert_eq!(gw.dp.in_flight(), 1);
    drop(caller);
    gw.dp.wait_idle().await;

    // The same access checks as any request: no key, no tunnel.
    let refused = upgrade_request("gh_not-a-key", "Upgrade, close");
    let reply = exchange(gw.dp.addr, refused.as_bytes(), DEADLINE).await;
    assert_eq!(reply.status(), 401, "{}", reply.text);
}

/// RELIABILITY S11: a tunnel that passes no byte either way for `TUNNEL_IDLE_TIMEOUT_MS` is
/// closed on both sides; traffic in either direction keeps it open however long it lasts.
#[tokio::test]
async fn idle_tunnels_are_closed_on_both_sides() {
    let (url, upstream_closed) = upgrading_upstream().await;
    let idle = Duration::from_millis(1_000);
    let gw = Gateway::start(&url, json!({}), &["--tunnel-idle-timeout-ms", "1000"]).await;
    let (mut caller, _) = open_tunnel(&gw).await;
    let opened = Instant::now();
    while opened.elapsed() < idle * 5 / 2 {
        tokio::time::sleep(idle / 4).await;
        echo_frame(&mut caller).await;
    }
    assert_eq!(upstream_closed.load(Ordering::SeqCst), 0);
    let silent = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(idle * 4, caller.read(&mut buf))
        .await
        .expect("closed by the gateway")
        .unwrap_or(0);
    let closed_after = silent.elapsed();
    println!(
        "open {:?} with traffic; closed {closed_after:?} into silence",
        silent - opened
    );
    assert_eq!(n, 0, "the caller's side is closed");
    // The last byte moved a moment before `silent` (the echo's way back) and the tunnel keeps
    // time in whole milliseconds, so allow a little under the timeout, never much.
    assert!(closed_after >= idle * 9 / 10, "{closed_after:?}");
    wait_until(DEADLINE, "the upstream's side closed", || async {
        upstream_closed.load(Ordering::SeqCst) == 1
    })
    .await;
    gw.dp.wait_idle().await;
}

#[tokio::test]
async fn http2_callers_are_forwarded_to_http1_upstreams() {
    let upstream = EchoUpstream::start().await;
    let gw = Gateway::start(&upstream.url(), json!({}), &[]).await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<String>();
    for i in 0..3 {
        let request = http::Request::post(gw.url(&format!("/h2/{i}?q=1")))
            .header("authorization", format!("Bearer {}", gw.key))
            .header("te", "trailers")
            .body(format!("over h2 {i}"))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-request-id"));
        let seen = upstream.last().unwrap();
        assert_eq!(seen.target, format!("/h2/{i}?q=1"));
        assert_eq!(seen.body, format!("over h2 {i}").into_bytes());
        assert_eq!(seen.header_values("x-upstream-key"), [UPSTREAM_KEY]);
        assert_eq!(seen.header("authorization"), None);
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let upstream = EchoUpstream::start().await;
    let gw = Gateway::start(&upstream.url(), json!({}), &[]).await;
    let client = http_client();
    let mut ids = Vec::new();
    for (path, key, status) in [
        ("/healthz", None, 200),
        ("/readyz", None, 200),
        ("/status", None, 200),
        ("/elsewhere", None, 404),
        ("/proxy-api/acme/svc/x", None, 401),
        ("/proxy-api/acme/svc/x", Some(gw.key.as_str()), 200),
    ] {
        let mut request = client.get(format!("{}{path}", gw.dp.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        ids.push(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "each response has its own id");
}
