//! The bad-input table: each case gets a 4xx with the DESIGN §4 error body and changes
//! nothing (no agent stored, no audit event written).

use reqwest::{Method, StatusCode};
use serde_json::json;
use sponsor_console::client::agent_key::AgentKey;

use crate::common::TestServer;

struct Case {
    name: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn case(name: &'static str, body: serde_json::Value, code: &'static str) -> Case {
    Case {
        name,
        content_type: "application/json",
        body: serde_json::to_vec(&body).unwrap(),
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code,
    }
}

fn valid(key: &AgentKey) -> serde_json::Value {
    json!({ "public_key": key.public_key(), "name": "ok", "capabilities": ["read:x"] })
}

fn with(key: &AgentKey, field: &str, value: serde_json::Value) -> serde_json::Value {
    let mut v = valid(key);
    v[field] = value;
    v
}

#[tokio::test]
async fn every_bad_registration_is_a_4xx_that_changes_nothing() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    let k = AgentKey::generate();
    let cases = vec![
        Case {
            name: "malformed JSON",
            content_type: "application/json",
            body: b"{\"name\": ".to_vec(),
            status: StatusCode::BAD_REQUEST,
            code: "malformed_json",
        },
        Case {
            name: "trailing garbage",
            content_type: "application/json",
            body: [serde_json::to_vec(&valid(&k)).unwrap(), b"xx".to_vec()].concat(),
            status: StatusCode::BAD_REQUEST,
            code: "malformed_json",
        },
        Case {
            name: "not JSON content type",
            content_type: "text/plain",
            body: serde_json::to_vec(&valid(&k)).unwrap(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
        },
        Case {
            name: "body over 64 KiB",
            content_type: "application/json",
            body: serde_json::to_vec(&with(&k, "model", json!("m".repeat(70_000)))).unwrap(),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "body_too_large",
        },
        case(
            "unknown field",
            with(&k, "is_admin", json!(true)),
            "invalid_body",
        ),
        case(
            "wrong type",
            with(&k, "capabilities", json!("read:x")),
            "invalid_body",
        ),
        case(
            "missing name",
            json!({ "public_key": k.public_key() }),
            "invalid_body",
        ),
        case(
            "name of 129 characters",
            with(&k, "name", json!("n".repeat(129))),
            "too_long",
        ),
        case("empty name", with(&k, "name", json!("   ")), "invalid_name"),
        case(
            "control character in name",
            with(&k, "name", json!("bot\u{1b}[31m")),
            "invalid_name",
        ),
        case(
            "newline in name",
            with(&k, "name", json!("bot\nrm -rf")),
            "invalid_name",
        ),
        case(
            "bidi override in name",
            with(&k, "name", json!("bot\u{202e}gnp.exe")),
            "invalid_name",
        ),
        case(
            "model of 129 characters",
            with(&k, "model", json!("m".repeat(129))),
            "too_long",
        ),
        case(
            "escape in runtime",
            with(&k, "runtime", json!("\u{7}bell")),
            "invalid_text",
        ),
        case(
            "bare star capability",
            with(&k, "capabilities", json!(["*"])),
            "invalid_capability",
        ),
        case(
            "capability without verb",
            with(&k, "capabilities", json!(["crm"])),
            "invalid_capability",
        ),
        case(
            "capability with space",
            with(&k, "capabilities", json!(["read: x"])),
            "invalid_capability",
        ),
        case(
            "capability with partial glob",
            with(&k, "capabilities", json!(["read:cr*"])),
            "invalid_capability",
        ),
        case(
            "duplicate capability",
            with(&k, "capabilities", json!(["read:x", "read:x"])),
            "duplicate_capability",
        ),
        case(
            "65 capabilities",
            with(
                &k,
                "capabilities",
                json!((0..65).map(|i| format!("read:r{i}")).collect::<Vec<_>>()),
            ),
            "too_many_capabilities",
        ),
        case(
            "short public key",
            with(&k, "public_key", json!("AAAA")),
            "invalid_public_key",
        ),
        case(
            "public key not base64url",
            with(&k, "public_key", json!("!".repeat(43))),
            "invalid_public_key",
        ),
        case(
            "entra object id not a GUID",
            with(&k, "entra_object_id", json!("abc")),
            "invalid_entra_object_id",
        ),
    ];
    let before = alice.audit_page(0, 1000).await.unwrap().events.len();
    for c in cases {
        let response = alice
            .raw(Method::POST, "/v1/agents")
            .header("content-type", c.content_type)
            .body(c.body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), c.status, "{}", c.name);
        let body: serde_json::Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(body["error"]["code"], c.code, "{}: {body}", c.name);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            c.name
        );
    }
    assert!(
        alice.agents(false).await.unwrap().is_empty(),
        "nothing was registered"
    );
    let after = alice.audit_page(0, 1000).await.unwrap().events.len();
    assert_eq!(before, after, "no audit event was written");
    // The valid body still works afterwards.
    assert!(
        alice
            .raw(Method::POST, "/v1/agents")
            .json(&valid(&k))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
}

#[tokio::test]
async fn bad_paths_queries_and_methods_get_json_errors() {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    for (method, path, status, code) in [
        (
            Method::GET,
            "/v1/agents/not-a-did",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_did",
        ),
        (
            Method::GET,
            "/v1/agents/did:mesh:XYZ",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_did",
        ),
        (
            Method::GET,
            "/v1/agents?scope=everything",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/agents?bogus=1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/audit?limit=0",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/audit?limit=abc",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/audit?after=-1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::GET,
            "/v1/nothing-here",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/v1/agents",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ] {
        let response = alice.raw(method.clone(), path).send().await.unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{method} {path}");
    }
}

#[tokio::test]
async fn bad_oauth_forms_get_oauth_errors() {
    let t = TestServer::start().await;
    let http = t.client.http();
    for (form, error) in [
        (
            "grant_type=password&username=a&password=b",
            "unsupported_grant_type",
        ),
        ("client_id=sponsor-console", "invalid_request"),
        (
            "grant_type=refresh_token&grant_type=refresh_token",
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&client_assertion_type=x&client_assertion=y",
            "invalid_client",
        ),
    ] {
        let response = http
            .post(t.client.token_endpoint())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{form}");
        assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{form}");
    }
    let json_body = http
        .post(t.client.token_endpoint())
        .json(&json!({"grant_type": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST);
}
