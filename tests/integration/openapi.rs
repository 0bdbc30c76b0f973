//! `/openapi.json` is generated from the routes: every `/v1` route is in it, and everything in
//! it is served (and guarded by a bearer token); the statuses and the event stream it documents
//! are what the server answers.

use std::collections::BTreeSet;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};

use crate::common::TestServer;

const V1: &[(&str, &str)] = &[
    ("get", "/v1/me"),
    ("get", "/v1/agents"),
    ("post", "/v1/agents"),
    ("post", "/v1/agents/suspend"),
    ("get", "/v1/agents/{did}"),
    ("post", "/v1/agents/{did}/suspend"),
    ("post", "/v1/agents/{did}/reactivate"),
    ("post", "/v1/agents/{did}/revoke"),
    ("get", "/v1/agents/{did}/trust"),
    ("get", "/v1/requests"),
    ("post", "/v1/requests/elevation"),
    ("post", "/v1/requests/delegation"),
    ("get", "/v1/requests/{id}"),
    ("post", "/v1/requests/{id}/decision"),
    ("post", "/v1/requests/{id}/cancel"),
    ("get", "/v1/requests/{id}/wait"),
    ("get", "/v1/grants"),
    ("get", "/v1/grants/{id}"),
    ("post", "/v1/grants/{id}/revoke"),
    ("get", "/v1/audit"),
    ("get", "/v1/audit/verify"),
    ("get", "/v1/audit/state"),
    ("post", "/v1/audit/state"),
    ("get", "/v1/audit/export"),
    ("get", "/v1/events"),
    ("get", "/v1/policy"),
    ("post", "/v1/entra/decisions"),
    ("get", "/v1/actions"),
    ("get", "/v1/actions/{id}"),
    ("post", "/v1/actions/{id}/decision"),
    ("post", "/v1/agt/approvals"),
];

#[tokio::test]
async fn every_v1_route_is_documented_and_every_documented_route_is_served() {
    let t = TestServer::start().await;
    let doc: Value = t
        .client
        .http()
        .get(t.client.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
            let op = &item[method];
            assert!(
                op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|k| k.starts_with('2')),
                "{method} {path}"
            );
            assert_eq!(
                op["security"][0]["bearer"],
                serde_json::json!([]),
                "{method} {path}"
            );
        }
    }
    let mut expected: Vec<(String, String)> = V1
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    documented.sort();
    expected.sort();
    assert_eq!(documented, expected);

    // Each documented route exists: without a token it answers 401, never 404 or 405.
    for (method, path) in &documented {
        let concrete = path
            .replace("{did}", "did:mesh:00000000000000000000000000000000")
            .replace("{id}", "req_00000000000000000000000000000000");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = t
            .client
            .http()
            .request(method.clone(), t.client.url(&concrete))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {concrete}"
        );
    }
    for schema in [
        "Agent",
        "Request",
        "Grant",
        "Suspension",
        "AuditEvent",
        "ErrorBody",
        "TrustReport",
        "PolicyView",
        "VerifyReport",
        "Checkpoint",
        "ChainAt",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // DPoP-bound agent tokens use the same routes under another scheme; the document says how.
    let how = doc["components"]["securitySchemes"]["bearer"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        how.contains("Authorization: DPoP") && how.contains("RFC 9449"),
        "{how}"
    );
}

/// Every status a route answers with is in its document: each route is tried as an agent and
/// as a sponsor, with unknown ids, and (for bodies) with no JSON, broken JSON and the wrong
/// shape; whatever comes back must be listed, with its error body.
#[tokio::test]
async fn every_status_a_route_answers_is_documented() {
    let t = TestServer::start().await;
    let doc: Value = t
        .client
        .http()
        .get(t.client.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice = t.as_user("alice").await;
    let (key, _) = t.agent(&alice, "prober", &["read:x"]).await;
    let bot = t.as_agent(&key).await;
    let mut undocumented = Vec::new();
    for (method, path) in V1 {
        let concrete = path
            .replace("{did}", "did:mesh:00000000000000000000000000000000")
            .replace("{id}", "req_00000000000000000000000000000000");
        let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let listed = doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} is documented"));
        let mut tries = Vec::new();
        for who in [&alice, &bot] {
            if *method == "get" {
                tries.push(who.raw(verb.clone(), &concrete));
                continue;
            }
            tries.push(
                who.raw(verb.clone(), &concrete)
                    .header("content-type", "text/plain")
                    .body("x"),
            );
            tries.push(
                who.raw(verb.clone(), &concrete)
                    .header("content-type", "application/json")
                    .body("{"),
            );
            tries.push(
                who.raw(verb.clone(), &concrete)
                    .json(&serde_json::json!({})),
            );
            tries.push(
                who.raw(verb.clone(), &concrete)
                    .json(&serde_json::json!({"reason": "probe", "security": false})),
            );
        }
        for request in tries {
            let status = request.send().await.unwrap().status();
            let code = status.as_u16().to_string();
            if !listed.contains_key(&code) {
                undocumented.push(format!("{method} {path} answered {code}"));
            } else if status.is_client_error() {
                let body = &listed[&code]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    body, "#/components/schemas/ErrorBody",
                    "{method} {path} {code} documents its error body"
                );
            }
        }
    }
    undocumented.sort();
    undocumented.dedup();
    assert!(undocumented.is_empty(), "{}", undocumented.join("\n"));
}

