//! The grants screen: every grant with its countdown, and revoking one now.

use chrono::{DateTime, Utc};

use super::dialog::{self, Confirm};
use super::{Effect, EffectError, Load, Modal, State};
use crate::console::safe_text::one_line;
use crate::protocol::requests::{Grant, Suspension};

impl State {
    /// Indices of the grants shown.
    pub fn visible_grants(&self) -> Vec<usize> {
        (0..self.grants.len())
            .filter(|i| {
                let g = &self.grants[*i];
                let name = self
                    .agent(&g.agent_did)
                    .map(|a| a.name.as_str())
                    .unwrap_or("");
                self.list_match(&[name, &g.agent_did, &g.capabilities.join(" ")])
            })
            .collect()
    }

    /// The grant under the cursor on the grants screen.
    pub fn selected_grant(&self) -> Option<&Grant> {
        self.visible_grants()
            .get(self.grants_selected)
            .and_then(|i| self.grants.get(*i))
    }

    pub(super) fn set_grants(&mut self, result: Result<Vec<Grant>, EffectError>) {
        match result {
            Ok(list) => {
                self.grants = list;
                self.grants_load = Load::Ready;
                self.grants_selected = self
                    .grants_selected
                    .min(self.grants.len().saturating_sub(1));
            }
            Err(e) => self.grants_load = Load::Failed(e),
        }
    }

    pub(super) fn open_revoke_grant(&mut self) {
        let Some(g) = self.selected_grant().filter(|g| g.active) else {
            return;
        };
        let name = self
            .agent(&g.agent_did)
            .map(|a| a.name.clone())
            .unwrap_or_else(|| g.agent_did.clone());
        let dialog = dialog::reason(
            format!(
                "Revoke {} from {} now",
                g.capabilities.join(", "),
                one_line(&name)
            ),
            Confirm::RevokeGrant { id: g.id.clone() },
        );
        self.modals.push(Modal::Dialog(dialog));
    }

    pub(super) fn on_grant_revoked(
        &mut self,
        result: Result<Suspension, EffectError>,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        match result {
            Ok(s) => self.flash(
                format!(
                    "revoked {} grant(s) and {} token(s)",
                    s.grants_revoked.len(),
                    s.tokens_revoked
                ),
                false,
                now,
            ),
            Err(e) => self.flash(format!("revocation refused: {e}"), true, now),
        }
        vec![Effect::LoadGrants]
    }
}
