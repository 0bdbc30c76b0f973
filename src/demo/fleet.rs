//! The fleet simulator: N agents with believable names, models, capability sets,
//! justifications and contexts, submitting elevation requests at a given rate, some of them
//! delegating to new children. It drives the console's demo and is the load generator of the
//! benchmarks; everything it does goes through the real API with real keys and tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

use crate::client::agent_key::AgentKey;
use crate::client::{ApiClient, ClientError, ClientResult};
use crate::clock::SharedClock;
use crate::protocol::agents::RegisterAgent;
use crate::protocol::dpop::{DPOP, INVALID_DPOP_PROOF};
use crate::protocol::requests::{DelegationBody, ElevationBody, NewChild, Request, RequestStatus};

/// A kind of agent: what it is called, what it runs on, what it always holds and what it
/// sometimes needs.
struct Profile {
    name: &'static str,
    models: &'static [&'static str],
    runtime: &'static str,
    standing: &'static [&'static str],
    asks: &'static [&'static str],
    /// (justification, context) pairs; `{n}` becomes a number.
    reasons: &'static [(&'static str, &'static str)],
    ticket_prefix: &'static str,
}

const PROFILES: &[Profile] = &[
    Profile {
        name: "invoice-reconciler",
        models: &["claude-sonnet-4", "gpt-4.1"],
        runtime: "langgraph 0.3 / python 3.12",
        standing: &["read:erp:invoices", "read:crm:accounts"],
        asks: &[
            "write:erp:invoices",
            "send:email:vendors",
            "read:pii:vendor-bank",
        ],
        reasons: &[
            (
                "Vendor ACME-{n} invoice total differs from the PO by 4.2%; need to post the correcting credit note.",
                "tool call: erp.post_credit_note(vendor=ACME-{n}, amount=-1840.00 EUR)",
            ),
            (
                "Month-end close: 37 unmatched invoices need their status set to disputed.",
                "step 4/6 of close-checklist run #{n}: erp.bulk_update_status",
            ),
            (
                "Vendor asked for a remittance advice for payment run {n}.",
                "tool call: mail.send(to=ap@acme.example, template=remittance)",
            ),
        ],
        ticket_prefix: "FIN",
    },
    Profile {
        name: "support-triage",
        models: &["claude-haiku-4", "gpt-4.1-mini"],
        runtime: "openai-agents 0.6 / node 22",
        standing: &["read:tickets:*", "list:tickets:labels"],
        asks: &[
            "read:pii:customer-profile",
            "send:email:customers",
            "write:crm:accounts",
        ],
        reasons: &[
            (
                "Customer #{n} reports a double charge; need their billing profile to confirm.",
                "ticket SUP-{n}: tool call crm.get_billing_profile",
            ),
            (
                "Escalated outage ticket needs a status reply to the reporter within SLA.",
                "ticket SUP-{n}: mail.reply(template=outage-update)",
            ),
            (
                "Customer asked to update their company name after a merger.",
                "ticket SUP-{n}: crm.update_account(field=legal_name)",
            ),
        ],
        ticket_prefix: "SUP",
    },
    Profile {
        name: "deploy-bot",
        models: &["claude-opus-4", "gpt-5"],
        runtime: "custom / go 1.23",
        standing: &["read:ci:*", "read:k8s:staging"],
        asks: &[
            "deploy:prod:payments",
            "execute:k8s:rollout-restart",
            "write:feature-flags:checkout",
        ],
        reasons: &[
            (
                "Release 2026.11.{n} passed staging soak; promote to production per change CHG-{n}.",
                "pipeline run {n}: stage promote-prod",
            ),
            (
                "Memory leak in payments-api; rolling restart recommended by the SRE runbook.",
                "alert PAGER-{n}: runbook step 3 (restart)",
            ),
            (
                "Dark-launch checkout v2 to 5% behind its flag.",
                "experiment plan EXP-{n}: flags.set(checkout_v2, 5%)",
            ),
        ],
        ticket_prefix: "CHG",
    },
    Profile {
        name: "data-pipeline",
        models: &["gpt-4.1", "llama-3.3-70b"],
        runtime: "dagster 1.9 / python 3.11",
        standing: &["read:warehouse:analytics", "list:warehouse:staging"],
        asks: &[
            "read:warehouse:finance",
            "delete:warehouse:staging-old",
            "write:warehouse:analytics",
        ],
        reasons: &[
            (
                "Quarterly revenue model needs the finance schema joined in for Q{n} actuals.",
                "job revenue_model_q{n}: asset finance_actuals",
            ),
            (
                "Staging tables older than 90 days exceed the retention policy.",
                "retention sweep run {n}: 212 tables",
            ),
            (
                "Backfill of the sessions table after the schema migration.",
                "job sessions_backfill partition {n}",
            ),
        ],
        ticket_prefix: "DATA",
    },
    Profile {
        name: "sales-researcher",
        models: &["claude-sonnet-4", "gemini-2.5-pro"],
        runtime: "crewai 0.9 / python 3.12",
        standing: &["read:crm:leads", "read:web:*"],
        asks: &[
            "write:crm:leads",
            "send:email:prospects",
            "read:crm:accounts",
        ],
        reasons: &[
            (
                "Enrich 40 inbound leads from the webinar with firmographics.",
                "campaign WEB-{n}: crm.update_lead x40",
            ),
            (
                "Follow-up sequence for the leads that booked a demo.",
                "sequence SEQ-{n}: step 2 send",
            ),
            (
                "Check whether the prospect is already a customer under another name.",
                "lead L-{n}: dedupe check",
            ),
        ],
        ticket_prefix: "SALES",
    },
    Profile {
        name: "hr-onboarding",
        models: &["gpt-4.1-mini"],
        runtime: "semantic-kernel 1.30 / dotnet 9",
        standing: &["read:hr:positions", "list:tickets:it"],
        asks: &[
            "read:pii:employee",
            "admin:directory:groups",
            "send:email:employees",
        ],
        reasons: &[
            (
                "New hire E-{n} starts Monday; needs their record to prepare the laptop order.",
                "onboarding flow {n}: step it-order",
            ),
            (
                "Add new hire E-{n} to the engineering groups per the offer letter.",
                "onboarding flow {n}: directory.add_member x3",
            ),
            (
                "Send the first-day schedule to the new hire.",
                "onboarding flow {n}: mail.send(template=day-one)",
            ),
        ],
        ticket_prefix: "HR",
    },
    Profile {
        name: "code-reviewer",
        models: &["claude-opus-4", "gpt-5"],
        runtime: "github-actions / node 22",
        standing: &["read:repo:*", "list:repo:comments"],
        asks: &[
            "write:repo:branches",
            "execute:ci:workflows",
            "read:secrets:ci",
        ],
        reasons: &[
            (
                "Push the formatting fix suggested in PR #{n} so the author can merge.",
                "PR #{n}: review round 2",
            ),
            (
                "Re-run the flaky integration suite on PR #{n}.",
                "PR #{n}: ci.rerun(job=integration)",
            ),
            (
                "Verify the new deploy key is wired into the CI secret store.",
                "PR #{n}: security checklist item 4",
            ),
        ],
        ticket_prefix: "ENG",
    },
];

