//! `Idempotency-Key` on creating POSTs: a retry with the same key and the same body gets the
//! first answer again; the same key with another body is refused.

use super::Refusal;

/// Whether a request whose body hashes to `presented` may replay the answer stored for the
/// same key, whose body hashed to `stored`.
pub fn replay(stored: &str, presented: &str) -> Result<(), Refusal> {
    if stored == presented {
        Ok(())
    } else {
        Err(Refusal::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request body",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_body_replays_another_is_refused() {
        assert!(replay("abc", "abc").is_ok());
        assert_eq!(
            replay("abc", "abd").map_err(|e| e.code()),
            Err("idempotency_key_reused")
        );
    }
}
