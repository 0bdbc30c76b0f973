//! The governance server trusting Microsoft Entra as an issuer, against the Entra emulator
//! over HTTPS with its own CA: a real token from the emulator's device flow (and one refresh
//! token for Graph and the API alike) acts on `/v1` as a sponsor created on first sight; roles
//! come from app roles and groups and follow newer tokens; forged and misdirected tokens
//! (HS256, `alg: none`, another RSA key, wrong `tid`, wrong `aud`, expired, unknown issuer,
//! unknown `kid`) get 401; keys are fetched again at most once a minute.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use entra_emulator::{Emulator, EmulatorClock, EmulatorConfig, demo};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sponsor_console::client::{ApiClient, ClientError};
use sponsor_console::protocol::requests::RequestStatus;

use crate::common::{TestServer, approve, elevation, settings};

struct Setup {
    t: TestServer,
    emu: Emulator,
    /// Trusts the emulator's CA.
    https: reqwest::Client,
    _ca: tempfile::TempDir,
}

async fn setup() -> Setup {
    let start = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 24, 9, 0, 0)
        .single()
        .unwrap();
    let emu = Emulator::start(EmulatorConfig::default().with_clock(EmulatorClock::manual(start)))
        .await
        .unwrap();
    let ca = tempfile::tempdir().unwrap();
    let ca_file = ca.path().join("emulator-ca.pem");
    std::fs::write(&ca_file, emu.ca_pem().unwrap()).unwrap();
    let s = crate::common::entra::trusting(settings(), &emu, &ca_file);
    let t = TestServer::start_with(s).await;
    assert_eq!(t.clock_now(), emu.clock().now(), "one time for both");
    let https = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(emu.ca_pem().unwrap().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    Setup {
        t,
        emu,
        https,
        _ca: ca,
    }
}

impl Setup {
    fn advance(&self, seconds: i64) {
        self.t.advance(seconds);
        self.emu.advance(Duration::seconds(seconds));
    }

    fn api_scope() -> String {
        format!(
            "api://{}/{}",
            demo::GOVERNANCE_APP_ID,
            demo::GOVERNANCE_SCOPE
        )
    }

    async fn form(&self, url: &str, params: &[(&str, &str)]) -> Value {
        let r = self.https.post(url).form(params).send().await.unwrap();
        r.json().await.unwrap()
    }

    /// The whole device flow at the emulator, the person approving as `user`.
    async fn device_sign_in(&self, user: &str, scope: &str) -> Value {
        let started = self
            .form(
                &self.emu.device_code_url(),
                &[("client_id", demo::CONSOLE_CLIENT_ID), ("scope", scope)],
            )
            .await;
        self.emu
            .approve_device_code(started["user_code"].as_str().unwrap(), user)
            .unwrap();
        let tokens = self
            .form(
                &self.emu.token_url(),
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", demo::CONSOLE_CLIENT_ID),
                    ("device_code", started["device_code"].as_str().unwrap()),
                ],
            )
            .await;
        assert!(tokens["access_token"].is_string(), "{tokens}");
        tokens
    }

    fn as_token(&self, token: &str) -> ApiClient {
        self.t.client.with_token(token.to_owned())
    }

    /// A token for `user` for the governance API, without a device flow.
    fn api_token(&self, user: &str) -> String {
        self.emu.access_token(user, &Self::api_scope()).unwrap()
    }

    /// Good claims for Adele, to change one at a time.
    fn claims(&self) -> Value {
        let now = self.emu.clock().now().timestamp();
        json!({
            "iss": self.emu.issuer(), "aud": demo::GOVERNANCE_APP_ID, "tid": demo::TENANT_ID,
            "oid": demo::ADELE, "sub": "pairwise", "scp": "governance", "roles": [demo::ROLE_SPONSOR],
            "preferred_username": "adele@contoso.example", "name": "Adele Vance",
            "iat": now, "nbf": now, "exp": now + 3600, "ver": "2.0",
        })
    }
}

