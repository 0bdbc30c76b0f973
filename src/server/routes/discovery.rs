//! OIDC discovery and the JWKS.

use axum::Json;
use axum::extract::State;

use crate::protocol::oauth::{
    Discovery, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN, JwkSet,
};
use crate::server::oauth::SPONSOR_SCOPES;
use crate::server::state::AppState;

#[tracing::instrument(skip_all)]
pub async fn openid_configuration(State(state): State<AppState>) -> Json<Discovery> {
    let base = &state.issuer;
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    Json(Discovery {
        issuer: base.clone(),
        jwks_uri: format!("{base}/oauth2/jwks"),
        authorization_endpoint: format!("{base}/oauth2/authorize"),
        token_endpoint: state.token_endpoint(),
        device_authorization_endpoint: format!("{base}/oauth2/device_authorization"),
        introspection_endpoint: format!("{base}/oauth2/introspect"),
        revocation_endpoint: format!("{base}/oauth2/revoke"),
        userinfo_endpoint: format!("{base}/oauth2/userinfo"),
        grant_types_supported: strings(&[
            GRANT_AUTHORIZATION_CODE,
            GRANT_DEVICE_CODE,
            GRANT_REFRESH_TOKEN,
            GRANT_CLIENT_CREDENTIALS,
        ]),
        response_types_supported: strings(&["code"]),
        response_modes_supported: strings(&["query"]),
        code_challenge_methods_supported: strings(&["S256"]),
        authorization_response_iss_parameter_supported: true,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        claims_parameter_supported: false,
        subject_types_supported: strings(&["public"]),
        // ID tokens are RS256, the algorithm every relying party must accept.
        id_token_signing_alg_values_supported: strings(&["RS256"]),
        token_endpoint_auth_methods_supported: strings(&["none", "private_key_jwt"]),
        token_endpoint_auth_signing_alg_values_supported: strings(&["EdDSA"]),
        // Registered resource servers (`governance-server clients add`); sponsors and agents
        // may also call with their own bearer token, which has no registered method name.
        introspection_endpoint_auth_methods_supported: strings(&[
            "client_secret_basic",
            "private_key_jwt",
        ]),
        introspection_endpoint_auth_signing_alg_values_supported: strings(&["EdDSA"]),
        revocation_endpoint_auth_methods_supported: strings(&["none", "private_key_jwt"]),
        revocation_endpoint_auth_signing_alg_values_supported: strings(&["EdDSA"]),
        scopes_supported: strings(SPONSOR_SCOPES),
        claims_supported: strings(&[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "scope",
            "client_id",
            "kind",
            "roles",
            "preferred_username",
            "name",
            "auth_time",
            "nonce",
            "at_hash",
        ]),
        dpop_signing_alg_values_supported: strings(&["EdDSA"]),
    })
}

#[tracing::instrument(skip_all)]
pub async fn jwks(State(state): State<AppState>) -> Json<JwkSet> {
    Json(state.keys.jwks())
}
