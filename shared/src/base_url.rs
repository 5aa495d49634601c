//! Integration base URLs (SPEC §1, RELIABILITY S7): an `http://` or `https://` origin with an
//! optional path; no trailing slash, query, fragment or userinfo. Parsed by hand rather than with
//! `url::Url`, which would silently normalise what an operator wrote (dot-segments, case, slashes).

use crate::validation::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A validated base URL, split into the parts a proxy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub scheme: Scheme,
    /// `host[:port]` exactly as configured: the upstream `Host` header and URI authority.
    pub authority: String,
    /// Empty or `/`-led without a trailing slash; upstream paths are appended to it.
    pub path: String,
}

const FIELD: &str = "base_url";

fn err(message: &str) -> FieldError {
    FieldError::new(FIELD, message)
}

/// Characters allowed in a path segment: RFC 3986 pchar, with `%` allowed here and its escapes
/// checked separately. The data plane's framing guard uses it too.
pub const fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'%'
        )
}

impl BaseUrl {
    pub fn parse(raw: &str) -> Result<BaseUrl, FieldError> {
        let (scheme, rest) = if let Some(rest) = raw.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = raw.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(err("must start with http:// or https://"));
        };
        if raw.contains('?') {
            return Err(err("must not contain a query"));
        }
        if raw.contains('#') {
            return Err(err("must not contain a fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(err(
                "must not contain userinfo (credentials go in header_auth)",
            ));
        }
        validate_authority(authority)?;
        if path.ends_with('/') {
            return Err(err("must not end with a slash"));
        }
        if !path.bytes().all(is_path_char) {
            return Err(err(
                "path contains a character that must be percent-encoded",
            ));
        }
        if path.split('/').any(|s| s == "." || s == "..") {
            return Err(err("path must not contain '.' or '..' segments"));
        }
        Ok(BaseUrl {
            scheme,
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The host without port or IPv6 brackets, as TLS server name and for address checks.
    pub fn host(&self) -> &str {
        host_and_port(&self.authority).0
    }
}

/// Splits `host[:port]`, `[v6]` or `[v6]:port`.
fn host_and_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => (rest, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    }
}

fn validate_authority(authority: &str) -> Result<(), FieldError> {
    let (host, port) = host_and_port(authority);
    if host.is_empty() {
        return Err(err("must name a host"));
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !valid {
            return Err(err("port must be a number from 1 to 65535"));
        }
    }
    if authority.starts_with('[') {
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(err("host is not a valid IPv6 address"));
        }
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(err("host must be a DNS name or an IP address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_origins_and_paths() {
        let u = BaseUrl::parse("https://api.example.com/v1/speech").unwrap();
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(u.authority, "api.example.com");
        assert_eq!(u.path, "/v1/speech");
        let u = BaseUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path.as_str(), u.host()),
            ("127.0.0.1:8080", "", "127.0.0.1")
        );
        let u = BaseUrl::parse("http://[::1]:9000/a%20b").unwrap();
        assert_eq!(u.host(), "::1");
        assert_eq!(u.path, "/a%20b");
    }

    #[test]
    fn refuses_what_spec_forbids() {
        for bad in [
            "",
            "ftp://x.com",
            "HTTP://x.com",
            "http://",
            "http://x.com/",
            "http://x.com/a/",
            "http://x.com?q=1",
            "http://x.com/a?q",
            "http://x.com#f",
            "http://user:pw@x.com",
            "http://user@x.com/a",
            "http://x.com:0",
            "http://x.com:99999",
            "http://x.com:",
            "http://x .com",
            "http://x.com/a b",
            "http://x.com/a/../b",
            "http://x.com/./b",
            "http://[zz]:80",
            "http://-x.com",
            "http://x.com\\a",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_names_the_field() {
        let e = BaseUrl::parse("http://x.com/").unwrap_err();
        assert_eq!(e.field, "base_url");
        assert!(e.message.contains("slash"));
    }
}
