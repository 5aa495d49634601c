//! Name rules of SPEC §1. Names appear in proxy URLs, so they are checked byte by byte.

use crate::validation::FieldError;

/// Provider account: `^[a-z0-9-]{3,32}$`.
pub fn validate_account_name(name: &str) -> Result<(), FieldError> {
    let ok_len = (3..=32).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(FieldError::new(
            "name",
            "must be 3 to 32 characters of lowercase letters, digits and hyphens",
        ))
    }
}

/// Integration: 2–62 letters, digits, `-`, `_`, `.`; must not start with a digit.
pub fn validate_integration_name(name: &str) -> Result<(), FieldError> {
    let ok_len = (2..=62).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ok_start = name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    // "." and ".." would be dot-segments in the proxy URL.
    let not_dots = name != "." && name != "..";
    if ok_len && ok_chars && ok_start && not_dots {
        Ok(())
    } else {
        Err(FieldError::new(
            "name",
            "must be 2 to 62 characters of letters, digits, '-', '_' or '.', not starting with a digit",
        ))
    }
}

/// Team and virtual account names: the account rule, a little longer.
pub fn validate_principal_name(name: &str) -> Result<(), FieldError> {
    let ok_len = (2..=64).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(FieldError::new(
            "name",
            "must be 2 to 64 characters of lowercase letters, digits, '-', '_' or '.'",
        ))
    }
}

/// A plain e-mail address check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn validate_email(email: &str) -> Result<(), FieldError> {
    let err = || FieldError::new("email", "must be an e-mail address such as ada@example.com");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err());
    }
    let (local, domain) = email.split_once('@').ok_or_else(err)?;
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.');
    if local.is_empty() || !domain_ok {
        return Err(err());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for ok in ["abc", "a-1", "0ab", &"a".repeat(32)] {
            assert!(validate_account_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "ABC",
            "a_b",
            "a b",
            "ab.c",
            "abé",
            &"a".repeat(33),
        ] {
            assert!(validate_account_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integration_names() {
        for ok in ["ab", "A.b_c-d", "e1", "._", &"x".repeat(62)] {
            assert!(validate_integration_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "1ab",
            "a b",
            "a/b",
            "a%2F",
            "..",
            "ü1",
            &"x".repeat(63),
        ] {
            assert!(validate_integration_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(validate_email("ada@example.com").is_ok());
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@com",
            "a b@c.d",
            "a@b@c.d",
            "a@.c",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn principal_names() {
        assert!(validate_principal_name("ml-team").is_ok());
        for bad in ["", "a", "Team", "a b", "a:b"] {
            assert!(validate_principal_name(bad).is_err(), "{bad}");
        }
    }
}
