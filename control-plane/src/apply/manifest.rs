//! The manifest shape `PUT /apply` takes: one document per provider account, with its
//! integrations inline. Secret values arrive resolved (the CLI turns `env:` and `file:`
//! references into values on the machine that applies).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use shared::model::{EndpointType, HeaderAuth};
use utoipa::ToSchema;

use crate::http::error::ApiResult;
use crate::http::json::from_value;
use crate::integrations::IntegrationInput;
use crate::provider_accounts::{AccountInput, Collaborator};

/// One manifest document.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document {
    pub api_version: ApiVersion,
    pub kind: Kind,
    pub metadata: Metadata,
    pub spec: AccountSpec,
}

/// The manifest format version; the only one so far.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum ApiVersion {
    #[serde(rename = "gatehouse/v1")]
    V1,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum Kind {
    ProviderAccount,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The provider account's name: what the document is reconciled by.
    pub name: String,
}

/// The fields of a provider account (as `POST /provider-accounts` takes them, less the name)
/// and its integrations. Integrations of the account that the list does not name are deleted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    #[serde(default)]
    pub endpoint_type: Option<EndpointType>,
    #[serde(default)]
    pub header_auth: Option<HeaderAuth>,
    #[serde(default)]
    pub custom_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub secret_custom_headers: Vec<String>,
    #[serde(default)]
    pub collaborators: Vec<Collaborator>,
    #[serde(default)]
    pub integrations: Vec<IntegrationInput>,
}

impl Document {
    /// Parses document `index`; a shape error names the account (or the index) and the field.
    pub fn parse(index: usize, value: Value) -> ApiResult<Document> {
        let object = match value.pointer("/metadata/name").and_then(Value::as_str) {
            Some(name) => format!("provider account {name}"),
            None => format!("documents[{index}]"),
        };
        from_value(value).map_err(|e| e.about(&object))
    }

    /// The account as the REST resource takes it, and its integrations.
    pub fn into_parts(self) -> (AccountInput, Vec<IntegrationInput>) {
        let spec = self.spec;
        let account = AccountInput {
            name: self.metadata.name,
            endpoint_type: spec.endpoint_type,
            header_auth: spec.header_auth,
            custom_headers: spec.custom_headers,
            secret_custom_headers: spec.secret_custom_headers,
            collaborators: spec.collaborators,
        };
        (account, spec.integrations)
    }
}
