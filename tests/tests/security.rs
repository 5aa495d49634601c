//! RELIABILITY S1–S6 end to end, each in several spellings, with raw TCP wherever an HTTP
//! library would normalise the request before the gateway could see it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use data_plane::proxy::GATEWAY_ERROR_HEADER;
use gatehouse_tests::raw::{RawReply, RawUpstream, exchange};
use gatehouse_tests::upstream::{EchoUpstream, serve};
use gatehouse_tests::{Gateway, UPSTREAM_KEY, http_client};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(3);

/// Headers no upstream may ever see from a caller.
const NEVER_UPSTREAM: [&str; 10] = [
    "authorization",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "transfer-encoding",
    "x-hop-a",
    "x-hop-b",
];

async fn echo_gateway() -> (EchoUpstream, Gateway) {
    let upstream = EchoUpstream::start().await;
    let gateway = Gateway::start(&format!("{}/base", upstream.url()), json!({}), &[]).await;
    (upstream, gateway)
}

#[tokio::test]
async fn hop_by_hop_headers_and_caller_credentials_never_reach_the_upstream() {
    let (upstream, gw) = echo_gateway().await;
    let key = &gw.key;
    let spellings = [
        format!(
            "Connection: close, X-Hop-A\r\nX-Hop-A: 1\r\nKeep-Alive: timeout=5\r\n\
             Authorization: Bearer {key}\r\nProxy-Authorization: Basic YTpi\r\n\
             X-Upstream-Key: caller-value\r\n"
        ),
        format!(
            "connection: x-hop-a\r\nCONNECTION: close ,  X-HOP-B \r\nx-hop-a: 1\r\nX-Hop-B: 2\r\n\
             authorization: Bearer {key}\r\nPROXY-AUTHORIZATION: Bearer other\r\n\
             x-upstream-key: one\r\nX-UPSTREAM-KEY: two\r\nProxy-Connection: keep-alive\r\n"
        ),
        format!(
            "Connection: close\r\nAUTHORIZATION: Bearer {key}\r\nAuthorization: Basic YTpi\r\n\
             TE: gzip, deflate\r\nUpgrade: h2c\r\nKeep-Alive: 300\r\n"
        ),
    ];
    for (i, headers) in spellings.iter().enumerate() {
        let request = format!(
            "GET /proxy-api/acme/svc/hop HTTP/1.1\r\nHost: gw\r\nX-First: 1\r\n{headers}\
             X-Last: 1\r\n\r\n"
        );
        let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
        assert_eq!(reply.status(), 200, "spelling {i}: {}", reply.text);
        let seen = upstream.last().unwrap();
        for name in NEVER_UPSTREAM {
            assert_eq!(
                seen.header(name),
                None,
                "spelling {i}: {name} reached upstream"
            );
        }
        assert_eq!(
            seen.header_values("x-upstream-key"),
            [UPSTREAM_KEY],
            "spelling {i}: the upstream credential exactly once"
        );
        assert_eq!(seen.header("x-first"), Some("1"));
        assert_eq!(seen.header("x-last"), Some("1"));
    }
}

#[tokio::test]
async fn hop_by_hop_headers_never_reach_the_caller() {
    let upstream = RawUpstream::start(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop-Resp\r\nX-Hop-Resp: 1\r\n\
          Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic realm=x\r\n\
          Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let gw = Gateway::start(&upstream.url(), json!({}), &[]).await;
    let request = format!(
        "GET /proxy-api/acme/svc/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\n\r\n",
        gw.key
    );
    let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
    assert_eq!(reply.status(), 200, "{}", reply.text);
    let (head, body) = reply.text.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    for name in [
        "x-hop-resp",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(!head.contains(name), "{name} reached the caller:\n{head}");
    }
    assert!(head.contains("x-kept: yes"));
    assert!(body.contains("hello"));
}

/// The gateway's own error in a raw reply: its status, its `type`, after checking that the
/// marker header, `x-request-id` (the same id as in the body) and `Connection: close` are there.
fn gateway_error(reply: &RawReply) -> (u16, String) {
    let (head, body) = reply.text.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {head}"))
            .to_owned()
    };
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    let kind = body["error"]["type"].as_str().unwrap().to_owned();
    assert_eq!(header(GATEWAY_ERROR_HEADER), kind);
    assert_eq!(
        header("x-request-id"),
        body["error"]["request_id"].as_str().unwrap()
    );
    assert_eq!(header("connection"), "close");
    (reply.status(), kind)
}

