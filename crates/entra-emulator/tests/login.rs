//! The login host over HTTPS: the device flow and each of its documented errors, refresh
//! for either resource, discovery and the JWKS, and the claims of what is minted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use chrono::Duration;
use entra_emulator::{EmulatorConfig, Fault, demo};
use serde_json::Value;
use support::{Harness, claims, header, start, start_with};

const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn api_scope() -> String {
    format!(
        "api://{}/governance offline_access openid",
        demo::GOVERNANCE_APP_ID
    )
}

async fn begin(h: &Harness, scope: &str) -> Value {
    let a = h
        .form(
            &h.emu.device_code_url(),
            &[("client_id", demo::CONSOLE_CLIENT_ID), ("scope", scope)],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "the oauth2 crate needs JSON"
    );
    a.json()
}

async fn poll(h: &Harness, device_code: &str) -> support::Answer {
    h.form(
        &h.emu.token_url(),
        &[
            ("grant_type", DEVICE),
            ("client_id", demo::CONSOLE_CLIENT_ID),
            ("device_code", device_code),
        ],
    )
    .await
}

#[tokio::test]
async fn the_device_flow_waits_for_the_person_then_mints_tokens_the_jwks_verifies() {
    let h = start().await;
    let started = begin(&h, &api_scope()).await;
    for field in [
        "device_code",
        "user_code",
        "verification_uri",
        "expires_in",
        "interval",
        "message",
    ] {
        assert!(started.get(field).is_some(), "{field}: {started}");
    }
    assert!(started.get("verification_uri_complete").is_none());
    let user_code = started["user_code"].as_str().unwrap();
    assert!(started["message"].as_str().unwrap().contains(user_code));
    let device_code = started["device_code"].as_str().unwrap();

    let pending = poll(&h, device_code).await;
    assert_eq!(pending.status, 400);
    let body = pending.json();
    assert_eq!(body["error"], "authorization_pending");
    assert_eq!(body["error_codes"][0], 70016);
    for field in [
        "error_description",
        "timestamp",
        "trace_id",
        "correlation_id",
    ] {
        assert!(body.get(field).is_some(), "{field}");
    }

    assert_eq!(h.emu.pending_user_codes(), vec![user_code.to_owned()]);
    h.emu.approve_device_code(user_code, demo::ADELE).unwrap();
    h.emu.advance(Duration::seconds(5));
    let done = poll(&h, device_code).await;
    assert_eq!(done.status, 200, "{}", done.text);
    let tokens = done.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());
    let access = tokens["access_token"].as_str().unwrap();
    let c = claims(access);
    assert_eq!(c["iss"], h.emu.issuer());
    assert_eq!(c["aud"], demo::GOVERNANCE_APP_ID);
    assert_eq!(c["tid"], demo::TENANT_ID);
    assert_eq!(c["oid"], demo::ADELE);
    assert_eq!(c["scp"], "governance");
    assert_eq!(c["roles"], serde_json::json!([demo::ROLE_SPONSOR]));
    assert_eq!(c["preferred_username"], "adele@contoso.example");
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3599
    );
    let hdr = header(access);
    assert_eq!(hdr["alg"], "RS256");

    let discovery = h.get("", &h.emu.discovery_url()).await.json();
    assert_eq!(discovery["issuer"], h.emu.issuer());
    let jwks = h
        .get("", discovery["jwks_uri"].as_str().unwrap())
        .await
        .json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&hdr["kid"].as_str().unwrap()));
    assert_eq!(jwks["keys"][0]["kty"], "RSA");

    // Redeemed: the code is gone.
    assert_eq!(
        poll(&h, device_code).await.json()["error"],
        "bad_verification_code"
    );
}

