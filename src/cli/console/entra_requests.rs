//! `requests ls --source entra`, and `approve` / `deny` on Entra ids: the PIM approvals that
//! wait on the signed-in person (directory roles, PIM for Groups, access packages), decided
//! in Graph and recorded in the governance server's audit chain, with the exit codes of the
//! governance server's own requests.

use chrono::{DateTime, Utc};

use super::HeadlessError;
use super::entra::EntraCli;
use crate::cli::exit;
use crate::cli::output::{print_json, print_table};
use crate::client::ApiClient;
use crate::client::graph::{
    DecideError, Decision, DecisionOutcome, EntraApprovals, GraphError, check_justification,
    decide_and_record,
};
use crate::console::safe_text::one_line as safe;
use crate::console::state::human_duration;
use crate::domain::entra::{EntraSource, Expiration, RequestedWindow};

/// Whether `id` names one of the governance server's own requests (`req_…`).
pub fn is_local_id(id: &str) -> bool {
    id.starts_with("req_") || super::actions::is_action_id(id)
}

fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%MZ").to_string()
}

/// `approval → 2026-11-24 13:00Z (PT2H)`: from when, to the exact end if approved now.
pub fn window_text(w: &RequestedWindow, now: DateTime<Utc>) -> String {
    let start = w.start.map(at).unwrap_or_else(|| "approval".into());
    let end = w.ends(now).map(at).unwrap_or_else(|| "no end".into());
    match &w.expiration {
        Expiration::AfterDuration { duration } => {
            format!("{start} → {end} ({})", duration.as_str())
        }
        _ => format!("{start} → {end}"),
    }
}

fn shorten(s: &str, max: usize) -> String {
    let one = safe(s);
    match one.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

/// The exit code of a decision's outcome: done 0; someone (or I) decided first, expired, or
/// not my turn 5; not mine or gone 4.
pub fn outcome_code(outcome: &DecisionOutcome) -> u8 {
    match outcome {
        DecisionOutcome::Done { .. } => exit::SUCCESS,
        DecisionOutcome::DecidedElsewhere { .. }
        | DecisionOutcome::AlreadyDecided { .. }
        | DecisionOutcome::NotYourTurn { .. }
        | DecisionOutcome::Expired { .. } => exit::CONFLICT,
        DecisionOutcome::NotApprover { .. } | DecisionOutcome::Gone { .. } => exit::REFUSED,
    }
}

impl EntraCli {
    fn approvals(&self) -> Result<EntraApprovals, HeadlessError> {
        let tokens = self.tokens()?;
        Ok(EntraApprovals::for_tokens(&tokens, self.clock.clone())?)
    }

    /// `requests ls --source entra`: every source in turn; one that fails is said on stderr
    /// (with Graph's request-id) and the others still listed; exit 1 if any failed.
    pub async fn list(&self, json: bool) -> Result<u8, HeadlessError> {
        let approvals = self.approvals()?;
        let mut rows = Vec::new();
        let mut failed: Option<GraphError> = None;
        for source in EntraSource::ALL {
            match approvals.list(source).await {
                Ok(mut listed) => rows.append(&mut listed),
                Err(e) => {
                    eprintln!("error: {}: {}", source.label(), safe(&e.to_string()));
                    failed = Some(e);
                }
            }
        }
        if json {
            print_json(&rows)?;
        } else {
            let now = self.clock.now();
            let mut table = vec![
                [
                    "ID",
                    "SOURCE",
                    "REQUESTER",
                    "FOR",
                    "SCOPE",
                    "WINDOW",
                    "LEFT",
                    "TICKET",
                    "JUSTIFICATION",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for r in &rows {
                let mine = if r.is_own(approvals.me()) {
                    " (yours)"
                } else {
                    ""
                };
                table.push(vec![
                    safe(&r.key()),
                    r.source.label().to_owned(),
                    format!("{}{mine}", safe(&r.requester.name_and_upn())),
                    safe(r.target.label()),
                    safe(r.scope.as_deref().unwrap_or("")),
                    window_text(&r.window, now),
                    r.decide_by()
                        .map(|d| human_duration((d - now).num_seconds()))
                        .unwrap_or_default(),
                    r.ticket
                        .as_ref()
                        .and_then(|t| t.number.as_deref())
                        .map(safe)
                        .unwrap_or_default(),
                    shorten(r.justification.as_deref().unwrap_or(""), 60),
                ]);
            }
            print_table(&table);
        }
        Ok(match failed {
            Some(e) => exit::of_graph(&e),
            None => exit::SUCCESS,
        })
    }

    /// `approve ID --reason …` / `deny ID --reason …` on an Entra id (`role:<id>`,
    /// `group:<id>`, `package:<id>`, or a bare id): decided in Graph, then recorded with the
    /// governance server `governed`.
    pub async fn decide(
        &self,
        governed: &ApiClient,
        key: &str,
        decision: Decision,
        reason: &str,
    ) -> Result<u8, HeadlessError> {
        check_justification(reason).map_err(DecideError::from)?;
        let approvals = self.approvals()?;
        let row = match approvals.find(key).await {
            Ok(row) => row,
            Err(e) if e.status() == Some(403) => {
                let refused = DecisionOutcome::NotApprover {
                    request_id: e.request_id().map(str::to_owned),
                };
                println!("{}: {}", safe(key), safe(&refused.describe()));
                return Ok(outcome_code(&refused));
            }
            Err(e) => return Err(e.into()),
        };
        let tenant = self.tokens()?.identity().tenant_id.clone();
        let decided =
            decide_and_record(&approvals, governed, &row, decision, reason, Some(&tenant)).await?;
        let what = format!(
            "{} ({}: {} for {})",
            safe(&row.key()),
            row.source.label(),
            safe(row.target.label()),
            safe(&row.requester.name_and_upn())
        );
        let outcome = &decided.outcome;
        if !outcome.is_done() {
            println!("{what}: {}", safe(&outcome.describe()));
            return Ok(outcome_code(outcome));
        }
        let now = self.clock.now();
        match decision {
            Decision::Approve => println!(
                "approved {what}, {}; Graph request-id {}",
                window_text(&row.window, now),
                outcome.request_id().unwrap_or("?")
            ),
            Decision::Deny => println!(
                "denied {what}; Graph request-id {}",
                outcome.request_id().unwrap_or("?")
            ),
        }
        match decided.recorded {
            Some(Ok(r)) => {
                println!(
                    "recorded in the governance server's audit chain (seq {})",
                    r.seq
                );
                Ok(exit::SUCCESS)
            }
            Some(Err(e)) => {
                eprintln!(
                    "error: decided in Entra, but the governance server did not record it: {e}"
                );
                Ok(match exit::of_client(&e) {
                    exit::SUCCESS => exit::FAILURE,
                    code => code,
                })
            }
            None => Ok(exit::SUCCESS),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::entra::IsoDuration;

    #[test]
    fn windows_read_from_when_to_the_exact_end() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
            .single()
            .unwrap();
        let w = RequestedWindow {
            start: None,
            expiration: Expiration::AfterDuration {
                duration: IsoDuration::parse("PT2H").unwrap(),
            },
        };
        assert_eq!(window_text(&w, now), "approval → 2026-11-24 11:00Z (PT2H)");
        let forever = RequestedWindow {
            start: Some(now),
            expiration: Expiration::NoExpiration,
        };
        assert_eq!(window_text(&forever, now), "2026-11-24 09:00Z → no end");
        assert!(is_local_id("req_0123") && !is_local_id("role:9f2b"));
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("a\u{1b}b", 10), "a\\eb");
    }
}
