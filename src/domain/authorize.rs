//! The authorization endpoint's rules (RFC 6749 §4.1, PKCE RFC 7636, native apps RFC 8252,
//! OpenID Connect Core §3.1.2): which redirect URIs a client may register and use, what an
//! authorization request must carry, and the S256 check of a code verifier. No I/O.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::{Host, Url};

/// Whether `uri` may be registered as a redirect URI: absolute, no fragment, no user info,
/// and either `https` or `http` to a loopback IP literal (RFC 8252 §7.3; `localhost` is not
/// accepted, §8.3).
pub fn registrable(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|e| format!("{uri:?} is not an absolute URL: {e}"))?;
    if url.fragment().is_some() {
        return Err(format!("{uri:?} has a fragment (RFC 6749 §3.1.2)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{uri:?} carries user information"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        _ => Err(format!(
            "{uri:?} must be https, or http to 127.0.0.1 or [::1] (RFC 8252 §7.3)"
        )),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// Whether a presented redirect URI matches a registered one: exactly, except that a loopback
/// `http` URI may use any port (RFC 8252 §7.3: a native app opens whichever port is free).
pub fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(reg), Ok(mut got)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    if reg.scheme() != "http" || !is_loopback(&reg) || got.fragment().is_some() {
        return false;
    }
    if got.set_port(reg.port()).is_err() {
        return false;
    }
    // Compared as written, after only the port was set aside.
    got.as_str() == reg.as_str() && presented.len() <= 2048
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`. The same rule bounds a
/// `code_challenge` (an S256 challenge is always 43).
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.6: BASE64URL(SHA-256(verifier)) equals the challenge, compared in constant time.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    if !valid_verifier(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// An authorization request's refusal: before the redirect URI is known to be the client's,
/// the browser is shown the error and sent nowhere (RFC 6749 §4.1.2.1); after, the error goes
/// back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Unknown client, or a missing or unregistered redirect URI.
    Shown(String),
    /// `error` and `error_description` for the redirect URI.
    Redirected {
        error: &'static str,
        description: String,
    },
}

fn redirected(error: &'static str, description: impl Into<String>) -> AuthorizeError {
    AuthorizeError::Redirected {
        error,
        description: description.into(),
    }
}

/// A checked authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// The scope as asked (checked against the offered scopes by the caller).
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: String,
    pub nonce: Option<String>,
}

/// Longest `state` and `nonce` kept.
const MAX_ECHOED: usize = 512;

/// Checks an authorization request's parameters (each present at most once, which the caller
/// has made sure of). `redirect_uris` answers the client's registered URIs, `None` for an
/// unknown client. The redirect URI is checked first: until it is, nothing is redirected.
pub fn check<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    redirect_uris: impl Fn(&str) -> Option<&'a [String]>,
) -> Result<AuthorizeRequest, (Option<RedirectTo>, AuthorizeError)> {
    let shown = |m: &str| (None, AuthorizeError::Shown(m.to_owned()));
    let client_id = get("client_id").ok_or_else(|| shown("The request names no client_id."))?;
    let registered = redirect_uris(client_id)
        .filter(|uris| !uris.is_empty())
        .ok_or_else(|| shown("This client is not registered for browser sign-in."))?;
    let redirect_uri = get("redirect_uri")
        .ok_or_else(|| shown("The request names no redirect_uri; OpenID Connect requires one."))?;
    if !registered.iter().any(|r| redirect_matches(r, redirect_uri)) {
        return Err(shown(
            "The redirect_uri is not one registered for this client.",
        ));
    }
    let state = get("state").map(str::to_owned);
    let to = RedirectTo {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
    };
    let fail = |e| (Some(to.clone()), e);
    if state.as_ref().is_some_and(|s| s.len() > MAX_ECHOED) {
        return Err(fail(redirected("invalid_request", "state is too long")));
    }
    if get("request").is_some() {
        return Err(fail(redirected(
            "request_not_supported",
            "request objects are not supported",
        )));
    }
    if get("request_uri").is_some() {
        return Err(fail(redirected(
            "request_uri_not_supported",
            "request_uri is not supported",
        )));
    }
    match get("response_type") {
        Some("code") => {}
        None => return Err(fail(redirected("invalid_request", "missing response_type"))),
        Some(other) => {
            return Err(fail(redirected(
                "unsupported_response_type",
                format!("response_type {other:?} is not supported; use code"),
            )));
        }
    }
    if get("response_mode").is_some_and(|m| m != "query") {
        return Err(fail(redirected(
            "invalid_request",
            "only response_mode=query is supported",
        )));
    }
    if get("prompt").is_some_and(|p| p.split(' ').any(|p| p == "none")) {
        // No browser session is kept: a person signs in every time.
        return Err(fail(redirected(
            "login_required",
            "this server keeps no browser session; sign in without prompt=none",
        )));
    }
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (Some(c), Some("S256")) if c.len() == 43 && valid_verifier(c) => c.to_owned(),
        (Some(_), Some("S256")) => {
            return Err(fail(redirected(
                "invalid_request",
                "code_challenge must be BASE64URL(SHA-256(code_verifier)), 43 characters",
            )));
        }
        (None, _) => {
            return Err(fail(redirected(
                "invalid_request",
                "PKCE is required: send code_challenge and code_challenge_method=S256",
            )));
        }
        (Some(_), _) => {
            return Err(fail(redirected(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)",
            )));
        }
    };
    let nonce = get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_ECHOED) {
        return Err(fail(redirected("invalid_request", "nonce is too long")));
    }
    Ok(AuthorizeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scope: get("scope").map(str::to_owned),
        state,
        code_challenge,
        nonce,
    })
}

/// Where an answer goes: the request's redirect URI and its `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTo {
    pub redirect_uri: String,
    pub state: Option<String>,
}

impl RedirectTo {
    /// The redirect URI with `params`, `state` and `iss` (RFC 9207) added to its query.
    pub fn with(&self, params: &[(&str, &str)], issuer: &str) -> String {
        let Ok(mut url) = Url::parse(&self.redirect_uri) else {
            return self.redirect_uri.clone();
        };
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in params {
                query.append_pair(k, v);
            }
            if let Some(state) = &self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", issuer);
        }
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn registrable_redirect_uris() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1/callback",
            "http://[::1]:8080/cb",
        ] {
            assert_eq!(registrable(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://localhost/cb",
            "http://app.example.com/cb",
            "https://app.example.com/cb#x",
            "https://user:pw@app.example.com/cb",
            "/relative",
            "javascript:alert(1)",
        ] {
            assert!(registrable(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_redirects_may_use_any_port_and_nothing_else_varies() {
        let reg = "http://127.0.0.1/callback";
        assert!(redirect_matches(reg, "http://127.0.0.1:51234/callback"));
        assert!(redirect_matches(reg, reg));
        assert!(!redirect_matches(reg, "http://127.0.0.1:51234/callback/x"));
        assert!(!redirect_matches(reg, "http://127.0.0.2:51234/callback"));
        assert!(!redirect_matches(
            reg,
            "http://127.0.0.1:51234/callback?x=1"
        ));
        assert!(!redirect_matches(reg, "http://127.0.0.1:51234/callback#f"));
        let https = "https://app.example.com/cb";
        assert!(!redirect_matches(https, "https://app.example.com:444/cb"));
        assert!(!redirect_matches(https, "https://app.example.com/cb?a=b"));
    }

    #[test]
    fn s256_verifier_check() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches(challenge, challenge));
        assert!(!verifier_matches("short", challenge));
    }

    fn request(pairs: &[(&str, &str)]) -> Result<AuthorizeRequest, AuthorizeError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let uris = vec!["http://127.0.0.1/cb".to_owned()];
        check(
            |k| map.get(k).map(String::as_str),
            |c| (c == "app").then_some(uris.as_slice()),
        )
        .map_err(|(_, e)| e)
    }

    const GOOD: &[(&str, &str)] = &[
        ("client_id", "app"),
        ("redirect_uri", "http://127.0.0.1:9000/cb"),
        ("response_type", "code"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
        ("state", "xyz"),
    ];

    fn with(change: (&'static str, Option<&'static str>)) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = GOOD
            .iter()
            .copied()
            .filter(|(k, _)| *k != change.0)
            .collect();
        if let Some(value) = change.1 {
            v.push((change.0, value));
        }
        v
    }

    fn error_of(r: Result<AuthorizeRequest, AuthorizeError>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(AuthorizeError::Shown(_)) => "shown".into(),
            Err(AuthorizeError::Redirected { error, .. }) => error.into(),
        }
    }

    #[test]
    fn requests_are_checked_redirect_uri_first() {
        assert_eq!(error_of(request(GOOD)), "ok");
        let cases = [
            (("client_id", Some("other")), "shown"),
            (("client_id", None), "shown"),
            (("redirect_uri", None), "shown"),
            (
                ("redirect_uri", Some("http://127.0.0.1:9000/elsewhere")),
                "shown",
            ),
            (
                ("response_type", Some("token")),
                "unsupported_response_type",
            ),
            (("response_type", None), "invalid_request"),
            (("code_challenge_method", Some("plain")), "invalid_request"),
            (("code_challenge_method", None), "invalid_request"),
            (("code_challenge", None), "invalid_request"),
            (("code_challenge", Some("tooshort")), "invalid_request"),
            (("prompt", Some("none")), "login_required"),
            (("request", Some("eyJ…")), "request_not_supported"),
            (("response_mode", Some("fragment")), "invalid_request"),
        ];
        for (change, want) in cases {
            assert_eq!(error_of(request(&with(change))), want, "{change:?}");
        }
    }

    #[test]
    fn answers_carry_state_and_issuer() {
        let to = RedirectTo {
            redirect_uri: "http://127.0.0.1:9000/cb".into(),
            state: Some("a b&c".into()),
        };
        assert_eq!(
            to.with(&[("code", "k")], "https://gov.example"),
            "http://127.0.0.1:9000/cb?code=k&state=a+b%26c&iss=https%3A%2F%2Fgov.example"
        );
    }
}
