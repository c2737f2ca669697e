//! `report-field` and `report-count`: read one top-level field of a JSON report (what
//! `pruneguard plan|run --output json` prints) for the benches' shell scripts, which have no
//! JSON parser of their own.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// Reads and parses a JSON report.
pub fn read_report(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the report {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not JSON: write the report with `--output json`",
            path.display()
        )
    })
}

/// The top-level field `name` of a report (an object).
pub fn field<'report>(report: &'report Value, name: &str) -> Result<&'report Value> {
    let Some(object) = report.as_object() else {
        bail!("the report is not a JSON object, so it has no field {name:?}");
    };
    object.get(name).with_context(|| {
        let known: Vec<&str> = object.keys().map(String::as_str).collect();
        format!(
            "the report has no field {name:?}; it has: {}",
            known.join(", ")
        )
    })
}

/// A value as a shell script wants it on one line: a string as it is (no quotes), anything
/// else as compact JSON.
pub fn shell_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// How many items a list (or an object) holds.
pub fn count(value: &Value, name: &str) -> Result<usize> {
    match value {
        Value::Array(items) => Ok(items.len()),
        Value::Object(fields) => Ok(fields.len()),
        other => bail!("the report's {name:?} is {other}, not a list: there is nothing to count"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_print_as_a_shell_reads_them() {
        let report =
            json!({"decision": "pruned", "removed": [{"id": "a"}, {"id": "b"}], "freed": 7});
        assert_eq!(shell_text(field(&report, "decision").unwrap()), "pruned");
        assert_eq!(shell_text(field(&report, "freed").unwrap()), "7");
        assert_eq!(
            shell_text(field(&report, "removed").unwrap()),
            r#"[{"id":"a"},{"id":"b"}]"#
        );
        assert_eq!(
            count(field(&report, "removed").unwrap(), "removed").unwrap(),
            2
        );
        assert_eq!(count(&json!({}), "gates").unwrap(), 0);
    }

    #[test]
    fn a_missing_field_or_an_uncountable_one_is_an_error() {
        let report = json!({"decision": "pruned", "removed": []});
        let err = field(&report, "candidates").unwrap_err().to_string();
        assert!(err.contains("no field \"candidates\""), "{err}");
        assert!(err.contains("decision, removed"), "{err}");
        let err = count(&report["decision"], "decision")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a list"), "{err}");
        assert!(field(&json!([1]), "removed").is_err());
    }
}
