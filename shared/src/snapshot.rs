//! The configuration snapshot a data plane loads: everything it needs to route, authenticate and
//! authorise, read in one consistent transaction (RELIABILITY P6) and tagged with its version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{HeaderAuth, TlsSettings};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: i64,
    pub accounts: Vec<AccountSnapshot>,
    pub integrations: Vec<IntegrationSnapshot>,
    pub subjects: Vec<SubjectSnapshot>,
    pub keys: Vec<KeySnapshot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub id: Uuid,
    pub name: String,
    pub header_auth: Option<HeaderAuth>,
    pub custom_headers: BTreeMap<String, String>,
    /// Custom headers whose values are sealed, like header auth.
    pub secret_custom_headers: Vec<String>,
    /// Subjects with any collaborator role.
    pub collaborators: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntegrationSnapshot {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub base_url: String,
    pub header_auth: Option<HeaderAuth>,
    pub custom_headers: BTreeMap<String, String>,
    /// Custom headers whose values are sealed, like header auth.
    pub secret_custom_headers: Vec<String>,
    pub tls: TlsSettings,
    pub authorized_subjects: Vec<Uuid>,
    /// Request bodies above this many bytes are refused with 413.
    #[serde(default)]
    pub max_request_body_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectSnapshot {
    pub id: Uuid,
    /// `kind:name`, as traces and logs name the caller.
    pub name: String,
    pub is_admin: bool,
    /// Teams a user belongs to.
    pub teams: Vec<Uuid>,
}

/// A usable key: revoked keys are not in the snapshot at all; expiry is checked per request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySnapshot {
    pub id: Uuid,
    pub digest: Vec<u8>,
    pub subject_id: Uuid,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}
