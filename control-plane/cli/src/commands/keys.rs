//! `keys create|list|revoke`: API keys. A created key's secret is printed once.

use reqwest::Method;
use serde_json::json;

use crate::CliResult;
use crate::args::KeysCommand;
use crate::client::Client;
use crate::commands::get;
use crate::kinds::Kind;
use crate::output::{Format, render};

pub fn run(client: &Client, command: KeysCommand) -> CliResult {
    match command {
        KeysCommand::Create {
            name,
            owner,
            expires_at,
            output,
        } => {
            let body = json!({"name": name, "owner": owner, "expires_at": expires_at});
            let created = client.call(Method::POST, "/api-keys", Some(&body))?;
            let mut columns = Kind::Keys.columns().to_vec();
            columns.push("secret");
            println!("{}", render(&created, output, &columns)?);
            if output == Format::Table {
                eprintln!("The secret is shown this once: store it now.");
            }
            Ok(0)
        }
        KeysCommand::List { output } => get::get(client, Kind::Keys, None, None, output),
        KeysCommand::Revoke { id } => get::delete(client, Kind::Keys, &id, None),
    }
}
