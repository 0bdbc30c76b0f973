//! Agents' token issuance as a group-committed batch: the issuances queued together are
//! checked with one read and written with one list of multi-row statements, two round trips
//! to SQLite's worker thread for the whole batch instead of four or five per token. Each round
//! trip (a hand-off to that thread and back) cost more than the statement it carried.
//!
//! Rows go in as one JSON array bound to `json_each`, so a statement's text is the same for
//! every batch size and stays prepared.
//!
//! The group commit's first pass ([`Batch::run_committed`]) folds the transaction's ends into
//! the same two round trips: `BEGIN IMMEDIATE` goes with the read and `COMMIT` with the
//! writes, instead of a round trip each.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::SqliteConnection;

use super::audit::{ChainHead, seal_all_after};
use super::group::Batch;
use super::ms;
use crate::domain::effective;
use crate::protocol::agents::AgentStatus;
use crate::protocol::audit::{Actor, AuditAction, action};
use crate::server::store::{AccessTokenRecord, NewAuditEvent, StoreError, StoreResult};

/// One agent's token issuance: the client assertion it consumes and the token it stores.
pub(super) struct Issuance {
    pub assertion_jti: String,
    pub assertion_expires_at: DateTime<Utc>,
    pub access: AccessTokenRecord,
    pub grant_ids: Vec<String>,
    pub now: DateTime<Utc>,
}

/// Issuances share a transaction: each answers `true` when its token is stored, `false` when
/// its assertion's `jti` was used before, or the refusal of an inactive agent or ended grant.
pub(super) struct Issuances;

impl Batch for Issuances {
    type Write = Issuance;
    type Answer = bool;

    fn run<'c>(
        tx: &'c mut SqliteConnection,
        head: &'c mut ChainHead,
        writes: &'c [Issuance],
    ) -> BoxFuture<'c, StoreResult<Vec<StoreResult<bool>>>> {
        Box::pin(issue_all(tx, head, writes, Ends::Inside))
    }

    fn run_committed<'c>(
        conn: &'c mut SqliteConnection,
        writes: &'c [Issuance],
    ) -> BoxFuture<'c, StoreResult<Vec<StoreResult<bool>>>> {
        Box::pin(async move { issue_all(conn, &mut None, writes, Ends::Own).await })
    }
}

/// Whether a batch runs inside a transaction begun for it, or begins and commits its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ends {
    Inside,
    /// `BEGIN IMMEDIATE` before the read, `COMMIT` after the writes, in the same round trips.
    Own,
}

/// Issues `writes` in order inside `tx`. A refused or replayed issuance writes nothing; the
/// others' assertions, tokens and audit events are written together, the events chained in
/// order. Two round trips to SQLite's thread: one read of every fact the rules need, one
/// write of everything.
async fn issue_all(
    conn: &mut SqliteConnection,
    head: &mut ChainHead,
    writes: &[Issuance],
    ends: Ends,
) -> StoreResult<Vec<StoreResult<bool>>> {
    // Re-checked inside the writer transaction: a suspension or grant revocation that
    // committed after the caller looked wins, and no token is issued. Nothing changes between
    // this read and the writes below: the transaction holds the only write lock.
    let facts = Facts::read(conn, writes, ends).await?;
    let mut answers = Vec::with_capacity(writes.len());
    let mut issuing = Vec::with_capacity(writes.len());
    let mut consumed = HashSet::new();
    for w in writes {
        let subject = w.access.subject.as_str();
        let status = facts
            .statuses
            .get(subject)
            .and_then(|s| AgentStatus::parse(s));
        let now = ms(w.now);
        let grants_live = w.grant_ids.iter().all(|id| {
            facts
                .live_grants
                .get(id.as_str())
                .is_some_and(|(agent, end)| agent == subject && *end > now)
        });
        if let Err(refusal) = effective::may_issue(status, grants_live) {
            answers.push(Err(refusal.into()));
            continue;
        }
        // Used before, or earlier in this batch: a replay either way.
        let key = (subject, w.assertion_jti.as_str());
        let fresh = !facts
            .used
            .iter()
            .any(|(i, j)| (i.as_str(), j.as_str()) == key)
            && consumed.insert(key);
        answers.push(Ok(fresh));
        if fresh {
            issuing.push(w);
        }
    }
    if !issuing.is_empty() {
        write_issued(conn, head, facts.head, &issuing, ends).await?;
    } else if ends == Ends::Own {
        // Nothing to write (every issuance refused or replayed): the read's transaction ends.
        sqlx::query("COMMIT").execute(&mut *conn).await?;
    }
    Ok(answers)
}

