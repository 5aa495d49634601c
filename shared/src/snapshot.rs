//! The configuration snapshot a data plane loads: everything it needs to route, authenticate and
//! authorise, read in one consistent transaction (RELIABILITY P6) and tagged with its version.

use std::collections::{BTreeMap, HashSet};

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

/// What changed between two config versions (SPEC §4): the change log's touched accounts and
/// subjects, and their rows as of `snapshot.version`, read in one consistent transaction.
/// `snapshot` holds only the touched accounts (with all their integrations) and subjects (with
/// all their usable keys); a touched id absent from it was deleted. So deletions are carried
/// explicitly, by id (RELIABILITY P5).
#[derive(Debug, Clone)]
pub struct Delta {
    /// The version the changes start from; they apply only to a state of exactly that version.
    pub from_version: i64,
    pub accounts: Vec<Uuid>,
    pub subjects: Vec<Uuid>,
    pub snapshot: Snapshot,
}

impl Snapshot {
    /// Brings a snapshot of `delta.from_version` to the delta's version: everything of the
    /// touched accounts and subjects is replaced by what the delta holds.
    pub fn apply(&mut self, delta: &Delta) {
        let accounts: HashSet<Uuid> = delta.accounts.iter().copied().collect();
        let subjects: HashSet<Uuid> = delta.subjects.iter().copied().collect();
        let changed = &delta.snapshot;
        self.version = changed.version;
        self.accounts.retain(|a| !accounts.contains(&a.id));
        self.accounts.extend(changed.accounts.iter().cloned());
        self.integrations
            .retain(|i| !accounts.contains(&i.account_id));
        self.integrations
            .extend(changed.integrations.iter().cloned());
        self.subjects.retain(|s| !subjects.contains(&s.id));
        self.subjects.extend(changed.subjects.iter().cloned());
        self.keys.retain(|k| !subjects.contains(&k.subject_id));
        self.keys.extend(changed.keys.iter().cloned());
    }
}
