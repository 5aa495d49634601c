//! The error every validation rule returns: which field, and what is wrong with it.

/// A value that breaks a rule of SPEC §1. `field` is a JSON path such as `base_url` or
/// `header_auth.headers.X-Key`, so an API error can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, one level deeper: `inner.at("integrations[0]")` names `integrations[0].name`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}
