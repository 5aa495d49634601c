//! Header rewriting in both directions: hop-by-hop stripping (RELIABILITY S1), caller credentials
//! out and upstream credentials set (S4), forwarding and trace context added (SPEC §2). Kept
//! headers keep their order and repetitions: the maps are rebuilt in order, never edited with
//! `HeaderMap::remove`, which reorders by swapping the last entry into the hole.

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

/// The upstream request's headers made from the caller's. `peer` is the caller's address as
/// text; `upgrade` is the caller's `Upgrade` value when the request is a protocol upgrade to
/// pass through.
pub fn to_upstream(
    caller: HeaderMap,
    route: &Route,
    peer: &HeaderValue,
    request_id: &HeaderValue,
    upgrade: Option<HeaderValue>,
) -> HeaderMap {
    let forwarded_for = forwarded_for(&caller, peer);
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
    headers.insert(X_FORWARDED_FOR, forwarded_for);
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

/// `X-Forwarded-For`: the caller's chain, if it sent one, then `peer`. Without a chain, the
/// peer's value as made for its connection.
fn forwarded_for(caller: &HeaderMap, peer: &HeaderValue) -> HeaderValue {
    let mut chain = Vec::new();
    for earlier in caller.get_all(&X_FORWARDED_FOR) {
        chain.extend_from_slice(earlier.as_bytes());
        chain.extend_from_slice(b", ");
    }
    if chain.is_empty() {
        return peer.clone();
    }
    chain.extend_from_slice(peer.as_bytes());
    HeaderValue::from_bytes(&chain).unwrap_or_else(|_| peer.clone())
}

/// W3C trace context: keep the caller's trace id and flags with a new parent id (this hop), or
/// start a new sampled trace when the caller sent none or an invalid one. Written into a stack
/// buffer: the header value is the only allocation.
fn continue_trace(incoming: Option<&HeaderValue>) -> HeaderValue {
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let trace_id = match incoming.and_then(TraceParent::parse) {
        Some(caller) => {
            value[3..35].copy_from_slice(caller.trace_id.as_bytes());
            value[53..55].copy_from_slice(caller.flags.as_bytes());
            Ok(())
        }
        None => hex::encode_to_slice(
            (rand::random::<u128>() | 1).to_be_bytes(),
            &mut value[3..35],
        ),
    };
    let span_id = hex::encode_to_slice(
        (rand::random::<u64>() | 1).to_be_bytes(),
        &mut value[36..52],
    );
    trace_id
        .and(span_id)
        .ok()
        .and_then(|()| HeaderValue::from_bytes(&value).ok())
        .unwrap_or_else(|| {
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
        // Version 00 is `00-<32 hex>-<16 hex>-<2 hex>`: fixed offsets, nothing to search for.
        let text = value.to_str().ok()?.trim_ascii();
        let bytes = text.as_bytes();
        let hex = |range: std::ops::Range<usize>| {
            bytes[range]
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let nonzero = |range: std::ops::Range<usize>| bytes[range].iter().any(|&b| b != b'0');
        let valid = bytes.len() == 55
            && bytes.starts_with(b"00-")
            && bytes[35] == b'-'
            && bytes[52] == b'-'
            && hex(3..35)
            && hex(36..52)
            && hex(53..55)
            && nonzero(3..35)
            && nonzero(36..52);
        valid.then(|| TraceParent {
            trace_id: &text[3..35],
            parent_id: &text[36..52],
            flags: &text[53..55],
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

    #[test]
    fn forwarded_for_appends_the_peer_to_the_callers_chain() {
        let peer = HeaderValue::from_static("127.0.0.1");
        let mut caller = HeaderMap::new();
        assert_eq!(forwarded_for(&caller, &peer), "127.0.0.1");
        caller.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("203.0.113.7, 10.0.0.1"),
        );
        caller.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        assert_eq!(
            forwarded_for(&caller, &peer),
            "203.0.113.7, 10.0.0.1, 10.0.0.2, 127.0.0.1"
        );
    }

    #[test]
    fn parses_only_valid_version_00() {
        let parse = |v: &'static str| TraceParent::parse(&HeaderValue::from_static(v)).is_some();
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(parse(valid));
        let parsed =
            HeaderValue::from_static(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ");
        assert_eq!(
            TraceParent::parse(&parsed),
            Some(TraceParent {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
                parent_id: "00f067aa0ba902b7",
                flags: "00",
            })
        );
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ff",
            "00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert!(!parse(bad), "{bad}");
        }
    }
}
