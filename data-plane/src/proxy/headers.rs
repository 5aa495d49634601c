//! Header rewriting in both directions: hop-by-hop stripping (RELIABILITY S1), caller credentials
//! out and upstream credentials set (S4), forwarding and trace context added (SPEC §2).

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use crate::routing::Route;

/// Hop-by-hop headers; `shared::headers::is_hop_by_hop` holds the same list (a test checks).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// Removes `Connection`, every header it names, and the fixed hop-by-hop list.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Turns the caller's headers into the upstream request's, in place.
pub fn to_upstream(headers: &mut HeaderMap, route: &Route, peer: IpAddr, request_id: &HeaderValue) {
    strip_hop_by_hop(headers);
    // The gateway credential never travels upstream; Host comes from the base URL.
    headers.remove(header::AUTHORIZATION);
    let caller_host = headers.remove(header::HOST);

    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {peer}"),
        None => peer.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    match caller_host {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
    let traceparent = continue_trace(headers.get(&TRACEPARENT));
    headers.insert(TRACEPARENT, traceparent);
    headers.insert(X_REQUEST_ID, request_id.clone());

    // Configured headers replace any caller value of the same name, never append (S4).
    for (name, value) in route.inject.iter() {
        headers.insert(name.clone(), value.clone());
    }
}

/// Turns the upstream's response headers into the caller's, in place.
pub fn to_caller(headers: &mut HeaderMap, request_id: &HeaderValue) {
    strip_hop_by_hop(headers);
    headers.insert(X_REQUEST_ID, request_id.clone());
    let is_event_stream = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
    if is_event_stream {
        // So that an nginx in front does not hold events back.
        headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    }
}

/// W3C trace context: keep the caller's trace id and flags with a new parent id (this hop), or
/// start a new sampled trace when the caller sent none or an invalid one.
fn continue_trace(incoming: Option<&HeaderValue>) -> HeaderValue {
    let span_id: u64 = rand::random::<u64>() | 1;
    let value = match incoming.and_then(|v| parse_traceparent(v.to_str().ok()?)) {
        Some((trace_id, flags)) => format!("00-{trace_id}-{span_id:016x}-{flags}"),
        None => format!("00-{:032x}-{span_id:016x}-01", rand::random::<u128>() | 1),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| {
        HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
    })
}

/// `(trace_id, flags)` of a valid version-00 `traceparent`.
fn parse_traceparent(v: &str) -> Option<(&str, &str)> {
    let mut parts = v.trim().split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace_id, 32)
        && hex(parent_id, 16)
        && hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && parent_id.bytes().any(|b| b != b'0');
    valid.then_some((trace_id, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_list_matches_shared_rules() {
        for name in &HOP_BY_HOP {
            assert!(shared::headers::is_hop_by_hop(name.as_str()), "{name}");
        }
    }

    #[test]
    fn strips_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret-Hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn continues_a_valid_trace() {
        let caller =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let out = continue_trace(Some(&caller));
        let out = out.to_str().unwrap();
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(out.ends_with("-01"));
        assert!(!out.contains("00f067aa0ba902b7"));
        for bad in [
            "",
            "00-0000-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let fresh = continue_trace(Some(&HeaderValue::from_str(bad).unwrap()));
            assert!(parse_traceparent(fresh.to_str().unwrap()).is_some());
            assert!(!fresh.to_str().unwrap().contains("4bf92f35"));
        }
    }
}
