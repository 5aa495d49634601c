//! The dashboard at `/ui/`: plain HTML, CSS and ES modules embedded in the binary (no build step,
//! nothing to deploy beside the control plane). The pages call only the public REST API, with
//! the API key the user signs in with. `index.html` gets the public gateway URL rendered into a
//! `<meta>` tag once, when the router is built, so usage snippets need no extra API route.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use bytes::Bytes;

/// One embedded file, served at `/ui/{path}`.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_str!(concat!("../ui/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard; anything else under `/ui/` that looks like a file is a 404.
pub const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("js/api.js", JS),
    asset!("js/app.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/headers.js", JS),
    asset!("js/router.js", JS),
    asset!("js/session.js", JS),
    asset!("js/snippets.js", JS),
    asset!("js/validate.js", JS),
    asset!("js/pages/account_detail.js", JS),
    asset!("js/pages/account_form.js", JS),
    asset!("js/pages/account_wizard.js", JS),
    asset!("js/pages/accounts.js", JS),
    asset!("js/pages/admin.js", JS),
    asset!("js/pages/collaborators.js", JS),
    asset!("js/pages/integration_form.js", JS),
    asset!("js/pages/keys.js", JS),
    asset!("js/pages/signin.js", JS),
    asset!("js/pages/traces.js", JS),
];

const INDEX_HTML: &str = include_str!("../ui/index.html");
const GATEWAY_PLACEHOLDER: &str = "{{GATEWAY_URL}}";

/// No inline script or style, nothing from elsewhere, no framing: the key in sessionStorage is
/// only as safe as the scripts that can read it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// A file ready to answer: its type, body and entity tag, computed once.
struct Served {
    content_type: &'static str,
    body: Bytes,
    etag: HeaderValue,
}

impl Served {
    fn new(content_type: &'static str, body: Bytes) -> Served {
        let mut hasher = std::hash::DefaultHasher::new();
        body.hash(&mut hasher);
        // SipHash with fixed keys: the same tag for the same bytes, in every replica.
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
            .expect("a quoted hex number is a valid header value");
        Served {
            content_type,
            body,
            etag,
        }
    }
}

/// Everything under `/ui/`: `index.html` with the gateway URL filled in, and the assets.
struct Files {
    index: Served,
    assets: HashMap<&'static str, Served>,
}

impl Files {
    /// An asset by path; other paths are the dashboard's own (history-API) routes, so they get
    /// `index.html` — unless they look like a file, which then does not exist.
    fn serve(&self, path: &str, request: &HeaderMap) -> Response {
        if let Some(asset) = self.assets.get(path) {
            return respond(asset, request);
        }
        let last = path.rsplit('/').next().unwrap_or_default();
        if last.contains('.') {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        }
        respond(&self.index, request)
    }
}

/// The `/ui` routes; `gateway_url` is what usage snippets call.
pub fn routes<S: Clone + Send + Sync + 'static>(gateway_url: &str) -> Router<S> {
    let html = INDEX_HTML.replace(GATEWAY_PLACEHOLDER, &escape_attribute(gateway_url));
    let files = Arc::new(Files {
        index: Served::new("text/html; charset=utf-8", Bytes::from(html)),
        assets: ASSETS
            .iter()
            .map(|a| {
                let body = Bytes::from_static(a.body.as_bytes());
                (a.path, Served::new(a.content_type, body))
            })
            .collect(),
    });
    let at_root = Arc::clone(&files);
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route(
            "/ui/",
            get(move |headers: HeaderMap| async move { respond(&at_root.index, &headers) }),
        )
        .route(
            "/ui/{*path}",
            get(
                move |Path(path): Path<String>, headers: HeaderMap| async move {
                    files.serve(&path, &headers)
                },
            ),
        )
}

