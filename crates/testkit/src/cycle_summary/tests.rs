//! The cycle summary against the Python summary it replaces: the fixtures under
//! tests/fixtures/cycle are that script's output for those records, byte for byte.

use super::*;

const PRUNE_AF: &str = include_str!("../../tests/fixtures/cycle/records-prune-af");
const PRUNEGUARD: &str = include_str!("../../tests/fixtures/cycle/records-pruneguard");
/// `python3 -c "$summary_py" 1 3 4194304 1048576 81234 79876 161110 "dockerd …" 2 …`.
const PYTHON_JSON: &str = include_str!("../../tests/fixtures/cycle/summary.json");
const PYTHON_TABLE: &str = include_str!("../../tests/fixtures/cycle/summary-table.md");

fn fixture_run() -> CycleRun {
    CycleRun {
        cycles: 3,
        base_layer_bytes: 4_194_304,
        junk_layer_bytes: 1_048_576,
        prune_af_ms: 81_234,
        pruneguard_ms: 79_876,
        total_ms: 161_110,
        docker: "dockerd 26.1.5+dfsg1, v2.8.2+ds1 (registry)".to_owned(),
        cores: 2,
    }
}

fn both() -> String {
    format!("{PRUNE_AF}{PRUNEGUARD}")
}

fn error_of(records: &str) -> String {
    match summarize(&fixture_run(), records) {
        Ok(summary) => panic!("expected an error, got {}", summary.json),
        Err(err) => format!("{err:#}"),
    }
}

#[test]
fn json_and_table_are_the_python_summarys_bytes() {
    let summary = summarize(&fixture_run(), &both()).expect("the fixture summarises");
    assert_eq!(summary.json, PYTHON_JSON.trim_end_matches('\n'));
    assert_eq!(summary.table, PYTHON_TABLE.trim_end_matches('\n'));
}

#[test]
fn the_order_of_the_records_files_does_not_matter() {
    let swapped = format!("{PRUNEGUARD}{PRUNE_AF}");
    assert_eq!(
        summarize(&fixture_run(), &swapped).unwrap(),
        summarize(&fixture_run(), &both()).unwrap()
    );
}

#[test]
fn totals_and_extremes_are_over_every_cycle() {
    let summary: Value =
        serde_json::from_str(&summarize(&fixture_run(), &both()).unwrap().json).unwrap();
    let guard = &summary["cleaners"][1];
    assert_eq!(guard["cleaner"], "pruneguard");
    assert_eq!(guard["totals"]["manifest_heads"], 9);
    assert_eq!(guard["totals"]["old_dangling_removed"], 8);
    assert_eq!(guard["max_young_dangling_after_clean"], 1);
    // Cycle 3's records lost the app2 image: kept is positional, the minimum over cycles.
    assert_eq!(guard["cycles"][2]["tagged_kept_after_clean"], 2);
    assert_eq!(guard["cycles"][2]["tagged_ids_after_clean"][2], Value::Null);
    assert_eq!(guard["min_tagged_kept_after_clean"], 2);
    let prune = &summary["cleaners"][0];
    assert_eq!(prune["totals"]["errors"], 1);
    assert_eq!(prune["cold_deploy"]["blob_gets"], 10);
    assert_eq!(prune["cold_deploy"].get("offset"), None);
    assert_eq!(prune["duration_ms"], 81_234);
}

#[test]
fn record_words_keep_their_order_and_their_kind() {
    let records = both().replace(
        "clean_ms=250",
        "clean_ms=250 note=fast-run delta=-7 plus=+5",
    );
    let summary = summarize(&fixture_run(), &records).unwrap();
    let cycle_one = summary
        .json
        .split("\"cycle\": 1,")
        .nth(2)
        .expect("pruneguard's cycle 1");
    let at = |needle: &str| {
        cycle_one
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle} in {cycle_one}"))
    };
    assert!(at("\"clean_ms\": 250,") < at("\"note\": \"fast-run\","));
    assert!(at("\"note\"") < at("\"delta\": -7,"));
    assert!(at("\"delta\"") < at("\"plus\": \"+5\","));
    assert!(at("\"plus\"") < at("\"decision\": \"pruned\""));
}

#[test]
fn record_values_are_null_integers_or_strings() {
    assert_eq!(record_value("-").unwrap(), Value::Null);
    assert_eq!(record_value("-5").unwrap(), Value::from(-5));
    assert_eq!(record_value("007").unwrap(), Value::from(7));
    assert_eq!(record_value("+5").unwrap(), Value::from("+5"));
    assert_eq!(record_value("").unwrap(), Value::from(""));
    assert_eq!(record_value("pruned").unwrap(), Value::from("pruned"));
    assert!(record_value("99999999999999999999").is_err());
}

#[test]
fn a_repeated_word_keeps_its_place_and_its_last_value() {
    let words = Words::parse("a=1 b=2 a=3").unwrap();
    assert_eq!(
        words.0,
        [("a".into(), "3".into()), ("b".into(), "2".into())]
    );
}

#[test]
fn json_is_ascii_only_as_pythons_json_dump_writes_it() {
    let json = serde_json::to_string("é\u{7f}😀\t\"\\/").unwrap();
    // python3 -c 'import json; print(json.dumps("é\u007f😀\t\"\\/"))'
    assert_eq!(ascii_only(&json), r#""\u00e9\u007f\ud83d\ude00\t\"\\/""#);
    let mut run = fixture_run();
    run.docker = "dockerd 26 – ünïcode".to_owned();
    let summary = summarize(&run, &both()).unwrap();
    assert!(summary.json.is_ascii());
    assert!(
        summary
            .json
            .contains(r#""docker": "dockerd 26 \u2013 \u00fcn\u00efcode","#)
    );
    assert!(summary.table.contains("dockerd 26 – ünïcode"));
}

#[test]
fn bad_records_are_refused_with_the_reason() {
    assert!(error_of(PRUNE_AF).contains("no line for the pruneguard cleaner"));
    assert!(
        error_of(&both().replace("cleaner=pruneguard", "cleaner=docuum"))
            .contains("unknown cleaner \"docuum\"")
    );
    assert!(
        error_of(&both().replace("errors=0 offset=4800", "errors=0 stray"))
            .contains("\"stray\" is not key=value")
    );
    let records = both();
    let only_cold: Vec<&str> = records
        .lines()
        .filter(|line| line.contains("cycle=0") || line.contains("prune-af"))
        .collect();
    assert!(error_of(&only_cold.join("\n")).contains("K >= 1"));
    let cold_last: Vec<&str> = PRUNEGUARD.lines().rev().collect();
    assert!(
        error_of(&format!("{PRUNE_AF}{}", cold_last.join("\n")))
            .contains("comes before its cycle 0")
    );
    assert!(error_of(&both().replace("blob_gets=0 ", "")).contains("no blob_gets= word"));
    assert!(
        error_of(&both().replace(
            "old_dangling_after=0 clean_ms=236",
            "old_dangling_after=x clean_ms=236"
        ))
        .contains("old_dangling_after is \"x\", not an integer")
    );
    // A blank line (a records file without its final newline, joined) is no record.
    let summary = summarize(&fixture_run(), &format!("{PRUNE_AF}\n\n{PRUNEGUARD}")).unwrap();
    assert_eq!(summary.json, PYTHON_JSON.trim_end_matches('\n'));
}