/// How the fleet behaves.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub agents: usize,
    /// Submissions per second, across the fleet.
    pub rate: f64,
    /// Share of submissions that are delegations to a new child (0–1).
    pub delegation_share: f64,
    pub seed: u64,
    /// Stop after this many submissions (`None`: run until the deadline).
    pub count: Option<u64>,
    /// Stop at this time (`None`: run until `count`).
    pub duration: Option<Duration>,
    /// Most submissions in flight at once.
    pub concurrency: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            agents: 8,
            rate: 1.0,
            delegation_share: 0.15,
            seed: 7,
            count: None,
            duration: None,
            concurrency: 64,
        }
    }
}

/// One simulated agent.
#[derive(Debug)]
pub struct SimAgent {
    pub key: AgentKey,
    pub did: String,
    pub name: String,
    profile: usize,
    /// The agent's token, whether it is DPoP-bound to `key`, and until when to use it.
    token: Mutex<Option<(String, bool, Instant)>>,
}

/// A submission and how long the server took to acknowledge it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub request: Request,
    pub latency: Duration,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct FleetStats {
    pub submitted: u64,
    pub pending: u64,
    pub auto_denied: u64,
    pub errors: u64,
    pub latencies: Vec<Duration>,
    pub last_error: Option<String>,
}

/// Registers the `i`th agent of a fleet with a fresh key.
async fn register_one(sponsor: &ApiClient, i: usize, rng: &mut StdRng) -> ClientResult<SimAgent> {
    let profile = i % PROFILES.len();
    let p = &PROFILES[profile];
    let key = AgentKey::generate();
    let name = format!("{}-{:02}", p.name, i / PROFILES.len() + 1);
    let model = p.models.choose(rng).copied().unwrap_or("unknown");
    let agent = sponsor
        .register_agent(
            &RegisterAgent {
                public_key: key.public_key(),
                name: name.clone(),
                capabilities: p.standing.iter().map(|c| (*c).to_owned()).collect(),
                entra_object_id: None,
                model: Some(model.to_owned()),
                runtime: Some(p.runtime.to_owned()),
            },
            None,
        )
        .await?;
    Ok(SimAgent {
        key,
        did: agent.did,
        name,
        profile,
        token: Mutex::new(None),
    })
}

