//! The answer of `PUT /apply`: per object, what happened and which fields changed, with
//! secret values masked.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::secrets::WithSecrets;

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplyReport {
    /// True when nothing was committed (a dry run reports what would change).
    pub dry_run: bool,
    /// Whether any object was (or, in a dry run, would be) created, updated or deleted.
    pub changed: bool,
    /// The config version after the apply: unchanged when nothing changed.
    pub version: i64,
    pub objects: Vec<ObjectDiff>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectDiff {
    pub kind: ObjectKind,
    /// `acme` for an account, `acme/svc` for an integration.
    pub name: String,
    pub action: Action,
    /// The fields that differ; empty when unchanged or deleted.
    pub changes: Vec<FieldChange>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    ProviderAccount,
    Integration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Deleted,
    Unchanged,
}

/// One top-level field that differs; secret values show as the mask.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldChange {
    pub field: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The fields where `after` differs from `before` (both plain; `None` for an object that does
/// not exist), valued as reads would show them.
pub fn field_changes<T: WithSecrets + Serialize>(
    before: Option<&T>,
    after: Option<&T>,
) -> Vec<FieldChange> {
    let fields = |input: Option<&T>| {
        let plain = input.map(to_fields).unwrap_or_default();
        let shown = input.map(|i| to_fields(&i.masked())).unwrap_or_default();
        (plain, shown)
    };
    let (before_plain, before_shown) = fields(before);
    let (after_plain, after_shown) = fields(after);
    let mut names: Vec<&String> = before_plain.keys().chain(after_plain.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| before_plain.get(*name) != after_plain.get(*name))
        .map(|name| FieldChange {
            field: name.clone(),
            before: before_shown.get(name).cloned(),
            after: after_shown.get(name).cloned(),
        })
        .collect()
}

/// The top-level fields of `input` that hold something: an absent field, null, `[]` and `{}`
/// are all "none", so a new object lists only what it sets.
fn to_fields<T: Serialize>(input: &T) -> serde_json::Map<String, Value> {
    let Ok(Value::Object(map)) = serde_json::to_value(input) else {
        return serde_json::Map::new();
    };
    map.into_iter()
        .filter(|(_, value)| match value {
            Value::Null => false,
            Value::Array(items) => !items.is_empty(),
            Value::Object(fields) => !fields.is_empty(),
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shared::model::{HeaderAuth, MASK};

    use super::*;
    use crate::provider_accounts::AccountInput;

    fn account(secret: &str, endpoint_type: Option<&str>) -> AccountInput {
        AccountInput {
            name: "acme".into(),
            endpoint_type: endpoint_type.and_then(shared::model::EndpointType::parse),
            header_auth: Some(HeaderAuth::Header {
                headers: BTreeMap::from([("X-Key".to_owned(), secret.to_owned())]),
            }),
            custom_headers: BTreeMap::new(),
            secret_custom_headers: Vec::new(),
            collaborators: Vec::new(),
        }
    }

    #[test]
    fn a_changed_secret_is_reported_masked() {
        let changes = field_changes(Some(&account("old", None)), Some(&account("new", None)));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, "header_auth");
        let shown = serde_json::to_string(&changes).unwrap();
        assert!(shown.contains(MASK) && !shown.contains("old") && !shown.contains("new"));
    }

    #[test]
    fn equal_objects_have_no_changes_and_new_ones_list_every_field() {
        let a = account("s", Some("other"));
        assert!(field_changes(Some(&a), Some(&a)).is_empty());
        let created = field_changes(None, Some(&a));
        assert!(
            created
                .iter()
                .any(|c| c.field == "endpoint_type" && c.before.is_none())
        );
        assert!(!serde_json::to_string(&created).unwrap().contains("\"s\""));
    }
}
