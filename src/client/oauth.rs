//! The OAuth endpoints as a client calls them: discovery, the device flow (RFC 8628), refresh,
//! client credentials with `private_key_jwt` (RFC 7523), introspection (RFC 7662) and
//! revocation (RFC 7009).

use reqwest::Method;

use super::{ApiClient, ClientResult};
use crate::protocol::oauth::{
    ASSERTION_TYPE_JWT_BEARER, DeviceAuthorization, Discovery, GRANT_CLIENT_CREDENTIALS,
    GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN, Introspection, JwkSet, TokenResponse,
};

impl ApiClient {
    // Discovery.
    pub async fn discovery(&self) -> ClientResult<Discovery> {
        Self::api(self.request(Method::GET, "/.well-known/openid-configuration")).await
    }

    pub async fn jwks(&self) -> ClientResult<JwkSet> {
        Self::api(self.request(Method::GET, "/oauth2/jwks")).await
    }

    pub async fn device_authorization(
        &self,
        client_id: &str,
        scope: Option<&str>,
    ) -> ClientResult<DeviceAuthorization> {
        let mut form = vec![("client_id", client_id)];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        Self::api(
            self.http
                .post(self.url("/oauth2/device_authorization"))
                .form(&form),
        )
        .await
    }

    pub async fn poll_device(
        &self,
        client_id: &str,
        device_code: &str,
    ) -> ClientResult<TokenResponse> {
        Self::api(self.http.post(self.token_endpoint()).form(&[
            ("grant_type", GRANT_DEVICE_CODE),
            ("client_id", client_id),
            ("device_code", device_code),
        ]))
        .await
    }

    pub async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &str,
    ) -> ClientResult<TokenResponse> {
        Self::api(self.http.post(self.token_endpoint()).form(&[
            ("grant_type", GRANT_REFRESH_TOKEN),
            ("client_id", client_id),
            ("refresh_token", refresh_token),
        ]))
        .await
    }

    /// Client credentials with a `private_key_jwt` assertion (see [`agent_key::AgentKey`]).
    pub async fn client_credentials(
        &self,
        assertion: &str,
        scope: Option<&str>,
    ) -> ClientResult<TokenResponse> {
        let mut form = vec![
            ("grant_type", GRANT_CLIENT_CREDENTIALS),
            ("client_assertion_type", ASSERTION_TYPE_JWT_BEARER),
            ("client_assertion", assertion),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        Self::api(self.http.post(self.token_endpoint()).form(&form)).await
    }

    /// RFC 7662, authenticated with this client's bearer token.
    pub async fn introspect(&self, token: &str) -> ClientResult<Introspection> {
        Self::api(
            self.request(Method::POST, "/oauth2/introspect")
                .form(&[("token", token)]),
        )
        .await
    }

    /// RFC 7009 for a public client.
    pub async fn revoke(
        &self,
        client_id: &str,
        token: &str,
        hint: Option<&str>,
    ) -> ClientResult<()> {
        let mut form = vec![("client_id", client_id), ("token", token)];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint));
        }
        let _: serde_json::Value =
            Self::api(self.http.post(self.url("/oauth2/revoke")).form(&form)).await?;
        Ok(())
    }
}
