//! The OAuth endpoints as a client calls them: discovery, the device flow (RFC 8628), refresh,
//! client credentials with `private_key_jwt` (RFC 7523), introspection (RFC 7662) and
//! revocation (RFC 7009).

use reqwest::Method;

use super::agent_key::AgentKey;
use super::{ApiClient, ClientError, ClientResult};
use crate::clock::SharedClock;
use crate::protocol::dpop::DPOP;
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
        self.client_credentials_with(assertion, scope, None).await
    }

    /// Client credentials asking for a token bound to the key that signed `proof` (a DPoP
    /// proof for `POST` to the token endpoint, see [`agent_key::AgentKey::dpop_proof`]).
    pub async fn client_credentials_dpop(
        &self,
        assertion: &str,
        scope: Option<&str>,
        proof: &str,
    ) -> ClientResult<TokenResponse> {
        self.client_credentials_with(assertion, scope, Some(proof))
            .await
    }

    async fn client_credentials_with(
        &self,
        assertion: &str,
        scope: Option<&str>,
        proof: Option<&str>,
    ) -> ClientResult<TokenResponse> {
        let mut form = vec![
            ("grant_type", GRANT_CLIENT_CREDENTIALS),
            ("client_assertion_type", ASSERTION_TYPE_JWT_BEARER),
            ("client_assertion", assertion),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let mut builder = self.http.post(self.token_endpoint()).form(&form);
        if let Some(proof) = proof {
            builder = builder.header(DPOP, proof);
        }
        Self::api(builder).await
    }

    /// A token for the agent of `key`, bound to it (DPoP, RFC 9449): a fresh client assertion
    /// and proof dated by `clock`; and a client that signs a proof for every call it makes
    /// with the token.
    pub async fn dpop_agent(
        &self,
        key: &AgentKey,
        clock: SharedClock,
        scope: Option<&str>,
    ) -> ClientResult<(ApiClient, TokenResponse)> {
        let now = clock.now();
        let endpoint = self.token_endpoint();
        let signing =
            |e: crate::client::agent_key::KeyFileError| ClientError::Signing(e.to_string());
        let assertion = key
            .assertion(&endpoint, now, chrono::Duration::seconds(60))
            .map_err(signing)?;
        let proof = key
            .dpop_proof("POST", &endpoint, None, now)
            .map_err(signing)?;
        let tokens = self
            .client_credentials_dpop(&assertion, scope, &proof)
            .await?;
        Ok((self.with_tokens(&tokens, key, clock), tokens))
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
