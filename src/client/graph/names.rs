//! Names for the ids in approvals (people, role definitions, groups, access packages): taken
//! from what Graph expanded, else looked up once (a few at a time) and cached, including
//! "Graph has no name for this" so a missing object is not asked for on every poll. A failed
//! lookup leaves the id showing and is tried again next time; names never fail a list.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt;
use serde::Deserialize;

use super::{ApiVersion, GraphClient, GraphError, segment};
use crate::domain::entra::{EntraApproval, EntraSource};

/// Lookups in flight at once.
const CONCURRENT_LOOKUPS: usize = 8;

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NameKind {
    User,
    RoleDefinition,
    Group,
    AccessPackage,
}

impl NameKind {
    fn of_target(source: EntraSource) -> Self {
        match source {
            EntraSource::DirectoryRole => NameKind::RoleDefinition,
            EntraSource::PimGroup => NameKind::Group,
            EntraSource::AccessPackage => NameKind::AccessPackage,
        }
    }

    fn path(self, id: &str) -> String {
        match self {
            NameKind::User => format!("users/{id}"),
            NameKind::RoleDefinition => format!("roleManagement/directory/roleDefinitions/{id}"),
            NameKind::Group => format!("groups/{id}"),
            NameKind::AccessPackage => {
                format!("identityGovernance/entitlementManagement/accessPackages/{id}")
            }
        }
    }

    fn select(self) -> &'static str {
        match self {
            NameKind::User => "id,displayName,userPrincipalName",
            _ => "id,displayName",
        }
    }
}

/// A display name, and for people their UPN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Name {
    pub display_name: Option<String>,
    pub username: Option<String>,
}

/// Names by kind and id; `None` when Graph has none to give.
#[derive(Debug, Default)]
pub struct NameCache {
    names: Mutex<HashMap<(NameKind, String), Option<Name>>>,
}

impl NameCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(NameKind, String), Option<Name>>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(None)`: known to have no name; `None`: not known yet.
    pub fn get(&self, kind: NameKind, id: &str) -> Option<Option<Name>> {
        self.lock().get(&(kind, id.to_ascii_lowercase())).cloned()
    }

    pub fn put(&self, kind: NameKind, id: &str, name: Option<Name>) {
        self.lock().insert((kind, id.to_ascii_lowercase()), name);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the names Graph expanded in `rows`.
    pub(super) fn remember(&self, rows: &[EntraApproval]) {
        let mut names = self.lock();
        for r in rows {
            if r.requester.display_name.is_some() || r.requester.username.is_some() {
                names.insert(
                    (NameKind::User, r.requester.id.to_ascii_lowercase()),
                    Some(Name {
                        display_name: r.requester.display_name.clone(),
                        username: r.requester.username.clone(),
                    }),
                );
            }
            if r.target.display_name.is_some() {
                names.insert(
                    (
                        NameKind::of_target(r.source),
                        r.target.id.to_ascii_lowercase(),
                    ),
                    Some(Name {
                        display_name: r.target.display_name.clone(),
                        username: None,
                    }),
                );
            }
        }
    }

    /// Fills the names `rows` lack: from the cache, else looked up.
    pub(super) async fn resolve(&self, graph: &GraphClient, rows: &mut [EntraApproval]) {
        let mut missing: Vec<(NameKind, String)> = Vec::new();
        for r in rows.iter() {
            if r.requester.display_name.is_none() && r.requester.username.is_none() {
                missing.push((NameKind::User, r.requester.id.clone()));
            }
            if r.target.display_name.is_none() && !r.target.id.is_empty() {
                missing.push((NameKind::of_target(r.source), r.target.id.clone()));
            }
        }
        missing.sort();
        missing.dedup();
        missing.retain(|(kind, id)| self.get(*kind, id).is_none());
        let found: Vec<_> = futures::stream::iter(missing)
            .map(|(kind, id)| async move {
                let name = lookup(graph, kind, &id).await;
                (kind, id, name)
            })
            .buffer_unordered(CONCURRENT_LOOKUPS)
            .collect()
            .await;
        for (kind, id, name) in found {
            match name {
                Ok(name) => self.put(kind, &id, name),
                Err(e) => tracing::debug!(error = %e, ?kind, "a name lookup failed"),
            }
        }
        for r in rows.iter_mut() {
            if let Some(Some(n)) = self.get(NameKind::User, &r.requester.id) {
                r.requester.display_name = r.requester.display_name.take().or(n.display_name);
                r.requester.username = r.requester.username.take().or(n.username);
            }
            if let Some(Some(n)) = self.get(NameKind::of_target(r.source), &r.target.id) {
                r.target.display_name = r.target.display_name.take().or(n.display_name);
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Found {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
}

/// One name from Graph; `Ok(None)` when Graph has none to give (not found, not allowed).
async fn lookup(graph: &GraphClient, kind: NameKind, id: &str) -> Result<Option<Name>, GraphError> {
    let url = graph.url(
        ApiVersion::V1,
        &kind.path(segment(id)?),
        &[("$select", kind.select())],
    )?;
    match graph.get::<Found>(url).await {
        Ok(found) => Ok(Some(Name {
            display_name: found.value.display_name,
            username: found.value.user_principal_name,
        })),
        Err(e) if matches!(e.status(), Some(403 | 404)) => Ok(None),
        Err(e) => Err(e),
    }
}