/// RELIABILITY S2: a request whose framing two HTTP implementations could read differently is
/// refused with the gateway's error and the connection closed; nothing reaches the upstream, in
/// particular not a request smuggled in the body.
#[tokio::test]
async fn ambiguous_framing_is_refused_and_never_smuggles() {
    let (upstream, gw) = echo_gateway().await;
    let key = &gw.key;
    let smuggled = format!(
        "GET /proxy-api/acme/svc/smuggled HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    let chunked_smuggling = format!("0\r\n\r\n{smuggled}");
    let cases = [
        (
            "Content-Length: 5\r\nTransfer-Encoding: chunked",
            "0\r\n\r\n",
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 5",
            "0\r\n\r\n",
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 0",
            "0\r\n\r\n",
        ),
        (
            "transfer-encoding: CHUNKED\r\ncontent-length: 0",
            "0\r\n\r\n",
        ),
        (
            "tRaNsFeR-eNcOdInG:\t ChUnKeD \r\nContent-Length: 7",
            "0\r\n\r\n",
        ),
        (
            "Transfer-Encoding: identity\r\nContent-Length: 48\r\nTransfer-Encoding: chunked",
            "0\r\n\r\n",
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "0\r\n\r\n",
        ),
        ("Content-Length: 3\r\nContent-Length: 4", "abcd"),
        ("Content-Length: 3, 4", "abcd"),
        ("Content-Length: +3", "abc"),
        ("Transfer-Encoding: gzip\r\nContent-Length: 3", "abc"),
        ("Transfer-Encoding: chunked, gzip", "0\r\n\r\n"),
        // The smuggled request starts right where a reader of the length would stop.
        (
            "Content-Length: 0\r\nTransfer-Encoding: chunked",
            &chunked_smuggling,
        ),
    ];
    for (framing, body) in cases {
        let request = format!(
            "POST /proxy-api/acme/svc/first HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n\
             {framing}\r\n\r\n{body}{smuggled}"
        );
        let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
        assert!(reply.closed, "{framing:?}: connection left open");
        assert_eq!(reply.responses(), 1, "{framing:?}: {}", reply.text);
        assert_eq!(
            gateway_error(&reply),
            (400, "ambiguous_framing".to_owned()),
            "{framing:?}"
        );
    }
    // A space before the colon is no header at all.
    let request = format!(
        "POST /proxy-api/acme/svc/first HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n\
         Content-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
    assert_eq!(gateway_error(&reply), (400, "malformed_request".to_owned()));
    assert!(reply.closed && reply.responses() == 1);
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
}

/// Pipelined requests before a refused one are answered first, in order; the refused one ends
/// the connection and nothing after it is read.
#[tokio::test]
async fn a_refused_request_is_answered_after_the_requests_before_it() {
    let (upstream, gw) = echo_gateway().await;
    let key = &gw.key;
    let request = |path: &str, framing: &str, body: &str| {
        format!(
            "POST /proxy-api/acme/svc/{path} HTTP/1.1\r\nHost: gw\r\n\
             Authorization: Bearer {key}\r\n{framing}\r\n\r\n{body}"
        )
    };
    let pipelined = [
        request("one", "Content-Length: 5", "hello"),
        request("two", "Transfer-Encoding: chunked", "3\r\nabc\r\n0\r\n\r\n"),
        request(
            "three",
            "Transfer-Encoding: chunked\r\nContent-Length: 3",
            "0\r\n\r\n",
        ),
        request("four", "Content-Length: 0", ""),
    ]
    .concat();
    let reply = exchange(gw.dp.addr, pipelined.as_bytes(), DEADLINE).await;
    assert!(reply.closed);
    let statuses: Vec<&str> = reply
        .text
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|r| &r[..3])
        .collect();
    assert_eq!(statuses, ["200", "200", "400"], "{}", reply.text);
    assert!(reply.text.contains("ambiguous_framing"));
    let seen: Vec<_> = upstream
        .requests()
        .into_iter()
        .map(|r| (r.target, r.body))
        .collect();
    assert_eq!(
        seen,
        [
            ("/base/one".to_owned(), b"hello".to_vec()),
            ("/base/two".to_owned(), b"abc".to_vec())
        ]
    );
}

/// What hyper answers with an empty 400, 414 or 431 gets the gateway's error, `x-request-id`
/// included.
#[tokio::test]
async fn malformed_request_heads_get_the_gateways_error() {
    let (upstream, gw) = echo_gateway().await;
    let cases = [
        ("GARBAGE\r\n\r\n".to_owned(), 400, "malformed_request"),
        (
            "GET /proxy-api/acme/svc/x HTTP/1.1 extra\r\n\r\n".to_owned(),
            400,
            "malformed_request",
        ),
        (
            "GET /proxy-api/a<b HTTP/1.1\r\nHost: gw\r\n\r\n".to_owned(),
            400,
            "malformed_request",
        ),
        (
            "GET / HTTP/1.1\r\nX-Bad: a\x01b\r\n\r\n".to_owned(),
            400,
            "malformed_request",
        ),
        (
            "GET / HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n".to_owned(),
            400,
            "malformed_request",
        ),
        // Just over hyper's ~408 KiB, so little is left unread when the gateway closes.
        (
            format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(420_000)),
            431,
            "headers_too_large",
        ),
        (
            format!("GET / HTTP/1.1\r\n{}\r\n", "X-Many: 1\r\n".repeat(101)),
            431,
            "headers_too_large",
        ),
        (
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(70_000)),
            414,
            "uri_too_long",
        ),
    ];
    for (request, status, kind) in cases {
        let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
        assert_eq!(
            gateway_error(&reply),
            (status, kind.to_owned()),
            "{}",
            &request[..40]
        );
        assert!(reply.closed);
    }
    assert!(upstream.requests().is_empty());
}

