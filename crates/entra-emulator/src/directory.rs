//! The tenant the emulator stands in for: its people, the app registrations that sign in
//! through it, and the directory roles, groups and access packages requests are about.
//! `Directory::demo()` is the fixture the binary starts with; tests build their own or use it.

use serde::Serialize;

/// Microsoft Graph's resource, as the `aud` of Graph tokens and the prefix of Graph scopes.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// Microsoft Graph's well-known application id (also accepted as a token audience).
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// A person in the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The object id (`oid`).
    pub id: String,
    pub display_name: String,
    pub user_principal_name: String,
    /// App-role values assigned to this person on the API apps (emitted in `roles`).
    pub app_roles: Vec<String>,
    /// Group object ids this person is a member of (emitted in `groups`).
    pub groups: Vec<String>,
}

impl User {
    pub fn new(id: &str, display_name: &str, upn: &str) -> Self {
        Self {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            user_principal_name: upn.to_owned(),
            app_roles: Vec::new(),
            groups: Vec::new(),
        }
    }

    pub fn with_app_roles(mut self, roles: &[&str]) -> Self {
        self.app_roles = roles.iter().map(|r| (*r).to_owned()).collect();
        self
    }

    pub fn in_groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }
}

/// An API app registration (the governance server): tokens for `api://<app_id>/<scope>`
/// carry `aud = app_id`, the scope names in `scp`, and the person's app roles in `roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiApp {
    pub app_id: String,
    pub display_name: String,
    /// Delegated scopes it exposes (`governance`).
    pub scopes: Vec<String>,
    /// App-role values it defines; a person's other roles are not emitted for it.
    pub app_roles: Vec<String>,
    /// Whether its tokens carry the `groups` claim.
    pub group_claims: bool,
}

impl ApiApp {
    /// The App ID URI scopes are named under.
    pub fn id_uri(&self) -> String {
        format!("api://{}", self.app_id)
    }
}

/// A directory role that can be activated through PIM, with the approvers its policy names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDefinition {
    pub id: String,
    pub display_name: String,
    pub description: String,
    /// Object ids of the approvers; empty: activation needs no approval.
    pub approvers: Vec<String>,
}

/// A PIM-managed group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub approvers: Vec<String>,
}

/// An entitlement-management access package, with one approver list per stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPackage {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub stages: Vec<Vec<String>>,
}

/// The tenant and everything in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    pub tenant_id: String,
    /// A domain name accepted in place of the tenant id in login URLs.
    pub tenant_domain: String,
    /// The public client (the console) allowed to use the device flow.
    pub public_client_id: String,
    /// Graph scopes consented for the public client (what `.default` grants).
    pub graph_scopes: Vec<String>,
    pub api_apps: Vec<ApiApp>,
    pub users: Vec<User>,
    pub role_definitions: Vec<RoleDefinition>,
    pub groups: Vec<Group>,
    pub access_packages: Vec<AccessPackage>,
}

/// Fixed ids of the demo tenant, so tests and printed configuration can name them.
pub mod demo {
    pub const TENANT_ID: &str = "7b1d6c4e-2f3a-4e5b-9c8d-0a1b2c3d4e5f";
    pub const TENANT_DOMAIN: &str = "contoso.example";
    pub const CONSOLE_CLIENT_ID: &str = "535fb089-9ff3-47b6-9bfb-4f1264799865";
    pub const GOVERNANCE_APP_ID: &str = "c0ffee00-1111-4222-8333-944455556666";
    /// The API scope the governance server asks for.
    pub const GOVERNANCE_SCOPE: &str = "governance";
    pub const ROLE_SPONSOR: &str = "Governance.Sponsor";
    pub const ROLE_SECURITY_LEAD: &str = "Governance.SecurityLead";
    pub const ROLE_ON_CALL: &str = "Governance.OnCall";
    /// Approver of most things; a sponsor in the governance server.
    pub const ADELE: &str = "d96ea738-3b95-4ae7-9e19-78a083066d5b";
    /// Asks for roles, groups and packages.
    pub const MEGAN: &str = "a1f0c3e2-8b7d-4c6a-9e5f-1d2c3b4a5968";
    /// Security lead; second-stage approver of the package.
    pub const ALEX: &str = "5e8f9a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b";
    /// On call (through the on-call group); approves nothing.
    pub const LEE: &str = "0b9c8d7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e";
    pub const ON_CALL_GROUP: &str = "3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a99";
    pub const ROLE_USER_ADMIN: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
    pub const ROLE_SECURITY_ADMIN: &str = "194ae4cb-b126-40b2-bd5b-6091b380977d";
    pub const GROUP_PROD_DB: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
    pub const PACKAGE_AGENT_TOOLS: &str = "77f0e1d2-c3b4-4a59-8687-9a8b7c6d5e4f";
}

