//! `gatehouse`, the command line of a Gatehouse control plane: apply and diff manifests, read
//! and delete resources, manage API keys, and print ready-to-run snippets for calling an
//! endpoint through a data plane. It talks to the control plane's REST API only.
//!
//! Exit codes scripts can rely on: 0 success (and `diff` with nothing to change), 1 the API
//! refused the request or the input is invalid (manifest, secret reference, usage), 2 `diff`
//! found changes pending, 3 the control plane could not be reached.
//!
//! - [`args`]: the command line.
//! - [`client`]: the REST client and its error answers.
//! - [`manifest`]: reading manifest files and resolving `env:` / `file:` secret references.
//! - [`kinds`]: the resource kinds `get` and `delete` know, and their paths.
//! - [`output`]: table, JSON and YAML output.
//! - [`commands`]: one module per command.
//! - [`error`]: the error type and its exit codes.

pub mod args;
pub mod client;
pub mod commands;
pub mod error;
pub mod kinds;
pub mod manifest;
pub mod output;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::Cli;
use crate::error::CliError;

/// Parses the command line, runs the command, and turns its outcome into an exit code; errors
/// are one line on stderr.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are successes; usage errors are code 1 (2 means "diff pending").
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    shared::process::install_crypto_provider();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// What a command run yields: the exit code on success (0, or 2 for pending changes).
pub type CliResult = Result<u8, CliError>;
