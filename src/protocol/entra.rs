//! The claims of a Microsoft Entra v2.0 access token, as the governance server reads them from
//! a trusted issuer (entra-graph.md §1; Entra's access-token claims reference). Only what the
//! server uses; unknown claims are ignored, and anything Entra may leave out is optional.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EntraAccessClaims {
    pub iss: String,
    /// The API app's client id (v2.0 tokens) or its App ID URI (v1.0 tokens).
    pub aud: String,
    pub exp: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub iat: Option<i64>,
    /// The tenant that issued the token.
    #[serde(default)]
    pub tid: Option<String>,
    /// The person's object id: stable across applications, the identity the server keys on.
    #[serde(default)]
    pub oid: Option<String>,
    /// Pairwise per application; not used as the identity.
    #[serde(default)]
    pub sub: Option<String>,
    /// Delegated scopes, space-separated.
    #[serde(default)]
    pub scp: Option<String>,
    /// App-role values assigned to the person on the API app.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Group object ids, when the app asks for group claims.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub upn: Option<String>,
    /// The client that asked for the token (v2.0; `appid` in v1.0).
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub appid: Option<String>,
    /// Entra's unique token identifier.
    #[serde(default)]
    pub uti: Option<String>,
}
