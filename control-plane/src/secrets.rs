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

/// [`SecretFields`] as stored: sealed.
pub struct Sealed {
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
) -> ApiResult<Sealed> {
    let header_auth = header_auth_to_store(
        keyring,
        table,
        row,
        new.header_auth.cloned(),
        stored.as_ref().and_then(|s| s.header_auth),
    )?;
    let custom_headers = custom_headers_to_store(
        keyring,
        table,
        row,
        (new.custom_headers, new.secret_custom_headers),
        stored
            .as_ref()
            .map(|s| (s.custom_headers, s.secret_custom_headers)),
    )?;
    Ok(Sealed {
        header_auth,
        custom_headers,
    })
}

/// The sealed header auth to store for row `row` of `table`: `new` with masked values taken
/// from what is `stored` (sealed) for that row.
fn header_auth_to_store(
    keyring: &Keyring,
    table: &str,
    row: Uuid,
    new: Option<HeaderAuth>,
    stored: Option<&HeaderAuth>,
) -> ApiResult<Option<HeaderAuth>> {
    let stored = stored
        .map(|sealed| open_header_auth(keyring, table, row, sealed))
        .transpose()?;
    let new = unmask_header_auth(new, stored.as_ref())?;
    Ok(new.map(|auth| seal_header_auth(keyring, table, row, &auth)))
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

/// The custom headers to store for row `row` of `table`: masked secret values taken from what is
/// `stored`, then every secret value sealed.
fn custom_headers_to_store(
    keyring: &Keyring,
    table: &str,
    row: Uuid,
    new: (&BTreeMap<String, String>, &[String]),
    stored: Option<(&BTreeMap<String, String>, &[String])>,
) -> ApiResult<BTreeMap<String, String>> {
    let (headers, secret) = new;
    let at = (table, row, Field::CustomHeaders);
    let stored = stored
        .map(|(map, names)| open_headers(keyring, at, map, |n| is_secret(names, n)))
        .transpose()?;
    let mut unmasked = BTreeMap::new();
    for (name, value) in headers {
        let value = if is_secret(secret, name) && value == MASK {
            stored
                .as_ref()
                .and_then(|old| old.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    FieldError::new(
                        format!("custom_headers.{name}"),
                        "is masked but no value is stored for it: send the real value",
                    )
                })?
        } else {
            value.clone()
        };
        unmasked.insert(name.clone(), value);
    }
    Ok(seal_headers(keyring, at, &unmasked, |n| {
        is_secret(secret, n)
    }))
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
            old.and_then(|old| {
                old.headers()
                    .iter()
                    .find(|(old_name, _)| old_name.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            })
            .ok_or_else(|| {
                FieldError::new(
                    format!("header_auth.headers.{name}"),
                    "is masked but no value is stored for it: send the real value",
                )
            })?
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