impl Directory {
    /// An empty tenant with the demo ids and the console's public client.
    pub fn empty() -> Self {
        Self {
            tenant_id: demo::TENANT_ID.into(),
            tenant_domain: demo::TENANT_DOMAIN.into(),
            public_client_id: demo::CONSOLE_CLIENT_ID.into(),
            graph_scopes: [
                "User.Read",
                "User.ReadBasic.All",
                "RoleAssignmentSchedule.ReadWrite.Directory",
                "RoleManagement.Read.Directory",
                "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup",
                "Group.Read.All",
                "EntitlementManagement.ReadWrite.All",
            ]
            .map(String::from)
            .to_vec(),
            api_apps: Vec::new(),
            users: Vec::new(),
            role_definitions: Vec::new(),
            groups: Vec::new(),
            access_packages: Vec::new(),
        }
    }

    /// The demo tenant: four people, the governance server's API app with three app roles,
    /// two activatable directory roles, a PIM group and a two-stage access package.
    pub fn demo() -> Self {
        use demo::*;
        let mut d = Self::empty();
        d.api_apps.push(ApiApp {
            app_id: GOVERNANCE_APP_ID.into(),
            display_name: "Agent Governance API".into(),
            scopes: vec![GOVERNANCE_SCOPE.into()],
            app_roles: [ROLE_SPONSOR, ROLE_SECURITY_LEAD, ROLE_ON_CALL]
                .map(String::from)
                .to_vec(),
            group_claims: true,
        });
        d.users = vec![
            User::new(ADELE, "Adele Vance", "adele@contoso.example")
                .with_app_roles(&[ROLE_SPONSOR]),
            User::new(MEGAN, "Megan Bowen", "megan@contoso.example"),
            User::new(ALEX, "Alex Wilber", "alex@contoso.example")
                .with_app_roles(&[ROLE_SECURITY_LEAD]),
            User::new(LEE, "Lee Gu", "lee@contoso.example").in_groups(&[ON_CALL_GROUP]),
        ];
        d.role_definitions = vec![
            RoleDefinition {
                id: ROLE_USER_ADMIN.into(),
                display_name: "User Administrator".into(),
                description: "Can manage all aspects of users and groups.".into(),
                approvers: vec![ADELE.into()],
            },
            RoleDefinition {
                id: ROLE_SECURITY_ADMIN.into(),
                display_name: "Security Administrator".into(),
                description:
                    "Can read security information and reports, and manage security configuration."
                        .into(),
                approvers: vec![ADELE.into(), ALEX.into()],
            },
        ];
        d.groups = vec![
            Group {
                id: GROUP_PROD_DB.into(),
                display_name: "Production database operators".into(),
                description: "Write access to the production databases.".into(),
                approvers: vec![ADELE.into()],
            },
            Group {
                id: ON_CALL_GROUP.into(),
                display_name: "On-call engineers".into(),
                description: "Pager rotation.".into(),
                approvers: vec![ALEX.into()],
            },
        ];
        d.access_packages = vec![AccessPackage {
            id: PACKAGE_AGENT_TOOLS.into(),
            display_name: "Agent tooling access".into(),
            description: "Lets an agent's owner grant it the tool catalogue.".into(),
            stages: vec![vec![ADELE.into()], vec![ALEX.into()]],
        }];
        d
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id.eq_ignore_ascii_case(id))
    }

    /// A user by object id or user principal name (Graph accepts either in `/users/{id}`).
    pub fn user_by_key(&self, key: &str) -> Option<&User> {
        self.users.iter().find(|u| {
            u.id.eq_ignore_ascii_case(key) || u.user_principal_name.eq_ignore_ascii_case(key)
        })
    }

    pub fn api_app(&self, app_id: &str) -> Option<&ApiApp> {
        self.api_apps
            .iter()
            .find(|a| a.app_id.eq_ignore_ascii_case(app_id))
    }

    pub fn role_definition(&self, id: &str) -> Option<&RoleDefinition> {
        self.role_definitions
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(id))
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id))
    }

    pub fn access_package(&self, id: &str) -> Option<&AccessPackage> {
        self.access_packages
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(id))
    }

    /// Whether `tenant` in a login URL names this tenant (its id or domain).
    pub fn is_tenant(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant_id)
            || tenant.eq_ignore_ascii_case(&self.tenant_domain)
    }
}
