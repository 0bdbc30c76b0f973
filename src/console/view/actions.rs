//! The detail of an action request: which agent (as the server knows it, and the `agent_id`
//! as sent), through which integration, for whom, the operation and its target, the policy
//! and approval chain that asked, the digests an approval is bound to, its time left, and once
//! decided who decided and why. An approval is for one execution, and the screen says so.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::Line;
use ratatui::widgets::Clear;

use super::{Frame2, local_date, safe, safe_lines, scrolled_panel};
use crate::console::keymap::Command;
use crate::console::state::{State, human_duration};
use crate::protocol::actions::{Action as ActionRequest, ActionStatus};

pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    state: &State,
    a: &ActionRequest,
    scroll: u16,
    ctx: Frame2<'_>,
) {
    frame.render_widget(Clear, area);
    let field = |name: &str, value: String| Line::raw(format!("{name:<15}{value}"));
    let or_dash = |v: Option<&str>| safe(v.unwrap_or("—"));
    let deciding = state.actions.deciding.contains(&a.id);
    let left = (a.expires_at - ctx.now).num_seconds();
    let mut lines: Vec<Line> = vec![
        Line::styled(
            format!("Action request {}", safe(&a.id)),
            ctx.theme.accent.add_modifier(Modifier::BOLD),
        ),
        Line::raw(""),
        field(
            "status",
            match a.status {
                ActionStatus::Pending if deciding => "pending (deciding…)".to_owned(),
                ActionStatus::Pending => "pending".to_owned(),
                other => format!("{} (no longer pending)", other.as_str()),
            },
        ),
        field(
            "expires",
            if left > 0 {
                format!(
                    "{} (in {})",
                    local_date(a.expires_at, ctx),
                    human_duration(left)
                )
            } else {
                format!("{} (passed)", local_date(a.expires_at, ctx))
            },
        ),
    ];
    let decided = matches!(a.status, ActionStatus::Approved | ActionStatus::Denied);
    if decided {
        let by = a
            .approver_username
            .as_deref()
            .or(a.approver_id.as_deref())
            .unwrap_or("—");
        lines.push(field("decided by", safe(by)));
        if let Some(at) = a.decided_at {
            lines.push(field("decided at", local_date(at, ctx)));
        }
    }
    lines.extend([
        Line::raw(""),
        field("agent", or_dash(a.agent_name.as_deref())),
        field("  agent_id", safe(&a.agent_id)),
        field("  DID", or_dash(a.agent_did.as_deref())),
        field(
            "integration",
            safe(
                a.integration
                    .as_deref()
                    .unwrap_or("— (the agent's own token)"),
            ),
        ),
        field("subject", or_dash(a.subject_id.as_deref())),
        field("operation", safe(&a.operation)),
        field("target", or_dash(a.target_resource.as_deref())),
        Line::raw(""),
        field("policy", safe(&a.policy_version)),
        field("  decision id", safe(&a.policy_decision_id)),
        field(
            "approval chain",
            format!(
                "{} version {}",
                safe(&a.approval_chain_id),
                safe(&a.approval_chain_version)
            ),
        ),
        field("action digest", safe(&a.action_digest)),
        field("input digest", safe(&a.input_digest)),
        field("asked at", local_date(a.created_at, ctx)),
    ]);
    if decided {
        lines.push(Line::raw(""));
        lines.push(Line::styled("justification", ctx.theme.dim));
        lines.extend(
            safe_lines(a.justification.as_deref().unwrap_or("—"))
                .into_iter()
                .map(Line::raw),
        );
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "An approval is for one execution: the agent may run this exact action (its action digest) once; nothing is granted beyond it.",
        ctx.theme.dim,
    ));
    let keys = &state.keymap;
    if a.status == ActionStatus::Pending {
        let how = if deciding {
            "Deciding… (waiting for the server)".to_owned()
        } else {
            format!(
                "{} approves once, {} denies (a justification is required)",
                keys.first_key(Command::Approve),
                keys.first_key(Command::Deny)
            )
        };
        lines.push(Line::styled(how, ctx.theme.warn));
    }
    scrolled_panel(frame, area, "action request", lines, scroll, keys, ctx);
}
