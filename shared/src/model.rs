//! The configuration objects of SPEC §1 as they travel over the API and through the snapshot.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::headers::validate_header_map;
use crate::names::{validate_email, validate_principal_name};
use crate::validation::FieldError;

/// What reads show instead of a secret value (RELIABILITY S8).
pub const MASK: &str = "********";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointType {
    AzureSpeechService,
    Other,
}

impl EndpointType {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointType::AzureSpeechService => "azure-speech-service",
            EndpointType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "azure-speech-service" => Some(EndpointType::AzureSpeechService),
            "other" => Some(EndpointType::Other),
            _ => None,
        }
    }
}

/// Upstream credentials injected as headers: `{ "type": "header", "headers": { NAME: VALUE } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum HeaderAuth {
    /// Header values are write-only: reads show them masked.
    Header { headers: BTreeMap<String, String> },
}

impl HeaderAuth {
    pub fn headers(&self) -> &BTreeMap<String, String> {
        match self {
            HeaderAuth::Header { headers } => headers,
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        let headers = self.headers();
        if headers.is_empty() {
            return Err(FieldError::new(
                "header_auth.headers",
                "must name at least one header",
            ));
        }
        validate_header_map("header_auth.headers", headers)
    }

    /// The same names with every value replaced by [`MASK`].
    pub fn masked(&self) -> HeaderAuth {
        HeaderAuth::Header {
            headers: self
                .headers()
                .keys()
                .map(|k| (k.clone(), MASK.to_owned()))
                .collect(),
        }
    }
}

/// Upstream TLS settings of one integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    #[serde(default = "default_true")]
    pub reject_unauthorized: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
}

fn default_true() -> bool {
    true
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            reject_unauthorized: true,
            ca_certs: None,
        }
    }
}

impl TlsSettings {
    /// `ca_certs` must hold at least one PEM certificate and nothing unparsable.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(pem) = &self.ca_certs {
            parse_ca_certs(pem).map_err(|m| FieldError::new("tls.ca_certs", m))?;
        }
        Ok(())
    }
}

/// Parses PEM text into DER certificates; the data plane uses the same function to build roots.
pub fn parse_ca_certs(pem: &str) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("must contain at least one PEM certificate".to_owned());
    }
    Ok(certs)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ProviderAccountManager,
    ProviderAccountAccess,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ProviderAccountManager => "provider-account-manager",
            Role::ProviderAccountAccess => "provider-account-access",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "provider-account-manager" => Some(Role::ProviderAccountManager),
            "provider-account-access" => Some(Role::ProviderAccountAccess),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    User,
    Team,
    VirtualAccount,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "user",
            SubjectKind::Team => "team",
            SubjectKind::VirtualAccount => "virtualaccount",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(SubjectKind::User),
            "team" => Some(SubjectKind::Team),
            "virtualaccount" => Some(SubjectKind::VirtualAccount),
            _ => None,
        }
    }
}

/// `user:<email>`, `team:<name>` or `virtualaccount:<name>`; serialised as that string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subject {
    pub kind: SubjectKind,
    pub name: String,
}

impl Subject {
    pub fn parse(s: &str) -> Result<Subject, String> {
        let (kind, name) = s
            .split_once(':')
            .ok_or("must be user:<email>, team:<name> or virtualaccount:<name>")?;
        let kind = SubjectKind::parse(kind).ok_or("kind must be user, team or virtualaccount")?;
        let valid = match kind {
            SubjectKind::User => validate_email(name),
            SubjectKind::Team | SubjectKind::VirtualAccount => validate_principal_name(name),
        };
        valid.map_err(|e| e.message)?;
        Ok(Subject {
            kind,
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.name)
    }
}

impl TryFrom<String> for Subject {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Subject::parse(&s)
    }
}

impl From<Subject> for String {
    fn from(s: Subject) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        for s in ["user:ada@example.com", "team:ml", "virtualaccount:ci-bot"] {
            assert_eq!(Subject::parse(s).unwrap().to_string(), s);
        }
        for bad in ["", "ada", "robot:x", "user:nope", "team:", "team:A B"] {
            assert!(Subject::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_auth_shape_and_mask() {
        let a: HeaderAuth =
            serde_json::from_str(r#"{"type":"header","headers":{"X-Key":"s3cret"}}"#).unwrap();
        assert!(a.validate().is_ok());
        let masked = serde_json::to_string(&a.masked()).unwrap();
        assert!(!masked.contains("s3cret") && masked.contains(MASK));
        assert!(serde_json::from_str::<HeaderAuth>(r#"{"type":"basic","headers":{}}"#).is_err());
        let empty: HeaderAuth = serde_json::from_str(r#"{"type":"header","headers":{}}"#).unwrap();
        assert_eq!(empty.validate().unwrap_err().field, "header_auth.headers");
    }

    #[test]
    fn tls_ca_certs_must_be_pem() {
        let bad = TlsSettings {
            reject_unauthorized: true,
            ca_certs: Some("not a certificate".into()),
        };
        assert_eq!(bad.validate().unwrap_err().field, "tls.ca_certs");
        assert!(TlsSettings::default().validate().is_ok());
    }
}
