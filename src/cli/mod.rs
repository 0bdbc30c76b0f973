//! The command-line tools, one module per binary: its arguments (clap), what each command calls
//! and what it prints. The one layer that composes client, console, server and demo into
//! commands, so those stay free of clap and `println!`; `src/bin/` only parses, sets up logging
//! and turns the outcome into an exit code.

pub mod agent;
pub mod console;
pub mod exit;
mod output;
pub mod server;
