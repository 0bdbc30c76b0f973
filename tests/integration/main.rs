//! One integration-test binary: a real governance server on 127.0.0.1:0 with an injected clock,
//! driven through the project's own client. No sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod agent_cli;
mod agents;
mod agt;
mod agt_held;
mod agt_python;
mod audit_chain;
mod audit_checkpoints;
mod audit_fixture;
mod bad_input;
mod client_credentials;
mod conformance;
mod console;
mod console_actions;
mod console_entra;
mod delegation;
mod device_flow;
mod dpop;
mod durability;
mod embedded;
mod entra_decide;
mod entra_graph;
mod entra_headless;
mod entra_issuer;
mod entra_signin;
mod entra_sources;
mod events;
mod fleet;
mod headless;
mod keys;
mod kill_switch;
mod layout;
mod login;
mod openapi;
mod postgres_cluster;
mod postgres_instances;
mod postgres_outage;
mod postgres_server;
mod pty;
mod pty_entra;
mod readme;
mod refresh;
mod reliability;
mod request_ids;
mod requests;
mod resource_clients;
mod revocation;
mod rules;
mod server_cli;
mod state_record;
mod token_validation;
