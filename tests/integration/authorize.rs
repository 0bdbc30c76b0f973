//! The authorization endpoint and the authorization code grant with PKCE, as a browser and a
//! public client (Authlib's or oauthlib's session with a loopback redirect) use them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use sha2::{Digest, Sha256};
use sponsor_console::protocol::oauth::TokenResponse;
use sponsor_console::settings::ClientSettings;

use crate::common::{PASSWORD, TestServer, hidden, settings};
use crate::openid::verify_id_token;

pub const SCRIPT: &str = "reporting-script";
pub const REDIRECT: &str = "http://127.0.0.1:8765/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

pub async fn with_script_client() -> TestServer {
    let mut s = settings();
    s.clients.push(ClientSettings {
        client_id: SCRIPT.into(),
        name: "Reporting <script>".into(),
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
    });
    TestServer::start_with(s).await
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An authorization request's query, with `change` applied (`None` drops the parameter).
fn query(change: &[(&str, Option<&str>)]) -> String {
    let c = challenge(VERIFIER);
    let mut params: Vec<(&str, String)> = vec![
        ("response_type", "code".into()),
        ("client_id", SCRIPT.into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid profile governance".into()),
        ("state", "st4te".into()),
        ("nonce", "n-0S6_WzA2Mj".into()),
        ("code_challenge", c),
        ("code_challenge_method", "S256".into()),
    ];
    for (k, v) in change {
        params.retain(|(name, _)| name != k);
        if let Some(v) = v {
            params.push((k, (*v).to_owned()));
        }
    }
    serde_urlencoded::to_string(&params).unwrap()
}

pub fn location(response: &reqwest::Response) -> url::Url {
    let at = response
        .headers()
        .get(LOCATION)
        .expect("a Location")
        .to_str()
        .unwrap();
    url::Url::parse(at).unwrap()
}

pub fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The browser's steps: open the page, sign in as `username` with `password` choosing
/// `decision`; the last response.
async fn browse(
    t: &TestServer,
    q: &str,
    username: &str,
    password: &str,
    decision: &str,
) -> reqwest::Response {
    let url = t.client.url(&format!("/oauth2/authorize?{q}"));
    browse_url(t, &url, username, password, decision).await
}

/// [`browse`] from a whole authorization URL, as a client library builds one.
pub async fn browse_url(
    t: &TestServer,
    url: &str,
    username: &str,
    password: &str,
    decision: &str,
) -> reqwest::Response {
    let http = t.client.http();
    let page = http.get(url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:8765"),
        "{csp}"
    );
    let cookie = page.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let body = page.text().await.unwrap();
    assert!(
        body.contains("Reporting &lt;script&gt;"),
        "the client's name is escaped"
    );
    let mut form: Vec<(String, String)> = [
        "csrf",
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .filter_map(|k| hidden(&body, k).map(|v| ((*k).to_owned(), v.replace("&amp;", "&"))))
    .collect();
    form.push(("username".into(), username.into()));
    form.push(("password".into(), password.into()));
    form.push(("decision".into(), decision.into()));
    http.post(t.client.url("/oauth2/authorize"))
        .header(COOKIE, cookie)
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn exchange(t: &TestServer, form: &[(&str, &str)]) -> reqwest::Response {
    t.client
        .http()
        .post(t.client.token_endpoint())
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn code_for(t: &TestServer) -> String {
    let answer = browse(t, &query(&[]), "alice", PASSWORD, "allow").await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let back = location(&answer);
    assert_eq!(param(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(param(&back, "iss"), Some(t.server.base_url()), "RFC 9207");
    param(&back, "code").expect("a code")
}

fn grant<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", SCRIPT),
        ("code_verifier", verifier),
    ]
}

#[tokio::test]
async fn a_browser_sign_in_gives_a_code_that_pkce_exchanges_once_for_tokens() {
    let t = with_script_client().await;
    let code = code_for(&t).await;
    let answer = exchange(&t, &grant(&code, VERIFIER)).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let tokens: TokenResponse = answer.json().await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.scope.as_deref(), Some("openid profile governance"));
    let jwks = t.client.jwks().await.unwrap();
    let claims = verify_id_token(
        tokens.id_token.as_deref().expect("an ID token"),
        &jwks,
        &t.server.base_url(),
        SCRIPT,
    );
    assert_eq!(claims.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
    assert_eq!(claims.preferred_username, "alice");
    assert_eq!(claims.auth_time, t.clock_now().timestamp());
    let me = t.client.with_token(&tokens.access_token);
    assert!(me.me().await.is_ok());

    // The same code again: refused, and the tokens it gave are revoked (RFC 6749 §4.1.2).
    let again = exchange(&t, &grant(&code, VERIFIER)).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        me.me().await.is_err(),
        "the first exchange's token is revoked"
    );
}

#[tokio::test]
async fn an_exchange_needs_the_verifier_the_redirect_uri_the_client_and_a_fresh_code() {
    let t = with_script_client().await;
    let other_verifier = "x".repeat(43);
    type Change<'a> = Vec<(&'a str, Option<&'a str>)>;
    let cases: Vec<(Change, &str, &str)> = vec![
        (
            vec![("code_verifier", Some(other_verifier.as_str()))],
            "invalid_grant",
            "wrong verifier",
        ),
        (
            vec![("code_verifier", None)],
            "invalid_request",
            "no verifier",
        ),
        (
            vec![("redirect_uri", Some("http://127.0.0.1:9999/callback"))],
            "invalid_grant",
            "other redirect",
        ),
        (
            vec![("client_id", Some("sponsor-console"))],
            "invalid_grant",
            "another client",
        ),
        (
            vec![("client_id", Some("nobody"))],
            "invalid_client",
            "unknown client",
        ),
    ];
    for (change, error, why) in cases {
        let code = code_for(&t).await;
        let mut form = grant(&code, VERIFIER);
        for (k, v) in &change {
            form.retain(|(name, _)| name != k);
            if let Some(v) = v {
                form.push((k, v));
            }
        }
        let answer = exchange(&t, &form).await;
        assert!(answer.status().is_client_error(), "{why}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], error, "{why}: {body}");
    }
    // A code unused for longer than a minute has expired.
    let code = code_for(&t).await;
    t.advance(61);
    let late = exchange(&t, &grant(&code, VERIFIER)).await;
    let body: serde_json::Value = late.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn bad_requests_are_shown_or_sent_back_as_the_rfc_says() {
    let t = with_script_client().await;
    let http = t.client.http();
    let get = |q: String| {
        let url = t.client.url(&format!("/oauth2/authorize?{q}"));
        async move { http.get(url).send().await.unwrap() }
    };
    // Not yet known to be the client's: shown, never redirected.
    for change in [
        vec![("client_id", Some("nobody"))],
        vec![("client_id", Some("sponsor-console"))],
        vec![("redirect_uri", Some("https://evil.example/cb"))],
        vec![("redirect_uri", None)],
    ] {
        let answer = get(query(&change)).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{change:?}");
        assert!(answer.headers().get(LOCATION).is_none(), "{change:?}");
    }
    let twice = get(format!("{}&state=again", query(&[]))).await;
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    assert!(twice.headers().get(LOCATION).is_none());
    // Known good redirect URI: the error goes back with the state.
    for (change, error) in [
        (
            vec![("response_type", Some("token"))],
            "unsupported_response_type",
        ),
        (vec![("code_challenge", None)], "invalid_request"),
        (
            vec![("code_challenge_method", Some("plain"))],
            "invalid_request",
        ),
        (
            vec![("scope", Some("openid admin:everything"))],
            "invalid_scope",
        ),
        (vec![("prompt", Some("none"))], "login_required"),
    ] {
        let answer = get(query(&change)).await;
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{change:?}");
        let back = location(&answer);
        assert_eq!(back.path(), "/callback");
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{change:?}");
        assert_eq!(param(&back, "state").as_deref(), Some("st4te"));
    }
}

#[tokio::test]
async fn the_person_may_cancel_and_a_wrong_password_or_forged_form_gives_no_code() {
    let t = with_script_client().await;
    let cancelled = browse(&t, &query(&[]), "alice", "", "deny").await;
    assert_eq!(cancelled.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        param(&location(&cancelled), "error").as_deref(),
        Some("access_denied")
    );

    let wrong = browse(&t, &query(&[]), "alice", "not the password", "allow").await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(wrong.headers().get(LOCATION).is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Wrong username or password")
    );

    // A form posted without the page's cookie (another site's form) is refused.
    let forged = t
        .client
        .http()
        .post(t.client.url("/oauth2/authorize"))
        .form(&[
            ("csrf", "guess"),
            ("client_id", SCRIPT),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.headers().get(LOCATION).is_none());
}
