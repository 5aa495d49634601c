//! The command line: global connection flags and one subcommand per task.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::kinds::Kind;
use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Command line of a Gatehouse control plane",
    after_help = "Exit codes: 0 ok (diff: nothing to change), 1 refused by the API or invalid \
                  input, 2 diff: changes pending, 3 control plane unreachable."
)]
pub struct Cli {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Connection {
    /// Base URL of the control plane.
    #[arg(
        long,
        env = "GATEHOUSE_URL",
        global = true,
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// API key to authenticate with.
    #[arg(long, env = "GATEHOUSE_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<SecretString>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply a manifest: create, update and prune to match it, in one transaction.
    Apply {
        /// Manifest file (YAML, multi-document, or JSON); `-` reads stdin.
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// Report what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Show what applying a manifest would change; exit code 2 when something would.
    Diff {
        #[arg(short = 'f', long)]
        file: PathBuf,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// List the resources of a kind, or read one by name.
    Get {
        kind: Kind,
        name: Option<String>,
        /// The provider account, for integrations.
        #[arg(long)]
        account: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Delete one resource (for keys: revoke it).
    Delete {
        kind: Kind,
        name: String,
        /// The provider account, for integrations.
        #[arg(long)]
        account: Option<String>,
    },
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print curl and Python examples calling an endpoint through a data plane.
    Snippet {
        account: String,
        endpoint: String,
        /// Base URL of a data plane (or of the load balancer in front of them).
        #[arg(long, env = "GATEHOUSE_GATEWAY_URL")]
        gateway_url: String,
        /// Upstream path after the endpoint, e.g. `v1/chat/completions`.
        #[arg(long, default_value = "")]
        path: String,
        #[arg(long, default_value = "GET")]
        method: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed this once.
    Create {
        #[arg(long)]
        name: String,
        /// Owner (`user:<email>` or `virtualaccount:<name>`); the caller when absent.
        #[arg(long)]
        owner: Option<String>,
        /// RFC 3339 instant after which the key stops working.
        #[arg(long)]
        expires_at: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// List the keys the caller may see.
    List {
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Revoke a key by id.
    Revoke { id: String },
}
