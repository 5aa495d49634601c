//! Manifest files: YAML (one or more `---`-separated documents) or JSON (one document or a
//! list), read into the JSON documents `PUT /apply` takes. Secret values (header auth values,
//! custom headers named in `secret_custom_headers`) must be references, resolved here on the
//! machine that applies: `env:NAME` (an environment variable) or `file:PATH` (a file's
//! content without its final newline; relative to the manifest's folder). A literal secret is
//! refused, naming the object and the field.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

use crate::error::CliError;

/// The documents of the manifest at `path` (`-` for stdin), secrets resolved.
pub fn load(path: &Path) -> Result<Vec<Value>, CliError> {
    let file_error = |message: String| CliError::File {
        path: path.to_owned(),
        message,
    };
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| file_error(e.to_string()))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?
    };
    let mut documents = parse(&text).map_err(file_error)?;
    let base = match path.parent() {
        Some(dir) if path != Path::new("-") => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let resolver = Resolver {
        base,
        env: |name: &str| std::env::var(name).ok(),
    };
    for (index, document) in documents.iter_mut().enumerate() {
        resolver.resolve_document(index, document)?;
    }
    Ok(documents)
}

/// JSON when the text starts like JSON, YAML otherwise; empty YAML documents are skipped.
fn parse(text: &str) -> Result<Vec<Value>, String> {
    if text.trim_start().starts_with(['{', '[']) {
        return match serde_json::from_str(text).map_err(|e| e.to_string())? {
            Value::Array(documents) => Ok(documents),
            document => Ok(vec![document]),
        };
    }
    let mut documents = Vec::new();
    for document in yaml_serde::Deserializer::from_str(text) {
        match Value::deserialize(document).map_err(|e| e.to_string())? {
            Value::Null => {}
            value => documents.push(value),
        }
    }
    Ok(documents)
}

/// Turns secret references into values.
struct Resolver<E> {
    /// Folder relative `file:` paths start from.
    base: PathBuf,
    env: E,
}

impl<E: Fn(&str) -> Option<String>> Resolver<E> {
    fn resolve_document(&self, index: usize, document: &mut Value) -> Result<(), CliError> {
        let account = document
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let object = match &account {
            Some(name) => format!("provider account {name}"),
            None => format!("documents[{index}]"),
        };
        let Some(spec) = document.get_mut("spec") else {
            return Ok(());
        };
        self.resolve_object(&object, spec)?;
        let Some(Value::Array(integrations)) = spec.get_mut("integrations") else {
            return Ok(());
        };
        for (i, integration) in integrations.iter_mut().enumerate() {
            let name = integration["name"].as_str().map(str::to_owned);
            let object = match (&account, name) {
                (Some(account), Some(name)) => format!("integration {account}/{name}"),
                _ => format!("{object}: spec.integrations[{i}]"),
            };
            self.resolve_object(&object, integration)?;
        }
        Ok(())
    }

    /// Resolves the secret fields of one account spec or integration.
    fn resolve_object(&self, object: &str, fields: &mut Value) -> Result<(), CliError> {
        if let Some(Value::Object(headers)) = fields.pointer_mut("/header_auth/headers") {
            for (name, value) in headers.iter_mut() {
                *value = self.resolve(object, &format!("header_auth.headers.{name}"), value)?;
            }
        }
        let secret: Vec<String> = match &fields["secret_custom_headers"] {
            Value::Array(names) => names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        if let Some(Value::Object(headers)) = fields.get_mut("custom_headers") {
            for (name, value) in headers.iter_mut() {
                if secret.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                    *value = self.resolve(object, &format!("custom_headers.{name}"), value)?;
                }
            }
        }
        Ok(())
    }

    fn resolve(&self, object: &str, field: &str, value: &Value) -> Result<Value, CliError> {
        let refused = |message: String| CliError::Manifest {
            object: object.to_owned(),
            field: field.to_owned(),
            message,
        };
        let reference = value.as_str().unwrap_or_default();
        if let Some(name) = reference.strip_prefix("env:") {
            let value = (self.env)(name)
                .ok_or_else(|| refused(format!("environment variable {name} is not set")))?;
            return Ok(Value::String(value));
        }
        if let Some(path) = reference.strip_prefix("file:") {
            let path = self.base.join(path);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| refused(format!("reading {}: {e}", path.display())))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            return Ok(Value::String(text.to_owned()));
        }
        Err(refused(
            "a secret must be a reference (env:NAME or file:PATH), never a literal value".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn resolver() -> Resolver<impl Fn(&str) -> Option<String>> {
        Resolver {
            base: PathBuf::from("/nonexistent"),
            env: |name: &str| (name == "KEY").then(|| "s3cret".to_owned()),
        }
    }

    #[test]
    fn yaml_documents_and_json_lists_parse_alike() {
        let yaml =
            "---\napiVersion: gatehouse/v1\nmetadata: {name: a}\n---\n---\nmetadata: {name: b}\n";
        let docs = parse(yaml).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["metadata"]["name"], "b");
        assert_eq!(parse(r#"[{"a":1},{"b":2}]"#).unwrap().len(), 2);
        assert_eq!(parse(r#"{"a":1}"#).unwrap().len(), 1);
        assert!(parse("a: [").is_err());
    }

    #[test]
    fn references_resolve_and_literals_are_refused() {
        let mut doc = json!({"metadata": {"name": "acme"}, "spec": {
            "header_auth": {"type": "header", "headers": {"X-Key": "env:KEY"}},
            "custom_headers": {"X-Plain": "visible", "X-Secret": "env:KEY"},
            "secret_custom_headers": ["x-secret"],
            "integrations": [{"name": "svc", "header_auth": {"type": "header", "headers": {"X-Other": "literal"}}}]
        }});
        let err = resolver()
            .resolve_document(0, &mut doc)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "integration acme/svc: header_auth.headers.X-Other: a secret must be a reference (env:NAME or file:PATH), never a literal value"
        );
        assert_eq!(doc["spec"]["header_auth"]["headers"]["X-Key"], "s3cret");
        assert_eq!(doc["spec"]["custom_headers"]["X-Secret"], "s3cret");
        assert_eq!(doc["spec"]["custom_headers"]["X-Plain"], "visible");
    }

    #[test]
    fn missing_variables_and_files_name_the_field() {
        let mut doc = json!({"metadata": {"name": "acme"}, "spec": {
            "header_auth": {"type": "header", "headers": {"X-Key": "env:MISSING"}}}});
        let err = resolver()
            .resolve_document(0, &mut doc)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "provider account acme: header_auth.headers.X-Key: environment variable MISSING"
            ),
            "{err}"
        );
        let mut doc = json!({"metadata": {"name": "acme"}, "spec": {
            "header_auth": {"type": "header", "headers": {"X-Key": "file:key.txt"}}}});
        let err = resolver()
            .resolve_document(0, &mut doc)
            .unwrap_err()
            .to_string();
        assert!(err.contains("reading /nonexistent/key.txt"), "{err}");
    }
}