fn json<T: serde::Serialize>(rows: &T) -> StoreResult<String> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("issuance facts: {e}")))
}

/// What the rules need to know about a batch, read in one statement. Each part comes back as
/// one JSON value: one row crosses from SQLite's thread instead of one per agent or grant.
/// Plain `?`s, bound in order: the statement is also the second of a list (see
/// [`write_issued`]).
macro_rules! batch_facts {
    () => {
        "SELECT
    (SELECT json_group_object(did, status) FROM agents
      WHERE did IN (SELECT value FROM json_each(?))),
    (SELECT json_group_object(id, json_array(agent_did, not_after)) FROM grants
      WHERE id IN (SELECT value FROM json_each(?)) AND revoked_at IS NULL),
    (SELECT json_group_array(json_array(c.issuer, c.jti))
       FROM json_each(?) AS a
       JOIN client_assertions AS c ON c.issuer = a.value->>0 AND c.jti = a.value->>1),
    (SELECT json_array(seq, hash) FROM audit_events ORDER BY seq DESC LIMIT 1)"
    };
}
const BATCH_FACTS: &str = batch_facts!();
/// The same, as the first statement of the batch's own transaction.
const BEGIN_WITH_FACTS: &str = concat!("BEGIN IMMEDIATE;\n", batch_facts!());

/// The facts of [`BATCH_FACTS`].
struct Facts {
    /// Each agent's status, by DID (absent: no such agent).
    statuses: HashMap<String, String>,
    /// Grants not revoked, by id: their agent and end (ms).
    live_grants: HashMap<String, (String, i64)>,
    /// The batch's client assertions already consumed: (issuer, jti). Almost always none.
    used: Vec<(String, String)>,
    /// The chain's head.
    head: ChainHead,
}

impl Facts {
    async fn read(
        conn: &mut SqliteConnection,
        writes: &[Issuance],
        ends: Ends,
    ) -> StoreResult<Self> {
        let dids: HashSet<&str> = writes.iter().map(|w| w.access.subject.as_str()).collect();
        let grants: HashSet<&str> = writes
            .iter()
            .flat_map(|w| w.grant_ids.iter().map(String::as_str))
            .collect();
        let assertions: Vec<(&str, &str)> = writes
            .iter()
            .map(|w| (w.access.subject.as_str(), w.assertion_jti.as_str()))
            .collect();
        let sql = match ends {
            Ends::Inside => BATCH_FACTS,
            Ends::Own => BEGIN_WITH_FACTS,
        };
        let (statuses, live_grants, used, head): (String, String, String, Option<String>) =
            sqlx::query_as(sql)
                .bind(json(&dids)?)
                .bind(json(&grants)?)
                .bind(json(&assertions)?)
                .fetch_one(&mut *conn)
                .await?;
        Ok(Self {
            statuses: from_json(&statuses)?,
            live_grants: from_json(&live_grants)?,
            used: from_json(&used)?,
            head: head.as_deref().map(from_json).transpose()?,
        })
    }
}

