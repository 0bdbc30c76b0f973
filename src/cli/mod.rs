//! The command-line tools, one module per binary: its arguments (clap), what each command calls
//! and what it prints. The only layer that composes client, console, server and demo and writes
//! to stdout, so those stay free of clap and printing; `src/bin/` only parses, sets up logging
//! and turns the outcome into an exit code.

pub mod agent;
pub mod exit;
mod output;
pub mod server;
