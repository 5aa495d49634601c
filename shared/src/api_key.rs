//! API key format (RELIABILITY S9): `gh_` followed by 48 lowercase hex digits (192 random bits).
//! Only the SHA-256 digest is stored. High-entropy secrets need no slow hash, so the data plane
//! checks a key with one SHA-256 and a table lookup; a malformed key is refused before either.

use rand::RngCore;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "gh_";
const SECRET_BYTES: usize = 24;
const KEY_LEN: usize = PREFIX.len() + SECRET_BYTES * 2;

/// The SHA-256 of a key's full text.
pub type KeyDigest = [u8; 32];

/// A freshly generated key: the secret to show once, and the digest to store.
pub struct NewKey {
    pub secret: String,
    pub digest: KeyDigest,
}

pub fn generate() -> NewKey {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{PREFIX}{}", hex::encode(bytes));
    let digest = digest(&secret);
    NewKey { secret, digest }
}

/// Whether `presented` has the key format, checked without touching any store.
pub fn is_well_formed(presented: &str) -> bool {
    presented.len() == KEY_LEN
        && presented.starts_with(PREFIX)
        && presented[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The digest of a well-formed key, `None` for anything else.
pub fn digest_of(presented: &str) -> Option<KeyDigest> {
    is_well_formed(presented).then(|| digest(presented))
}

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(is_well_formed(&a.secret));
        assert_ne!(a.secret, b.secret);
        assert_eq!(digest_of(&a.secret), Some(a.digest));
    }

    #[test]
    fn malformed_keys_have_no_digest() {
        let good = generate().secret;
        let upper = good.to_uppercase();
        let short = &good[..good.len() - 1];
        let long = format!("{good}0");
        let wrong_prefix = good.replacen("gh_", "gx_", 1);
        for bad in ["", "gh_", "Bearer", short, &long, &upper, &wrong_prefix] {
            assert_eq!(digest_of(bad), None, "{bad}");
        }
    }
}