/// Consumes the assertions, stores the tokens and the grants they carry, and appends their
/// audit events after `head` (or after `read_head`, the head the facts read, when `head` is
/// not known yet): one statement list, one round trip, which ends with `COMMIT` when the batch
/// owns its transaction. A plain `INSERT` for the assertions: were one used after all, the
/// batch fails rather than issue on it twice. Each statement takes one plain `?`, bound in
/// order (sqlx numbers `?NNN` wrongly past the first statement of a list).
async fn write_issued(
    conn: &mut SqliteConnection,
    head: &mut ChainHead,
    read_head: ChainHead,
    issuing: &[&Issuance],
    ends: Ends,
) -> StoreResult<()> {
    let assertions: Vec<(&str, &str, i64)> = issuing
        .iter()
        .map(|w| {
            (
                w.access.subject.as_str(),
                w.assertion_jti.as_str(),
                ms(w.assertion_expires_at),
            )
        })
        .collect();
    let tokens: Vec<_> = issuing
        .iter()
        .map(|w| {
            let a = &w.access;
            (
                &a.jti,
                a.subject_kind.as_str(),
                &a.subject,
                &a.client_id,
                &a.family_id,
                &a.scope,
                ms(a.issued_at),
                ms(a.expires_at),
            )
        })
        .collect();
    let carried: Vec<(&String, &String)> = issuing
        .iter()
        .flat_map(|w| w.grant_ids.iter().map(|g| (g, &w.access.jti)))
        .collect();
    if head.is_none() {
        *head = read_head;
    }
    let events = issuing.iter().map(|w| (issued_event(w), w.now)).collect();
    let events = seal_all_after(head, events)?;
    let sql = match ends {
        Ends::Inside => WRITE_ISSUED,
        Ends::Own => WRITE_ISSUED_AND_COMMIT,
    };
    sqlx::query(sql)
        .bind(json(&assertions)?)
        .bind(json(&tokens)?)
        .bind(json(&carried)?)
        .bind(events)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The writes of [`write_issued`]: the assertions, the tokens, their grants, their events.
macro_rules! write_issued {
    () => {
        "INSERT INTO client_assertions (issuer, jti, expires_at)
         SELECT value->>0, value->>1, value->>2 FROM json_each(?);
         INSERT INTO access_tokens (jti, subject_kind, subject, client_id, family_id, scope,
                                    issued_at, expires_at)
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6,
                value->>7
         FROM json_each(?);
         INSERT INTO token_grants (grant_id, jti) SELECT value->>0, value->>1 FROM json_each(?);
         INSERT INTO audit_events (seq, at, actor_kind, actor_id, action, subject, details,
                                   prev_hash, hash)
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6,
                value->>7, value->>8
         FROM json_each(?);"
    };
}
const WRITE_ISSUED: &str = write_issued!();
/// The same, and the batch's own transaction committed.
const WRITE_ISSUED_AND_COMMIT: &str = concat!(write_issued!(), "\n         COMMIT;");

fn issued_event(w: &Issuance) -> NewAuditEvent {
    let access = &w.access;
    NewAuditEvent::new(
        Actor::agent(access.subject.clone()),
        access.subject.clone(),
        AuditAction::TokenIssued(action::TokenIssued {
            jti: access.jti.clone(),
            scope: access.scope.clone(),
            expires_at: access.expires_at,
            grants: w.grant_ids.clone(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::group::GroupCommit;
    use super::*;
    use crate::domain::role::Role;
    use crate::protocol::oauth::SubjectKind;
    use crate::server::chain::verify_chain;
    use crate::server::store::sqlite::SqliteStore;
    use crate::server::store::{
        AgentStore, AuditScope, AuditStore, GrantStore, NewAgent, Registered, SponsorUpsert,
        SuspendTarget, TokenStore,
    };

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_900_000_000 + seconds, 0)
            .single()
            .unwrap_or_default()
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("a fresh store opens");
        (dir, store)
    }

    async fn agents(store: &SqliteStore, n: u32) -> Vec<String> {
        let sponsor = store
            .upsert_sponsor(
                &SponsorUpsert {
                    username: "alice".into(),
                    display_name: "Alice".into(),
                    roles: vec![Role::Sponsor],
                    password_hash: "not a hash".into(),
                    source: "config".into(),
                },
                Actor::system(),
                at(0),
            )
            .await
            .expect("sponsor");
        let mut dids = Vec::new();
        for i in 0..n {
            let registered = store
                .register_agent(
                    NewAgent {
                        did: format!("did:mesh:{i:032x}"),
                        name: format!("agent-{i}"),
                        public_key: format!("key-{i}"),
                        capabilities: vec!["read:x".into()],
                        sponsor_id: sponsor.id.clone(),
                        entra_object_id: None,
                        model: None,
                        runtime: None,
                        max_agents_per_sponsor: 100,
                    },
                    None,
                    at(0),
                )
                .await
                .expect("agent");
            if let Registered::Created(a) = registered {
                dids.push(a.did);
            }
        }
        dids
    }

    fn issuance(agent: &str, assertion: &str, token: &str, grants: &[&str]) -> Issuance {
        Issuance {
            assertion_jti: assertion.into(),
            assertion_expires_at: at(60),
            access: AccessTokenRecord {
                jti: token.into(),
                subject_kind: SubjectKind::Agent,
                subject: agent.into(),
                client_id: agent.into(),
                family_id: None,
                scope: "read:x".into(),
                issued_at: at(2),
                expires_at: at(900),
                revoked_at: None,
            },
            grant_ids: grants.iter().map(|g| (*g).to_owned()).collect(),
            now: at(2),
        }
    }

    /// Runs `writes` as one batch in one transaction, as the group commit does, and commits.
    async fn one_batch(store: &SqliteStore, writes: &[Issuance]) -> Vec<String> {
        let mut tx = store.write().await.expect("the writer");
        let answers = Issuances::run(&mut tx, &mut None, writes)
            .await
            .expect("the batch ran");
        tx.commit().await.expect("committed");
        answers
            .into_iter()
            .map(|a| match a {
                Ok(fresh) => fresh.to_string(),
                Err(StoreError::Refused(r)) => r.code().to_owned(),
                Err(e) => format!("error: {e}"),
            })
            .collect()
    }

    async fn stored_tokens(store: &SqliteStore) -> Vec<String> {
        sqlx::query_as::<_, (String,)>("SELECT jti FROM access_tokens ORDER BY jti")
            .fetch_all(&store.reader)
            .await
            .expect("tokens")
            .into_iter()
            .map(|(jti,)| jti)
            .collect()
    }

    #[tokio::test]
    async fn one_batch_refuses_each_bad_issuance_alone() {
        let (_dir, store) = store().await;
        let dids = agents(&store, 2).await;
        let (active, suspended) = (&dids[0], &dids[1]);
        store
            .suspend(
                SuspendTarget::Agent(suspended.clone()),
                "test",
                false,
                Actor::system(),
                at(1),
            )
            .await
            .expect("suspended");
        assert!(
            store
                .consume_assertion(active, "used", at(60))
                .await
                .expect("consumed")
        );
        let answers = one_batch(
            &store,
            &[
                issuance(active, "a1", "t1", &[]),
                issuance(active, "used", "t2", &[]),
                issuance(suspended, "b1", "t3", &[]),
                issuance(active, "a2", "t4", &[]),
                issuance(active, "a1", "t5", &[]),
                issuance(active, "a3", "t6", &["grt_gone"]),
                issuance("did:mesh:unknown", "u1", "t7", &[]),
                issuance(active, "a4", "t8", &[]),
            ],
        )
        .await;
        assert_eq!(
            answers,
            [
                "true",
                "false",
                "agent_inactive",
                "true",
                "false",
                "grant_ended",
                "agent_inactive",
                "true"
            ]
        );
        assert_eq!(stored_tokens(&store).await, ["t1", "t4", "t8"]);
        // A refused issuance consumed nothing: its assertion is still fresh.
        for (agent, jti) in [(suspended, "b1"), (active, "a3")] {
            assert!(
                store
                    .consume_assertion(agent, jti, at(60))
                    .await
                    .expect("answered"),
                "{jti} was consumed by a refused issuance"
            );
        }
        // The tokens' events follow the batch's order, each linked to the one before.
        let report = verify_chain(&store, None).await.expect("verified");
        assert!(report.ok, "{report:?}");
        let issued: Vec<String> = store
            .audit_tail(&AuditScope::All, 10)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.event.action == "token.issued")
            .filter_map(|e| e.event.details["jti"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(issued, ["t1", "t4", "t8"]);
    }

    #[tokio::test]
    async fn a_batch_after_a_batch_continues_the_chain_and_sees_its_assertions() {
        let (_dir, store) = store().await;
        let dids = agents(&store, 3).await;
        let first: Vec<Issuance> = (0..20)
            .map(|i| issuance(&dids[i % 3], &format!("a{i}"), &format!("t{i:02}"), &[]))
            .collect();
        assert!(one_batch(&store, &first).await.iter().all(|a| a == "true"));
        // Every assertion of the first batch again, and one new one.
        let mut second: Vec<Issuance> = (0..20)
            .map(|i| issuance(&dids[i % 3], &format!("a{i}"), &format!("r{i:02}"), &[]))
            .collect();
        second.push(issuance(&dids[0], "fresh", "t20", &[]));
        let answers = one_batch(&store, &second).await;
        assert!(answers[..20].iter().all(|a| a == "false"), "{answers:?}");
        assert_eq!(answers[20], "true");
        assert_eq!(stored_tokens(&store).await.len(), 21);
        let report = verify_chain(&store, None).await.expect("verified");
        assert!(report.ok, "{report:?}");
        let events = store
            .audit_page(&AuditScope::All, 0, 100)
            .await
            .expect("events");
        let issued = events.iter().filter(|e| e.event.action == "token.issued");
        assert_eq!(issued.count(), 21, "one event per token");
    }

    #[tokio::test]
    async fn a_failed_batch_commits_nothing_and_then_runs_one_write_at_a_time() {
        let (_dir, store) = store().await;
        let did = &agents(&store, 1).await[0];
        assert_eq!(
            one_batch(&store, &[issuance(did, "a0", "taken", &[])]).await,
            ["true"]
        );
        // A token id already stored: the batch's writes fail as a whole, after its `BEGIN`.
        let writes = || ["t1", "taken", "t3"].map(|t| issuance(did, &format!("a-{t}"), t, &[]));
        let mut conn = store.writer.acquire().await.expect("the writer");
        assert!(
            Issuances::run_committed(&mut conn, &writes())
                .await
                .is_err()
        );
        let _ = sqlx::Connection::close(conn.detach()).await;
        assert_eq!(stored_tokens(&store).await, ["taken"]);
        // Through the group commit: together first, then each alone on a fresh connection.
        let group = GroupCommit::<Issuances>::start(store.writer.clone(), store.changes.clone());
        let answers = futures::future::join_all(writes().map(|w| group.run(w))).await;
        assert!(
            matches!(answers[..], [Ok(true), Err(_), Ok(true)]),
            "{answers:?}"
        );
        assert_eq!(stored_tokens(&store).await, ["t1", "t3", "taken"]);
        let report = verify_chain(&store, None).await.expect("verified");
        assert!(report.ok, "{report:?}");
    }

    #[tokio::test]
    async fn the_batch_facts_are_index_lookups() {
        let (_dir, store) = store().await;
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {BATCH_FACTS}"))
                .bind("[]")
                .bind("[]")
                .bind("[]")
                .fetch_all(&store.reader)
                .await
                .expect("a plan");
        let steps: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
        // (The head is a scan of `audit_events` backwards by rowid that stops at its first row.)
        for table in ["agents", "grants", "c"] {
            assert!(
                !steps
                    .iter()
                    .any(|s| s.starts_with(&format!("SCAN {table}"))),
                "{table} is scanned: {steps:#?}"
            );
        }
        for (search, key) in [
            ("SEARCH agents ", "sqlite_autoindex_agents_1 (did=?)"),
            ("SEARCH grants ", "sqlite_autoindex_grants_1 (id=?)"),
            (
                "SEARCH c ",
                "sqlite_autoindex_client_assertions_1 (issuer=? AND jti=?)",
            ),
        ] {
            assert!(
                steps
                    .iter()
                    .any(|s| s.starts_with(search) && s.ends_with(key)),
                "no {search}by {key}: {steps:#?}"
            );
        }
    }
}
