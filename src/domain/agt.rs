//! Approval requests from Microsoft's Agent Governance Toolkit (AGT): the body its
//! `VersionedWebhookApproval` POSTs when a policy says `require_approval` (ADR-0030, webhook
//! schema 1.0), checked before anything is stored. The wire contract is in
//! `../shared/reference/agt-approval-webhook.md`; the tests use bodies the real client produced
//! (`tests/fixtures/agt/`).
//!
//! What is checked: a JSON object with exactly the schema's fields and types; schema `1.0`
//! and type `approval_request`; ids and digests in their formats; `expires_at` a time with an
//! offset, still ahead; the text fields free of control and invisible characters; and
//! `input_digest` equal to SHA-256 over the JCS (RFC 8785) of the eleven presented fields, as
//! the client computes it. `action_digest` covers the tool name and parameters, which the
//! request does not carry: it can only be echoed, never recomputed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::Invalid;
use super::text;

/// The schema this server speaks.
pub const SCHEMA_VERSION: &str = "1.0";
/// The one request type.
pub const REQUEST_TYPE: &str = "approval_request";
/// How digests are written: `sha256:` and 64 lowercase hex digits.
pub const DIGEST_PREFIX: &str = "sha256:";
/// The longest text field accepted (ids, versions, subject, resource), in characters.
pub const MAX_FIELD_CHARS: usize = 1024;

/// The fields the approver is shown, which `input_digest` covers, in the client's order.
const PRESENTED: [&str; 11] = [
    "approval_request_id",
    "policy_decision_id",
    "action_digest",
    "agent_id",
    "subject_id",
    "operation",
    "target_resource",
    "policy_version",
    "approval_chain_id",
    "approval_chain_version",
    "expires_at",
];
/// Fields that may be JSON null.
const NULLABLE: [&str; 2] = ["subject_id", "target_resource"];

/// An AGT approval request that passed every check: what is stored and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    /// `ar_` and 32 hex digits; the client's id, echoed in the answer.
    pub approval_request_id: String,
    pub policy_decision_id: String,
    /// `sha256:…` over the action binding (tool, parameters, target), echoed in the answer.
    pub action_digest: String,
    /// `sha256:…` over the presented fields, as checked.
    pub input_digest: String,
    /// Any string: a DID we may know, or `*` under `govern()`'s defaults.
    pub agent_id: String,
    pub subject_id: Option<String>,
    pub operation: String,
    pub target_resource: Option<String>,
    pub policy_version: String,
    pub approval_chain_id: String,
    pub approval_chain_version: String,
    /// As sent (the digest covers this exact text).
    pub expires_at_text: String,
    pub expires_at: DateTime<Utc>,
}

