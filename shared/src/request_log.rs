//! The request-log record (SPEC §3) as the data planes write it and the traces API reads it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestRecord {
    pub request_id: Uuid,
    /// RFC 3339.
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub account: String,
    pub endpoint: String,
    pub account_id: Option<Uuid>,
    pub integration_id: Option<Uuid>,
    /// `user:<email>` or `virtualaccount:<name>`; absent when the key was refused.
    pub subject: Option<String>,
    pub key_id: Option<Uuid>,
    pub method: String,
    /// The upstream path without its query string, which may carry secrets.
    pub upstream_path: String,
    pub status: u16,
    pub latency_us: u64,
    /// Time to the upstream's response headers; absent when no upstream answered.
    pub upstream_ttfb_us: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The gateway's error type when the gateway made the response.
    pub error_type: Option<String>,
    pub trace_id: String,
    pub data_plane: String,
}
