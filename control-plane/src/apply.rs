//! `PUT /api/v1/apply`: reconciles provider accounts with a manifest (one document per
//! account, integrations inline), in one transaction. Each object is compared with what is
//! stored, secrets opened with the keyring, and written only when it differs, through the same
//! write paths as the REST resources (validation, sealing, config version, NOTIFY). Integrations
//! of a manifest's account that the manifest does not list are deleted. A dry run does all of
//! it and rolls back.
//!
//! - [`manifest`]: the document shape.
//! - [`diff`]: the report: per object, the action and the changed fields, secrets masked.

pub mod diff;
pub mod manifest;

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::Value;
use shared::crypto::{self, Keyring};
use shared::model::{Role, Subject};
use shared::validation::FieldError;
use sqlx::{Postgres, Transaction};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::http::error::{ApiError, ApiResult, WriteErrors};
use crate::http::json::ApiJson;
use crate::integrations::{self, IntegrationInput, IntegrationRow};
use crate::provider_accounts::{self, AccountInput, Collaborator};
use crate::secrets::{WithSecrets, open_stored, unmasked};
use diff::{Action, ApplyReport, ObjectDiff, ObjectKind, field_changes};
use manifest::Document;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(apply))
}

/// A manifest, its secret values resolved.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    #[schema(value_type = Vec<Document>)]
    pub documents: Vec<Value>,
    /// Report what would change and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ApplyQuery {
    /// Same as `dry_run` in the body; either makes the apply a dry run.
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(put, path = "/apply", tag = "apply",
    params(ApplyQuery), request_body = ApplyRequest,
    responses((status = 200, description = "What changed (or would change, in a dry run), per object", body = ApplyReport), WriteErrors))]
async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ApplyQuery>,
    ApiJson(request): ApiJson<ApplyRequest>,
) -> ApiResult<Json<ApplyReport>> {
    let dry_run = query.dry_run || request.dry_run;
    let documents = parse_all(request.documents)?;
    let mut tx = state.db.begin().await?;
    let me = caller_subject(&mut tx, &caller).await?;
    let mut objects = Vec::new();
    for (account, integrations) in documents {
        let diffs = reconcile_account(&mut tx, &state, &caller, me.as_ref(), account, integrations);
        objects.extend(diffs.await?);
    }
    let version = if dry_run {
        tx.rollback().await?;
        current_version(&state.db).await?
    } else {
        let version = current_version(&mut *tx).await?;
        tx.commit().await?;
        version
    };
    Ok(Json(ApplyReport {
        dry_run,
        changed: objects.iter().any(|o| o.action != Action::Unchanged),
        version,
        objects,
    }))
}

async fn current_version(db: impl sqlx::PgExecutor<'_>) -> ApiResult<i64> {
    Ok(sqlx::query_scalar("select version from config_version")
        .fetch_one(db)
        .await?)
}

/// Parses and validates every document before anything is read or written: errors name the
/// object and the field.
fn parse_all(values: Vec<Value>) -> ApiResult<Vec<(AccountInput, Vec<IntegrationInput>)>> {
    let mut accounts = HashSet::new();
    let mut documents = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let (account, integrations) = Document::parse(index, value)?.into_parts();
        let object = account_object(&account.name);
        account.validate().map_err(|e| invalid(&object, e))?;
        if !accounts.insert(account.name.clone()) {
            return Err(invalid(
                &object,
                FieldError::new("metadata.name", "is given by two documents"),
            ));
        }
        let mut names = HashSet::new();
        for integration in &integrations {
            let object = integration_object(&account.name, &integration.name);
            integration.validate().map_err(|e| invalid(&object, e))?;
            if !names.insert(integration.name.as_str()) {
                return Err(invalid(
                    &object,
                    FieldError::new("name", "is listed twice in spec.integrations"),
                ));
            }
        }
        documents.push((account, integrations));
    }
    Ok(documents)
}

fn invalid(object: &str, error: FieldError) -> ApiError {
    ApiError::Validation(error).about(object)
}

fn account_object(name: &str) -> String {
    format!("provider account {name}")
}

fn integration_object(account: &str, name: &str) -> String {
    format!("integration {account}/{name}")
}

