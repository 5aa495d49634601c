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

/// RFC 3986 §5.2.4 on the path as any upstream might read it: every layer of percent-encoding
/// removed and `\` taken as `/`.
fn normalised(path: &str) -> String {
    let mut bytes = path.as_bytes().to_vec();
    loop {
        let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
        if decoded == bytes {
            break;
        }
        bytes = decoded;
    }
    let text = String::from_utf8_lossy(&bytes).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for segment in text.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// The invariant of RELIABILITY S3 over every sequence of up to four tricky tokens, then
/// random longer ones: a joined URI keeps the base URL's host, and its path stays under the
/// base path however an upstream decodes and normalises it.
#[test]
fn joined_paths_never_leave_the_base() {
    const TOKENS: [&str; 14] = [
        "/", "\\", ".", "..", "%2e", "%2E", "%252e", "%2f", "%2F", "%5c", "%25", "a", "%", "//",
    ];
    let scheme = Scheme::HTTPS;
    let authority = Authority::from_static("api.example.com:8443");
    let check = |rest: &str| {
        for base in ["", "/v1/base"] {
            let Ok(uri) = join(&scheme, &authority, base, rest, Some("q=/../x")) else {
                continue;
            };
            assert_eq!(uri.authority(), Some(&authority), "{rest:?}");
            assert!(uri.path().starts_with(base), "{rest:?}");
            let seen = normalised(uri.path());
            assert!(
                seen.strip_prefix(base)
                    .is_some_and(|after| after.is_empty() || after.starts_with('/')),
                "{rest:?} escapes {base:?} as {seen:?}"
            );
        }
    };
    let mut stack = vec![(String::new(), 0)];
    while let Some((prefix, depth)) = stack.pop() {
        check(&format!("/{prefix}"));
        if depth < 4 {
            for token in TOKENS {
                stack.push((format!("{prefix}{token}"), depth + 1));
            }
        }
    }
    for _ in 0..100_000 {
        let len = rand::random_range(6..16);
        let rest: String = (0..len)
            .map(|_| TOKENS[rand::random_range(0..TOKENS.len())])
            .collect();
        check(&format!("/{rest}"));
    }
}
