//! Header rewriting in both directions: hop-by-hop stripping (RELIABILITY S1), caller credentials
//! out and upstream credentials set (S4), forwarding and trace context added (SPEC §2). Kept
//! headers keep their order and repetitions: the maps are rebuilt in order, never edited with
//! `HeaderMap::remove`, which reorders by swapping the last entry into the hole.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use crate::routing::Route;

/// Hop-by-hop headers; `shared::headers::is_hop_by_hop` holds them too (a test checks).
/// `Trailer` is not here: RFC 9110 §6.6.2 makes it end-to-end, and hyper only sends the
/// trailer fields a `Trailer` header announces, so stripping it would drop every trailer.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
const UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");

/// The comma-separated tokens of every `name` header, trimmed.
fn tokens<'h>(headers: &'h HeaderMap, name: &'static HeaderName) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Whether any `name` header lists `token` (case-insensitive).
pub fn lists_token(headers: &HeaderMap, name: &'static HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Moves the headers `keep` accepts, minus hop-by-hop ones and those `Connection` names, into a
/// new map in their original order, with room for `extra` more.
fn end_to_end(headers: HeaderMap, extra: usize, keep: impl Fn(&HeaderName) -> bool) -> HeaderMap {
    let named: Vec<HeaderName> = tokens(&headers, &header::CONNECTION)
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len() + extra);
    let mut current: Option<HeaderName> = None;
    // `into_iter` names only the first value of each header; later values follow with `None`.
    for (name, value) in headers {
        if let Some(name) = name {
            let kept = !HOP_BY_HOP.contains(&name) && !named.contains(&name) && keep(&name);
            current = kept.then_some(name);
        }
        if let Some(name) = &current {
            out.append(name, value);
        }
    }
    out
}

/// The upstream request's headers made from the caller's. `upgrade` is the caller's `Upgrade`
/// value when the request is a protocol upgrade to pass through.
pub fn to_upstream(
    caller: HeaderMap,
    route: &Route,
    peer: IpAddr,
    request_id: &HeaderValue,
    upgrade: Option<HeaderValue>,
) -> HeaderMap {
    let mut forwarded_for = String::new();
    for earlier in caller.get_all(&X_FORWARDED_FOR) {
        if let Ok(earlier) = earlier.to_str() {
            forwarded_for.push_str(earlier);
            forwarded_for.push_str(", ");
        }
    }
    forwarded_for.push_str(&peer.to_string());
    let caller_host = caller.get(header::HOST).cloned();
    let traceparent = continue_trace(caller.get(&TRACEPARENT));
    // The gateway relays trailers, so it may ask for them on its own hop.
    let wants_trailers = lists_token(&caller, &header::TE, "trailers");

    // Room for the up to eight headers the gateway sets below, and the configured ones.
    let mut headers = end_to_end(caller, 8 + route.inject.len(), |name| {
        // The gateway credential never travels upstream (S4); Host comes from the base URL;
        // the forwarding headers and configured headers are set below, not appended to.
        !(name == header::AUTHORIZATION
            || name == header::HOST
            || name == X_FORWARDED_FOR
            || name == X_FORWARDED_PROTO
            || name == X_FORWARDED_HOST
            || name == TRACEPARENT
            || name == X_REQUEST_ID
            || route.inject.iter().any(|(n, _)| n == name))
    });
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = caller_host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    headers.insert(TRACEPARENT, traceparent);
    headers.insert(X_REQUEST_ID, request_id.clone());
    if wants_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, UPGRADE_TOKEN);
        headers.insert(header::UPGRADE, protocol);
    }
    // Configured headers, credentials last, are set exactly once (S4).
    for (name, value) in route.inject.iter() {
        headers.insert(name.clone(), value.clone());
    }
    headers
}

/// The caller's response headers made from the upstream's. `upgrade` is the upstream's
/// `Upgrade` value on a `101 Switching Protocols` that the gateway tunnels.
pub fn to_caller(
    upstream: HeaderMap,
    request_id: &HeaderValue,
    upgrade: Option<HeaderValue>,
) -> HeaderMap {
    let is_event_stream = upstream
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .get(..17)
                .is_some_and(|t| t.eq_ignore_ascii_case("text/event-stream"))
        });
    let mut headers = end_to_end(upstream, 4, |name| name != X_REQUEST_ID);
    headers.insert(X_REQUEST_ID, request_id.clone());
    if is_event_stream {
        // So that an nginx in front does not hold events back.
        headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, UPGRADE_TOKEN);
        headers.insert(header::UPGRADE, protocol);
    }
    headers
}

/// W3C trace context: keep the caller's trace id and flags with a new parent id (this hop), or
/// start a new sampled trace when the caller sent none or an invalid one.
fn continue_trace(incoming: Option<&HeaderValue>) -> HeaderValue {
    let span_id: u64 = rand::random::<u64>() | 1;
    let value = match incoming.and_then(TraceParent::parse) {
        Some(caller) => format!("00-{}-{span_id:016x}-{}", caller.trace_id, caller.flags),
        None => format!("00-{:032x}-{span_id:016x}-01", rand::random::<u128>() | 1),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| {
        HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
    })
}

/// A valid version-00 W3C `traceparent`, as lowercase hex fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent<'v> {
    pub trace_id: &'v str,
    pub parent_id: &'v str,
    pub flags: &'v str,
}

impl<'v> TraceParent<'v> {
    /// `None` unless `value` is a valid version-00 `traceparent` with non-zero ids.
    pub fn parse(value: &'v HeaderValue) -> Option<TraceParent<'v>> {
        let mut parts = value.to_str().ok()?.trim().split('-');
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
        valid.then_some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }
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
    fn strips_hop_by_hop_and_keeps_order_and_repeats() {
        let mut h = HeaderMap::new();
        h.append("x-first", HeaderValue::from_static("1"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret-Hop"),
        );
        h.append("x-secret-hop", HeaderValue::from_static("1"));
        h.append("keep-alive", HeaderValue::from_static("timeout=5"));
        h.append(header::TE, HeaderValue::from_static("trailers"));
        h.append("x-repeat", HeaderValue::from_static("a"));
        h.append("x-repeat", HeaderValue::from_static("b"));
        h.append(header::TRAILER, HeaderValue::from_static("x-checksum"));
        h.append("x-last", HeaderValue::from_static("1"));
        let out = end_to_end(h, 0, |n| n != "x-last");
        let seen: Vec<(&str, &str)> = out
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                ("x-first", "1"),
                ("x-repeat", "a"),
                ("x-repeat", "b"),
                ("trailer", "x-checksum")
            ]
        );
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
            assert!(TraceParent::parse(&fresh).is_some());
            assert!(!fresh.to_str().unwrap().contains("4bf92f35"));
        }
    }
}
