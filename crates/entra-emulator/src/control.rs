//! The rest of the control API: the directory, seeded requests, faults and paging, and what
//! tests read back (decisions, calls, request states).

use crate::requests::{PimRequest, RequestKind, RequestSeed};
use crate::{
    AccessPackage, Emulator, EmulatorError, Fault, Group, RecordedCall, RecordedDecision,
    RoleDefinition, SecondDecision, User,
};

impl Emulator {
    // --- the directory ---

    /// Adds a person (or replaces the one with the same id).
    pub fn add_user(&self, user: User) {
        let mut world = self.app.world();
        world.directory.users.retain(|u| u.id != user.id);
        world.directory.users.push(user);
    }

    /// Sets a person's app roles (emitted in `roles` of API tokens minted from now on).
    pub fn set_app_roles(&self, user_id: &str, roles: &[&str]) -> Result<(), EmulatorError> {
        self.with_user(user_id, |u| {
            u.app_roles = roles.iter().map(|r| (*r).to_owned()).collect();
        })
    }

    /// Sets a person's group memberships (emitted in `groups`).
    pub fn set_groups(&self, user_id: &str, groups: &[&str]) -> Result<(), EmulatorError> {
        self.with_user(user_id, |u| {
            u.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        })
    }

    fn with_user(
        &self,
        user_id: &str,
        change: impl FnOnce(&mut User),
    ) -> Result<(), EmulatorError> {
        let mut world = self.app.world();
        let user = world
            .directory
            .users
            .iter_mut()
            .find(|u| u.id.eq_ignore_ascii_case(user_id))
            .ok_or_else(|| EmulatorError::Control(format!("no user {user_id}")))?;
        change(user);
        Ok(())
    }

    pub fn add_role_definition(&self, role: RoleDefinition) {
        self.app.world().directory.role_definitions.push(role);
    }

    pub fn add_group(&self, group: Group) {
        self.app.world().directory.groups.push(group);
    }

    pub fn add_access_package(&self, package: AccessPackage) {
        self.app.world().directory.access_packages.push(package);
    }

    // --- requests ---

    /// Puts a request in; approvers not given come from the target's policy in the
    /// directory. Returns its id (which is also its approval's id).
    pub fn seed(&self, seed: RequestSeed) -> Result<String, EmulatorError> {
        let now = self.app.now();
        let mut world = self.app.world();
        let stages = match &seed.stages {
            Some(stages) => stages.clone(),
            None => {
                let d = &world.directory;
                let missing = || EmulatorError::Control(format!("no target {}", seed.target_id));
                match seed.kind {
                    RequestKind::Role => {
                        vec![
                            d.role_definition(&seed.target_id)
                                .ok_or_else(missing)?
                                .approvers
                                .clone(),
                        ]
                    }
                    RequestKind::Group => {
                        vec![
                            d.group(&seed.target_id)
                                .ok_or_else(missing)?
                                .approvers
                                .clone(),
                        ]
                    }
                    RequestKind::AccessPackage => d
                        .access_package(&seed.target_id)
                        .ok_or_else(missing)?
                        .stages
                        .clone(),
                }
            }
        };
        let stages: Vec<Vec<String>> = stages.into_iter().filter(|s| !s.is_empty()).collect();
        let request = seed.build(stages, now);
        let id = request.id.clone();
        world.requests.retain(|r| r.id != id);
        world.requests.push(request);
        Ok(id)
    }

    /// A role activation by `principal` waiting on `approver`.
    pub fn seed_role_request(
        &self,
        principal: &str,
        role_definition_id: &str,
        approver: &str,
    ) -> Result<String, EmulatorError> {
        self.seed(RequestSeed::role(principal, role_definition_id).approvers(&[approver]))
    }

    /// A PIM for Groups membership request by `principal` waiting on `approver`.
    pub fn seed_group_request(
        &self,
        principal: &str,
        group_id: &str,
        approver: &str,
    ) -> Result<String, EmulatorError> {
        self.seed(RequestSeed::group(principal, group_id).approvers(&[approver]))
    }

    /// An access-package request by `requestor` waiting on `approver`.
    pub fn seed_package_request(
        &self,
        requestor: &str,
        package_id: &str,
        approver: &str,
    ) -> Result<String, EmulatorError> {
        self.seed(RequestSeed::access_package(requestor, package_id).approvers(&[approver]))
    }

    /// A few pending requests of each kind in the demo directory (what the binary shows).
    pub fn seed_demo_requests(&self) -> Result<Vec<String>, EmulatorError> {
        use crate::demo::*;
        Ok(vec![
            self.seed(
                RequestSeed::role(MEGAN, ROLE_USER_ADMIN)
                    .justification("Onboard the new contractors for the payments team")
                    .ticket("CHG-4711", "ServiceNow")
                    .duration("PT2H"),
            )?,
            self.seed(
                RequestSeed::role(LEE, ROLE_SECURITY_ADMIN)
                    .justification("Investigate the alert on the agent fleet")
                    .duration("PT1H"),
            )?,
            self.seed(
                RequestSeed::group(MEGAN, GROUP_PROD_DB)
                    .justification("Run the schema migration for release 42")
                    .duration("PT4H"),
            )?,
            self.seed(
                RequestSeed::access_package(MEGAN, PACKAGE_AGENT_TOOLS)
                    .justification("Give the release agent its tool catalogue")
                    .duration("P7D"),
            )?,
        ])
    }

    /// The request (and its approval) as it stands now.
    pub fn request(&self, id: &str) -> Option<PimRequest> {
        let now = self.app.now();
        let mut world = self.app.world();
        world.settle(now);
        world
            .requests
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(id))
            .cloned()
    }

    /// Every decision a PATCH made, in order.
    pub fn decisions(&self) -> Vec<RecordedDecision> {
        self.app.world().decisions.clone()
    }

    // --- faults, paging, behaviour ---

    /// Adds a fault; faults are tried in the order they were added.
    pub fn inject(&self, fault: Fault) {
        self.app.world().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.app.world().faults.clear();
    }

    /// The most items a collection page holds (at least 1).
    pub fn set_page_size(&self, size: usize) {
        self.app.world().page_size = size.max(1);
    }

    pub fn set_second_decision(&self, answer: SecondDecision) {
        self.app.world().second_decision = answer;
    }

    /// Every request answered so far, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.app.world().calls.clone()
    }

    /// The calls whose path contains `fragment`.
    pub fn calls_to(&self, fragment: &str) -> Vec<RecordedCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.contains(fragment))
            .collect()
    }

    pub fn clear_calls(&self) {
        self.app.world().calls.clear();
    }
}
