//! The audit chain: each event's `hash` is the SHA-256 of the RFC 8785 (JCS) canonical JSON of
//! the event without `hash`; `prev_hash` links it to the event before; the first `prev_hash`
//! is 64 zeros. Verification walks the chain and names the first bad `seq`.

use sha2::{Digest, Sha256};

use crate::protocol::audit::{AuditEvent, ChainFault, UnhashedEvent};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hash of an event's content (everything but `hash`).
pub fn hash_event(event: &UnhashedEvent) -> Result<String, serde_json::Error> {
    let canonical = serde_jcs::to_vec(event)?;
    Ok(hex::encode(Sha256::digest(&canonical)))
}

/// Seals an event: computes its hash.
pub fn seal(event: UnhashedEvent) -> Result<AuditEvent, serde_json::Error> {
    let hash = hash_event(&event)?;
    Ok(AuditEvent { event, hash })
}

/// Walks a chain in `seq` order, one event at a time, so arbitrarily long chains verify in
/// constant memory.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }
}

impl ChainVerifier {
    /// Checks the next event. The first error names the event where the chain breaks.
    pub fn push(&mut self, event: &AuditEvent) -> Result<(), ChainFault> {
        let seq = event.event.seq;
        let fault = |reason: &str| ChainFault {
            seq,
            reason: reason.to_owned(),
        };
        if seq != self.expected_seq {
            // A gap or a reordering: the first row that is not where it should be.
            return Err(ChainFault {
                seq: self.expected_seq.min(seq),
                reason: format!("expected seq {} but found {seq}", self.expected_seq),
            });
        }
        if event.event.prev_hash != self.prev_hash {
            return Err(fault(
                "prev_hash does not match the hash of the event before",
            ));
        }
        match hash_event(&event.event) {
            Ok(h) if h == event.hash => {}
            Ok(_) => return Err(fault("hash does not match the event's content")),
            Err(_) => return Err(fault("event content cannot be canonicalized")),
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&event.hash);
        Ok(())
    }

    /// How many events verified so far.
    pub fn count(&self) -> i64 {
        self.expected_seq - 1
    }

    /// The hash of the last verified event (the head of the chain).
    pub fn head(&self) -> &str {
        &self.prev_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::audit::Actor;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        let mut out = Vec::new();
        for seq in 1..=n {
            let ev = seal(UnhashedEvent {
                seq,
                at: Utc
                    .timestamp_millis_opt(1_700_000_000_000 + seq)
                    .single()
                    .unwrap_or_default(),
                actor: Actor::system(),
                action: "test.event".into(),
                subject: format!("s{seq}"),
                details: json!({"n": seq, "text": "é\u{1F600}"}),
                prev_hash: prev.clone(),
            })
            .expect("an event seals");
            prev.clone_from(&ev.hash);
            out.push(ev);
        }
        out
    }

    fn verify(events: &[AuditEvent]) -> Result<i64, i64> {
        let mut v = ChainVerifier::default();
        for e in events {
            v.push(e).map_err(|f| f.seq)?;
        }
        Ok(v.count())
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn tampering_names_the_row() {
        let mut c = chain(5);
        c[2].event.subject = "changed".into();
        assert_eq!(verify(&c), Err(3));

        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c), Err(2));

        let mut c = chain(5);
        c.swap(1, 2);
        assert_eq!(verify(&c), Err(2));
    }

    #[test]
    fn hash_is_over_canonical_json() {
        let c = chain(1);
        let text = serde_jcs::to_string(&c[0].event).unwrap_or_default();
        // Keys sorted, no whitespace: the RFC 8785 form.
        assert!(text.starts_with("{\"action\":\"test.event\",\"actor\":{"));
        assert_eq!(hex::encode(Sha256::digest(text.as_bytes())), c[0].hash);
    }
}
