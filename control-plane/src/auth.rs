//! Who is calling: the bearer API key resolved to its subject, and the management rules of SPEC
//! "Who may manage" that handlers ask.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use shared::api_key;
use uuid::Uuid;

use crate::AppState;
use crate::http::error::ApiError;

/// The authenticated subject behind a request's API key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject_id: Uuid,
    pub kind: String,
    pub is_admin: bool,
}

impl Caller {
    pub fn is_user(&self) -> bool {
        self.kind == "user"
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        // Malformed keys are refused without a database lookup (RELIABILITY S9).
        let digest = api_key::digest_of(presented.trim()).ok_or(ApiError::Unauthorized)?;
        let row: Option<(Uuid, Uuid, String, bool, bool)> = sqlx::query_as(
            "select k.id, s.id, s.kind, s.is_admin,
                    k.last_used_at is null or k.last_used_at < now() - interval '1 minute'
             from api_keys k join subjects s on s.id = k.subject_id
             where k.digest = $1 and k.revoked_at is null
               and (k.expires_at is null or k.expires_at > now())",
        )
        .bind(&digest[..])
        .fetch_optional(&state.db)
        .await?;
        let (key_id, subject_id, kind, is_admin, stale) = row.ok_or(ApiError::Unauthorized)?;
        // "Last used" is coarse on purpose: at most one write a minute per key.
        if stale {
            sqlx::query("update api_keys set last_used_at = now() where id = $1")
                .bind(key_id)
                .execute(&state.db)
                .await?;
        }
        Ok(Caller {
            subject_id,
            kind,
            is_admin,
        })
    }
}

/// What a caller may do with one provider account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccountAccess {
    /// `provider-account-access`: read, secrets masked.
    Read,
    /// Admin or `provider-account-manager`: read, change, delete.
    Manage,
}

/// SQL deciding a caller's access to account `a`: 2 = manage, 1 = read, null = none. The caller
/// counts directly or through any team it belongs to. `$1` is the caller's subject id.
pub const ACCESS_LEVEL_SQL: &str =
    "(select max(case c.role when 'provider-account-manager' then 2 else 1 end)
      from collaborators c
      where c.account_id = a.id
        and (c.subject_id = $1
             or c.subject_id in (select team_id from team_members where user_id = $1)))";

impl AccountAccess {
    pub fn from_level(is_admin: bool, level: Option<i32>) -> Option<AccountAccess> {
        if is_admin {
            return Some(AccountAccess::Manage);
        }
        match level {
            Some(2) => Some(AccountAccess::Manage),
            Some(_) => Some(AccountAccess::Read),
            None => None,
        }
    }
}
