//! `apply -f FILE [--dry-run]` and `diff -f FILE`: send the manifest to `PUT /apply` and print
//! the report. `diff` is a dry run whose exit code says whether anything would change.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::CliResult;
use crate::client::Client;
use crate::error::CliError;
use crate::manifest;
use crate::output::{Format, serialized};

/// Exit code of `diff` when applying would change something.
pub const CHANGES_PENDING: u8 = 2;

pub fn apply(client: &Client, file: &Path, dry_run: bool, output: Format) -> CliResult {
    let report = send(client, file, dry_run)?;
    println!("{}", render(&report, output)?);
    Ok(0)
}

pub fn diff(client: &Client, file: &Path, output: Format) -> CliResult {
    let report = send(client, file, true)?;
    println!("{}", render(&report, output)?);
    Ok(match report["changed"].as_bool() {
        Some(true) => CHANGES_PENDING,
        _ => 0,
    })
}

fn send(client: &Client, file: &Path, dry_run: bool) -> Result<Value, CliError> {
    let documents = manifest::load(file)?;
    let body = json!({"documents": documents, "dry_run": dry_run});
    client.call(Method::PUT, "/apply", Some(&body))
}

fn render(report: &Value, output: Format) -> Result<String, CliError> {
    match output {
        Format::Table => Ok(text(report)),
        format => serialized(report, format),
    }
}

/// One line per object (`integration acme/svc: updated`), one per changed field below it,
/// and a summary.
fn text(report: &Value) -> String {
    let mut lines = Vec::new();
    let mut changed = 0;
    let mut unchanged = 0;
    for object in report["objects"].as_array().into_iter().flatten() {
        let action = object["action"].as_str().unwrap_or("?");
        match action {
            "unchanged" => unchanged += 1,
            _ => changed += 1,
        }
        lines.push(format!(
            "{} {}: {action}",
            object["kind"].as_str().unwrap_or("?"),
            object["name"].as_str().unwrap_or("?"),
        ));
        for change in object["changes"].as_array().into_iter().flatten() {
            lines.push(format!(
                "  {}: {} -> {}",
                change["field"].as_str().unwrap_or("?"),
                shown(&change["before"]),
                shown(&change["after"]),
            ));
        }
    }
    let summary = match report["dry_run"].as_bool() {
        Some(true) => {
            format!("{changed} to change, {unchanged} unchanged (dry run: nothing applied)")
        }
        _ => format!("{changed} changed, {unchanged} unchanged"),
    };
    lines.push(summary);
    lines.join("\n")
}

fn shown(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_lists_objects_changes_and_a_summary() {
        let report = json!({"dry_run": true, "changed": true, "version": 3, "objects": [
            {"kind": "provider-account", "name": "acme", "action": "unchanged", "changes": []},
            {"kind": "integration", "name": "acme/svc", "action": "updated",
             "changes": [{"field": "base_url", "before": "http://a", "after": "http://b"}]},
            {"kind": "integration", "name": "acme/old", "action": "created",
             "changes": [{"field": "name", "before": null, "after": "old"}]}]});
        assert_eq!(
            text(&report),
            "provider-account acme: unchanged\nintegration acme/svc: updated\n  base_url: \"http://a\" -> \"http://b\"\nintegration acme/old: created\n  name: (none) -> \"old\"\n2 to change, 1 unchanged (dry run: nothing applied)"
        );
    }
}
