//! Sponsor Console: the terminal console where humans govern AI agents, the governance server
//! it talks to, and the agent-side tooling. See the README for how the pieces fit.

pub mod cli;
pub mod client;
pub mod clock;
pub mod console;
pub mod demo;
pub mod domain;
pub mod protocol;
pub mod server;
pub mod settings;
pub mod telemetry;
