//! The names a console shows: the signed-in person, people by id or UPN, role definitions,
//! groups and access packages.

use axum::Json;
use axum::response::{IntoResponse, Response};

use super::{Call, Failure, odata, render};

const READ_USERS: &[&str] = &["User.ReadBasic.All", "User.Read.All", "Directory.Read.All"];
const READ_ROLES: &[&str] = &[
    "RoleManagement.Read.Directory",
    "RoleManagement.ReadWrite.Directory",
    "Directory.Read.All",
];
const READ_GROUPS: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
];
const READ_PACKAGES: &[&str] = &[
    "EntitlementManagement.Read.All",
    "EntitlementManagement.ReadWrite.All",
];

pub fn me(call: &Call) -> Result<Response, Failure> {
    call.require(&[
        "User.Read",
        "User.ReadBasic.All",
        "User.Read.All",
        "Directory.Read.All",
    ])?;
    let world = call.app.world();
    let u = world
        .directory
        .user(&call.caller.oid)
        .ok_or_else(|| Failure::not_found("The signed-in user no longer exists."))?;
    let mut v = render::user(u);
    v["@odata.context"] = serde_json::json!(format!(
        "{}/{}/$metadata#users/$entity",
        call.app.settings().base_url,
        call.version()
    ));
    Ok(Json(v).into_response())
}

pub fn user(call: &Call, key: &str) -> Result<Response, Failure> {
    call.require(READ_USERS)?;
    let world = call.app.world();
    world
        .directory
        .user_by_key(key)
        .map(|u| Json(render::user(u)).into_response())
        .ok_or_else(|| {
            Failure::new(
                axum::http::StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
            )
        })
}

pub fn users(call: &Call) -> Result<Response, Failure> {
    call.require(READ_USERS)?;
    let items = {
        let world = call.app.world();
        world.directory.users.iter().map(render::user).collect()
    };
    let items = odata::filter(call, items)?;
    odata::page(call, items, "user")
}

pub fn role_definition(call: &Call, id: &str) -> Result<Response, Failure> {
    call.require(READ_ROLES)?;
    let world = call.app.world();
    world
        .directory
        .role_definition(id)
        .map(|r| Json(render::role_definition(r)).into_response())
        .ok_or_else(|| Failure::not_found(format!("No role definition '{id}'.")))
}

pub fn role_definitions(call: &Call) -> Result<Response, Failure> {
    call.require(READ_ROLES)?;
    let items = {
        let world = call.app.world();
        world
            .directory
            .role_definitions
            .iter()
            .map(render::role_definition)
            .collect()
    };
    let items = odata::filter(call, items)?;
    odata::page(call, items, "unifiedRoleDefinition")
}

pub fn group(call: &Call, id: &str) -> Result<Response, Failure> {
    call.require(READ_GROUPS)?;
    let world = call.app.world();
    world
        .directory
        .group(id)
        .map(|g| Json(render::group(g)).into_response())
        .ok_or_else(|| {
            Failure::new(
                axum::http::StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                format!("Resource '{id}' does not exist."),
            )
        })
}

pub fn access_package(call: &Call, id: &str) -> Result<Response, Failure> {
    call.require(READ_PACKAGES)?;
    let world = call.app.world();
    world
        .directory
        .access_package(id)
        .map(|p| Json(render::access_package(p)).into_response())
        .ok_or_else(|| Failure::not_found(format!("No access package '{id}'.")))
}
