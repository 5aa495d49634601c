//! `CustomEndpoint` spans over OTLP/HTTP (SPEC §3): a real OTLP receiver on 127.0.0.1 gets one
//! span per proxied request, in the caller's trace, as the parent of the hop sent upstream, with
//! SPEC's attributes and no secret or query string in any of them. Both HTTP encodings.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use gatehouse_tests::upstream::{self, EchoUpstream};
use gatehouse_tests::{Gateway, UPSTREAM_KEY, http_client, wait_until};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::json;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const REFUSED_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const REFUSED_SPAN: &str = "b7ad6b7169203331";

/// Export requests as received, decoded by their content type.
type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

/// An OTLP/HTTP traces receiver; its base URL and what it got.
async fn collector() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |State(received): State<Received>, headers: HeaderMap, body: Bytes| async move {
                    let request = match headers["content-type"].to_str().unwrap() {
                        "application/json" => serde_json::from_slice(&body).unwrap(),
                        _ => ExportTraceServiceRequest::decode(body).unwrap(),
                    };
                    received.lock().unwrap().push(request);
                    // An empty ExportTraceServiceResponse: everything accepted.
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                },
            ),
        )
        .with_state(Arc::clone(&received));
    (upstream::serve(app).await, received)
}

/// Every exported span with its resource's `service.name`.
fn spans(received: &Received) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for request in received.lock().unwrap().iter() {
        for resource_spans in &request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
                .unwrap_or_default();
            for scope in &resource_spans.scope_spans {
                out.extend(scope.spans.iter().map(|s| (service.clone(), s.clone())));
            }
        }
    }
    out
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .map(|a| {
            let value = text(a.value.as_ref().and_then(|v| v.value.as_ref()));
            (a.key.clone(), value)
        })
        .collect()
}

async fn spans_follow_the_callers_trace(protocol: &str) {
    let (collector, received) = collector().await;
    let echo = EchoUpstream::start().await;
    let gw = Gateway::start(
        &echo.url(),
        json!({}),
        &["--otlp-endpoint", &collector, "--otlp-protocol", protocol],
    )
    .await;

    let r = http_client()
        .post(gw.url("/v1/items?api_key=query-secret"))
        .bearer_auth(&gw.key)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let answer = r.bytes().await.unwrap();
    let sent = echo
        .last()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_owned();
    let sent: Vec<&str> = sent.split('-').collect();
    assert_eq!(sent[1], CALLER_TRACE);

    let refused = http_client()
        .get(gw.url("/v1/items"))
        .bearer_auth("not-a-key")
        .header(
            "traceparent",
            format!("00-{REFUSED_TRACE}-{REFUSED_SPAN}-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // Unsampled: continued upstream, never exported.
    let unsampled = http_client()
        .get(gw.url("/v1/quiet"))
        .bearer_auth(&gw.key)
        .header(
            "traceparent",
            format!("00-{}-{CALLER_SPAN}-00", "1".repeat(32)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unsampled.status(), 200);
    unsampled.bytes().await.unwrap();

    wait_until(Duration::from_secs(15), "two spans exported", || async {
        spans(&received).len() >= 2
    })
    .await;
    // A moment for a wrongly exported third span to arrive too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans = spans(&received);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for (service, span) in &spans {
        assert_eq!(service, "gatehouse-data-plane");
        assert_eq!(span.name, "CustomEndpoint");
        assert_eq!(span.kind, SpanKind::Server as i32);
        for (key, value) in attributes(span) {
            for secret in ["query-secret", "?", UPSTREAM_KEY, &gw.key, "not-a-key"] {
                assert!(!value.contains(secret), "{key}={value} holds {secret:?}");
            }
        }
    }
    let trace_of = |s: &Span| hex(&s.trace_id);
    let (_, proxied) = spans
        .iter()
        .find(|(_, s)| trace_of(s) == CALLER_TRACE)
        .unwrap();
    assert_eq!(hex(&proxied.parent_span_id), CALLER_SPAN);
    assert_eq!(hex(&proxied.span_id), sent[2], "the hop sent upstream");
    assert!(proxied.end_time_unix_nano > proxied.start_time_unix_nano);
    let a = attributes(proxied);
    assert_eq!(a["gatehouse.request_id"], request_id);
    assert_eq!(a["gatehouse.trace_id"], CALLER_TRACE);
    assert_eq!(a["gatehouse.account"], "acme");
    assert_eq!(a["gatehouse.endpoint"], "svc");
    assert_eq!(a["gatehouse.subject"], "user:admin@test.local");
    a["gatehouse.key_id"].parse::<uuid::Uuid>().unwrap();
    assert_eq!(a["http.request.method"], "POST");
    assert_eq!(a["url.path"], "/v1/items");
    assert_eq!(a["http.response.status_code"], "200");
    assert_eq!(a["gatehouse.bytes_in"], "5");
    assert_eq!(a["gatehouse.bytes_out"], answer.len().to_string());
    let latency: u64 = a["gatehouse.latency_us"].parse().unwrap();
    let ttfb: u64 = a["gatehouse.upstream_ttfb_us"].parse().unwrap();
    assert!(0 < ttfb && ttfb <= latency, "{ttfb} {latency}");
    assert!(!a.contains_key("error.type"));

    let (_, refused) = spans
        .iter()
        .find(|(_, s)| trace_of(s) == REFUSED_TRACE)
        .unwrap();
    assert_eq!(hex(&refused.parent_span_id), REFUSED_SPAN);
    let a = attributes(refused);
    assert_eq!(a["http.response.status_code"], "401");
    assert_eq!(a["error.type"], "unauthorized");
    assert_eq!(a["url.path"], "/proxy-api/acme/svc/v1/items");
    assert!(!a.contains_key("gatehouse.subject") && !a.contains_key("gatehouse.key_id"));
    assert!(!a.contains_key("gatehouse.upstream_ttfb_us"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn spans_over_http_protobuf_follow_the_callers_trace() {
    spans_follow_the_callers_trace("http/protobuf").await;
}

#[tokio::test]
async fn spans_over_http_json_follow_the_callers_trace() {
    spans_follow_the_callers_trace("http/json").await;
}
