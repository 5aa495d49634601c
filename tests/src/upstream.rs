//! Real upstream HTTP servers for tests and the demo: a recording echo server that keeps every
//! request exactly as it arrived (raw request-target, headers in order, body bytes) and answers
//! with a JSON echo, and [`serve`] for any other axum router.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::TcpListener;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }
}

/// A running echo upstream.
#[derive(Clone)]
pub struct EchoUpstream {
    pub addr: SocketAddr,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

impl EchoUpstream {
    /// Serves on `listener` (bind 127.0.0.1:0 in tests) until the process ends.
    pub fn serve(listener: TcpListener) -> EchoUpstream {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(echo)
            .with_state(Arc::clone(&recorded));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "echo upstream stopped");
            }
        });
        EchoUpstream { addr, recorded }
    }

    pub async fn start() -> EchoUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding an ephemeral port on 127.0.0.1");
        EchoUpstream::serve(listener)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn last(&self) -> Option<Recorded> {
        self.requests().pop()
    }
}

async fn echo(State(recorded): State<Arc<Mutex<Vec<Recorded>>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let entry = Recorded {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let reply = json!({
        "method": entry.method,
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": entry.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(&entry.body),
    });
    if let Ok(mut all) = recorded.lock() {
        all.push(entry);
    }
    axum::Json(reply).into_response()
}

/// Serves `app` on 127.0.0.1 on an ephemeral port until the process ends; returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding an ephemeral port on 127.0.0.1");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "test upstream stopped");
        }
    });
    format!("http://{addr}")
}
