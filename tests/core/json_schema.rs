//! The report's JSON Schema (`docs/report.schema.json`): the committed file is what the report's
//! types derive today, and real reports of every decision validate against it. A strict copy
//! (no property the schema does not name) catches a field the JSON holds but the schema omits.

use pruneguard::execute::{Execution, Failed, Removed, Stop, TagsLost};
use pruneguard::report::{self, Decision, Report};
use serde_json::Value;

use crate::fixtures::id;
use crate::report_schema::{all_reports, images, input, open_snapshot};

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report.schema.json");
const REGENERATE: &str =
    "PRUNEGUARD_UPDATE_SCHEMA=1 cargo test --test core json_schema::the_committed_schema";

fn committed() -> String {
    std::fs::read_to_string(SCHEMA_PATH)
        .unwrap_or_else(|error| panic!("cannot read {SCHEMA_PATH}: {error}; run {REGENERATE}"))
}

/// A run stopped by SIGTERM after one deletion that lost a tag and one whose answer was lost:
/// the one decision the snapshot fixtures do not reach, with the fields only trouble fills.
fn interrupted_report() -> Report {
    let execution = Execution {
        removed: vec![Removed {
            id: id(2),
            size_bytes: 2 * 50 * 1024 * 1024,
        }],
        tags_lost: vec![TagsLost {
            id: id(2),
            tags: vec!["registry.example/app:1.3".into()],
        }],
        outcome_unknown: vec![Failed {
            id: id(3),
            error: "the answer to the delete was lost".into(),
        }],
        not_attempted: vec![id(9), id(1)],
        stopped: Some(Stop::Interrupted {
            signal: "SIGTERM".into(),
        }),
        ..Execution::default()
    };
    Report::new(input(
        false,
        &open_snapshot(),
        &images(),
        Some(execution),
        None,
    ))
}

fn every_report() -> Vec<(&'static str, Report)> {
    let mut reports = all_reports();
    reports.push(("interrupted", interrupted_report()));
    reports
}

/// Every object schema that lists its properties also forbids others.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(strict);
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

#[test]
fn the_committed_schema_is_what_the_types_derive() {
    let derived = report::json_schema();
    if std::env::var_os("PRUNEGUARD_UPDATE_SCHEMA").is_some() {
        std::fs::write(SCHEMA_PATH, &derived)
            .unwrap_or_else(|error| panic!("cannot write {SCHEMA_PATH}: {error}"));
        return;
    }
    assert!(
        committed() == derived,
        "docs/report.schema.json is stale: the report's types changed. Regenerate it with\n    \
         {REGENERATE}\nand review the diff (a removed or renamed field needs a schema_version bump)."
    );
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema_of_version_1() {
    let schema: Value = serde_json::from_str(&committed()).expect("the schema is JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(jsonschema::meta::is_valid(&schema), "{schema:#}");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("the report lists its required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in [
        "schema_version",
        "decision",
        "gates",
        "candidates",
        "summary",
    ] {
        assert!(required.contains(&field), "{field} is not required");
    }
}

#[test]
fn real_reports_of_every_decision_validate_against_the_schema() {
    let mut schema: Value = serde_json::from_str(&committed()).expect("the schema is JSON");
    let open = jsonschema::validator_for(&schema).expect("the schema compiles");
    strict(&mut schema);
    let closed = jsonschema::validator_for(&schema).expect("the strict schema compiles");
    let mut decisions = Vec::new();
    for (name, report) in every_report() {
        decisions.push(report.decision);
        let json: Value = serde_json::from_str(&report.to_json()).expect("the report is JSON");
        for (which, validator) in [("schema", &open), ("strict schema", &closed)] {
            let errors: Vec<String> = validator
                .iter_errors(&json)
                .map(|error| format!("{} at {}", error, error.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{name}: the report does not match the {which}:\n{}",
                errors.join("\n")
            );
        }
    }
    for decision in [
        Decision::Pruned,
        Decision::NothingToDo,
        Decision::Skipped,
        Decision::DryRun,
        Decision::Partial,
        Decision::Interrupted,
    ] {
        assert!(decisions.contains(&decision), "no fixture for {decision:?}");
    }
}

/// Turns a valid report into one that breaks the contract.
type Breaks = fn(&mut Value);

/// The schema is not vacuous: a report with a wrong type, an unknown decision or a missing
/// field fails it.
#[test]
fn the_schema_rejects_reports_that_break_the_contract() {
    let schema: Value = serde_json::from_str(&committed()).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let good: Value =
        serde_json::from_str(&all_reports()[0].1.to_json()).expect("the report is JSON");
    assert!(validator.is_valid(&good));
    let broken: [(&str, Breaks); 4] = [
        ("unknown decision", |report| {
            report["decision"] = "deleted_everything".into();
        }),
        ("string for a count", |report| {
            report["reclaimed_bytes"] = "12".into();
        }),
        ("missing schema_version", |report| {
            report
                .as_object_mut()
                .expect("an object")
                .remove("schema_version");
        }),
        ("gate without open", |report| {
            report["gates"][0]
                .as_object_mut()
                .expect("an object")
                .remove("open");
        }),
    ];
    for (what, breaks) in broken {
        let mut report = good.clone();
        breaks(&mut report);
        assert!(!validator.is_valid(&report), "{what} passed the schema");
    }
}
