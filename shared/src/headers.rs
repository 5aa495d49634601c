//! Rules for headers that operators configure (custom headers, header auth) and the hop-by-hop
//! list that the proxy strips (RELIABILITY S1). One list, used by both planes.

use std::collections::BTreeMap;

use crate::validation::FieldError;

/// Hop-by-hop headers (RFC 9110 §7.6.1 plus `Proxy-Connection` and `Keep-Alive`), lowercase.
pub fn is_hop_by_hop(lowercase_name: &str) -> bool {
    matches!(
        lowercase_name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Headers the gateway owns: hop-by-hop, framing and routing. Configuring one would break the
/// proxy contract, so the control plane refuses them.
fn is_reserved(lowercase_name: &str) -> bool {
    is_hop_by_hop(lowercase_name)
        || matches!(lowercase_name, "host" | "content-length" | "x-request-id")
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Validates a map of configured headers: RFC 9110 names, values without control characters,
/// no reserved names, no two names equal ignoring case. `field` prefixes the error path.
pub fn validate_header_map(
    field: &str,
    headers: &BTreeMap<String, String>,
) -> Result<(), FieldError> {
    let mut seen = std::collections::HashSet::new();
    for (name, value) in headers {
        let at = || format!("{field}.{name}");
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(FieldError::new(at(), "is not a valid header name"));
        }
        let lower = name.to_ascii_lowercase();
        if is_reserved(&lower) {
            return Err(FieldError::new(
                at(),
                "is managed by the gateway and cannot be configured",
            ));
        }
        if !seen.insert(lower) {
            return Err(FieldError::new(
                at(),
                "is given twice (header names ignore case)",
            ));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(FieldError::new(
                at(),
                "value must not contain control characters",
            ));
        }
        if value.len() > 8192 {
            return Err(FieldError::new(at(), "value is longer than 8192 bytes"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn accepts_ordinary_headers() {
        let m = map(&[
            ("Authorization", "Bearer x"),
            ("Ocp-Apim-Subscription-Key", "k"),
            ("x-a", ""),
        ]);
        assert!(validate_header_map("h", &m).is_ok());
    }

    #[test]
    fn refuses_bad_names_values_and_clashes() {
        for (m, field) in [
            (map(&[("bad name", "v")]), "h.bad name"),
            (map(&[("", "v")]), "h."),
            (map(&[("x-a", "a\r\nb")]), "h.x-a"),
            (map(&[("Host", "evil")]), "h.Host"),
            (
                map(&[("Transfer-Encoding", "chunked")]),
                "h.Transfer-Encoding",
            ),
            (map(&[("X-A", "1"), ("x-a", "2")]), "h.x-a"),
            (map(&[("é", "v")]), "h.é"),
        ] {
            assert_eq!(validate_header_map("h", &m).unwrap_err().field, field);
        }
    }

    #[test]
    fn hop_by_hop_list() {
        assert!(is_hop_by_hop("te") && is_hop_by_hop("upgrade") && is_hop_by_hop("keep-alive"));
        assert!(!is_hop_by_hop("authorization") && !is_hop_by_hop("content-type"));
    }
}
