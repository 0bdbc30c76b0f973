//! The sponsor console: sign-in and the session it keeps. (The terminal UI builds on these.)

pub mod login;
pub mod session;
