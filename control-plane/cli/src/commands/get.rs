//! `get KIND [NAME]` and `delete KIND NAME`.

use clap::ValueEnum as _;
use reqwest::Method;

use crate::CliResult;
use crate::client::Client;
use crate::kinds::Kind;
use crate::output::{Format, render};

pub fn get(
    client: &Client,
    kind: Kind,
    name: Option<&str>,
    account: Option<&str>,
    output: Format,
) -> CliResult {
    let value = match name {
        Some(name) => client.get(&kind.item(account, name)?)?,
        None => client.list(&kind.collection(account)?)?.into(),
    };
    println!("{}", render(&value, output, kind.columns())?);
    Ok(0)
}

pub fn delete(client: &Client, kind: Kind, name: &str, account: Option<&str>) -> CliResult {
    client.call(Method::DELETE, &kind.item(account, name)?, None)?;
    let done = if kind == Kind::Keys {
        "revoked"
    } else {
        "deleted"
    };
    let kind = kind.to_possible_value().map(|v| v.get_name().to_owned());
    println!("{}/{name} {done}", kind.unwrap_or_default());
    Ok(0)
}
