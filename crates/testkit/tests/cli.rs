//! The `pruneguard-testkit` binary as the shell scripts use it: IDs on stdout, one per line,
//! matching the archive; errors exit 2 with a sentence naming the fix.

use std::io::Read as _;
use std::process::{Command, Output};

fn testkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pruneguard-testkit"))
        .args(args)
        .output()
        .expect("pruneguard-testkit runs")
}

/// The manifest's config paths, in order, as IDs.
fn manifest_ids(archive: &std::path::Path) -> Vec<String> {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).expect("the archive exists"));
    for entry in tar.entries().expect("a readable tar") {
        let mut entry = entry.expect("a readable entry");
        if entry.path().expect("a path").to_str() == Some("manifest.json") {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .expect("a readable manifest");
            let manifest: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            return manifest
                .as_array()
                .expect("a list")
                .iter()
                .map(|entry| {
                    let config = entry["Config"].as_str().expect("Config");
                    format!("sha256:{}", config.trim_end_matches(".json"))
                })
                .collect();
        }
    }
    panic!("no manifest.json in {}", archive.display());
}

#[test]
fn mkimages_prints_the_ids_of_the_archive_in_load_order() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("images.tar");
    let out = testkit(&[
        "mkimages",
        archive.to_str().unwrap(),
        "--tag",
        "cli/app:1",
        "--count",
        "3",
        "--age",
        "86400",
        "--seed",
        "cli",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(printed.len(), 3);
    assert_eq!(printed, manifest_ids(&archive));
}

#[test]
fn per_image_writes_one_archive_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("one-{i}.tar");
    let out = testkit(&[
        "mkimages",
        pattern.to_str().unwrap(),
        "--no-tag",
        "--count",
        "2",
        "--per-image",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let printed: Vec<&str> = printed.lines().collect();
    for (index, id) in printed.iter().enumerate() {
        let archive = dir.path().join(format!("one-{index}.tar"));
        assert_eq!(manifest_ids(&archive), vec![(*id).to_owned()]);
    }
    assert_eq!(printed.len(), 2);
}

#[test]
fn mistakes_exit_2_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("x.tar");
    let archive = archive.to_str().unwrap();
    for (args, says) in [
        (vec!["--no-tag", "--per-image"], "put {i} in OUT.tar"),
        (vec!["--no-tag", "--label", "novalue"], "KEY=VALUE"),
        (vec!["--no-tag", "--created", "yesterday"], "RFC 3339"),
        (vec!["--tag", "bad tag"], "NAME:TAG"),
    ] {
        let mut all = vec!["mkimages", archive];
        all.extend(args);
        let out = testkit(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {stderr}");
        assert!(stderr.contains(says), "{all:?}: {stderr}");
    }
}

#[test]
fn random_bytes_prints_exactly_that_many_seeded_bytes() {
    let a = testkit(&["random-bytes", "--seed", "app1", "--bytes", "65536"]);
    let b = testkit(&["random-bytes", "--seed", "app2", "--bytes", "65536"]);
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout.len(), 65536);
    assert_ne!(a.stdout, b.stdout);
    assert_eq!(
        a.stdout,
        testkit(&["random-bytes", "--seed", "app1", "--bytes", "65536"]).stdout
    );
}

#[test]
fn report_field_and_count_print_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    std::fs::write(
        &report,
        r#"{"decision": "pruned", "removed": [{"id": "sha256:a"}, {"id": "sha256:b"}]}"#,
    )
    .unwrap();
    let report = report.to_str().unwrap();
    let decision = testkit(&["report-field", report, "decision"]);
    assert!(decision.status.success(), "{decision:?}");
    assert_eq!(decision.stdout, b"pruned\n");
    let removed = testkit(&["report-count", report, "removed"]);
    assert!(removed.status.success(), "{removed:?}");
    assert_eq!(removed.stdout, b"2\n");

    for (args, says) in [
        (
            vec!["report-count", report, "candidates"],
            "no field \"candidates\"",
        ),
        (vec!["report-count", report, "decision"], "not a list"),
        (
            vec!["report-field", "/nonexistent/run.json", "decision"],
            "cannot read the report",
        ),
    ] {
        let out = testkit(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/cycle/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn cycle_summary(json: bool, records: &[String]) -> Output {
    let mut args = vec![
        "cycle-summary",
        "--cycles",
        "3",
        "--base-layer-bytes",
        "4194304",
        "--junk-layer-bytes",
        "1048576",
        "--prune-af-ms",
        "81234",
        "--pruneguard-ms",
        "79876",
        "--total-ms",
        "161110",
        "--docker",
        "dockerd 26.1.5+dfsg1, v2.8.2+ds1 (registry)",
        "--cores",
        "2",
    ];
    if json {
        args.push("--json");
    }
    args.extend(records.iter().map(String::as_str));
    testkit(&args)
}

#[test]
fn cycle_summary_prints_what_the_python_summary_printed() {
    let records = [fixture("records-prune-af"), fixture("records-pruneguard")];
    let json = std::fs::read(fixture("summary.json")).unwrap();
    let table = std::fs::read(fixture("summary-table.md")).unwrap();

    let with_json = cycle_summary(true, &records);
    assert!(with_json.status.success(), "{with_json:?}");
    assert_eq!(
        String::from_utf8_lossy(&with_json.stdout),
        String::from_utf8_lossy(&json)
    );
    assert_eq!(
        String::from_utf8_lossy(&with_json.stderr),
        String::from_utf8_lossy(&table)
    );

    let table_only = cycle_summary(false, &records);
    assert!(table_only.status.success(), "{table_only:?}");
    assert_eq!(table_only.stdout, table);
    assert!(table_only.stderr.is_empty());

    let missing = cycle_summary(true, &records[..1]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("pruneguard cleaner"));
    assert!(missing.stdout.is_empty());
}
