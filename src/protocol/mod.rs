//! Wire types only (serde): API bodies, OAuth messages, the error body, audit events. Shared by
//! the server, the client and the tests so both ends agree by construction.

pub mod actions;
pub mod agents;
pub mod audit;
pub mod dpop;
pub mod entra;
pub mod error;
pub mod jws;
pub mod oauth;
pub mod query;
pub mod requests;
pub mod time;
