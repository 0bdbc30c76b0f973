//! Microsoft Graph under `/v1.0/…` and `/beta/…`: one dispatcher over percent-decoded,
//! case-insensitive path segments (so `filterByCurrentUser(on='approver')` and cast segments
//! match however a client spells them), the bearer check, and Graph's error shape.

mod approvals;
mod lookups;
mod odata;
mod render;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;

use crate::errors::graph_error;
use crate::faults::{LoopNextLink, RequestIds, decoded_path};
use crate::requests::RequestKind;
use crate::state::App;
use crate::tokens::{Caller, verify_graph};

/// A refusal, turned into Graph's error body with the request's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "itemNotFound", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "accessDenied", message)
    }
}

/// One Graph request, authenticated.
#[derive(Debug)]
pub struct Call {
    pub app: App,
    pub ids: RequestIds,
    pub method: Method,
    pub beta: bool,
    /// Percent-decoded segments after the version, as sent.
    pub segs: Vec<String>,
    /// The decoded path (`/v1.0/…`), for `@odata.nextLink`.
    pub path: String,
    pub raw_query: Option<String>,
    pub query: Vec<(String, String)>,
    pub caller: Caller,
    pub loop_next: bool,
    pub body: Bytes,
}

impl Call {
    pub fn version(&self) -> &'static str {
        if self.beta { "beta" } else { "v1.0" }
    }

    /// A query option by name, with or without its `$`, case-insensitively.
    pub fn param(&self, name: &str) -> Option<&str> {
        let name = name.trim_start_matches('$');
        self.query
            .iter()
            .find(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The token must hold one of `any` (least privileged first).
    pub fn require(&self, any: &[&str]) -> Result<(), Failure> {
        if self.caller.has_any(any) {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                format!(
                    "Insufficient privileges to complete the operation. One of these scopes is needed: {}.",
                    any.join(", ")
                ),
            ))
        }
    }

    /// The names in `$expand`, lower case, without nested options.
    pub fn expand(&self) -> Vec<String> {
        self.param("expand")
            .unwrap_or("")
            .split(',')
            .map(|e| {
                e.split('(')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|e| !e.is_empty())
            .collect()
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `filterByCurrentUser(on='approver')` → `approver`.
fn filter_by_current_user(segment: &str) -> Option<String> {
    let lower = segment.to_ascii_lowercase();
    let inner = lower
        .strip_prefix("filterbycurrentuser(")?
        .strip_suffix(')')?;
    let value = inner.strip_prefix("on=")?.trim_matches('\'');
    Some(value.to_owned())
}

pub async fn dispatch(
    State(app): State<App>,
    Extension(ids): Extension<RequestIds>,
    looped: Option<Extension<LoopNextLink>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = decoded_path(uri.path());
    let mut parts = path.split('/').filter(|s| !s.is_empty()).map(str::to_owned);
    let beta = parts.next().is_some_and(|v| v.eq_ignore_ascii_case("beta"));
    let segs: Vec<String> = parts.collect();
    let caller = {
        let now = app.now();
        let world = app.world();
        let issuer = app.issuer(&world.directory.tenant_id);
        bearer(&headers).and_then(|t| verify_graph(&world, &issuer, t, now))
    };
    let Some(caller) = caller else {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty, expired or not valid for this resource.",
            &ids,
        );
    };
    let raw_query = uri.query().map(str::to_owned);
    let query = raw_query
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let call = Call {
        app,
        ids,
        method,
        beta,
        segs,
        path,
        raw_query,
        query,
        caller,
        loop_next: looped.is_some(),
        body,
    };
    match route(&call) {
        Ok(response) => response,
        Err(f) => graph_error(f.status, &f.code, &f.message, &call.ids),
    }
}

fn route(call: &Call) -> Result<Response, Failure> {
    use RequestKind::{AccessPackage, Group, Role};
    let lower: Vec<String> = call.segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let s = &call.segs;
    let get = call.method == Method::GET;
    let post = call.method == Method::POST;
    let patch = call.method == Method::PATCH;
    const ROLE_REQUESTS: [&str; 3] = [
        "rolemanagement",
        "directory",
        "roleassignmentschedulerequests",
    ];
    const ROLE_APPROVALS: [&str; 3] = ["rolemanagement", "directory", "roleassignmentapprovals"];
    const GROUP: [&str; 3] = ["identitygovernance", "privilegedaccess", "group"];
    const PACKAGES: [&str; 2] = ["identitygovernance", "entitlementmanagement"];
    match l.as_slice() {
        ["me"] if get => lookups::me(call),
        ["users"] if get => lookups::users(call),
        ["users", _] if get => lookups::user(call, &s[1]),
        ["rolemanagement", "directory", "roledefinitions"] if get => {
            lookups::role_definitions(call)
        }
        ["rolemanagement", "directory", "roledefinitions", _] if get => {
            lookups::role_definition(call, &s[3])
        }
        ["groups", _] if get => lookups::group(call, &s[1]),
        [a, b, c, f] if [*a, *b, *c] == ROLE_REQUESTS && get => match filter_by_current_user(f) {
            Some(on) => approvals::list(call, Role, &on),
            None => approvals::get_request(call, Role, &s[3]),
        },
        [a, b, c] if [*a, *b, *c] == ROLE_REQUESTS && post => approvals::create_role_request(call),
        [a, b, c, _, "cancel"] if [*a, *b, *c] == ROLE_REQUESTS && post => {
            approvals::cancel(call, Role, &s[3])
        }
        [a, b, c, _] if [*a, *b, *c] == ROLE_APPROVALS && call.beta && get => {
            approvals::get_approval(call, Role, &s[3])
        }
        [a, b, c, _, "steps"] if [*a, *b, *c] == ROLE_APPROVALS && call.beta && get => {
            approvals::list_stages(call, Role, &s[3])
        }
        [a, b, c, _, "steps", _] if [*a, *b, *c] == ROLE_APPROVALS && call.beta && get => {
            approvals::get_stage(call, Role, &s[3], &s[5])
        }
        [a, b, c, _, "steps", _] if [*a, *b, *c] == ROLE_APPROVALS && call.beta && patch => {
            approvals::decide(call, Role, &s[3], &s[5])
        }
        [a, b, c, "assignmentschedulerequests", f] if [*a, *b, *c] == GROUP && get => {
            match filter_by_current_user(f) {
                Some(on) => approvals::list(call, Group, &on),
                None => approvals::get_request(call, Group, &s[4]),
            }
        }
        [a, b, c, "assignmentapprovals", _] if [*a, *b, *c] == GROUP && get => {
            approvals::get_approval(call, Group, &s[4])
        }
        [a, b, c, "assignmentapprovals", _, stages, _]
            if [*a, *b, *c] == GROUP && patch && *stages == stage_word(call.beta) =>
        {
            approvals::decide(call, Group, &s[4], &s[6])
        }
        [a, b, "assignmentrequests", f] if [*a, *b] == PACKAGES && get => {
            match filter_by_current_user(f) {
                Some(on) => approvals::list(call, AccessPackage, &on),
                None => approvals::get_request(call, AccessPackage, &s[3]),
            }
        }
        [a, b, "accesspackageassignmentapprovals", _] if [*a, *b] == PACKAGES && get => {
            approvals::get_approval(call, AccessPackage, &s[3])
        }
        [a, b, "accesspackageassignmentapprovals", _, "stages", _]
            if [*a, *b] == PACKAGES && patch =>
        {
            approvals::decide(call, AccessPackage, &s[3], &s[5])
        }
        [a, b, "accesspackages", _] if [*a, *b] == PACKAGES && get => {
            lookups::access_package(call, &s[3])
        }
        _ => Err(Failure::bad_request(format!(
            "Resource not found for the segment '{}'.",
            call.segs.last().map(String::as_str).unwrap_or("")
        ))),
    }
}

/// PIM for Groups decides `stages` in v1.0 and `steps` in beta.
fn stage_word(beta: bool) -> &'static str {
    if beta { "steps" } else { "stages" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_by_current_user_is_read_however_spelled() {
        assert_eq!(
            filter_by_current_user("filterByCurrentUser(on='approver')").as_deref(),
            Some("approver")
        );
        assert_eq!(
            filter_by_current_user("FILTERBYCURRENTUSER(on='Principal')").as_deref(),
            Some("principal")
        );
        assert_eq!(filter_by_current_user("9f2b5ddb"), None);
    }
}