/// Reads and checks an approval request body at `now`. Every refusal says which field and
/// why, with a stable code: `invalid_body`, `unknown_field`, `missing_field`, `invalid_field`,
/// `unsupported_schema_version`, `invalid_type`, `expired`, `input_digest_mismatch`.
pub fn parse(body: &[u8], now: DateTime<Utc>) -> Result<ActionRequest, Invalid> {
    let object: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("invalid_body", format!("not a JSON object: {e}")))?;
    let known =
        |k: &str| ["schema_version", "type", "input_digest"].contains(&k) || PRESENTED.contains(&k);
    if let Some(unknown) = object.keys().find(|k| !known(k)) {
        return Err(Invalid::new(
            "unknown_field",
            format!(
                "{} is not a field of schema {SCHEMA_VERSION}",
                text::sanitize_preview(unknown)
            ),
        ));
    }
    let field = |name: &'static str| -> Result<Option<&str>, Invalid> {
        match object.get(name) {
            None => Err(Invalid::new("missing_field", format!("{name} is missing"))),
            Some(Value::String(s)) => {
                if s.chars().count() > MAX_FIELD_CHARS {
                    return Err(Invalid::new(
                        "invalid_field",
                        format!("{name} is longer than {MAX_FIELD_CHARS} characters"),
                    ));
                }
                text::short(name, s).map_err(|e| Invalid::new("invalid_field", e.message))?;
                Ok(Some(s))
            }
            Some(Value::Null) if NULLABLE.contains(&name) => Ok(None),
            Some(_) => Err(Invalid::new(
                "invalid_field",
                format!(
                    "{name} must be a string{}",
                    if NULLABLE.contains(&name) {
                        " or null"
                    } else {
                        ""
                    }
                ),
            )),
        }
    };
    let required = |name: &'static str| -> Result<String, Invalid> {
        Ok(field(name)?.unwrap_or_default().to_owned())
    };

    let schema = required("schema_version")?;
    if schema != SCHEMA_VERSION {
        return Err(Invalid::new(
            "unsupported_schema_version",
            format!(
                "schema_version {} is not supported; this server speaks {SCHEMA_VERSION}",
                text::sanitize_preview(&schema)
            ),
        ));
    }
    if required("type")? != REQUEST_TYPE {
        return Err(Invalid::new(
            "invalid_type",
            format!("type must be {REQUEST_TYPE}"),
        ));
    }
    let approval_request_id = required("approval_request_id")?;
    prefixed_hex("approval_request_id", &approval_request_id, "ar_", 32)?;
    let policy_decision_id = required("policy_decision_id")?;
    prefixed_hex("policy_decision_id", &policy_decision_id, "pd_", 32)?;
    let action_digest = required("action_digest")?;
    prefixed_hex("action_digest", &action_digest, DIGEST_PREFIX, 64)?;
    let input_digest = required("input_digest")?;
    prefixed_hex("input_digest", &input_digest, DIGEST_PREFIX, 64)?;
    let mut texts = Vec::new();
    for name in [
        "agent_id",
        "operation",
        "policy_version",
        "approval_chain_id",
        "approval_chain_version",
    ] {
        let value = required(name)?;
        if value.is_empty() {
            return Err(Invalid::new("invalid_field", format!("{name} is empty")));
        }
        texts.push(value);
    }
    let [
        agent_id,
        operation,
        policy_version,
        approval_chain_id,
        approval_chain_version,
    ]: [String; 5] = texts.try_into().unwrap_or_default();
    let subject_id = field("subject_id")?.map(str::to_owned);
    let target_resource = field("target_resource")?.map(str::to_owned);
    let expires_at_text = required("expires_at")?;
    let expires_at = DateTime::parse_from_rfc3339(&expires_at_text)
        .map_err(|_| {
            Invalid::new(
                "invalid_field",
                "expires_at must be a time with its UTC offset, e.g. 2026-11-25T02:53:25.512345+00:00",
            )
        })?
        .with_timezone(&Utc);
    if expires_at <= now {
        return Err(Invalid::new(
            "expired",
            format!("the request expired at {expires_at_text}"),
        ));
    }

    let expected = presented_digest(&object);
    if expected != input_digest {
        return Err(Invalid::new(
            "input_digest_mismatch",
            "input_digest does not match the presented fields (SHA-256 of their JCS)",
        ));
    }
    Ok(ActionRequest {
        approval_request_id,
        policy_decision_id,
        action_digest,
        input_digest,
        agent_id,
        subject_id,
        operation,
        target_resource,
        policy_version,
        approval_chain_id,
        approval_chain_version,
        expires_at_text,
        expires_at,
    })
}

/// `sha256:` and the hex SHA-256 of the JCS of the presented fields of `object` (strings and
/// nulls only, so JCS is sorted keys and JSON's minimal escaping).
fn presented_digest(object: &Map<String, Value>) -> String {
    let presented: BTreeMap<&str, &Value> = PRESENTED
        .iter()
        .map(|k| (*k, object.get(*k).unwrap_or(&Value::Null)))
        .collect();
    let canonical = serde_jcs::to_vec(&presented).unwrap_or_default();
    format!("{DIGEST_PREFIX}{}", hex::encode(Sha256::digest(canonical)))
}

