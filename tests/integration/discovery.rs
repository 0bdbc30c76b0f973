//! The discovery documents as third-party clients check them. Every REQUIRED and conditionally
//! REQUIRED member of OpenID Connect Discovery 1.0 §3 and RFC 8414 §2, and what Authlib 1.9's
//! metadata validators add (https URLs, arrays, RS256 among the ID token algorithms, no `none`
//! for JWT client authentication), checked on the documents as served; then whatever is
//! advertised is tried against the server.

use reqwest::StatusCode;
use serde_json::Value;

use crate::authorize::with_script_client;
use crate::common::{TestServer, settings};

const WELL_KNOWN: [&str; 2] = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
];

/// The problems a strict client finds in `doc`, published for `issuer`.
fn problems(doc: &Value, issuer: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut problem = |m: String| found.push(m);
    let text = |k: &str| doc.get(k).and_then(Value::as_str);
    let array = |k: &str| doc.get(k).and_then(Value::as_array);
    let https = |k: &str| text(k).is_some_and(|u| u.starts_with("https://") && !u.contains('#'));
    // REQUIRED in both (OIDC Discovery §3; RFC 8414 §2, `authorization_endpoint` because the
    // authorization code grant is offered, `token_endpoint` because a grant other than
    // implicit is).
    for k in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
    ] {
        if !https(k) {
            problem(format!("{k} must be an https URL"));
        }
    }
    if text("issuer") != Some(issuer) {
        problem(format!("issuer must be {issuer} (RFC 8414 §3.3)"));
    }
    if text("issuer").is_some_and(|i| i.contains('?')) {
        problem("issuer has a query".into());
    }
    for k in [
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        if array(k).is_none_or(|a| a.is_empty()) {
            problem(format!("{k} is REQUIRED and must be a non-empty array"));
        }
    }
    if !array("id_token_signing_alg_values_supported")
        .is_some_and(|a| a.iter().any(|v| v == "RS256"))
    {
        problem("RS256 MUST be among id_token_signing_alg_values_supported".into());
    }
    if array("subject_types_supported")
        .is_some_and(|a| a.iter().any(|v| v != "public" && v != "pairwise"))
    {
        problem("subject_types_supported holds an unknown type".into());
    }
    // Optional endpoints, when present, are https URLs (RFC 8414 §2).
    for k in [
        "userinfo_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "device_authorization_endpoint",
    ] {
        if doc.get(k).is_some() && !https(k) {
            problem(format!("{k} must be an https URL"));
        }
    }
    // Every `*_supported` member is an array, except the booleans.
    if let Some(map) = doc.as_object() {
        for (k, v) in map {
            let boolean = k.ends_with("_parameter_supported")
                || k == "require_request_uri_registration"
                || k == "authorization_response_iss_parameter_supported";
            if k.ends_with("_supported") && !boolean && !v.is_array() {
                problem(format!("{k} must be an array"));
            }
            if boolean && !v.is_boolean() {
                problem(format!("{k} must be a boolean"));
            }
        }
    }
    // Conditionally REQUIRED (RFC 8414 §2): a JWT client authentication method names its
    // algorithms, never `none`.
    for endpoint in [
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let methods = array(&format!("{endpoint}_auth_methods_supported"));
        let jwt = methods.is_some_and(|m| {
            m.iter()
                .any(|m| m == "private_key_jwt" || m == "client_secret_jwt")
        });
        let algs = array(&format!("{endpoint}_auth_signing_alg_values_supported"));
        if jwt && algs.is_none_or(|a| a.is_empty()) {
            problem(format!(
                "{endpoint}_auth_signing_alg_values_supported is REQUIRED with a JWT method"
            ));
        }
        if algs.is_some_and(|a| a.iter().any(|v| v == "none")) {
            problem(format!(
                "none in {endpoint}_auth_signing_alg_values_supported"
            ));
        }
    }
    // PKCE is offered for the code grant, and only S256 (RFC 7636 §4.3; RFC 9700 §2.1.1).
    if array("code_challenge_methods_supported")
        .is_none_or(|a| a.is_empty() || a.iter().any(|m| m == "plain"))
    {
        problem("code_challenge_methods_supported must offer S256 and not plain".into());
    }
    found
}