fn status<T: std::fmt::Debug>(r: Result<T, ClientError>) -> StatusCode {
    match r {
        Ok(v) => panic!("unexpected success: {v:?}"),
        Err(e) => e.status().unwrap(),
    }
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[tokio::test]
async fn an_entra_sponsor_signs_in_at_entra_and_acts_like_a_local_one() {
    let s = setup().await;
    // One device sign-in for Graph; its refresh token mints the governance API's token.
    let graph = s
        .device_sign_in(
            demo::ADELE,
            "https://graph.microsoft.com/.default offline_access",
        )
        .await;
    let refreshed = s
        .form(
            &s.emu.token_url(),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", demo::CONSOLE_CLIENT_ID),
                ("refresh_token", graph["refresh_token"].as_str().unwrap()),
                ("scope", &Setup::api_scope()),
            ],
        )
        .await;
    let adele = s.as_token(refreshed["access_token"].as_str().unwrap());
    let me = adele.me().await.unwrap();
    let sponsor_id = format!("entra:{}:{}", demo::TENANT_ID, demo::ADELE);
    assert_eq!(me.sub, sponsor_id);
    assert_eq!(me.kind, "sponsor");
    assert_eq!(me.roles, vec!["sponsor"]);
    assert_eq!(me.username.as_deref(), Some("adele@contoso.example"));
    assert_eq!(me.display_name.as_deref(), Some("Adele Vance"));
    assert_eq!(me.scope, "governance");
    // The Graph token is for Graph, not for us.
    assert_eq!(
        status(
            s.as_token(graph["access_token"].as_str().unwrap())
                .me()
                .await
        ),
        StatusCode::UNAUTHORIZED
    );

    // A sponsor action end to end: her agent asks, she approves, the grant is hers to see.
    let (key, agent) = s.t.agent(&adele, "entra-bot", &["read:crm:*"]).await;
    assert_eq!(agent.sponsors[0].id, sponsor_id);
    let bot = s.t.as_agent(&key).await;
    let asked = bot
        .request_elevation(&elevation(&["write:crm:accounts"], 3600), None)
        .await
        .unwrap();
    let decided = adele
        .decide(&asked.id, &approve(Some(1800), None))
        .await
        .unwrap();
    assert_eq!(decided.status, RequestStatus::Approved);
    assert_eq!(adele.agents(false).await.unwrap().len(), 1);
    // Alice (local) does not sponsor it and cannot decide its requests.
    let alice = s.t.as_user("alice").await;
    assert!(alice.agents(false).await.unwrap().is_empty());

    // The sponsor record was made once, and the tables agree with the chain.
    let sponsors = s.t.server.state.store.list_sponsors().await.unwrap();
    let entra: Vec<_> = sponsors.iter().filter(|x| x.id == sponsor_id).collect();
    assert_eq!(entra.len(), 1);
    assert_eq!(entra[0].display_name, "Adele Vance");
    let sam = s.t.as_user("sam").await;
    assert!(sam.check_audit_state().await.unwrap().ok);
}

#[tokio::test]
async fn app_roles_and_groups_give_roles_that_follow_newer_tokens() {
    let s = setup().await;
    let alex = s.as_token(&s.api_token(demo::ALEX)).me().await.unwrap();
    assert_eq!(alex.roles, vec!["security-lead"]);
    let lee = s.as_token(&s.api_token(demo::LEE)).me().await.unwrap();
    assert_eq!(lee.roles, vec!["on-call"], "from the on-call group");
    let megan = status(s.as_token(&s.api_token(demo::MEGAN)).me().await);
    assert_eq!(
        megan,
        StatusCode::FORBIDDEN,
        "signed in at Entra, but no role here"
    );

    let first = s.api_token(demo::ADELE);
    assert_eq!(
        s.as_token(&first).me().await.unwrap().roles,
        vec!["sponsor"]
    );
    s.advance(1);
    s.emu
        .set_app_roles(demo::ADELE, &[demo::ROLE_SPONSOR, demo::ROLE_SECURITY_LEAD])
        .unwrap();
    let promoted = s.api_token(demo::ADELE);
    assert_eq!(
        s.as_token(&promoted).me().await.unwrap().roles,
        vec!["sponsor", "security-lead"]
    );
    // The older token still says sponsor only, and changes nothing back.
    assert_eq!(
        s.as_token(&first).me().await.unwrap().roles,
        vec!["sponsor"]
    );
    assert_eq!(
        s.as_token(&promoted).me().await.unwrap().roles,
        vec!["sponsor", "security-lead"]
    );
    assert!(
        s.as_token(&promoted).agents(true).await.is_ok(),
        "a security lead reads every agent"
    );
    assert_eq!(
        status(s.as_token(&first).agents(true).await),
        StatusCode::FORBIDDEN
    );
    // Taken away in Entra: the next token takes it away here, from older tokens too.
    s.advance(1);
    s.emu
        .set_app_roles(demo::ADELE, &[demo::ROLE_SPONSOR])
        .unwrap();
    let demoted = s.api_token(demo::ADELE);
    assert_eq!(
        s.as_token(&demoted).me().await.unwrap().roles,
        vec!["sponsor"]
    );
    // (`/v1/me` repeats the roles a token claims; what it may do is what the server holds.)
    assert_eq!(
        status(s.as_token(&promoted).agents(true).await),
        StatusCode::FORBIDDEN
    );

    // A token without the API's scope is known but may not act.
    let mut unscoped = s.claims();
    unscoped["scp"] = json!("User.Read");
    let e = s
        .as_token(&s.emu.sign_claims(&unscoped).unwrap())
        .me()
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(StatusCode::FORBIDDEN), Some("insufficient_scope"))
    );
}

