//! Emulator-only: the page a person opens to finish a device sign-in (Entra's is
//! `microsoft.com/devicelogin`). It has no passwords: pick a person of the tenant, enter the
//! code, approve or decline. Tests use [`crate::Emulator::approve_device_code`] instead.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Html;

use crate::state::{App, DeviceStatus};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub async fn page(State(app): State<App>) -> Html<String> {
    let world = app.world();
    let options: String = world
        .directory
        .users
        .iter()
        .map(|u| {
            format!(
                "<option value=\"{}\">{} ({})</option>",
                escape(&u.id),
                escape(&u.display_name),
                escape(&u.user_principal_name)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Entra emulator sign-in</title></head>\
         <body><h1>Entra emulator: device sign-in</h1><p>Emulator only: no password is asked.</p>\
         <form method=\"post\" action=\"/devicelogin\">\
         <label>Code <input name=\"user_code\" autofocus></label>\
         <label>Sign in as <select name=\"user_id\">{options}</select></label>\
         <button name=\"action\" value=\"approve\">Continue</button>\
         <button name=\"action\" value=\"decline\">Cancel</button></form></body></html>"
    ))
}

/// Finishes a sign-in: `approve` as `user_id`, or `decline`.
pub fn settle(app: &App, user_code: &str, user_id: Option<&str>) -> Result<(), String> {
    let now = app.now();
    let mut world = app.world();
    if let Some(user) = user_id
        && world.directory.user(user).is_none()
    {
        return Err(format!("no user {user} in the tenant"));
    }
    let entry = world
        .device_codes
        .iter_mut()
        .find(|d| d.user_code.eq_ignore_ascii_case(user_code.trim()) && now < d.expires_at)
        .ok_or_else(|| format!("no pending sign-in with code {user_code}"))?;
    if entry.status != DeviceStatus::Pending {
        return Err(format!(
            "the sign-in with code {user_code} is already finished"
        ));
    }
    entry.status = match user_id {
        Some(user) => DeviceStatus::Approved {
            user_id: user.to_owned(),
        },
        None => DeviceStatus::Declined,
    };
    Ok(())
}

pub async fn submit(State(app): State<App>, body: Bytes) -> Html<String> {
    let params: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let code = params.get("user_code").map(String::as_str).unwrap_or("");
    let approve = params.get("action").is_some_and(|a| a == "approve");
    let user = params.get("user_id").map(String::as_str);
    let outcome = settle(&app, code, if approve { user } else { None });
    Html(match outcome {
        Ok(()) if approve => "<!doctype html><p>Signed in. You can close this window.</p>".into(),
        Ok(()) => "<!doctype html><p>Sign-in declined.</p>".into(),
        Err(e) => format!(
            "<!doctype html><p>{}</p><p><a href=\"/devicelogin\">Try again</a></p>",
            escape(&e)
        ),
    })
}
