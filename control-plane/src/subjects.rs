//! Subjects: users, teams and virtual accounts, and how other objects refer to them.
//!
//! - [`principals`]: `/users` and `/virtual-accounts`.
//! - [`teams`]: `/teams` and their members.

pub mod principals;
pub mod teams;

use shared::model::Subject;
use shared::validation::FieldError;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::http::error::ApiError;

/// Resolves each subject to its id; one that does not exist is a 422 at `field[i]`.
pub async fn resolve_all(
    conn: &mut PgConnection,
    field: &str,
    subjects: &[Subject],
) -> Result<Vec<Uuid>, ApiError> {
    let mut ids = Vec::with_capacity(subjects.len());
    for (i, subject) in subjects.iter().enumerate() {
        let id: Option<Uuid> =
            sqlx::query_scalar("select id from subjects where kind = $1 and name = $2")
                .bind(subject.kind.as_str())
                .bind(&subject.name)
                .fetch_optional(&mut *conn)
                .await?;
        let id = id.ok_or_else(|| {
            FieldError::new(
                format!("{field}[{i}]"),
                format!("subject {subject} does not exist"),
            )
        })?;
        if ids.contains(&id) {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                format!("subject {subject} is listed twice"),
            )
            .into());
        }
        ids.push(id);
    }
    Ok(ids)
}
