//! Rendering API answers: a plain-text table of chosen fields, or the whole JSON or YAML.

use clap::ValueEnum;
use serde_json::Value;

use crate::error::CliError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// `value` (an object or a list of objects) as JSON or YAML, or as a table of `columns`.
pub fn render(value: &Value, format: Format, columns: &[&str]) -> Result<String, CliError> {
    match format {
        Format::Json => serialized(value, Format::Json),
        Format::Yaml => serialized(value, Format::Yaml),
        Format::Table => {
            let rows = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            Ok(table(&rows, columns))
        }
    }
}

/// `value` as pretty JSON or as YAML.
pub fn serialized(value: &Value, format: Format) -> Result<String, CliError> {
    let text = match format {
        Format::Yaml => {
            yaml_serde::to_string(value).map_err(|e| CliError::Protocol(e.to_string()))?
        }
        _ => serde_json::to_string_pretty(value).map_err(|e| CliError::Protocol(e.to_string()))?,
    };
    Ok(text.trim_end().to_owned())
}

/// Left-aligned columns two spaces apart, headed by the field names in capitals.
pub fn table(rows: &[&Value], columns: &[&str]) -> String {
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(&row[*c])).collect())
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            std::iter::once(&header)
                .chain(&body)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    std::iter::once(&header)
        .chain(&body)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One value as a table cell: lists of subjects or members comma-separated, null as `-`.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(list_item).collect();
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.join(",")
            }
        }
        other => other.to_string(),
    }
}

/// A collaborator `{subject, role}` shows as its subject; a team member as its user.
fn list_item(value: &Value) -> String {
    ["subject", "user"]
        .iter()
        .find_map(|k| value[*k].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| cell(value))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_and_flatten_lists() {
        let a = json!({"name": "acme", "collaborators": [{"subject": "team:ml", "role": "x"}], "n": null});
        let b = json!({"name": "b", "collaborators": [], "n": 3});
        let t = table(&[&a, &b], &["name", "collaborators", "n"]);
        assert_eq!(
            t,
            "NAME  COLLABORATORS  N\nacme  team:ml        -\nb     -              3"
        );
    }
}
