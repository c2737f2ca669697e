//! The Prometheus alerting rules of `contrib/prometheus/`: `promtool check rules` and
//! `promtool test rules` pass, `promtool check metrics` finds nothing to lint in the metrics a
//! real report writes, and every metric the rules or their tests name is one pruneguard really
//! writes (a renamed metric would otherwise leave an alert that never fires).
//!
//! Needs `promtool` (Debian: `prometheus`; `scripts/sandbox.sh ensure-installed` installs it).
//! Without it the promtool tests are skipped on a developer machine, but fail when `CI=true` or
//! `PRUNEGUARD_REQUIRE_DOCKER=1`, as tests/packaging.rs does for its tools.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::fixtures::now;
use crate::report_schema::{all_reports, stable};

const RULES: &str = "contrib/prometheus/pruneguard.rules.yml";
const RULE_TESTS: &str = "contrib/prometheus/pruneguard.rules.test.yml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
        || std::env::var("PRUNEGUARD_REQUIRE_DOCKER").is_ok_and(|value| value == "1")
}

/// `promtool`'s path, or `None` (after saying so) where it may be missing.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|path| is_executable(path))
    });
    if found.is_none() {
        let message = "the alert rule tests need promtool on PATH (apt-get install prometheus, \
                       or scripts/sandbox.sh ensure-installed)";
        assert!(
            !required(),
            "{message}; CI=true or PRUNEGUARD_REQUIRE_DOCKER=1 is set, so this is a failure"
        );
        eprintln!("SKIPPED: {message}");
    }
    found
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Runs promtool with `args` (and `stdin`), and fails with its whole output unless it succeeds.
fn run_promtool(promtool: &Path, args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", promtool.display()));
    let mut input = child.stdin.take().expect("stdin is piped");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("promtool reads its stdin");
    drop(input);
    let output = child.wait_with_output().expect("promtool finishes");
    assert!(
        output.status.success(),
        "promtool {} failed ({}):\n{}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alert_rules_are_valid_and_their_unit_tests_pass() {
    let Some(promtool) = promtool() else { return };
    run_promtool(&promtool, &["check", "rules", RULES], None);
    run_promtool(&promtool, &["test", "rules", RULE_TESTS], None);
}

#[test]
fn promtool_finds_nothing_to_lint_in_the_metrics() {
    let Some(promtool) = promtool() else { return };
    for (name, report) in all_reports() {
        let metrics = stable(&report.to_metrics(now()));
        let lint = std::panic::catch_unwind(|| {
            run_promtool(&promtool, &["check", "metrics"], Some(&metrics));
        });
        assert!(lint.is_ok(), "{name}: the metrics are\n{metrics}");
    }
}

/// Every `pruneguard_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("pruneguard_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_rules_name_only_metrics_that_pruneguard_writes() {
    let written: BTreeSet<String> = all_reports()
        .iter()
        .flat_map(|(_, report)| metric_names(&report.to_metrics(now())))
        .collect();
    for file in [RULES, RULE_TESTS] {
        let text = std::fs::read_to_string(root().join(file))
            .unwrap_or_else(|error| panic!("cannot read {file}: {error}"));
        let named: BTreeSet<String> = metric_names(&text)
            .into_iter()
            // The rule file's own name is no metric.
            .filter(|name| !name.starts_with("pruneguard_rules"))
            .collect();
        assert!(!named.is_empty(), "{file} names no metric");
        let unknown: Vec<&String> = named.difference(&written).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics pruneguard does not write: {unknown:?} (written: {written:?})"
        );
    }
}

/// The metrics the alerts need are there exactly when they mean something: the disk-still-full
/// gauge only after a complete run, the build info always.
#[test]
fn the_alerting_metrics_follow_the_report() {
    for (name, report) in all_reports() {
        let metrics = report.to_metrics(now());
        assert!(
            metrics.contains(&format!(
                "pruneguard_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{name}: {metrics}"
        );
        let expected = report
            .disk_still_full
            .map(|full| format!("pruneguard_disk_still_full {}\n", u8::from(full)));
        let found = metrics
            .lines()
            .find(|line| line.starts_with("pruneguard_disk_still_full "))
            .map(|line| format!("{line}\n"));
        assert_eq!(found, expected, "{name}: {metrics}");
    }
    let pruned = &all_reports()[0].1;
    assert_eq!(pruned.disk_still_full, Some(true));
}
