//! The demo: the embedded default (a governance server in-process, a local sponsor, the device
//! flow's browser step done in-process) and the fleet simulator that feeds it, `agent-cli fleet`
//! and the benchmarks with believable agents.

pub mod embedded;
pub mod fleet;