/// A registered fleet.
#[derive(Debug)]
pub struct Fleet {
    api: ApiClient,
    /// Where the agents' client assertions are addressed: the token endpoint of the server
    /// they were registered with (instances sharing an issuer accept it).
    token_endpoint: String,
    clock: SharedClock,
    pub agents: Vec<Arc<SimAgent>>,
}

impl Fleet {
    /// Registers `n` agents with fresh keys, using `sponsor`'s token.
    /// `clock` dates the agents' client assertions (the server's clock, in tests).
    pub async fn register(
        sponsor: &ApiClient,
        n: usize,
        seed: u64,
        clock: SharedClock,
    ) -> ClientResult<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut agents = Vec::with_capacity(n);
        for i in 0..n {
            agents.push(Arc::new(register_one(sponsor, i, &mut rng).await?));
        }
        Ok(Self {
            api: sponsor.anonymous(),
            token_endpoint: sponsor.token_endpoint(),
            clock,
            agents,
        })
    }

    /// The fleet whose keys are kept in `dir` (one `*.pem` per agent, mode 0600): agents still
    /// registered to `sponsor` and active are reused, and new ones are registered up to `n`,
    /// each key saved as soon as its agent is registered. Returns how many were reused.
    pub async fn load_or_register(
        sponsor: &ApiClient,
        dir: &std::path::Path,
        n: usize,
        seed: u64,
        clock: SharedClock,
    ) -> ClientResult<(Self, usize)> {
        let io = |e: std::io::Error| ClientError::Url(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mine = sponsor.agents(false).await?;
        let mut agents = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pem"))
            .collect();
        entries.sort();
        for path in entries {
            if agents.len() == n {
                break;
            }
            let Ok(key) = AgentKey::load(&path) else {
                continue;
            };
            let did = key.did();
            let Some(agent) = mine
                .iter()
                .find(|a| a.did == did && a.status == crate::protocol::agents::AgentStatus::Active)
            else {
                continue;
            };
            let profile = PROFILES
                .iter()
                .position(|p| agent.name.starts_with(p.name))
                .unwrap_or(0);
            agents.push(Arc::new(SimAgent {
                key,
                did,
                name: agent.name.clone(),
                profile,
                token: Mutex::new(None),
            }));
        }
        let reused = agents.len();
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(reused as u64));
        while agents.len() < n {
            // Numbered on from the reused ones, so profiles and names keep their rotation.
            let agent = register_one(sponsor, agents.len(), &mut rng).await?;
            let file = format!("{}.pem", agent.did.trim_start_matches("did:mesh:"));
            agent
                .key
                .save_new(&dir.join(file))
                .map_err(|e| ClientError::Url(e.to_string()))?;
            agents.push(Arc::new(agent));
        }
        let fleet = Self {
            api: sponsor.anonymous(),
            token_endpoint: sponsor.token_endpoint(),
            clock,
            agents,
        };
        Ok((fleet, reused))
    }

    /// The same agents (and their cached tokens) talking to the server `api` names: another
    /// instance behind the same issuer. Their assertions still name the original endpoint.
    pub fn via(&self, api: &ApiClient) -> Self {
        Self {
            api: api.anonymous(),
            token_endpoint: self.token_endpoint.clone(),
            clock: self.clock.clone(),
            agents: self.agents.clone(),
        }
    }

    /// A client holding a valid token of `agent` (cached until a minute before it expires): a
    /// bearer token, or one bound to the agent's key (DPoP) when policy refuses a bearer token.
    pub async fn agent_client(&self, agent: &SimAgent) -> ClientResult<ApiClient> {
        let client = |token: &str, bound: bool| {
            if bound {
                self.api
                    .with_dpop_token(token, &agent.key, self.clock.clone())
            } else {
                self.api.with_token(token)
            }
        };
        let mut cached = agent.token.lock().await;
        if let Some((token, bound, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(client(token, *bound));
        }
        let assertion = agent
            .key
            .assertion(
                &self.token_endpoint,
                self.clock.now(),
                chrono::Duration::seconds(60),
            )
            .map_err(|e| ClientError::Url(e.to_string()))?;
        let token = match self.api.client_credentials(&assertion, None).await {
            Err(e) if e.code() == Some(INVALID_DPOP_PROOF) => {
                self.api
                    .dpop_agent(&agent.key, self.clock.clone(), None)
                    .await?
                    .1
            }
            other => other?,
        };
        let bound = token.token_type.eq_ignore_ascii_case(DPOP);
        let life = Duration::from_secs(token.expires_in.saturating_sub(60).max(1));
        *cached = Some((token.access_token.clone(), bound, Instant::now() + life));
        Ok(client(&token.access_token, bound))
    }

    /// One submission by a random agent: usually an elevation, sometimes a delegation.
    pub async fn submit_one(
        &self,
        rng: &mut StdRng,
        delegation_share: f64,
    ) -> ClientResult<Submission> {
        let agent = self
            .agents
            .choose(rng)
            .cloned()
            .ok_or_else(|| ClientError::Url("the fleet has no agents".into()))?;
        let p = &PROFILES[agent.profile];
        let n: u32 = rng.gen_range(100..10_000);
        let (justification, context) = p
            .reasons
            .choose(rng)
            .map(|(j, c)| {
                (
                    j.replace("{n}", &n.to_string()),
                    c.replace("{n}", &n.to_string()),
                )
            })
            .unwrap_or_default();
        let minutes = *[15i64, 30, 60, 120, 240, 480].choose(rng).unwrap_or(&60);
        let client = self.agent_client(&agent).await?;
        let started = Instant::now();
        let request = if rng.gen_bool(delegation_share.clamp(0.0, 1.0)) && !p.standing.is_empty() {
            let cap = p.standing.choose(rng).copied().unwrap_or("read:web:*");
            let child = AgentKey::generate();
            client
                .request_delegation(
                    &DelegationBody {
                        child_did: None,
                        new_child: Some(NewChild {
                            public_key: child.public_key(),
                            name: format!("{}-worker-{n}", agent.name),
                            model: p.models.first().map(|m| (*m).to_owned()),
                            runtime: Some(p.runtime.to_owned()),
                        }),
                        capabilities: vec![cap.to_owned()],
                        duration_seconds: minutes.min(60) * 60,
                        justification: format!("Fan out: {justification}"),
                        ticket: Some(format!("{}-{n}", p.ticket_prefix)),
                        context: Some(context),
                    },
                    Some(&uuid::Uuid::new_v4().to_string()),
                )
                .await?
        } else {
            let count = rng.gen_range(1..=2.min(p.asks.len()));
            let mut caps: Vec<String> = p
                .asks
                .choose_multiple(rng, count)
                .map(|c| (*c).to_owned())
                .collect();
            caps.sort();
            client
                .request_elevation(
                    &ElevationBody {
                        capabilities: caps,
                        duration_seconds: minutes * 60,
                        justification,
                        ticket: Some(format!("{}-{n}", p.ticket_prefix)),
                        context: Some(context),
                        on_behalf_of: None,
                    },
                    Some(&uuid::Uuid::new_v4().to_string()),
                )
                .await?
        };
        Ok(Submission {
            request,
            latency: started.elapsed(),
        })
    }

    /// Submits at `config.rate` until `config.count` or `config.duration` is reached.
    pub async fn run(self: &Arc<Self>, config: &FleetConfig) -> FleetStats {
        let stats = Arc::new(Mutex::new(FleetStats::default()));
        let started = Instant::now();
        let period = Duration::from_secs_f64(1.0 / config.rate.max(0.001));
        let limit = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent: u64 = 0;
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if config.count.is_some_and(|c| sent >= c)
                || config.duration.is_some_and(|d| started.elapsed() >= d)
            {
                break;
            }
            tick.tick().await;
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            sent += 1;
            let (fleet, stats) = (self.clone(), stats.clone());
            let (seed, share) = (config.seed.wrapping_add(sent), config.delegation_share);
            tasks.spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed);
                let outcome = fleet.submit_one(&mut rng, share).await;
                drop(permit);
                let mut s = stats.lock().await;
                s.submitted += 1;
                match outcome {
                    Ok(sub) => {
                        s.latencies.push(sub.latency);
                        if sub.request.status == RequestStatus::Pending {
                            s.pending += 1;
                        } else {
                            s.auto_denied += 1;
                        }
                    }
                    Err(e) => {
                        s.errors += 1;
                        s.last_error = Some(e.to_string());
                    }
                }
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        let s = stats.lock().await;
        s.clone()
    }
}
