//! Sponsor Console: the terminal console where humans govern AI agents, the governance server
//! it talks to, and the agent-side tooling.
//!
//! Layers, top to bottom: `cli` (one module per binary), then `console` and `demo`, then
//! `client` and `server`, then `protocol` (wire types) and `domain` (the rules, pure and
//! synchronous, with `now` passed in). Imports only point down; `ARCHITECTURE.md` has the map
//! and `tests/integration/layout.rs` keeps it true.

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