/// One connection carries requests with bodies of both framings and then more requests.
#[tokio::test]
async fn keep_alive_survives_bodies_of_both_framings() {
    let (upstream, gw) = echo_gateway().await;
    let key = &gw.key;
    let mut caller = TcpStream::connect(gw.dp.addr).await.unwrap();
    let framings = [
        ("Content-Length: 11", "hello world"),
        (
            "Transfer-Encoding: chunked",
            "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
        ),
        ("Content-Length: 11", "hello world"),
        ("Content-Length: 0", ""),
    ];
    for (i, (framing, body)) in framings.iter().enumerate() {
        let request = format!(
            "POST /proxy-api/acme/svc/{i} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n\
             {framing}\r\n\r\n{body}"
        );
        // Byte by byte for the chunked one: heads and chunks split at every offset.
        if framing.contains("chunked") {
            for byte in request.as_bytes() {
                caller.write_all(std::slice::from_ref(byte)).await.unwrap();
            }
        } else {
            caller.write_all(request.as_bytes()).await.unwrap();
        }
        let (status, _) = read_response(&mut caller).await;
        assert_eq!(status, 200, "request {i}");
        let seen = upstream.last().unwrap();
        assert_eq!(seen.target, format!("/base/{i}"));
        let expected: &[u8] = if body.is_empty() { b"" } else { b"hello world" };
        assert_eq!(seen.body, expected, "request {i}");
    }
}

/// One response from a kept-alive connection: its status and body (the echo upstream and the
/// gateway's errors give a `Content-Length`).
async fn read_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no content-length in {head}"));
            if received.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                return (status, received[end + 4..end + 4 + length].to_vec());
            }
        }
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn dot_segments_are_refused_in_every_spelling_and_encoded_slashes_pass() {
    let (upstream, gw) = echo_gateway().await;
    let refused = [
        "/..",
        "/../x",
        "/a/../../x",
        "/.",
        "/./x",
        "/%2e%2e/x",
        "/%2E%2E/x",
        "/%2e%2E",
        "/.%2e/x",
        "/%2e./x",
        "/%2e",
        "/%252e%252e/x",
        "/%25252E%25252e/x",
        "/a%2f..%2fx",
        "/a%2F%2e%2e%2Fx",
        "/a%5c..%5cx",
        "/a%5C%2E%2E",
        "/a\\..\\x",
        "/..?q=1",
        "/a/..#frag",
    ];
    for rest in refused {
        let request = format!(
            "GET /proxy-api/acme/svc{rest} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\
             Authorization: Bearer {}\r\n\r\n",
            gw.key
        );
        let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
        assert_eq!(reply.status(), 400, "{rest}: {}", reply.text);
    }
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());

    for (rest, target) in [
        ("/a%2Fb/c", "/base/a%2Fb/c"),
        ("/group%2Fname/..x/x..", "/base/group%2Fname/..x/x.."),
        ("/a%2f%2e%2e%2e", "/base/a%2f%2e%2e%2e"),
        ("/.well-known/x?y=/../z", "/base/.well-known/x?y=/../z"),
    ] {
        let request = format!(
            "GET /proxy-api/acme/svc{rest} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\
             Authorization: Bearer {}\r\n\r\n",
            gw.key
        );
        let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
        assert_eq!(reply.status(), 200, "{rest}: {}", reply.text);
        assert_eq!(upstream.last().unwrap().target, target);
    }
}