/// A document fetched from the server's socket (its issuer may name another host, as behind
/// a TLS proxy).
async fn document(t: &TestServer, path: &str) -> Value {
    let answer = t
        .client
        .http()
        .get(format!("http://{}{path}", t.server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "{path}");
    answer.json().await.unwrap()
}

#[tokio::test]
async fn both_documents_meet_openid_connect_discovery_and_rfc_8414() {
    // Behind TLS, as a deployment is: the issuer is what the documents name.
    let issuer = "https://governance.example";
    let mut s = settings();
    s.server.issuer = issuer.into();
    let t = TestServer::start_with(s).await;
    let first = document(&t, WELL_KNOWN[0]).await;
    for path in WELL_KNOWN {
        let doc = document(&t, path).await;
        assert_eq!(
            problems(&doc, issuer),
            Vec::<String>::new(),
            "{path}: {doc:#}"
        );
        assert_eq!(doc, first, "both addresses serve one document");
    }
    // The check is not vacuous: each REQUIRED member, taken away, is reported.
    for member in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "introspection_endpoint_auth_signing_alg_values_supported",
        "revocation_endpoint_auth_signing_alg_values_supported",
        "code_challenge_methods_supported",
    ] {
        let mut doc = first.clone();
        doc.as_object_mut().unwrap().remove(member);
        assert!(
            !problems(&doc, issuer).is_empty(),
            "{member} went unnoticed"
        );
    }
}

/// Each grant type listed is one the token endpoint knows (it may refuse this empty attempt
/// for another reason, never as unsupported); one not listed is refused as unsupported.
#[tokio::test]
async fn every_advertised_grant_endpoint_and_scope_is_implemented() {
    let t = with_script_client().await;
    let doc = document(&t, WELL_KNOWN[0]).await;
    let error_for = |grant: String| {
        let http = t.client.http().clone();
        let url = t.client.token_endpoint();
        async move {
            let answer = http
                .post(url)
                .form(&[
                    ("grant_type", grant.as_str()),
                    ("client_id", "sponsor-console"),
                ])
                .send()
                .await
                .unwrap();
            let body: Value = answer.json().await.unwrap();
            body["error"].as_str().unwrap_or_default().to_owned()
        }
    };
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.len() >= 4, "{grants:?}");
    for grant in grants {
        let error = error_for(grant.as_str().unwrap().to_owned()).await;
        assert_ne!(error, "unsupported_grant_type", "{grant}");
        assert!(!error.is_empty(), "{grant}");
    }
    assert_eq!(error_for("password".into()).await, "unsupported_grant_type");

    // Every advertised endpoint answers (a refusal of an empty call, not a missing route).
    for (member, method) in [
        ("jwks_uri", "GET"),
        ("userinfo_endpoint", "GET"),
        ("token_endpoint", "POST"),
        ("device_authorization_endpoint", "POST"),
        ("introspection_endpoint", "POST"),
        ("revocation_endpoint", "POST"),
        ("authorization_endpoint", "GET"),
    ] {
        let url = doc[member].as_str().unwrap();
        let answer = t
            .client
            .http()
            .request(method.parse().unwrap(), url)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{member} {url}: {status}"
        );
    }
    // Every advertised scope may be asked for in the device flow.
    for scope in doc["scopes_supported"].as_array().unwrap() {
        let scope = scope.as_str().unwrap();
        t.client
            .device_authorization("sponsor-console", Some(scope))
            .await
            .unwrap_or_else(|e| panic!("scope {scope}: {e}"));
    }
    // The ID token's algorithm is the one advertised.
    let tokens = t.sign_in("alice").await;
    let header = jsonwebtoken::decode_header(tokens.id_token.as_deref().unwrap()).unwrap();
    let algs = doc["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(
        algs.iter().any(|a| a == &format!("{:?}", header.alg)),
        "{algs:?}"
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
}
