//! JSON merge patch (RFC 7396), so PATCH is "read, merge, replace" through one write path.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, ApiResult};

/// The input that results from applying `patch` to `current` (a read view) once the fields the
/// server generates are dropped; it is then validated like any replacement.
pub fn patched<V: Serialize, I: DeserializeOwned>(
    current: &V,
    generated: &[&str],
    patch: &Value,
) -> ApiResult<I> {
    let mut doc = serde_json::to_value(current).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(fields) = doc.as_object_mut() {
        for field in generated {
            fields.remove(*field);
        }
    }
    merge_patch(&mut doc, patch);
    super::json::parse(doc.to_string().as_bytes())
}

pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc_7396_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": [1]});
        merge_patch(&mut doc, &json!({"a": [2], "b": {"x": 1}}));
        assert_eq!(doc, json!({"a": [2], "b": {"x": 1}}));
        let mut doc = json!({"a": 1});
        merge_patch(&mut doc, &json!(["whole"]));
        assert_eq!(doc, json!(["whole"]));
    }
}
