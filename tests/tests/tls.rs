//! Upstream TLS per integration (SPEC §2): verification on by default, `ca_certs` and
//! `reject_unauthorized: false` for that integration only, HTTP/2 by ALPN, pooled connections.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use gatehouse_tests::tls::TlsUpstream;
use gatehouse_tests::{Gateway, http_client, wait_until};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Status, gateway error marker and upstream version of a GET through the gateway.
async fn call(gw: &Gateway, endpoint: &str) -> (u16, String, String) {
    let response = http_client()
        .get(format!("{}/proxy-api/acme/{endpoint}/x", gw.dp.url))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (marker, version) = (header("x-gatehouse-error"), header("x-upstream-version"));
    (response.status().as_u16(), marker, version)
}

#[tokio::test]
async fn verification_is_on_by_default_and_settings_apply_to_their_integration_only() {
    let upstream = TlsUpstream::start(&[b"h2", b"http/1.1"]).await;
    // `svc` trusts nothing extra.
    let gw = Gateway::start(&upstream.url(), json!({}), &[]).await;
    let api = gw.cp.admin();
    for body in [
        json!({"name": "with-ca", "base_url": upstream.url(), "tls": {"ca_certs": upstream.ca_pem}}),
        json!({"name": "unverified", "base_url": upstream.url(),
               "tls": {"reject_unauthorized": false}}),
    ] {
        let r = api.post("/provider-accounts/acme/integrations", body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    wait_until(
        Duration::from_secs(3),
        "new integrations served",
        || async { call(&gw, "unverified").await.0 != 404 },
    )
    .await;

    assert_eq!(
        call(&gw, "svc").await,
        (502, "upstream_tls".into(), String::new())
    );
    assert_eq!(
        call(&gw, "with-ca").await,
        (200, String::new(), "HTTP/2.0".into())
    );
    assert_eq!(
        call(&gw, "unverified").await,
        (200, String::new(), "HTTP/2.0".into())
    );
    // Still refused: the other integrations' settings did not leak into this one.
    assert_eq!(call(&gw, "svc").await.0, 502);

    // `te: trailers` (gRPC needs it) reaches an HTTP/2 upstream; other TE values never do.
    for (te, seen) in [("trailers", Some("trailers")), ("gzip", None)] {
        let response = http_client()
            .get(format!("{}/proxy-api/acme/with-ca/x", gw.dp.url))
            .bearer_auth(&gw.key)
            .header("te", te)
            .send()
            .await
            .unwrap();
        let got = response
            .headers()
            .get("x-upstream-te")
            .map(|v| v.to_str().unwrap());
        assert_eq!(got, seen, "{te}");
    }

    // Keep-alive: more requests reuse the pooled connections (one per TLS profile here, plus
    // the refused handshakes of `svc`).
    let before = upstream.connections();
    for _ in 0..5 {
        assert_eq!(call(&gw, "with-ca").await.0, 200);
    }
    assert_eq!(upstream.connections(), before);
}

#[tokio::test]
async fn http1_only_tls_upstreams_and_bad_pem_refused() {
    let upstream = TlsUpstream::start(&[b"http/1.1"]).await;
    let gw = Gateway::start(
        &upstream.url(),
        json!({"tls": {"ca_certs": upstream.ca_pem}}),
        &[],
    )
    .await;
    assert_eq!(
        call(&gw, "svc").await,
        (200, String::new(), "HTTP/1.1".into())
    );

    let api = gw.cp.admin();
    for pem in [
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "",
    ] {
        let r = api
            .post(
                "/provider-accounts/acme/integrations",
                json!({"name": "bad", "base_url": upstream.url(), "tls": {"ca_certs": pem}}),
            )
            .await;
        assert_eq!(r.status, 422, "{pem:?}: {}", r.text);
        assert_eq!(r.json["field"], "tls.ca_certs");
    }
}

#[tokio::test]
async fn websocket_upgrades_reach_tls_upstreams_that_offer_http2() {
    let upstream = TlsUpstream::start(&[b"h2", b"http/1.1"]).await;
    let gw = Gateway::start(
        &upstream.url(),
        json!({"tls": {"ca_certs": upstream.ca_pem}}),
        &[],
    )
    .await;
    // Ordinary requests to this upstream speak HTTP/2 ...
    assert_eq!(call(&gw, "svc").await.2, "HTTP/2.0");
    // ... and an upgrade goes over HTTP/1.1, where upgrades exist.
    let mut caller = TcpStream::connect(gw.dp.addr).await.unwrap();
    let request = format!(
        "GET /proxy-api/acme/svc/ws HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        gw.key
    );
    caller.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        caller.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("x-upstream-version: http/1.1"), "{head}");
    caller.write_all(b"through tls").await.unwrap();
    let mut echoed = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(3), caller.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"through tls");
}
