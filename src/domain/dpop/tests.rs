use ed25519_dalek::SigningKey;
use serde_json::json;

use super::*;
use crate::protocol::jws;

const NOW: i64 = 1_800_000_000;
const WINDOW: ProofWindow = ProofWindow {
    max_age_seconds: 60,
    ahead_seconds: 5,
};
const URL: &str = "https://gov.example/v1/me";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn x(key: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes())
}

fn header(key: &SigningKey) -> serde_json::Value {
    json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x(key)}})
}

fn claims() -> serde_json::Value {
    json!({"jti": "p-1", "htm": "GET", "htu": URL, "iat": NOW, "ath": access_token_hash("tok")})
}

fn signed(by: &SigningKey, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    jws::sign_eddsa_with_header(by, header, claims).unwrap_or_default()
}

fn expected(token: Option<&'static str>) -> Expected<'static> {
    Expected {
        method: "GET",
        url: URL,
        access_token: token,
    }
}

fn check(proof: &str) -> Result<VerifiedProof, ProofError> {
    verify(proof, &expected(Some("tok")), WINDOW, NOW)
}

/// RFC 8037 Appendix A.3: the thumbprint of its Ed25519 example key.
#[test]
fn the_thumbprint_is_rfc_8037s() {
    assert_eq!(
        key_thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").ok(),
        Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".to_owned())
    );
}

#[test]
fn a_good_proof_names_its_key_by_thumbprint() {
    let k = key(1);
    let proof = check(&signed(&k, &header(&k), &claims()));
    assert_eq!(
        proof,
        Ok(VerifiedProof {
            jkt: key_thumbprint(&x(&k)).unwrap_or_default(),
            jti: "p-1".into(),
            iat: NOW,
        })
    );
    // Without an access token, `ath` is not looked at.
    assert!(
        verify(
            &signed(&k, &header(&k), &claims()),
            &expected(None),
            WINDOW,
            NOW
        )
        .is_ok()
    );
}

#[test]
fn each_bad_header_is_refused() {
    let k = key(1);
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut h = header(&k);
        change(&mut h);
        check(&signed(&k, &h, &claims()))
    };
    assert_eq!(with(&|h| h["typ"] = json!("JWT")), Err(ProofError::Typ));
    assert_eq!(with(&|h| h["typ"] = json!(null)), Err(ProofError::Typ));
    assert_eq!(
        with(&|h| h["alg"] = json!("ES256")),
        Err(ProofError::Algorithm)
    );
    assert_eq!(
        with(&|h| h["alg"] = json!("none")),
        Err(ProofError::Algorithm)
    );
    assert_eq!(with(&|h| h["jwk"] = json!(null)), Err(ProofError::Jwk));
    assert_eq!(
        with(&|h| h["jwk"]["kty"] = json!("EC")),
        Err(ProofError::Jwk)
    );
    assert_eq!(
        with(&|h| h["jwk"]["crv"] = json!("X25519")),
        Err(ProofError::Jwk)
    );
    assert_eq!(
        with(&|h| h["jwk"]["x"] = json!("AAAA")),
        Err(ProofError::Jwk)
    );
    let private = URL_SAFE_NO_PAD.encode(k.to_bytes());
    assert_eq!(
        with(&|h| h["jwk"]["d"] = json!(private)),
        Err(ProofError::PrivateKey)
    );
}

#[test]
fn a_proof_signed_by_another_key_than_its_jwk_is_refused() {
    let (k, other) = (key(1), key(2));
    assert_eq!(
        check(&signed(&other, &header(&k), &claims())),
        Err(ProofError::Signature)
    );
    // A changed payload under the original signature.
    let good = signed(&k, &header(&k), &claims());
    let mut tampered = claims();
    tampered["htm"] = json!("POST");
    let forged = signed(&k, &header(&k), &tampered);
    let (head, _) = good.rsplit_once('.').unwrap_or_default();
    let (_, forged_sig) = forged.rsplit_once('.').unwrap_or_default();
    assert_eq!(
        check(&format!("{head}.{forged_sig}")),
        Err(ProofError::Signature)
    );
}

