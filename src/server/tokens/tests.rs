use chrono::Duration;

use super::*;
use crate::protocol::oauth::SubjectKind;
use crate::server::store::{SqliteStore, TokenStore};

fn claims(now: DateTime<Utc>) -> AccessClaims {
    AccessClaims {
        iss: "https://governance.test".into(),
        sub: "s1".into(),
        aud: "governance-api".into(),
        exp: (now + Duration::hours(1)).timestamp(),
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: "j1".into(),
        scope: "governance".into(),
        client_id: "sponsor-console".into(),
        kind: SubjectKind::Sponsor,
        roles: vec!["sponsor".into()],
        preferred_username: Some("alice".into()),
        cnf: None,
    }
}

/// A database from before ID tokens holds one Ed25519 key: the next start adds an RSA key and
/// leaves the Ed25519 key signing.
#[tokio::test]
async fn a_database_without_an_rsa_key_gets_one_and_keeps_its_ed25519_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("k.db"))
        .await
        .expect("a fresh store opens");
    let now = Utc::now();
    let ed = generate_signing_key(now).expect("a key");
    store
        .rotate_signing_keys(std::slice::from_ref(&ed), now, Actor::system())
        .await
        .expect("stored");
    let ring = KeyRing::load(&store, now).await.expect("loads");
    assert_eq!(ring.current_kid().as_deref(), Some(ed.kid.as_str()));
    let jwks = ring.jwks();
    let kinds: Vec<(&str, &str)> = jwks
        .keys
        .iter()
        .map(|k| (k.kty.as_str(), k.alg.as_str()))
        .collect();
    assert_eq!(kinds, vec![("OKP", "EdDSA"), ("RSA", "RS256")]);
    assert_eq!(jwks.keys[0].kid, ed.kid);
    // A second start adds nothing.
    let again = KeyRing::load(&store, now).await.expect("loads");
    assert_eq!(again.jwks(), jwks);
}

#[tokio::test]
async fn a_verified_token_is_remembered_until_its_key_goes_and_its_times_still_count() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("k.db"))
        .await
        .expect("a fresh store opens");
    let now = Utc::now();
    let ring = KeyRing::load(&store, now).await.expect("keys");
    let token = ring.sign(&claims(now)).expect("signed");
    let (iss, aud) = ("https://governance.test", "governance-api");
    assert!(ring.verify_access(&token, iss, aud, now).is_ok());
    // Remembered: checked again, times included.
    assert!(ring.verify_access(&token, iss, aud, now).is_ok());
    assert_eq!(
        ring.verify_access(&token, iss, aud, now + Duration::hours(2)),
        Err(TokenError::Expired)
    );
    // Remembered for this issuer and audience only.
    assert_eq!(
        ring.verify_access(&token, iss, "another-api", now),
        Err(TokenError::Audience)
    );
    // The key is rotated out with nothing left to publish it: the token is refused at once,
    // though it has not expired.
    let next = generate_signing_key(now).expect("a key");
    store
        .rotate_signing_keys(&[next], now, Actor::system())
        .await
        .expect("rotated");
    ring.reload(&store, now + Duration::seconds(1))
        .await
        .expect("reloaded");
    assert_eq!(
        ring.verify_access(&token, iss, aud, now + Duration::seconds(1)),
        Err(TokenError::UnknownKey)
    );
}

mod signature_tests {
    use super::*;

    /// L, the order of Ed25519's base point, little-endian.
    const ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    /// The token with its signature's bytes changed by `change`.
    fn resigned(token: &str, change: impl Fn(&mut Vec<u8>)) -> String {
        let (message, signature) = token.rsplit_once('.').unwrap_or_default();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
        change(&mut bytes);
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Our check and `jsonwebtoken`'s own (ring's Ed25519) give the same verdict on every
    /// token, good or bad, and the expected one.
    #[test]
    fn the_signature_check_agrees_with_jsonwebtoken() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let other =
            URL_SAFE_NO_PAD.encode(SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes());
        // 32 bytes that are not a point of the curve.
        let off_curve = (0..=255u8)
            .map(|b| [b; 32])
            .find(|b| VerifyingKey::from_bytes(b).is_err())
            .map(|b| URL_SAFE_NO_PAD.encode(b))
            .unwrap_or_default();
        let claims = serde_json::json!({
            "iss": "did:mesh:a", "sub": "did:mesh:a", "aud": "https://gov/oauth2/token",
            "exp": 4_000_000_000_i64, "jti": "j1",
        });
        let good = jws::sign_eddsa(&key, None, None, &claims).unwrap_or_default();
        let (header, rest) = good.split_once('.').unwrap_or_default();
        let (_, signature) = rest.split_once('.').unwrap_or_default();
        let other_payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(
                &serde_json::json!({"iss": "did:mesh:a", "sub": "did:mesh:a",
                "aud": "https://gov/oauth2/token", "exp": 4_000_000_001_i64, "jti": "j1"}),
            )
            .unwrap_or_default(),
        );
        let hs256 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let cases: Vec<(&str, String, &str, bool)> = vec![
            ("valid", good.clone(), &x, true),
            ("another key", good.clone(), &other, false),
            ("a key off the curve", good.clone(), &off_curve, false),
            (
                "changed claims",
                format!("{header}.{other_payload}.{signature}"),
                &x,
                false,
            ),
            ("a bit flipped", resigned(&good, |s| s[5] ^= 1), &x, false),
            (
                "s not reduced (s + L)",
                resigned(&good, |s| {
                    let mut carry = 0u16;
                    for (b, l) in s[32..].iter_mut().zip(ORDER) {
                        let sum = u16::from(*b) + u16::from(l) + carry;
                        *b = (sum & 0xff) as u8;
                        carry = sum >> 8;
                    }
                }),
                &x,
                false,
            ),
            (
                "63 bytes",
                resigned(&good, |s| {
                    s.pop();
                }),
                &x,
                false,
            ),
            ("HS256", format!("{hs256}.{rest}"), &x, false),
            ("two parts", format!("{header}.{signature}"), &x, false),
        ];
        let (iss, aud) = ("did:mesh:a", "https://gov/oauth2/token");
        for (name, token, key, expected) in cases {
            let ours = parse_ed25519(key).ok().and_then(|k| {
                verify_eddsa::<serde_json::Value>(&token, k.as_ref(), Some(iss), &[aud]).ok()
            });
            let mut validation = Validation::new(Algorithm::EdDSA);
            validation.validate_exp = false;
            validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
            validation.set_issuer(&[iss]);
            validation.set_audience(&[aud]);
            let theirs = DecodingKey::from_ed_components(key)
                .ok()
                .and_then(|k| {
                    jsonwebtoken::decode::<serde_json::Value>(&token, &k, &validation).ok()
                })
                .map(|t| t.claims);
            assert_eq!(ours, theirs, "{name}: the two checks disagree");
            assert_eq!(ours.is_some(), expected, "{name}");
        }
    }
}
