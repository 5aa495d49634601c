//! Write-only secrets (RELIABILITY S8, S10): reads mask header auth values; a write that sends a
//! masked value back (read, edit, write) keeps the stored value for that header; what is stored
//! is sealed with the keyring, bound to its row.

use std::collections::BTreeMap;

use shared::crypto::{
    Field, Keyring, open_header_auth, open_headers, seal_header_auth, seal_headers,
};
use shared::model::{HeaderAuth, MASK};
use shared::validation::FieldError;
use uuid::Uuid;

use crate::http::error::ApiResult;

/// The secret-bearing fields of a row: header auth and custom headers with the names marked secret.
pub struct SecretFields<'a> {
    pub header_auth: Option<&'a HeaderAuth>,
    pub custom_headers: &'a BTreeMap<String, String>,
    pub secret_custom_headers: &'a [String],
}

/// An input (account or integration) that carries secret-bearing fields.
pub trait WithSecrets: Clone {
    fn secret_fields(&self) -> SecretFields<'_>;
    fn set_secret_values(&mut self, values: SecretValues);

    /// The same input with its secret fields replaced by `values`.
    fn with_secret_values(&self, values: SecretValues) -> Self {
        let mut input = self.clone();
        input.set_secret_values(values);
        input
    }

    /// The same input with its secret values masked, as reads show it.
    fn masked(&self) -> Self {
        let fields = self.secret_fields();
        self.with_secret_values(SecretValues {
            header_auth: fields.header_auth.map(HeaderAuth::masked),
            custom_headers: masked_custom_headers(
                fields.custom_headers,
                fields.secret_custom_headers,
            ),
        })
    }
}

/// Accounts and integrations name their secret-bearing fields alike.
macro_rules! with_secrets {
    ($($input:ty),+) => {$(
        impl WithSecrets for $input {
            fn secret_fields(&self) -> SecretFields<'_> {
                SecretFields {
                    header_auth: self.header_auth.as_ref(),
                    custom_headers: &self.custom_headers,
                    secret_custom_headers: &self.secret_custom_headers,
                }
            }

            fn set_secret_values(&mut self, values: SecretValues) {
                self.header_auth = values.header_auth;
                self.custom_headers = values.custom_headers;
            }
        }
    )+};
}

with_secrets!(
    crate::provider_accounts::AccountInput,
    crate::integrations::IntegrationInput
);

/// The values of [`SecretFields`], owned: sealed as stored, or plain once opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretValues {
    pub header_auth: Option<HeaderAuth>,
    pub custom_headers: BTreeMap<String, String>,
}

/// What to store for row `row` of `table`: `new`, with masked values taken from what is `stored`
/// (sealed) for that row, then sealed. The one path every create and replace takes.
pub fn seal_for_store(
    keyring: &Keyring,
    table: &str,
    row: Uuid,
    new: SecretFields<'_>,
    stored: Option<SecretFields<'_>>,
) -> ApiResult<SecretValues> {
    let stored = stored
        .map(|s| open_stored(keyring, table, row, s))
        .transpose()?;
    let plain = unmasked(&new, stored.as_ref())?;
    let at = (table, row, Field::CustomHeaders);
    Ok(SecretValues {
        header_auth: plain
            .header_auth
            .map(|auth| seal_header_auth(keyring, table, row, &auth)),
        custom_headers: seal_headers(keyring, at, &plain.custom_headers, |n| {
            is_secret(new.secret_custom_headers, n)
        }),
    })
}

/// The plain values of what is stored (sealed) for row `row` of `table`.
pub fn open_stored(
    keyring: &Keyring,
    table: &str,
    row: Uuid,
    stored: SecretFields<'_>,
) -> ApiResult<SecretValues> {
    let at = (table, row, Field::CustomHeaders);
    Ok(SecretValues {
        header_auth: stored
            .header_auth
            .map(|sealed| open_header_auth(keyring, table, row, sealed))
            .transpose()?,
        custom_headers: open_headers(keyring, at, stored.custom_headers, |n| {
            is_secret(stored.secret_custom_headers, n)
        })?,
    })
}

/// `new` in plain values: every masked value replaced by the `stored` (opened) value of the
/// same header, which must exist.
pub fn unmasked(
    new: &SecretFields<'_>,
    stored: Option<&SecretValues>,
) -> Result<SecretValues, FieldError> {
    let header_auth = unmask_header_auth(
        new.header_auth.cloned(),
        stored.and_then(|s| s.header_auth.as_ref()),
    )?;
    let mut custom_headers = BTreeMap::new();
    for (name, value) in new.custom_headers {
        let value = if is_secret(new.secret_custom_headers, name) && value == MASK {
            stored
                .and_then(|old| stored_value(&old.custom_headers, name))
                .ok_or_else(|| masked_without_value(format!("custom_headers.{name}")))?
        } else {
            value.clone()
        };
        custom_headers.insert(name.clone(), value);
    }
    Ok(SecretValues {
        header_auth,
        custom_headers,
    })
}

/// The value of header `name` (names ignore case) in `headers`.
fn stored_value(headers: &BTreeMap<String, String>, name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn masked_without_value(field: String) -> FieldError {
    FieldError::new(
        field,
        "is masked but no value is stored for it: send the real value",
    )
}

/// Whether `name` is among `secret` names (header names ignore case).
pub fn is_secret(secret: &[String], name: &str) -> bool {
    secret.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Custom headers as read: the secret ones masked.
pub fn masked_custom_headers(
    headers: &BTreeMap<String, String>,
    secret: &[String],
) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| match is_secret(secret, name) {
            true => (name.clone(), MASK.to_owned()),
            false => (name.clone(), value.clone()),
        })
        .collect()
}

/// Every secret name must be one of the custom headers.
pub fn validate_secret_names(
    headers: &BTreeMap<String, String>,
    secret: &[String],
) -> Result<(), FieldError> {
    for (i, name) in secret.iter().enumerate() {
        if !headers.keys().any(|h| h.eq_ignore_ascii_case(name)) {
            return Err(FieldError::new(
                format!("secret_custom_headers[{i}]"),
                format!("{name} is not one of custom_headers"),
            ));
        }
    }
    Ok(())
}

/// `new` with every masked value replaced by the stored value of the same header in `old`.
fn unmask_header_auth(
    new: Option<HeaderAuth>,
    old: Option<&HeaderAuth>,
) -> Result<Option<HeaderAuth>, FieldError> {
    let Some(new) = new else { return Ok(None) };
    let mut headers = BTreeMap::new();
    for (name, value) in new.headers() {
        let value = if value == MASK {
            old.and_then(|old| stored_value(old.headers(), name))
                .ok_or_else(|| masked_without_value(format!("header_auth.headers.{name}")))?
        } else {
            value.clone()
        };
        headers.insert(name.clone(), value);
    }
    Ok(Some(HeaderAuth::Header { headers }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(pairs: &[(&str, &str)]) -> HeaderAuth {
        HeaderAuth::Header {
            headers: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn masked_values_keep_the_stored_secret() {
        let old = auth(&[("X-Key", "s3cret")]);
        let new = auth(&[("x-key", MASK), ("X-Other", "new")]);
        let merged = unmask_header_auth(Some(new), Some(&old)).unwrap().unwrap();
        assert_eq!(merged, auth(&[("x-key", "s3cret"), ("X-Other", "new")]));
    }

    #[test]
    fn a_mask_without_a_stored_value_is_refused() {
        let err = unmask_header_auth(Some(auth(&[("X-Key", MASK)])), None).unwrap_err();
        assert_eq!(err.field, "header_auth.headers.X-Key");
    }
}
