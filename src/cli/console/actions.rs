//! The headless commands for action requests (AGT's approvals held by the webhook):
//! `requests ls --source agt`, and `approve ar_… --reason …` / `deny ar_… --reason …`, which
//! decide one execution (no `--for`, nothing to narrow).

use super::headless::{HeadlessError, header};
use crate::cli::exit;
use crate::cli::output::{print_json, print_table};
use crate::client::ApiClient;
use crate::console::safe_text::one_line as safe;
use crate::console::state::human_duration;
use crate::protocol::actions::{Action, ActionDecisionBody, ActionQuery};
use crate::protocol::query::ListScope;
use crate::protocol::requests::Decision;

/// Whether `id` names an action request (AGT's `approval_request_id`).
pub fn is_action_id(id: &str) -> bool {
    id.starts_with("ar_")
}

/// Who asked, as the inbox says it: the agent's name, or the `agent_id` as sent and the
/// integration it came through.
fn who(a: &Action) -> String {
    let name = a.agent_name.as_deref().unwrap_or(&a.agent_id);
    match &a.integration {
        Some(via) => format!("{} via {}", safe(name), safe(via)),
        None => safe(name),
    }
}

/// `requests ls --source agt`: the pending action requests (mine, or `--all`).
pub async fn list(api: &ApiClient, json: bool, all: bool) -> Result<u8, HeadlessError> {
    let mut query = ActionQuery::pending(500, None);
    query.scope = all.then_some(ListScope::All);
    let list = api.all_actions(query).await?;
    if json {
        print_json(&list)?;
        return Ok(exit::SUCCESS);
    }
    let now = chrono::Utc::now();
    let mut rows = vec![header(&["ID", "AGENT", "OPERATION", "TARGET", "LEFT"])];
    for a in &list {
        rows.push(vec![
            a.id.clone(),
            who(a),
            safe(&a.operation),
            a.target_resource.as_deref().map(safe).unwrap_or_default(),
            human_duration((a.expires_at - now).num_seconds()),
        ]);
    }
    print_table(&rows);
    Ok(exit::SUCCESS)
}

/// `approve ar_…` / `deny ar_…`: one execution, approved or denied with the reason.
pub async fn decide(
    api: &ApiClient,
    id: &str,
    decision: Decision,
    reason: String,
) -> Result<u8, HeadlessError> {
    let body = ActionDecisionBody {
        decision,
        justification: reason,
    };
    let a = api.decide_action(id, &body).await?;
    println!(
        "{} {} of {}: {} @ {} (once)",
        a.status.as_str(),
        a.id,
        who(&a),
        safe(&a.operation),
        a.target_resource.as_deref().map(safe).unwrap_or_default()
    );
    Ok(exit::SUCCESS)
}
