//! RELIABILITY S1–S6 end to end, each in several spellings, with raw TCP wherever an HTTP
//! library would normalise the request before the gateway could see it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use gatehouse_tests::raw::{RawUpstream, exchange};
use gatehouse_tests::upstream::{EchoUpstream, serve};
use gatehouse_tests::{Gateway, UPSTREAM_KEY, http_client};
use serde_json::json;

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

/// hyper refuses conflicting lengths and non-chunked transfer codings with 400; for
/// `Content-Length` with `Transfer-Encoding: chunked` it discards the length, reads chunked and
/// closes the connection after the response. Either way no second request is read from the
/// connection, so nothing can be smuggled behind the first, and the upstream request is
/// re-framed by the gateway's client.
#[tokio::test]
async fn ambiguous_framing_is_refused_or_closed_and_never_smuggles() {
    let (upstream, gw) = echo_gateway().await;
    let key = &gw.key;
    let smuggled = format!(
        "GET /proxy-api/acme/svc/smuggled HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    let cases = [
        (
            "Content-Length: 5\r\nTransfer-Encoding: chunked",
            "0\r\n\r\n",
            None,
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 5",
            "0\r\n\r\n",
            None,
        ),
        (
            "transfer-encoding: CHUNKED\r\ncontent-length: 0",
            "0\r\n\r\n",
            None,
        ),
        ("Content-Length: 3\r\nContent-Length: 4", "abcd", Some(400)),
        ("Content-Length: 3, 4", "abcd", Some(400)),
        ("Content-Length: +3", "abc", Some(400)),
        (
            "Transfer-Encoding: gzip\r\nContent-Length: 3",
            "abc",
            Some(400),
        ),
        ("Transfer-Encoding: chunked, gzip", "0\r\n\r\n", Some(400)),
    ];
    for (framing, body, status) in cases {
        let request = format!(
            "POST /proxy-api/acme/svc/first HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n\
             {framing}\r\n\r\n{body}{smuggled}"
        );
        let reply = exchange(gw.dp.addr, request.as_bytes(), DEADLINE).await;
        assert!(reply.closed, "{framing:?}: connection left open");
        assert_eq!(reply.responses(), 1, "{framing:?}: {}", reply.text);
        if let Some(status) = status {
            assert_eq!(reply.status(), status, "{framing:?}");
        }
        println!("{framing:?} → {}", reply.status());
    }
    let requests = upstream.requests();
    assert!(requests.iter().all(|r| !r.target.contains("smuggled")));
    for r in &requests {
        // The gateway's client frames the body itself: one framing header, never both.
        let framings =
            r.header_values("transfer-encoding").len() + r.header_values("content-length").len();
        assert_eq!(framings, 1, "{r:?}");
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
