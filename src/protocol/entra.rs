//! The claims of a Microsoft Entra v2.0 access token, as the governance server reads them from
//! a trusted issuer (entra-graph.md §1; Entra's access-token claims reference). Only what the
//! server uses; unknown claims are ignored, and anything Entra may leave out is optional.
//! And the body a console sends to record a decision it made in Entra.

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

/// `POST /v1/entra/decisions`: a decision made in Microsoft Entra (a PIM approval step or
/// stage PATCHed by the console and acknowledged by Graph), for the governance server's audit
/// chain. The server records who sent it; it cannot check Graph, so this is the sponsor's
/// account of what Graph acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntraDecisionBody {
    pub source: crate::domain::entra::EntraSource,
    /// The Entra request's id (its approval's id too).
    pub request_id: String,
    /// The approval step or stage decided.
    pub stage_id: String,
    pub decision: crate::protocol::requests::Decision,
    pub justification: String,
    /// Graph's `request-id` of the PATCH that made it.
    #[serde(default)]
    pub graph_request_id: Option<String>,
    /// The `client-request-id` the console sent with it.
    pub client_request_id: String,
    /// The Entra tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The role definition, group or access package.
    pub target_id: String,
    #[serde(default)]
    pub target_name: Option<String>,
    /// Who asked: object id and user principal name.
    pub requester_id: String,
    #[serde(default)]
    pub requester_upn: Option<String>,
}

/// The audit event that records an Entra decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntraDecisionRecorded {
    /// Its `seq` in the audit chain.
    pub seq: i64,
}