#[tokio::test]
async fn forged_and_misdirected_tokens_are_refused() {
    let s = setup().await;
    let good = s.claims();
    assert!(
        s.as_token(&s.emu.sign_claims(&good).unwrap())
            .me()
            .await
            .is_ok()
    );
    let kid = s.emu.current_kid().unwrap();
    let other = Emulator::start(EmulatorConfig::default().plain_http())
        .await
        .unwrap();

    let mut forged: Vec<(&str, String)> = Vec::new();
    let hs = jsonwebtoken::Header {
        kid: Some(kid.clone()),
        ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
    };
    forged.push((
        "HS256",
        jsonwebtoken::encode(
            &hs,
            &good,
            &jsonwebtoken::EncodingKey::from_secret(b"guess"),
        )
        .unwrap(),
    ));
    forged.push((
        "alg none",
        unsigned(&json!({"alg": "none", "typ": "JWT", "kid": kid}), &good),
    ));
    forged.push((
        "another RSA key, our kid",
        other.sign_claims_as(&kid, &good).unwrap(),
    ));
    forged.push((
        "another RSA key, its kid",
        other.sign_claims(&good).unwrap(),
    ));
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        s.emu.sign_claims(&c).unwrap()
    };
    forged.push((
        "wrong tid",
        with("tid", json!("00000000-0000-0000-0000-000000000000")),
    ));
    forged.push(("no tid", {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("tid");
        s.emu.sign_claims(&c).unwrap()
    }));
    forged.push((
        "wrong aud",
        with("aud", json!("https://graph.microsoft.com")),
    ));
    forged.push((
        "expired",
        with("exp", json!(s.emu.clock().now().timestamp())),
    ));
    forged.push((
        "not yet valid",
        with("nbf", json!(s.emu.clock().now().timestamp() + 60)),
    ));
    forged.push((
        "unknown issuer",
        with("iss", json!("https://login.microsoftonline.com/other/v2.0")),
    ));
    let mut tampered = s.emu.sign_claims(&good).unwrap();
    let payload = URL_SAFE_NO_PAD.encode(with_roles(&good).to_string());
    tampered = replace_payload(&tampered, &payload);
    forged.push(("payload changed after signing", tampered));
    for (what, token) in &forged {
        assert_eq!(
            status(s.as_token(token).me().await),
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
    // A real token stops working when it expires.
    let real = s.api_token(demo::ADELE);
    assert!(s.as_token(&real).me().await.is_ok());
    s.advance(3600);
    assert_eq!(
        status(s.as_token(&real).me().await),
        StatusCode::UNAUTHORIZED,
        "expired"
    );
    other.shutdown().await;
}

fn with_roles(claims: &Value) -> Value {
    let mut c = claims.clone();
    c["roles"] = json!([demo::ROLE_SPONSOR, demo::ROLE_SECURITY_LEAD]);
    c
}

fn replace_payload(token: &str, payload: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn keys_are_cached_and_fetched_again_at_most_once_a_minute_for_an_unknown_kid() {
    let s = setup().await;
    let keys_fetched = || s.emu.calls_to("/discovery/v2.0/keys").len();
    let first = s.api_token(demo::ADELE);
    assert!(s.as_token(&first).me().await.is_ok());
    assert!(s.as_token(&first).me().await.is_ok());
    assert_eq!(keys_fetched(), 1, "fetched once, then cached");
    assert_eq!(
        s.emu.calls_to("/.well-known/openid-configuration").len(),
        1,
        "found by discovery"
    );

    // Entra rolls its key: the new kid is unknown, and the keys were fetched just now.
    s.emu.rotate_signing_key().unwrap();
    let rolled = s.api_token(demo::ADELE);
    assert_eq!(
        status(s.as_token(&rolled).me().await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(keys_fetched(), 1, "not again within the minute");
    let unknown = Emulator::start(EmulatorConfig::default().plain_http())
        .await
        .unwrap();
    let stranger = unknown.sign_claims(&s.claims()).unwrap();
    for _ in 0..3 {
        assert_eq!(
            status(s.as_token(&stranger).me().await),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        keys_fetched(),
        1,
        "unknown kids cannot make the server fetch in a loop"
    );

    s.advance(61);
    let rolled = s.api_token(demo::ADELE);
    assert!(
        s.as_token(&rolled).me().await.is_ok(),
        "fetched again after a minute"
    );
    assert_eq!(keys_fetched(), 2);
    assert!(
        s.as_token(&first).me().await.is_ok(),
        "the old key is still published"
    );
    unknown.shutdown().await;
}
