//! Splitting `/proxy-api/{account}/{endpoint}/{rest}` and guarding the upstream path
//! (RELIABILITY S3): the rest is appended to the base path by concatenation, never resolved, so
//! any dot-segment, in any spelling, is refused.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

pub const PREFIX: &str = "/proxy-api/";

/// The parts of a proxy path, borrowed from the request URI.
#[derive(Debug, PartialEq, Eq)]
pub struct ProxyPath<'a> {
    pub account: Cow<'a, str>,
    pub endpoint: Cow<'a, str>,
    /// Empty for `/proxy-api/a/e`, otherwise `/`-led exactly as sent.
    pub rest: &'a str,
}

/// `None` when the path has no account and endpoint.
pub fn split(path: &str) -> Option<ProxyPath<'_>> {
    let after = path.strip_prefix(PREFIX)?;
    let (account, after) = after.split_once('/')?;
    let (endpoint, rest) = match after.find('/') {
        Some(i) => after.split_at(i),
        None => (after, ""),
    };
    if account.is_empty() || endpoint.is_empty() {
        return None;
    }
    Some(ProxyPath {
        account: decode(account)?,
        endpoint: decode(endpoint)?,
        rest,
    })
}

/// Names may arrive percent-encoded; decoding borrows unless there is something to decode.
fn decode(segment: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(segment).decode_utf8().ok()
}

/// Whether `rest` contains a `.` or `..` segment once percent-decoding (repeatedly, to catch
/// double encoding) is applied, with `/` or `\` as separators.
pub fn has_dot_segment(rest: &str) -> bool {
    let mut current: Cow<'_, [u8]> = Cow::Borrowed(rest.as_bytes());
    // Each round peels one layer of encoding; four covers any client that decodes repeatedly.
    for _ in 0..4 {
        if current
            .split(|b| *b == b'/' || *b == b'\\')
            .any(|segment| segment == b"." || segment == b"..")
        {
            return true;
        }
        if !current.contains(&b'%') {
            return false;
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode(&current).collect();
        if decoded == *current {
            return false;
        }
        current = Cow::Owned(decoded);
    }
    // Still encoded after four layers: refuse rather than guess.
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_account_endpoint_and_rest() {
        let p = split("/proxy-api/acme/speech/v1/recognize").unwrap();
        assert_eq!(
            (&*p.account, &*p.endpoint, p.rest),
            ("acme", "speech", "/v1/recognize")
        );
        let p = split("/proxy-api/acme/speech").unwrap();
        assert_eq!(p.rest, "");
        let p = split("/proxy-api/acme/speech/").unwrap();
        assert_eq!(p.rest, "/");
        let p = split("/proxy-api/acme/my%2Eendpoint/x").unwrap();
        assert_eq!(&*p.endpoint, "my.endpoint");
        for bad in [
            "/proxy-api/",
            "/proxy-api/acme",
            "/proxy-api/acme/",
            "/proxy-api//e",
            "/other/a/e",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }

    #[test]
    fn refuses_dot_segments_in_every_spelling() {
        for bad in [
            "/..",
            "/../x",
            "/a/../b",
            "/a/..",
            "/.",
            "/./a",
            "/a/%2e%2e/b",
            "/a/%2E%2E",
            "/%2e",
            "/a/.%2e/b",
            "/a/%252e%252e/b",
            "/a%2f..%2fb",
            "/a%2F..",
            "/a\\..\\b",
            "/a%5c..%5cb",
            "/a/%25252e%25252e",
            "/..;/x/../",
        ] {
            assert!(has_dot_segment(bad), "{bad}");
        }
    }

    #[test]
    fn passes_ordinary_paths_and_encoded_slashes() {
        for ok in [
            "",
            "/",
            "/a/b",
            "/a%2Fb",
            "/projects/group%2Fname/files",
            "/a..b",
            "/.well-known/x",
            "/...",
            "/a/%2e%2e%2e",
            "/file.txt",
            "/%20",
            "/a//b",
        ] {
            assert!(!has_dot_segment(ok), "{ok}");
        }
    }
}
