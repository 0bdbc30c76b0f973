//! Sponsor passwords: argon2id PHC hashes, verified off the async runtime. Unknown usernames
//! are verified against a dummy hash so timing does not tell which accounts exist.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// The rule for a sponsor's password, as the prompt and the errors state it.
pub const PASSWORD_RULE: &str = "at least 12 characters, at most 1024 bytes";
const MIN_CHARS: usize = 12;
const MAX_BYTES: usize = 1024;

/// A password that breaks [`PASSWORD_RULE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRuleError {
    #[error("the password has {0} characters; a sponsor's password needs {PASSWORD_RULE}")]
    TooShort(usize),
    #[error("the password has {0} bytes; a sponsor's password needs {PASSWORD_RULE}")]
    TooLong(usize),
}

/// Whether `password` keeps [`PASSWORD_RULE`].
pub fn check_password_rule(password: &str) -> Result<(), PasswordRuleError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordRuleError::TooShort(chars));
    }
    if password.len() > MAX_BYTES {
        return Err(PasswordRuleError::TooLong(password.len()));
    }
    Ok(())
}

/// An argon2id PHC string for `password` (OWASP parameters: m=19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `hash` is a PHC string argon2 can verify against.
pub fn is_valid_hash(hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_password("not-a-real-password-only-for-constant-timing").unwrap_or_default()
});

/// Verifies `password` against `hash` (or the dummy hash when `hash` is `None`), on a blocking
/// thread. Always false for `None`.
pub async fn verify_password(hash: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let ok = PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        ok && known
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_stated_when_broken() {
        assert_eq!(check_password_rule("twelve chars"), Ok(()));
        let short = check_password_rule("short").expect_err("too short");
        assert_eq!(
            short.to_string(),
            "the password has 5 characters; a sponsor's password needs at least 12 characters, \
             at most 1024 bytes"
        );
        let long = "x".repeat(1025);
        assert_eq!(
            check_password_rule(&long),
            Err(PasswordRuleError::TooLong(1025))
        );
    }

    #[tokio::test]
    async fn hashes_and_verifies() {
        let hash = hash_password("correct horse").unwrap_or_default();
        assert!(is_valid_hash(&hash));
        assert!(verify_password(Some(hash.clone()), "correct horse".into()).await);
        assert!(!verify_password(Some(hash), "wrong".into()).await);
        assert!(!verify_password(None, "anything".into()).await);
        assert!(!is_valid_hash("plaintext"));
    }
}