/// `value` is `prefix` and exactly `digits` lowercase hex digits.
fn prefixed_hex(name: &str, value: &str, prefix: &str, digits: usize) -> Result<(), Invalid> {
    let ok = value.strip_prefix(prefix).is_some_and(|tail| {
        tail.len() == digits
            && tail
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    match ok {
        true => Ok(()),
        false => Err(Invalid::new(
            "invalid_field",
            format!("{name} must be {prefix} and {digits} lowercase hex digits"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const DID: &str = include_str!("../../tests/fixtures/agt/approval_request_did.json");
    const DEFAULTS: &str = include_str!("../../tests/fixtures/agt/approval_request_defaults.json");
    const NON_ASCII: &str =
        include_str!("../../tests/fixtures/agt/approval_request_non_ascii.json");

    fn before() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 2, 50, 0).unwrap()
    }

    /// A fixture with one field replaced (by JSON text) or, with `None`, removed.
    fn with(body: &str, name: &str, value: Option<&str>) -> Vec<u8> {
        let mut object: Map<String, Value> = serde_json::from_str(body).unwrap();
        match value {
            Some(v) => object.insert(name.into(), serde_json::from_str(v).unwrap()),
            None => object.remove(name),
        };
        serde_json::to_vec(&object).unwrap()
    }

    #[test]
    fn the_real_clients_bodies_pass_with_their_own_digests() {
        let did = parse(DID.as_bytes(), before()).unwrap();
        assert_eq!(
            did.approval_request_id,
            "ar_76cfa7e0e597484daeaf6eda5a8249f7"
        );
        assert_eq!(did.agent_id, "did:mesh:0123456789abcdef0123456789abcdef");
        assert_eq!(did.subject_id.as_deref(), Some("user:bob@contoso.example"));
        assert_eq!(
            did.expires_at,
            Utc.with_ymd_and_hms(2026, 11, 25, 2, 53, 25).unwrap()
                + chrono::Duration::microseconds(512_345)
        );
        assert_eq!(did.expires_at_text, "2026-11-25T02:53:25.512345+00:00");

        let defaults = parse(DEFAULTS.as_bytes(), before()).unwrap();
        assert_eq!(defaults.agent_id, "*");
        assert_eq!(defaults.subject_id, None);
        assert_eq!(defaults.target_resource, None);

        // ensure_ascii escapes, read back as the characters the digest was computed over.
        let non_ascii = parse(NON_ASCII.as_bytes(), before()).unwrap();
        assert_eq!(
            non_ascii.subject_id.as_deref(),
            Some("user:zoë@contoso.example")
        );
        assert_eq!(
            non_ascii.target_resource.as_deref(),
            Some("ledger://contoso/accounts/Ærø-7 – 東京")
        );
    }

    #[test]
    fn a_changed_presented_field_breaks_the_digest() {
        for (name, value) in [
            ("agent_id", r#""did:mesh:ffffffffffffffffffffffffffffffff""#),
            ("subject_id", r#""user:mallory@contoso.example""#),
            ("subject_id", "null"),
            ("target_resource", r#""ledger://contoso/accounts/OTHER""#),
            ("policy_version", r#""2026.11.24""#),
            ("expires_at", r#""2026-11-25T02:59:25.512345+00:00""#),
            (
                "action_digest",
                r#""sha256:0000000000000000000000000000000000000000000000000000000000000000""#,
            ),
        ] {
            let e = parse(&with(DID, name, Some(value)), before()).unwrap_err();
            assert_eq!(e.code, "input_digest_mismatch", "{name}: {}", e.message);
        }
    }

    #[test]
    fn each_malformed_body_is_refused_with_its_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"[]".to_vec(), "invalid_body"),
            (b"{\"schema_version\": \"1.0\"".to_vec(), "invalid_body"),
            (
                with(DID, "schema_version", Some(r#""2.0""#)),
                "unsupported_schema_version",
            ),
            (
                with(DID, "type", Some(r#""approval_response""#)),
                "invalid_type",
            ),
            (with(DID, "policy_decision_id", None), "missing_field"),
            (with(DID, "subject_id", None), "missing_field"),
            (
                with(DID, "tool_name", Some(r#""close_account""#)),
                "unknown_field",
            ),
            (with(DID, "agent_id", Some("42")), "invalid_field"),
            (with(DID, "operation", Some("null")), "invalid_field"),
            (
                with(DID, "approval_request_id", Some(r#""ar_123""#)),
                "invalid_field",
            ),
            (
                with(DID, "input_digest", Some(r#""sha256:ABC""#)),
                "invalid_field",
            ),
            (
                with(DID, "expires_at", Some(r#""tomorrow""#)),
                "invalid_field",
            ),
            (
                with(DID, "expires_at", Some(r#""2026-11-25T02:53:25""#)),
                "invalid_field",
            ),
            (
                with(DID, "subject_id", Some(r#""bob\u001b[31m""#)),
                "invalid_field",
            ),
            (
                with(DID, "target_resource", Some(r#""a\u2028b""#)),
                "invalid_field",
            ),
        ];
        for (body, code) in cases {
            let e = parse(&body, before()).unwrap_err();
            assert_eq!(
                e.code,
                code,
                "{}: {}",
                String::from_utf8_lossy(&body),
                e.message
            );
        }
    }

    #[test]
    fn an_expired_request_is_refused_even_with_a_good_digest() {
        let at_expiry = Utc.with_ymd_and_hms(2026, 11, 25, 2, 53, 25).unwrap()
            + chrono::Duration::microseconds(512_345);
        assert_eq!(
            parse(DID.as_bytes(), at_expiry).unwrap_err().code,
            "expired"
        );
        let just_before = at_expiry - chrono::Duration::microseconds(1);
        assert!(parse(DID.as_bytes(), just_before).is_ok());
    }
}
