//! Upstream credentials at rest (RELIABILITY S10): AES-256-GCM with a random 96-bit nonce per
//! value, additional data binding each value to its row and header (a ciphertext copied to
//! another row or header fails to open), and the key id stored beside it so keys can rotate.
//!
//! A sealed value reads `v1.<key id>.<hex of nonce ‖ ciphertext>`. The keyring is configured as
//! `id:64-hex-digits[,id:64-hex-digits…]`; the first key seals, every listed key opens.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead as _, Nonce, Payload};
use aes_gcm::{Aes256Gcm, KeyInit as _};

use crate::model::HeaderAuth;

const NONCE_LEN: usize = 12;

/// The tables whose rows sealed header auth values are bound to.
pub const ACCOUNTS: &str = "provider_accounts";
pub const INTEGRATIONS: &str = "integrations";
const VERSION: &str = "v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("sealed with key id {0:?}, which the keyring does not hold")]
    UnknownKey(String),
    #[error("not a sealed value")]
    Malformed,
    #[error("does not open: wrong key, tampered, or moved from another row")]
    Rejected,
}

/// The configured keys. `Debug` never shows key material.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    ciphers: BTreeMap<String, Aes256Gcm>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.ciphers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// Parses `id:hex[,id:hex…]`; the first key is the one that seals.
    pub fn parse(spec: &str) -> Result<Keyring, String> {
        let mut current = None;
        let mut ciphers = BTreeMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, hex_key) = entry
                .split_once(':')
                .ok_or("each key must be written id:64-hex-digits")?;
            let valid_id = !id.is_empty()
                && id.len() <= 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_id {
                return Err("key ids are 1 to 32 letters, digits, '-' or '_'".into());
            }
            let mut key = [0u8; 32];
            hex::decode_to_slice(hex_key, &mut key)
                .map_err(|_| format!("key {id}: must be 64 hex digits (32 bytes)"))?;
            if ciphers
                .insert(id.to_owned(), Aes256Gcm::new(&key.into()))
                .is_some()
            {
                return Err(format!("key id {id} is listed twice"));
            }
            current.get_or_insert_with(|| id.to_owned());
        }
        let current = current.ok_or("at least one key is required")?;
        Ok(Keyring { current, ciphers })
    }

    /// A fresh random key in the configuration format, for first-time set-ups.
    pub fn generate_spec(id: &str) -> String {
        format!("{id}:{}", hex::encode(rand::random::<[u8; 32]>()))
    }

    /// Seals `plaintext` under the current key, bound to `aad`.
    pub fn seal(&self, plaintext: &str, aad: &str) -> String {
        let cipher = &self.ciphers[&self.current];
        let nonce = Nonce::<Aes256Gcm>::from(rand::random::<[u8; NONCE_LEN]>());
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a header value cannot exceed the length limit");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{VERSION}.{}.{}", self.current, hex::encode(bytes))
    }

    /// Opens a value sealed by [`Keyring::seal`] with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<String, CryptoError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed);
        };
        let cipher = self
            .ciphers
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        let bytes = hex::decode(body).map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| CryptoError::Malformed)?;
        let plain = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Rejected)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Rejected)
    }

    /// Whether `sealed` was sealed with a key other than the current one.
    pub fn needs_rotation(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) != Some(self.current.as_str())
    }
}

/// Which stored header map a sealed value belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Field {
    HeaderAuth,
    /// Custom header values an operator marked secret.
    CustomHeaders,
}

/// What a sealed header value is bound to: its table, row, field and header name.
fn aad(table: &str, row: uuid::Uuid, field: Field, header: &str) -> String {
    let field = match field {
        Field::HeaderAuth => "header_auth",
        Field::CustomHeaders => "custom_headers",
    };
    format!("{table}/{row}/{field}/{}", header.to_ascii_lowercase())
}

