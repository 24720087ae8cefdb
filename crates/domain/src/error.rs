//! The domain's one error type: a rejected input, named by field and a stable code.

use thiserror::Error;

/// Why an input was refused. `code` is stable and machine-readable; `field` names the JSON
/// field at fault. Messages never echo the rejected value, which may be personal data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct DomainError {
    pub field: &'static str,
    pub code: &'static str,
    pub message: &'static str,
}

impl DomainError {
    pub const fn new(field: &'static str, code: &'static str, message: &'static str) -> Self {
        Self {
            field,
            code,
            message,
        }
    }
}
