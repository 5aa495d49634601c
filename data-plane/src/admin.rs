//! Liveness, readiness and sync status, served on the proxy's own port.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use crate::Gateway;
use crate::proxy::ProxyBody;

/// The answer for an admin path, `None` for any other path.
pub fn respond(gateway: &Gateway, path: &str) -> Option<Response<ProxyBody>> {
    match path {
        // Liveness never touches the database.
        "/healthz" => Some(text(StatusCode::OK, "ok")),
        // Ready once a table is loaded, and from then on, database or not (RELIABILITY P10).
        "/readyz" => Some(if *gateway.ready.borrow() {
            text(StatusCode::OK, "ready")
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no routing table loaded yet",
            )
        }),
        "/status" => {
            let report = serde_json::to_vec(&gateway.status.report()).unwrap_or_default();
            let mut response = Response::new(Either::Right(Full::new(Bytes::from(report))));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Some(response)
        }
        _ => None,
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
