//! Rules, pure and synchronous: no I/O, no framework types, `now` passed in.

pub mod audit;
pub mod capability;
pub mod delegation;
pub mod did;
pub mod effective;
pub mod policy;
pub mod role;
pub mod text;
pub mod trust;
pub mod user_code;

/// Why a value from outside was refused. `code` is the snake_case code of the API error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