#[tokio::test]
async fn declined_unknown_expired_and_too_fast_each_get_their_error() {
    let h = start().await;
    let bad = poll(&h, "not-a-code").await.json();
    assert_eq!(bad["error"], "bad_verification_code");
    assert_eq!(bad["error_codes"][0], 70018);

    let declined = begin(&h, "User.Read offline_access").await;
    h.emu
        .decline_device_code(declined["user_code"].as_str().unwrap())
        .unwrap();
    let a = poll(&h, declined["device_code"].as_str().unwrap())
        .await
        .json();
    assert_eq!(a["error"], "authorization_declined");

    let fast = begin(&h, "User.Read").await;
    let code = fast["device_code"].as_str().unwrap();
    assert_eq!(
        poll(&h, code).await.json()["error"],
        "authorization_pending"
    );
    h.emu.advance(Duration::seconds(2));
    assert_eq!(poll(&h, code).await.json()["error"], "slow_down");
    // Each slow_down adds 5 s: 6 s later is too soon for 10 s, 15 s is not too soon for 15 s.
    h.emu.advance(Duration::seconds(6));
    assert_eq!(poll(&h, code).await.json()["error"], "slow_down");
    h.emu.advance(Duration::seconds(15));
    assert_eq!(
        poll(&h, code).await.json()["error"],
        "authorization_pending"
    );

    h.emu.advance(Duration::seconds(900));
    let expired = poll(&h, code).await.json();
    assert_eq!(expired["error"], "expired_token");
    assert_eq!(expired["error_codes"][0], 70019);

    // An injected slow_down, for clients that poll with a real sleep.
    let next = begin(&h, "User.Read").await;
    h.emu
        .inject(Fault::oauth_error("/oauth2/v2.0/token", "slow_down"));
    assert_eq!(
        poll(&h, next["device_code"].as_str().unwrap()).await.json()["error"],
        "slow_down"
    );
}

#[tokio::test]
async fn bad_starts_are_refused_in_entras_shape() {
    let h = start().await;
    let wrong_client = h
        .form(
            &h.emu.device_code_url(),
            &[("client_id", "someone-else"), ("scope", "User.Read")],
        )
        .await
        .json();
    assert_eq!(wrong_client["error"], "unauthorized_client");
    let no_scope = h
        .form(
            &h.emu.device_code_url(),
            &[("client_id", demo::CONSOLE_CLIENT_ID)],
        )
        .await
        .json();
    assert_eq!(no_scope["error"], "invalid_request");
    let two = h
        .form(
            &h.emu.device_code_url(),
            &[
                ("client_id", demo::CONSOLE_CLIENT_ID),
                ("scope", &format!("User.Read {}", api_scope())),
            ],
        )
        .await
        .json();
    assert_eq!(two["error"], "invalid_scope");
    let tenant = h
        .form(
            &h.url("/not-a-tenant/oauth2/v2.0/devicecode"),
            &[
                ("client_id", demo::CONSOLE_CLIENT_ID),
                ("scope", "User.Read"),
            ],
        )
        .await
        .json();
    assert_eq!(tenant["error_codes"][0], 90002);
    let by_domain = h
        .form(
            &h.url(&format!("/{}/oauth2/v2.0/devicecode", demo::TENANT_DOMAIN)),
            &[
                ("client_id", demo::CONSOLE_CLIENT_ID),
                ("scope", "User.Read"),
            ],
        )
        .await;
    assert_eq!(by_domain.status, 200);
}