async fn served_document(t: &TestServer) -> Value {
    let doc = t.client.http().get(t.client.url("/openapi.json")).send();
    doc.await.unwrap().json().await.unwrap()
}

/// A validator for `schema`, a schema of the document `doc` whose `$ref`s point into the
/// document's components.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["components"] = doc["components"].clone();
    jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{e}: {schema}"))
}

/// `schema` itself, or what its `$ref` points to in `doc`.
fn resolved<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{r} is in the document")),
        None => schema,
    }
}

/// Every frame of `GET /v1/events`, read off the wire from a running server, is what the
/// served document says: the frame (`id`, `event`, `data`) against the stream's schema, and
/// `data`, parsed as its `contentMediaType`, against its `contentSchema` (the typed audit event).
/// The fixture's story and a direct edit of the tables write every action there is, and the
/// stream replays all of it to a security lead.
#[tokio::test]
async fn every_event_frame_is_what_the_document_says() {
    let (t, _) = crate::audit_fixture::scenario().await;
    // An action the story does not write: the tables drift from the chain.
    let mut db = SqliteConnection::connect(&format!("sqlite://{}", t.db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE agents SET capabilities = '[\"admin:*\"]' WHERE name = 'noisy-bot'")
        .execute(&mut db)
        .await
        .unwrap();
    let sam = t.sign_in("sam").await;
    t.client
        .with_token(&sam.access_token)
        .check_audit_state()
        .await
        .unwrap();
    // And one the console writes after Microsoft Graph acknowledged an Entra decision.
    t.client
        .with_token(&sam.access_token)
        .record_entra_decision(&sponsor_console::protocol::entra::EntraDecisionBody {
            source: sponsor_console::domain::entra::EntraSource::DirectoryRole,
            request_id: "4b7c5b1e-0f3a-4a0e-9d55-1b0d8f6c2a11".into(),
            stage_id: "9e2f4c3d-5a6b-4c7d-8e9f-0a1b2c3d4e5f".into(),
            decision: sponsor_console::protocol::requests::Decision::Approve,
            justification: "on call this week".into(),
            graph_request_id: Some("7d1e3f5a-2b4c-4d6e-8f0a-1c3e5a7b9d2f".into()),
            client_request_id: "3a5c7e9b-1d3f-4b5d-9f1b-3d5f7a9c1e3b".into(),
            tenant_id: None,
            target_id: "fe930be7-5e62-47db-91af-98c3a49a38b1".into(),
            target_name: Some("User Administrator".into()),
            requester_id: "c2f4a6b8-0d2e-4f6a-8b0c-2e4a6c8e0a2c".into(),
            requester_upn: Some("megan@contoso.test".into()),
        })
        .await
        .unwrap();
    // And what the AGT webhook's action requests write.
    crate::agt::every_action_event(&t).await;
    // And a resource server registered and removed.
    let rs = sponsor_console::server::store::ResourceClient {
        client_id: format!("rs_{:032x}", 1),
        name: "ledger-api".into(),
        auth: sponsor_console::server::store::ClientAuth::SecretBasic {
            secret_sha256: "ab".repeat(32),
        },
        created_at: t.clock_now(),
    };
    let store = &t.server.state.store;
    let system = sponsor_console::protocol::audit::Actor::system;
    store
        .add_resource_client(&rs, system(), t.clock_now())
        .await
        .unwrap();
    assert!(
        store
            .remove_resource_client("ledger-api", system(), t.clock_now())
            .await
            .unwrap()
    );
    let head = t.server.state.store.audit_head().await.unwrap();
    let doc = served_document(&t).await;
    let listed = &doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"];
    let frame_schema = &listed["text/event-stream"]["schema"];
    let frame_valid = validator(&doc, frame_schema);
    let data_schema = &resolved(&doc, frame_schema)["properties"]["data"];
    assert_eq!(data_schema["contentMediaType"], "application/json");
    let event_valid = validator(&doc, &data_schema["contentSchema"]);

    let response = t
        .client
        .http()
        .get(t.client.url("/v1/events?after=0"))
        .bearer_auth(&sam.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream",
        "the media type the document lists"
    );
    let mut frames = response.bytes_stream().eventsource();
    let mut actions = BTreeSet::new();
    let mut seen = 0;
    while seen < head {
        let frame = frames.next().await.expect("the stream stays open").unwrap();
        let n = frame.id.clone();
        // The frame's fields as the schema names them.
        let fields = json!({"id": frame.id, "event": frame.event, "data": frame.data});
        let problems: Vec<String> = frame_valid
            .iter_errors(&fields)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(problems.is_empty(), "frame {n}: {problems:#?}\n{fields}");
        let data: Value = serde_json::from_str(&frame.data).unwrap();
        let problems: Vec<String> = event_valid
            .iter_errors(&data)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(problems.is_empty(), "frame {n}: {problems:#?}\n{data:#}");
        // What the schema's descriptions tie together.
        assert_eq!(frame.event, data["action"], "frame {n}");
        assert_eq!(frame.id, data["seq"].to_string(), "frame {n}");
        seen = data["seq"].as_i64().unwrap();
        actions.insert(frame.event);
    }
    let documented: BTreeSet<String> = resolved(&doc, frame_schema)["properties"]["event"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions, documented,
        "the story streams every documented action"
    );
}