#[tokio::test]
async fn callers_cannot_choose_the_upstream_host() {
    let (upstream, gw) = echo_gateway().await;
    let key = &gw.key;
    let upstream_host = upstream.addr.to_string();
    let forwarded = [
        (
            "GET http://evil.example/proxy-api/acme/svc/x HTTP/1.1\r\nHost: evil.example",
            "/base/x",
        ),
        (
            "GET /proxy-api/acme/svc/x HTTP/1.1\r\nHost: evil.example:80",
            "/base/x",
        ),
        (
            "GET /proxy-api/acme/svc/x?host=evil.example&url=http://evil.example/ HTTP/1.1\r\n\
                 Host: gw\r\nX-Forwarded-Host: evil.example\r\nForwarded: host=evil.example\r\n\
                 X-Original-URL: http://evil.example/\r\nX-Rewrite-URL: http://evil.example/\r\n\
                 X-Host: evil.example",
            "/base/x?host=evil.example&url=http://evil.example/",
        ),
        (
            "GET /proxy-api/acme/svc//evil.example/x HTTP/1.1\r\nHost: gw",
            "/base//evil.example/x",
        ),
        (
            "GET /proxy-api/acme/svc/@evil.example/x HTTP/1.1\r\nHost: gw",
            "/base/@evil.example/x",
        ),
    ];
    for (head, target) in &forwarded {
        let request = format!("{head}\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n\r\n");
        let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
        assert_eq!(reply.status(), 200, "{head}: {}", reply.text);
        let seen = upstream.last().unwrap();
        assert_eq!(&seen.target, target);
        assert_eq!(seen.header_values("host"), [upstream_host.as_str()]);
    }
    for head in [
        "GET http://evil.example/ HTTP/1.1\r\nHost: evil.example",
        "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443",
        "GET /proxy-api/acme/svc@evil.example/x HTTP/1.1\r\nHost: gw",
    ] {
        let request = format!("{head}\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n\r\n");
        let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
        assert!(
            (400..500).contains(&reply.status()),
            "{head}: {}",
            reply.text
        );
    }
    assert_eq!(upstream.requests().len(), forwarded.len());
}

#[tokio::test]
async fn upstream_redirects_are_returned_not_followed() {
    let app = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
        let status = uri.path().trim_start_matches('/').parse::<u16>().unwrap();
        axum::http::Response::builder()
            .status(status)
            .header("location", "http://127.0.0.1:1/elsewhere")
            .body(axum::body::Body::from("moved"))
            .unwrap()
    });
    let base = serve(app).await;
    let gw = Gateway::start(&base, json!({}), &[]).await;
    let client = http_client();
    for status in [301u16, 302, 303, 307, 308] {
        let response = client
            .post(gw.url(&format!("/{status}")))
            .bearer_auth(&gw.key)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(
            response.headers()["location"],
            "http://127.0.0.1:1/elsewhere"
        );
        assert!(!response.headers().contains_key("x-gatehouse-error"));
        assert_eq!(response.text().await.unwrap(), "moved");
    }
}

#[tokio::test]
async fn denied_address_ranges_are_refused_at_write_and_at_connect_time() {
    let db = gatehouse_tests::fresh_database().await;
    let deny = [
        "--deny-upstream-ranges",
        "169.254.0.0/16, 127.0.0.0/8, ::1/128",
    ];
    let cp = gatehouse_tests::ControlPlane::start_with(&db, &deny).await;
    let api = cp.admin();
    assert_eq!(
        api.post("/provider-accounts", json!({"name": "acme"}))
            .await
            .status,
        201
    );
    for base_url in [
        "http://169.254.169.254",
        "http://169.254.169.254:80/latest",
        "http://[::ffff:169.254.169.254]",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
        "http://localhost:8080",
    ] {
        let r = api
            .post(
                "/provider-accounts/acme/integrations",
                json!({"name": "svc", "base_url": base_url}),
            )
            .await;
        assert_eq!(r.status, 422, "{base_url}: {}", r.text);
        assert_eq!(r.json["field"], "base_url");
    }
    let r = api
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "svc", "base_url": "http://10.1.2.3:8080"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Written before the list applied (or resolving differently later): the data plane refuses
    // to connect, whether the host is a literal or a name that resolves into a denied range.
    let upstream = EchoUpstream::start().await;
    let port = upstream.addr.port();
    let gw = Gateway::start(&upstream.url(), json!({}), &deny).await;
    let r = gw
        .cp
        .admin()
        .post(
            "/provider-accounts/acme/integrations",
            json!({"name": "named", "base_url": format!("http://localhost:{port}")}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let client = http_client();
    let named = format!("{}/proxy-api/acme/named/x", gw.dp.url);
    gatehouse_tests::wait_until(
        Duration::from_secs(3),
        "named integration served",
        || async {
            client
                .get(&named)
                .bearer_auth(&gw.key)
                .send()
                .await
                .unwrap()
                .status()
                != 404
        },
    )
    .await;
    for url in [gw.url("/x"), named] {
        let r = client.get(&url).bearer_auth(&gw.key).send().await.unwrap();
        assert_eq!(r.status(), 502, "{url}");
        assert_eq!(r.headers()["x-gatehouse-error"], "upstream_denied", "{url}");
    }
    assert!(upstream.requests().is_empty());
}