#[tokio::test]
async fn one_refresh_token_mints_for_graph_and_for_the_api_until_sessions_are_revoked() {
    let h = start_with(EmulatorConfig {
        auto_approve: Some(demo::ALEX.into()),
        ..EmulatorConfig::default()
    })
    .await;
    let started = begin(
        &h,
        "https://graph.microsoft.com/RoleAssignmentSchedule.ReadWrite.Directory offline_access",
    )
    .await;
    let tokens = poll(&h, started["device_code"].as_str().unwrap())
        .await
        .json();
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["aud"],
        "https://graph.microsoft.com"
    );
    assert!(tokens.get("id_token").is_none(), "no openid, no id token");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let refresh_for = |scope: String| {
        let h = &h;
        async move {
            h.form(
                &h.emu.token_url(),
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", demo::CONSOLE_CLIENT_ID),
                    ("refresh_token", refresh),
                    ("scope", &scope),
                ],
            )
            .await
        }
    };
    let api = refresh_for(format!("api://{}/governance", demo::GOVERNANCE_APP_ID))
        .await
        .json();
    let c = claims(api["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], demo::GOVERNANCE_APP_ID);
    assert_eq!(c["roles"], serde_json::json!([demo::ROLE_SECURITY_LEAD]));
    assert!(
        api["refresh_token"].is_string(),
        "a new refresh token every time"
    );
    let graph = refresh_for("https://graph.microsoft.com/.default".into())
        .await
        .json();
    assert_eq!(
        claims(graph["access_token"].as_str().unwrap())["aud"],
        "https://graph.microsoft.com"
    );

    h.emu.revoke_sign_in_sessions(demo::ALEX);
    let revoked = refresh_for("User.Read".into()).await.json();
    assert_eq!(revoked["error"], "invalid_grant");
    assert_eq!(revoked["error_codes"][0], 70008);
}

#[tokio::test]
async fn plain_http_serves_the_same_endpoints() {
    let h = start_with(EmulatorConfig::default().plain_http()).await;
    assert!(h.emu.base_url().starts_with("http://"));
    assert!(h.emu.ca_pem().is_none());
    let discovery = h.get("", &h.emu.discovery_url()).await;
    assert_eq!(discovery.status, 200);
    assert!(discovery.headers.contains_key("request-id"));
}

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
struct EntraDeviceFields {
    message: Option<String>,
}
impl oauth2::ExtraDeviceAuthorizationFields for EntraDeviceFields {}

/// The client the console uses (the `oauth2` crate) runs its whole polling loop against the
/// emulator; its sleeps step the emulator's clock, and the person approves during the first.
#[tokio::test]
async fn the_oauth2_crate_signs_in_polls_and_refreshes_against_it() {
    use oauth2::basic::BasicClient;
    use oauth2::{
        ClientId, DeviceAuthorizationResponse, DeviceAuthorizationUrl, Scope, TokenResponse,
        TokenUrl,
    };
    let h = start().await;
    let client = BasicClient::new(ClientId::new(demo::CONSOLE_CLIENT_ID.into()))
        .set_token_uri(TokenUrl::new(h.emu.token_url()).unwrap())
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(h.emu.device_code_url()).unwrap(),
        );
    let start_flow = || {
        client
            .exchange_device_code()
            .add_scope(Scope::new("offline_access".into()))
            .add_scope(Scope::new(format!(
                "api://{}/governance",
                demo::GOVERNANCE_APP_ID
            )))
    };
    let details: DeviceAuthorizationResponse<EntraDeviceFields> =
        start_flow().request_async(&h.http).await.unwrap();
    assert!(
        details
            .extra_fields()
            .message
            .as_deref()
            .unwrap()
            .contains(details.user_code().secret())
    );
    let code = details.user_code().secret().clone();
    let emu = &h.emu;
    let person_approves = |d: std::time::Duration| {
        if emu.pending_user_codes().contains(&code) {
            emu.approve_device_code(&code, demo::ADELE).unwrap();
        }
        emu.advance(Duration::from_std(d).unwrap());
        std::future::ready(())
    };
    let token = client
        .exchange_device_access_token(&details)
        .request_async(&h.http, person_approves, None)
        .await
        .unwrap();
    assert_eq!(claims(token.access_token().secret())["oid"], demo::ADELE);
    let graph = client
        .exchange_refresh_token(token.refresh_token().unwrap())
        .add_scope(Scope::new("https://graph.microsoft.com/.default".into()))
        .request_async(&h.http)
        .await
        .unwrap();
    assert_eq!(
        claims(graph.access_token().secret())["aud"],
        "https://graph.microsoft.com"
    );

    let declined: DeviceAuthorizationResponse<EntraDeviceFields> =
        start_flow().request_async(&h.http).await.unwrap();
    let code = declined.user_code().secret().clone();
    let person_declines = |d: std::time::Duration| {
        let _ = emu.decline_device_code(&code);
        emu.advance(Duration::from_std(d).unwrap());
        std::future::ready(())
    };
    let refused = client
        .exchange_device_access_token(&declined)
        .request_async(&h.http, person_declines, None)
        .await
        .unwrap_err();
    let oauth2::RequestTokenError::ServerResponse(e) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(e.error().to_string(), "authorization_declined");
}