#[test]
fn malformed_proofs_are_refused() {
    let k = key(1);
    let good = signed(&k, &header(&k), &claims());
    let (head, rest) = good.split_once('.').unwrap_or_default();
    for bad in [
        String::new(),
        head.to_owned(),
        format!("{head}.{rest}.extra"),
        format!("{head}.!!!.{rest}"),
        format!("e30.{rest}"),
    ] {
        assert!(check(&bad).is_err(), "{bad:?}");
    }
    assert_eq!(check("a.b"), Err(ProofError::Malformed));
    assert_eq!(check(&format!("{good}.x")), Err(ProofError::Malformed));
}

#[test]
fn each_bad_claim_is_refused() {
    let k = key(1);
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims();
        change(&mut c);
        check(&signed(&k, &header(&k), &c))
    };
    assert_eq!(with(&|c| c["jti"] = json!("")), Err(ProofError::Jti));
    assert_eq!(
        with(&|c| c["jti"] = json!("j".repeat(129))),
        Err(ProofError::Jti)
    );
    assert!(with(&|c| c["jti"] = json!("j".repeat(128))).is_ok());
    assert_eq!(with(&|c| c["iat"] = json!("now")), Err(ProofError::Claims));
    assert_eq!(
        with(&|c| {
            c.as_object_mut().map(|o| o.remove("htu"));
        }),
        Err(ProofError::Claims)
    );
    assert_eq!(with(&|c| c["htm"] = json!("POST")), Err(ProofError::Method));
    assert_eq!(with(&|c| c["htm"] = json!("get")), Err(ProofError::Method));
    assert_eq!(
        with(&|c| c["htu"] = json!("https://gov.example/v1/grants")),
        Err(ProofError::Url)
    );
    assert_eq!(
        with(&|c| c["htu"] = json!("https://evil.example/v1/me")),
        Err(ProofError::Url)
    );
    assert_eq!(
        with(&|c| c["htu"] = json!("http://gov.example/v1/me")),
        Err(ProofError::Url)
    );
    assert_eq!(
        with(&|c| c["htu"] = json!("https://gov.example:8443/v1/me")),
        Err(ProofError::Url)
    );
    assert_eq!(with(&|c| c["htu"] = json!("/v1/me")), Err(ProofError::Url));
    assert_eq!(
        with(&|c| c["iat"] = json!(NOW - 61)),
        Err(ProofError::TooOld)
    );
    assert!(with(&|c| c["iat"] = json!(NOW - 60)).is_ok());
    assert_eq!(with(&|c| c["iat"] = json!(NOW + 6)), Err(ProofError::Ahead));
    assert!(with(&|c| c["iat"] = json!(NOW + 5)).is_ok());
    assert_eq!(
        with(&|c| c["ath"] = json!(access_token_hash("another"))),
        Err(ProofError::AccessTokenHash)
    );
    assert_eq!(
        with(&|c| {
            c.as_object_mut().map(|o| o.remove("ath"));
        }),
        Err(ProofError::AccessTokenHash)
    );
}

/// RFC 9449 §4.3 step 9 with RFC 3986's normalisation: case of scheme and host, the default
/// port, and query and fragment do not matter.
#[test]
fn htu_is_compared_after_normalising() {
    let k = key(1);
    for htu in [
        "HTTPS://Gov.Example/v1/me",
        "https://gov.example:443/v1/me",
        "https://gov.example/v1/me?x=1",
        "https://gov.example/v1/me#f",
    ] {
        let mut c = claims();
        c["htu"] = json!(htu);
        assert!(check(&signed(&k, &header(&k), &c)).is_ok(), "{htu}");
    }
    assert_eq!(
        normalised_url("http://127.0.0.1:80"),
        Some("http://127.0.0.1/".to_owned())
    );
    assert_eq!(normalised_url("ftp://gov.example/"), None);
}
