//! One HTTP/1 request head, read as hyper will read it (same parser, same limits): where it ends,
//! how its body is framed and whether it may switch protocols — or why it must be refused.

use std::mem::MaybeUninit;

use httparse::{Header, ParserConfig, Status};

use super::body::Body;

/// hyper's limits for a request head (`DEFAULT_MAX_HEADERS`, `DEFAULT_MAX_BUFFER_SIZE` and
/// `MAX_URI_LEN` in hyper 1.x), so a head is refused here exactly when hyper would refuse it.
const MAX_HEADERS: usize = 100;
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
const MAX_TARGET_BYTES: usize = u16::MAX as usize - 1;

/// A complete, acceptable request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// Its length in bytes, leading empty lines included.
    pub len: usize,
    /// How the body that follows is framed; `None` when there is none.
    pub body: Option<Body>,
    /// Whether hyper offers this request an upgrade (`CONNECT`, or `Upgrade` on HTTP/1.1): the
    /// bytes after it may belong to another protocol.
    pub upgrade: bool,
}

/// Why a head is refused; each becomes the gateway's JSON error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Content-Length` with `Transfer-Encoding`, conflicting or invalid lengths, or a transfer
    /// coding other than a lone `chunked`: a front proxy and the gateway could disagree on where
    /// the body ends.
    AmbiguousFraming,
    /// Not a valid request line or header section (bad bytes, obs-fold, bad target).
    Malformed,
    /// More than hyper's limit of header bytes or header lines.
    TooLarge,
    /// A request target longer than hyper accepts.
    TargetTooLong,
}

/// The head at the start of `bytes`: `Ok(None)` while it is incomplete.
pub fn inspect(bytes: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut slots = [const { MaybeUninit::<Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        bytes,
        &mut slots,
    ) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) if bytes.len() >= MAX_HEAD_BYTES => return Err(Refusal::TooLarge),
        Ok(Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(_) => return Err(Refusal::Malformed),
    };
    let target = request.path.unwrap_or_default();
    if target.len() > MAX_TARGET_BYTES {
        return Err(Refusal::TargetTooLong);
    }
    if !target_is_valid(target) {
        return Err(Refusal::Malformed);
    }
    let http11 = request.version == Some(1);
    let mut length = None;
    let mut codings = 0;
    let mut chunked = false;
    let mut upgrade = request.method == Some("CONNECT");
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = digits(header.value).ok_or(Refusal::AmbiguousFraming)?;
            if length.is_some_and(|previous| previous != value) {
                return Err(Refusal::AmbiguousFraming);
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Counted per line: `chunked` twice is chunked applied twice (RFC 9112 §6.1).
            codings += 1;
            chunked = header.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if header.name.eq_ignore_ascii_case("upgrade") {
            upgrade |= http11;
        }
    }
    let body = match (codings, length) {
        (0, None | Some(0)) => None,
        (0, Some(length)) => Some(Body::length(length)),
        // HTTP/1.0 has no transfer codings; hyper refuses them too.
        (1, None) if chunked && http11 => Some(Body::chunked()),
        _ => return Err(Refusal::AmbiguousFraming),
    };
    Ok(Some(Head { len, body, upgrade }))
}

/// A `Content-Length` value: digits only (no sign, list or space), as hyper reads it.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
            .flatten()
    })
}

/// Whether hyper's `Uri` parser accepts `target`. Origin-form targets of plain URI characters —
/// nearly every request — are checked here without allocating; anything else (other forms,
/// bytes such as `<`, `{` or UTF-8) goes through the parser itself.
fn target_is_valid(target: &str) -> bool {
    (target.starts_with('/') && target.bytes().all(|b| PLAIN[usize::from(b)]))
        || http::Uri::try_from(target).is_ok()
}