/// The file with security headers; `no-cache` makes browsers revalidate (cheaply, by `ETag`), so
/// an upgraded control plane is never mixed with stale modules.
fn respond(file: &Served, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == file.etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(file.body.clone()))
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::ETAG, file.etag.clone());
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn escape_attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The public gateway URL: `http(s)://host[:port][/prefix]`, kept without a trailing slash so
/// snippets can append `/proxy-api/...`.
pub fn parse_gateway_url(value: &str) -> Result<String, String> {
    let trimmed = value.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must name a host, without spaces".into());
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn get(path: &str) -> Response {
        let app: Router = routes("https://gw.example.com/base");
        let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
        app.oneshot(request).await.unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The files a page loads: its `src="..."` and `href="..."` values naming scripts and styles
    /// (not its navigation links).
    fn references(html: &str) -> Vec<String> {
        ["src=\"", "href=\""]
            .iter()
            .flat_map(|attr| html.split(attr).skip(1))
            .filter_map(|rest| rest.split('"').next())
            .filter(|r| r.ends_with(".js") || r.ends_with(".css"))
            .map(str::to_owned)
            .collect()
    }

    /// `from "./x.js"` and `import("./x.js")` targets of a module, relative to `dir`.
    fn imports(dir: &str, module: &str) -> Vec<String> {
        ["from \"", "import(\""]
            .iter()
            .flat_map(|marker| module.split(marker).skip(1))
            .filter_map(|rest| rest.split('"').next())
            .map(|target| resolve(dir, target))
            .collect()
    }

    fn resolve(dir: &str, target: &str) -> String {
        let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        for segment in target.split('/') {
            match segment {
                "." => {}
                ".." => {
                    parts.pop();
                }
                other => parts.push(other),
            }
        }
        parts.join("/")
    }

    #[tokio::test]
    async fn every_asset_index_html_references_is_served() {
        let response = get("/ui/").await;
        assert_eq!(response.status(), StatusCode::OK);
        let html = text(response).await;
        let refs = references(&html);
        assert!(refs.iter().any(|r| r.ends_with(".js")), "{refs:?}");
        assert!(refs.iter().any(|r| r.ends_with(".css")), "{refs:?}");
        for reference in refs {
            let response = get(&reference).await;
            assert_eq!(response.status(), StatusCode::OK, "{reference}");
            let content_type = &response.headers()[header::CONTENT_TYPE];
            let expected = if reference.ends_with(".js") {
                "text/javascript"
            } else {
                "text/css"
            };
            assert!(
                content_type.to_str().unwrap().starts_with(expected),
                "{reference}"
            );
        }
    }

    #[tokio::test]
    async fn every_module_import_is_served() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let dir = asset.path.rsplit_once('/').map_or("", |(d, _)| d);
            for target in imports(dir, asset.body) {
                assert!(
                    ASSETS.iter().any(|a| a.path == target),
                    "{} imports {target}, which is not served",
                    asset.path
                );
            }
        }
    }

    #[tokio::test]
    async fn index_carries_the_gateway_url_and_a_strict_policy() {
        let response = get("/ui/accounts/acme").await;
        assert_eq!(response.status(), StatusCode::OK);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
        let html = text(response).await;
        assert!(html.contains("content=\"https://gw.example.com/base\""));
        assert!(!html.contains(GATEWAY_PLACEHOLDER));
        assert!(!html.contains("<script>"), "no inline script");
    }

    #[tokio::test]
    async fn unknown_files_are_not_found_and_tags_revalidate() {
        assert_eq!(
            get("/ui/js/missing.js").await.status(),
            StatusCode::NOT_FOUND
        );
        let response = get("/ui/app.css").await;
        let etag = response.headers()[header::ETAG].clone();
        let app: Router = routes("http://127.0.0.1:8081");
        let request = axum::http::Request::get("/ui/app.css")
            .header(header::IF_NONE_MATCH, etag)
            .body(Body::empty())
            .unwrap();
        let again = app.oneshot(request).await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn gateway_urls() {
        assert_eq!(
            parse_gateway_url("http://127.0.0.1:8081/").unwrap(),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            parse_gateway_url("https://gw.example.com").unwrap(),
            "https://gw.example.com"
        );
        for bad in ["", "gw.example.com", "ftp://x", "http://", "http://a b"] {
            assert!(parse_gateway_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(escape_attribute("a\"<b>&"), "a&quot;&lt;b&gt;&amp;");
    }
}
