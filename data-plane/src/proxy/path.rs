//! Splitting `/proxy-api/{account}/{endpoint}/{rest}` and guarding the upstream path
//! (RELIABILITY S3): the rest is appended to the base path by concatenation, never resolved, so
//! any dot-segment, in any spelling, is refused.

use std::borrow::Cow;

use bytes::Bytes;
use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};
use percent_encoding::percent_decode_str;

use super::ProxyError;

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

/// The upstream URI: base path + the caller's raw rest + the raw query, by concatenation, never
/// resolution (RELIABILITY S3). Refuses dot-segments, then checks the invariant "same host, under
/// the base path" on the result rather than trusting the construction.
pub fn join(
    scheme: &Scheme,
    authority: &Authority,
    base_path: &str,
    rest: &str,
    query: Option<&str>,
) -> Result<Uri, ProxyError> {
    if has_dot_segment(rest) {
        return Err(ProxyError::DotSegment);
    }
    let mut target =
        String::with_capacity(base_path.len() + rest.len() + query.map_or(0, |q| q.len() + 1) + 1);
    target.push_str(base_path);
    target.push_str(rest);
    if target.is_empty() {
        target.push('/');
    }
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(target))
        .map_err(|_| ProxyError::InvalidPath)?;
    let uri = Uri::builder()
        .scheme(scheme.clone())
        .authority(authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| ProxyError::InvalidPath)?;
    let under_base = uri
        .path()
        .strip_prefix(base_path)
        .is_some_and(|after| after.is_empty() && !base_path.is_empty() || after.starts_with('/'));
    if uri.authority() != Some(authority) || !under_base {
        return Err(ProxyError::InvalidPath);
    }
    Ok(uri)
}

#[cfg(test)]
mod tests;