/// `headers` with the values of the names `secret` accepts sealed for `field` of row `row`.
pub fn seal_headers(
    keyring: &Keyring,
    (table, row, field): (&str, uuid::Uuid, Field),
    headers: &BTreeMap<String, String>,
    secret: impl Fn(&str) -> bool,
) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = match secret(name) {
                true => keyring.seal(value, &aad(table, row, field, name)),
                false => value.clone(),
            };
            (name.clone(), value)
        })
        .collect()
}

/// The reverse of [`seal_headers`]; fails on the first sealed value that does not open.
pub fn open_headers(
    keyring: &Keyring,
    (table, row, field): (&str, uuid::Uuid, Field),
    headers: &BTreeMap<String, String>,
    secret: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>, CryptoError> {
    headers
        .iter()
        .map(|(name, value)| match secret(name) {
            true => Ok((
                name.clone(),
                keyring.open(value, &aad(table, row, field, name))?,
            )),
            false => Ok((name.clone(), value.clone())),
        })
        .collect()
}

/// Every value of `auth` sealed for row `row` of `table`.
pub fn seal_header_auth(
    keyring: &Keyring,
    table: &str,
    row: uuid::Uuid,
    auth: &HeaderAuth,
) -> HeaderAuth {
    let headers = seal_headers(
        keyring,
        (table, row, Field::HeaderAuth),
        auth.headers(),
        |_| true,
    );
    HeaderAuth::Header { headers }
}

/// Every value of a sealed `auth` opened; fails on the first value that does not open.
pub fn open_header_auth(
    keyring: &Keyring,
    table: &str,
    row: uuid::Uuid,
    auth: &HeaderAuth,
) -> Result<HeaderAuth, CryptoError> {
    let headers = open_headers(
        keyring,
        (table, row, Field::HeaderAuth),
        auth.headers(),
        |_| true,
    )?;
    Ok(HeaderAuth::Header { headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "k2:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    #[test]
    fn seals_and_opens_bound_to_the_aad() {
        let ring = Keyring::parse(K1).unwrap();
        let sealed = ring.seal("s3cret", "integrations/1/header_auth/x-key");
        assert!(sealed.starts_with("v1.k1.") && !sealed.contains("s3cret"));
        assert_ne!(
            sealed,
            ring.seal("s3cret", "integrations/1/header_auth/x-key"),
            "random nonce"
        );
        assert_eq!(
            ring.open(&sealed, "integrations/1/header_auth/x-key")
                .unwrap(),
            "s3cret"
        );
        assert_eq!(
            ring.open(&sealed, "integrations/2/header_auth/x-key"),
            Err(CryptoError::Rejected)
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('0') { '1' } else { '0' });
        assert_eq!(
            ring.open(&tampered, "integrations/1/header_auth/x-key"),
            Err(CryptoError::Rejected)
        );
        assert_eq!(ring.open("plain", "x"), Err(CryptoError::Malformed));
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = Keyring::parse(K1).unwrap();
        let sealed = old.seal("v", "a");
        let rotated = Keyring::parse(&format!("{K2},{K1}")).unwrap();
        assert_eq!(rotated.open(&sealed, "a").unwrap(), "v");
        assert!(rotated.needs_rotation(&sealed));
        assert!(rotated.seal("v", "a").starts_with("v1.k2."));
        let only_new = Keyring::parse(K2).unwrap();
        assert_eq!(
            only_new.open(&sealed, "a"),
            Err(CryptoError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn parse_refuses_bad_specs_and_hides_keys() {
        for bad in [
            "",
            "k1",
            "k1:zz",
            "k1:00",
            "bad id:00",
            &format!("{K1},{K1}"),
        ] {
            assert!(Keyring::parse(bad).is_err(), "{bad}");
        }
        let ring = Keyring::parse(&Keyring::generate_spec("gen")).unwrap();
        assert!(!format!("{ring:?}").contains("0001020304"));
    }
}