/// The caller as a subject when it is not an admin: it stays a manager of the accounts it
/// applies (as a creator does), unless the manifest lists it with another role.
async fn caller_subject(
    tx: &mut Transaction<'_, Postgres>,
    caller: &Caller,
) -> ApiResult<Option<Subject>> {
    if caller.is_admin {
        return Ok(None);
    }
    let subject: String =
        sqlx::query_scalar("select kind || ':' || name from subjects where id = $1")
            .bind(caller.subject_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(Subject::parse(&subject).ok())
}

/// Brings one account and its integrations to what the manifest says.
async fn reconcile_account(
    tx: &mut Transaction<'_, Postgres>,
    state: &AppState,
    caller: &Caller,
    me: Option<&Subject>,
    mut desired: AccountInput,
    integrations: Vec<IntegrationInput>,
) -> ApiResult<Vec<ObjectDiff>> {
    let object = account_object(&desired.name);
    if let Some(me) = me
        && !desired.collaborators.iter().any(|c| &c.subject == me)
    {
        desired.collaborators.push(Collaborator {
            subject: me.clone(),
            role: Role::ProviderAccountManager,
        });
    }
    let existing = provider_accounts::find_managed(tx, caller, &desired.name)
        .await
        .map_err(|e| e.about(&object))?;
    let name = desired.name.clone();
    let (account_id, account_diff, stored) = match existing {
        None => {
            let id = provider_accounts::insert(tx, &state.keyring, caller, &desired)
                .await
                .map_err(|e| e.about(&object))?;
            let changes = field_changes(None, Some(&desired));
            (id, (Action::Created, changes), Vec::new())
        }
        Some(row) => {
            let current = opened(&state.keyring, crypto::ACCOUNTS, row.id(), &row.input())?;
            let desired = unmasked_against(&desired, &current).map_err(|e| invalid(&object, e))?;
            let changes = field_changes(
                Some(&sorted_account(current)),
                Some(&sorted_account(desired.clone())),
            );
            let action = if changes.is_empty() {
                Action::Unchanged
            } else {
                provider_accounts::replace_stored(tx, &state.keyring, &row, &desired)
                    .await
                    .map_err(|e| e.about(&object))?;
                Action::Updated
            };
            let stored = integrations::fetch_all(tx, row.id()).await?;
            (row.id(), (action, changes), stored)
        }
    };
    let mut diffs = vec![ObjectDiff {
        kind: ObjectKind::ProviderAccount,
        name: name.clone(),
        action: account_diff.0,
        changes: account_diff.1,
    }];
    let listed: HashSet<String> = integrations.iter().map(|i| i.name.clone()).collect();
    for integration in integrations {
        let current = stored.iter().find(|row| row.name() == integration.name);
        let diff = reconcile_integration(tx, state, (account_id, &name), current, integration);
        diffs.push(diff.await?);
    }
    for row in stored.iter().filter(|row| !listed.contains(row.name())) {
        integrations::remove(tx, &name, row).await?;
        diffs.push(ObjectDiff {
            kind: ObjectKind::Integration,
            name: format!("{name}/{}", row.name()),
            action: Action::Deleted,
            changes: Vec::new(),
        });
    }
    Ok(diffs)
}

/// Creates, updates or leaves one integration of account `(id, name)`.
async fn reconcile_integration(
    tx: &mut Transaction<'_, Postgres>,
    state: &AppState,
    (account_id, account): (Uuid, &str),
    current: Option<&IntegrationRow>,
    desired: IntegrationInput,
) -> ApiResult<ObjectDiff> {
    let object = integration_object(account, &desired.name);
    let name = format!("{account}/{}", desired.name);
    let (action, changes) = match current {
        None => {
            integrations::insert(tx, state, (account_id, account), &desired)
                .await
                .map_err(|e| e.about(&object))?;
            (Action::Created, field_changes(None, Some(&desired)))
        }
        Some(row) => {
            let current = opened(&state.keyring, crypto::INTEGRATIONS, row.id(), &row.input())?;
            let desired = unmasked_against(&desired, &current).map_err(|e| invalid(&object, e))?;
            let changes = field_changes(
                Some(&sorted_integration(current)),
                Some(&sorted_integration(desired.clone())),
            );
            if changes.is_empty() {
                (Action::Unchanged, changes)
            } else {
                integrations::replace_stored(tx, state, account, row, &desired)
                    .await
                    .map_err(|e| e.about(&object))?;
                (Action::Updated, changes)
            }
        }
    };
    Ok(ObjectDiff {
        kind: ObjectKind::Integration,
        name,
        action,
        changes,
    })
}

/// `stored` (sealed, as read from row `id` of `table`) with its secrets opened.
fn opened<T: WithSecrets>(keyring: &Keyring, table: &str, id: Uuid, stored: &T) -> ApiResult<T> {
    let values = open_stored(keyring, table, id, stored.secret_fields())?;
    Ok(stored.with_secret_values(values))
}

/// `desired` in plain values: masked secrets take the `current` (plain) values.
fn unmasked_against<T: WithSecrets>(desired: &T, current: &T) -> Result<T, FieldError> {
    let current = current.secret_fields();
    let current = crate::secrets::SecretValues {
        header_auth: current.header_auth.cloned(),
        custom_headers: current.custom_headers.clone(),
    };
    let values = unmasked(&desired.secret_fields(), Some(&current))?;
    Ok(desired.with_secret_values(values))
}

/// Subject lists compare as sets: the database returns them in its own order.
fn sorted_account(mut account: AccountInput) -> AccountInput {
    account.collaborators.sort_by_key(|c| c.subject.to_string());
    account
}

fn sorted_integration(mut integration: IntegrationInput) -> IntegrationInput {
    integration
        .authorized_subjects
        .sort_by_key(Subject::to_string);
    integration
}
