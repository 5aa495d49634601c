//! One module per command; [`run`] dispatches.
//!
//! - [`apply`]: `apply` and `diff`.
//! - [`get`]: `get` and `delete`.
//! - [`keys`]: `keys create|list|revoke`.
//! - [`snippet`]: curl and Python examples for one endpoint.

pub mod apply;
pub mod get;
pub mod keys;
pub mod snippet;

use crate::CliResult;
use crate::args::{Cli, Command};
use crate::client::Client;

pub fn run(cli: Cli) -> CliResult {
    let client = Client::new(&cli.connection)?;
    match cli.command {
        Command::Apply {
            file,
            dry_run,
            output,
        } => apply::apply(&client, &file, dry_run, output),
        Command::Diff { file, output } => apply::diff(&client, &file, output),
        Command::Get {
            kind,
            name,
            account,
            output,
        } => get::get(&client, kind, name.as_deref(), account.as_deref(), output),
        Command::Delete {
            kind,
            name,
            account,
        } => get::delete(&client, kind, &name, account.as_deref()),
        Command::Keys { command } => keys::run(&client, command),
        Command::Snippet {
            account,
            endpoint,
            gateway_url,
            path,
            method,
        } => snippet::snippet(&client, &account, &endpoint, &gateway_url, &path, &method),
    }
}
