//! The one error type of the CLI, each kind with its exit code.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The control plane answered with an error (problem+json `detail`, and the field).
    #[error("{0}")]
    Api(String),
    #[error("cannot reach the control plane at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A manifest problem found before sending: which object, which field.
    #[error("{object}: {field}: {message}")]
    Manifest {
        object: String,
        field: String,
        message: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("the control plane answered something unexpected: {0}")]
    Protocol(String),
}

impl CliError {
    /// 1 for refusals and invalid input, 3 when the control plane could not be reached.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Unreachable { .. } => 3,
            _ => 1,
        }
    }
}