/// Unreserved and sub-delimiter characters, `%`, `:`, `@`, `/` and `?`: valid anywhere in an
/// origin-form path and query.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0u8;
    while b < 0x80 {
        table[b as usize] = shared::base_url::is_path_char(b) || b == b'?';
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, Refusal> {
        inspect(text.as_bytes())
    }

    fn body_of(headers: &str) -> Result<Option<Body>, Refusal> {
        let text = format!("POST /x HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
        head(&text).map(|h| h.expect("complete").body)
    }

    #[test]
    fn a_complete_head_reports_its_length_and_framing() {
        let text = "\r\nGET /a?b=c HTTP/1.1\r\nHost: h\r\n\r\nnext";
        let parsed = head(text).unwrap().unwrap();
        assert_eq!(parsed.len, text.len() - "next".len());
        assert_eq!(parsed.body, None);
        assert!(!parsed.upgrade);
        assert_eq!(
            body_of("Content-Length: 12\r\n"),
            Ok(Some(Body::length(12)))
        );
        assert_eq!(body_of("Content-Length: 0\r\n"), Ok(None));
        assert_eq!(
            body_of("content-length: 7\r\nCONTENT-LENGTH: 7\r\n"),
            Ok(Some(Body::length(7)))
        );
        for chunked in [
            "Transfer-Encoding: chunked\r\n",
            "tRaNsFeR-eNcOdInG:   ChUnKeD  \r\n",
            "Transfer-Encoding:\tchunked\r\n",
        ] {
            assert_eq!(body_of(chunked), Ok(Some(Body::chunked())), "{chunked:?}");
        }
    }

    #[test]
    fn incomplete_heads_wait_until_too_large() {
        for prefix in ["", "\r\n", "GET", "GET / HTTP/1.1\r\nHost: h\r\n"] {
            assert_eq!(head(prefix), Ok(None), "{prefix:?}");
        }
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(head(&long), Err(Refusal::TooLarge));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: 1\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(head(&many), Err(Refusal::TooLarge));
        let target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET_BYTES));
        assert_eq!(head(&target), Err(Refusal::TargetTooLong));
    }

    #[test]
    fn ambiguous_framing_is_refused_in_every_spelling() {
        for framing in [
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
            "transfer-encoding: CHUNKED\r\ncontent-length: 0\r\n",
            "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked,\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: \r\n",
            "Transfer-Encoding: \"chunked\"\r\n",
            "Content-Length: 3\r\nContent-Length: 4\r\n",
            "Content-Length: 3, 3\r\n",
            "Content-Length: +3\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: \r\n",
            "Content-Length: 99999999999999999999\r\n",
        ] {
            assert_eq!(
                body_of(framing),
                Err(Refusal::AmbiguousFraming),
                "{framing:?}"
            );
        }
        let http10 = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(head(http10), Err(Refusal::AmbiguousFraming));
    }

    #[test]
    fn malformed_heads_are_refused() {
        for text in [
            "GARBAGE\r\n\r\n",
            "GET / HTTP/1.1 extra\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "G@T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            "GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            "GET /a<b HTTP/1.1\r\n\r\n",
            "GET http://[::1/ HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(head(text), Err(Refusal::Malformed), "{text:?}");
        }
    }

    #[test]
    fn upgrades_are_flagged_as_hyper_flags_them() {
        let upgrade = |text: &str| head(text).unwrap().unwrap().upgrade;
        assert!(upgrade(
            "GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        ));
        assert!(upgrade("GET /ws HTTP/1.1\r\nupgrade: h2c\r\n\r\n"));
        assert!(upgrade("CONNECT example.com:443 HTTP/1.1\r\n\r\n"));
        assert!(!upgrade("GET /ws HTTP/1.0\r\nUpgrade: websocket\r\n\r\n"));
        assert!(!upgrade("GET /ws HTTP/1.1\r\nConnection: upgrade\r\n\r\n"));
    }

    /// The allocation-free check never accepts what hyper's `Uri` parser refuses.
    #[test]
    fn plain_targets_are_valid_uris() {
        for b in 0u8..=0x7f {
            for target in [format!("/{}", b as char), format!("/p?{}", b as char)] {
                if target_is_valid(&target) {
                    assert!(http::Uri::try_from(&target).is_ok(), "{target:?}");
                }
            }
        }
        for target in [
            "/a{b}",
            "/caf\u{e9}",
            "*",
            "example.com:443",
            "http://h/p?q#f",
        ] {
            assert!(target_is_valid(target), "{target:?}");
        }
        for target in ["/a<b", "/a`b", "/a>b", "/a b"] {
            assert!(!target_is_valid(target), "{target:?}");
        }
    }
}
