//! Pins the report's JSON, text and metrics renderings with insta snapshots, built from
//! deterministic inputs through the real pure core (gates, plan), and checks that
//! docs/report-schema.md names every field the JSON can hold.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use pruneguard::decision::{Action, WaitEnd};
use pruneguard::execute::{Execution, Failed, Removed, Skipped, Stop};
use pruneguard::gates::{self, GateName, GateVerdict};
use pruneguard::model::{
    Container, DiskUsage, Image, ImageStore, LockFile, LockFileState, Snapshot, SwarmCluster, Task,
};
use pruneguard::plan;
use pruneguard::policy::GatePolicy;
use pruneguard::report::{Decision, Report, ReportInput, SCHEMA_VERSION, WaitSummary};

use crate::fixtures::{
    DAY, ago, container, disk, event, id, image, label, manager, now, pattern, policy, service,
    snapshot, task,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");

const MIB: u64 = 1024 * 1024;

/// Image `n` of `n` × 50 MiB, `days` old: sizes a reader of the report meets in practice.
fn sized_image(n: u32, tags: &[&str], parent: Option<u32>, days: i64) -> Image {
    Image {
        size_bytes: u64::from(n) * 50 * MIB,
        ..image(n, tags, parent, Some(days * DAY))
    }
}

pub(crate) fn images() -> Vec<Image> {
    vec![
        sized_image(1, &[], None, 5),
        sized_image(2, &[], Some(1), 4),
        sized_image(3, &[], None, 3),
        sized_image(4, &["registry.example/app:1.2"], None, 30),
        sized_image(5, &[], None, 6),
        sized_image(6, &[], None, 0),
        sized_image(7, &[], None, 9),
        sized_image(8, &["registry.example/app:1.3"], Some(7), 9),
        sized_image(9, &[], None, 2),
    ]
}

fn containers() -> Vec<Container> {
    vec![Container {
        id: format!("9c1e5b7a2d4f{}", "0".repeat(52)),
        created: Some(ago(6 * DAY)),
        ..container("old-job", 5, "exited", &[])
    }]
}

fn gate_policy() -> GatePolicy {
    let mut policy = policy();
    policy.disk.inode_threshold_percent = Some(90);
    policy.workload.stacks = vec![pattern("run-app*")];
    policy.workload.labels = vec![label("ci.deploying")];
    policy.workload.lock_files = vec![PathBuf::from("/run/deploy.lock")];
    policy
}

/// A manager whose gates are all open: one stuck task, no live workload, no recent events.
pub(crate) fn open_snapshot() -> Snapshot {
    let mut snap = snapshot();
    manager(&mut snap);
    snap.disk = Ok(disk(86, Some(10)));
    snap.containers = Ok(containers());
    snap.events = Ok(vec![event(3600, "image", "pull", "alpine:3.20")].into());
    let broken = "x8k2m4n6p8q0r2s4t6v8w0y2z";
    snap.swarm_cluster = Some(Ok(SwarmCluster {
        services: vec![service(
            broken,
            "tools_broken",
            &[("com.docker.stack.namespace", "tools")],
            Some(("completed", DAY)),
        )],
        tasks: vec![Task {
            message: "no suitable node (insufficient resources on 1 node)".into(),
            ..task(
                "h5j7k9m1n3p5q7r9s1t3v5w7",
                broken,
                Some(1),
                "running",
                "pending",
                Some(7200),
            )
        }],
    }));
    snap.lock_files = vec![LockFile {
        path: PathBuf::from("/run/deploy.lock"),
        state: LockFileState::Absent,
    }];
    snap
}

/// The same host while a deploy runs: every gate closed, one of them because its observation
/// failed.
fn closed_snapshot() -> Snapshot {
    let mut snap = open_snapshot();
    snap.disk = Err("statvfs(/var/lib/docker) failed: Permission denied (os error 13)".into());
    let mut live = containers();
    live.push(Container {
        id: format!("4f2a1c9e0b7d{}", "1".repeat(52)),
        created: Some(ago(90)),
        ..container(
            "run-app-4711_web.1.x2k",
            4,
            "running",
            &[
                ("com.docker.stack.namespace", "run-app-4711"),
                ("com.docker.swarm.task.id", "t1"),
            ],
        )
    });
    snap.containers = Ok(live);
    snap.events = Ok(vec![event(75, "image", "pull", "registry.example/app:1.4")].into());
    let web = "a1b2c3d4e5f6g7h8i9j0k1l2m";
    snap.swarm_cluster = Some(Ok(SwarmCluster {
        services: vec![service(
            web,
            "run-app-4711_web",
            &[("com.docker.stack.namespace", "run-app-4711")],
            Some(("updating", 120)),
        )],
        tasks: vec![Task {
            message: "pulling registry.example/app:1.4".into(),
            ..task(
                "q9w8e7r6t5y4u3i2o1p0a9s",
                web,
                Some(2),
                "running",
                "preparing",
                Some(80),
            )
        }],
    }));
    snap.lock_files = vec![LockFile {
        path: PathBuf::from("/run/deploy.lock"),
        state: LockFileState::Present {
            modified: Some(ago(8 * 3600)),
        },
    }];
    snap
}

pub(crate) fn input(
    dry_run: bool,
    snap: &Snapshot,
    images: &[Image],
    execution: Option<Execution>,
    disk_after: Option<DiskUsage>,
) -> ReportInput<'static> {
    let gates = gates::evaluate(snap, &gate_policy(), now());
    let plan = plan::plan(
        images,
        snap.containers.as_ref().unwrap(),
        Duration::from_secs(86_400),
        now(),
    );
    ReportInput {
        started_at: now(),
        dry_run,
        action: Action::decide(dry_run, &gates, &plan),
        gates,
        plan,
        execution,
        disk: snap.disk.as_ref().ok().cloned(),
        disk_after,
        more_disks: Vec::new(),
        image_store: Some(ImageStore::Classic),
        wait: None,
        duration_ms: 1234,
        min_age: "1d",
    }
}

/// A run that removed some of its candidates, skipped one (409) and waited for the gates.
fn pruned_report() -> Report {
    let snap = open_snapshot();
    let execution = Execution {
        removed: vec![
            Removed {
                id: id(2),
                size_bytes: 2 * 50 * 1024 * 1024,
            },
            Removed {
                id: id(3),
                size_bytes: 3 * 50 * 1024 * 1024,
            },
            Removed {
                id: id(1),
                size_bytes: 50 * 1024 * 1024,
            },
        ],
        skipped: vec![Skipped {
            id: id(9),
            why: "conflict, left in place (it changed since the plan was made): conflict: unable to delete 097d3f9a1c7d (cannot be forced) - image is being used by running container 4f2a1c9e0b7d".into(),
        }],
        failed: vec![],
        not_attempted: vec![],
        stopped: None,
        ..Execution::default()
    };
    let mut input = input(
        false,
        &snap,
        &images(),
        Some(execution),
        Some(disk(82, Some(10))),
    );
    input.wait = Some(WaitSummary {
        waited_ms: 95_000,
        evaluations: 4,
        held_by: vec!["quiet".into()],
        ended: WaitEnd::GatesOpen,
    });
    let mut report = Report::new(input);
    report.warnings = vec![
        "cannot write the metrics file /var/lib/node-exporter/pruneguard.prom: Permission denied"
            .into(),
    ];
    report
}

fn skipped_report() -> Report {
    Report::new(input(false, &closed_snapshot(), &images(), None, None))
}

fn partial_gate_closed_report() -> Report {
    let snap = open_snapshot();
    let closed: Vec<GateVerdict> = gates::evaluate(&closed_snapshot(), &gate_policy(), now())
        .into_iter()
        .filter(|gate| gate.name == GateName::Workload)
        .collect();
    let execution = Execution {
        removed: vec![Removed {
            id: id(3),
            size_bytes: 3 * 50 * 1024 * 1024,
        }],
        skipped: vec![Skipped {
            id: id(2),
            why: "already gone (404)".into(),
        }],
        failed: vec![],
        not_attempted: vec![id(9), id(1)],
        stopped: Some(Stop::GateClosed { gates: closed }),
        ..Execution::default()
    };
    Report::new(input(
        false,
        &snap,
        &images(),
        Some(execution),
        Some(disk(85, Some(10))),
    ))
}

fn partial_daemon_lost_report() -> Report {
    let snap = open_snapshot();
    let error = "cannot reach the Docker daemon at unix:///var/run/docker.sock: connection refused. Check that dockerd is running, or point pruneguard at it with -H/--host or DOCKER_HOST.".to_string();
    let execution = Execution {
        removed: vec![Removed {
            id: id(2),
            size_bytes: 2 * 50 * 1024 * 1024,
        }],
        skipped: vec![],
        failed: vec![Failed {
            id: id(3),
            error: error.clone(),
        }],
        not_attempted: vec![id(9), id(1)],
        stopped: Some(Stop::DaemonLost { error }),
        ..Execution::default()
    };
    Report::new(input(false, &snap, &images(), Some(execution), None))
}

fn dry_run_report() -> Report {
    Report::new(input(true, &open_snapshot(), &images(), None, None))
}

fn nothing_to_do_report() -> Report {
    let only_tagged = [sized_image(4, &["registry.example/app:1.2"], None, 30)];
    Report::new(input(false, &open_snapshot(), &only_tagged, None, None))
}

pub(crate) fn all_reports() -> Vec<(&'static str, Report)> {
    vec![
        ("pruned", pruned_report()),
        ("skipped", skipped_report()),
        ("partial_gate_closed", partial_gate_closed_report()),
        ("partial_daemon_lost", partial_daemon_lost_report()),
        ("dry_run", dry_run_report()),
        ("nothing_to_do", nothing_to_do_report()),
    ]
}

/// The version changes with every release; everything else is pinned.
pub(crate) fn stable(text: &str) -> String {
    text.replace(
        &format!("\"pruneguard_version\": \"{VERSION}\""),
        "\"pruneguard_version\": \"[version]\"",
    )
    .replace(&format!("pruneguard {VERSION} "), "pruneguard [version] ")
    .replace(
        &format!("{{version=\"{VERSION}\"}}"),
        "{version=\"[version]\"}",
    )
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_fixtures_reach_every_decision() {
    let decisions: Vec<(&str, Decision)> = all_reports()
        .into_iter()
        .map(|(name, report)| (name, report.decision))
        .collect();
    assert_eq!(
        decisions,
        vec![
            ("pruned", Decision::Pruned),
            ("skipped", Decision::Skipped),
            ("partial_gate_closed", Decision::Partial),
            ("partial_daemon_lost", Decision::Partial),
            ("dry_run", Decision::DryRun),
            ("nothing_to_do", Decision::NothingToDo),
        ]
    );
    // The skipped fixture closes every gate, one of them with an observation error.
    let skipped = skipped_report();
    assert!(skipped.gates.iter().all(|gate| !gate.open));
    assert!(pruned_report().gates.iter().all(|gate| gate.open));
}

#[test]
fn json_starts_with_schema_version() {
    for (name, report) in all_reports() {
        let json = report.to_json();
        assert!(
            json.starts_with(&format!("{{\n  \"schema_version\": {SCHEMA_VERSION},")),
            "{name}: {json}"
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["decision"], report.decision.as_str(), "{name}");
    }
    assert_eq!(
        SCHEMA_VERSION, 1,
        "bumping the schema version needs docs/report-schema.md updated"
    );
}

#[test]
fn json_snapshots() {
    for (name, report) in all_reports() {
        insta::assert_snapshot!(format!("json_{name}"), stable(&report.to_json()));
    }
}

#[test]
fn text_snapshots() {
    insta::assert_snapshot!(
        "text_pruned_verbose",
        stable(&pruned_report().to_text(true))
    );
    insta::assert_snapshot!("text_skipped", stable(&skipped_report().to_text(false)));
    insta::assert_snapshot!(
        "text_partial_gate_closed",
        stable(&partial_gate_closed_report().to_text(false))
    );
    insta::assert_snapshot!(
        "text_partial_daemon_lost",
        stable(&partial_daemon_lost_report().to_text(false))
    );
    insta::assert_snapshot!("text_dry_run", stable(&dry_run_report().to_text(true)));
}

#[test]
fn metrics_snapshots() {
    let finished = now() + chrono::Duration::seconds(2);
    insta::assert_snapshot!(
        "metrics_pruned",
        stable(&pruned_report().to_metrics(finished))
    );
    insta::assert_snapshot!(
        "metrics_skipped",
        stable(&skipped_report().to_metrics(finished))
    );
    insta::assert_snapshot!(
        "metrics_partial_daemon_lost",
        stable(&partial_daemon_lost_report().to_metrics(finished))
    );
}

#[test]
fn metrics_are_valid_textfile_lines() {
    for (name, report) in all_reports() {
        let metrics = report.to_metrics(now());
        let mut helped = BTreeSet::new();
        for line in metrics.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with("# TYPE ") {
                assert!(line.ends_with(" gauge"), "{name}: {line}");
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let metric = series.split('{').next().unwrap();
            assert!(helped.contains(metric), "{name}: {metric} has no HELP");
            assert!(metric.starts_with("pruneguard_"), "{name}: {line}");
            assert!(value.parse::<f64>().is_ok(), "{name}: {line}");
        }
        for gate in GateName::ALL {
            assert!(
                metrics.contains(&format!(
                    "pruneguard_gate_open{{gate=\"{}\"}}",
                    gate.as_str()
                )),
                "{name}: {metrics}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The documentation cannot drift from the JSON.

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report-schema.md");
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

fn collect_keys(value: &serde_json::Value, path: &str, keys: &mut BTreeSet<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                keys.insert((path.to_string(), key.clone()));
                collect_keys(child, &format!("{path}.{key}"), keys);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_keys(item, &format!("{path}[]"), keys);
            }
        }
        _ => {}
    }
}

#[test]
fn every_top_level_field_is_documented() {
    let doc = doc();
    let value: serde_json::Value = serde_json::from_str(&pruned_report().to_json()).unwrap();
    let top: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert!(top.len() >= 20, "{top:?}");
    for key in top {
        assert!(
            doc.contains(&format!("| `{key}` |")),
            "docs/report-schema.md has no table row for the top-level field `{key}`"
        );
    }
}

#[test]
fn every_nested_field_is_documented() {
    let doc = doc();
    let mut keys = BTreeSet::new();
    for (_, report) in all_reports() {
        let value: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        collect_keys(&value, "", &mut keys);
    }
    let missing: Vec<String> = keys
        .iter()
        // Named on its own (`key`) or as the last part of a path (`live[].key`).
        .filter(|(_, key)| !doc.contains(&format!("`{key}`")) && !doc.contains(&format!(".{key}`")))
        .map(|(path, key)| format!("{path}.{key}"))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/report-schema.md does not mention: {missing:?}"
    );
}

#[test]
fn every_decision_and_enum_value_is_documented() {
    let doc = doc();
    for decision in [
        Decision::Pruned,
        Decision::NothingToDo,
        Decision::Skipped,
        Decision::DryRun,
        Decision::Partial,
    ] {
        assert!(
            doc.contains(&format!("`{}`", decision.as_str())),
            "decision {} undocumented",
            decision.as_str()
        );
    }
    for value in [
        "gate_closed",
        "daemon_lost",
        "gates_open",
        "timeout",
        "disk_gate_closed",
        "terminated",
        "tagged",
        "in_use",
        "too_young",
        "has_children",
        "manager",
        "worker",
        "disk",
        "workload",
        "swarm",
        "quiet",
    ] {
        assert!(
            doc.contains(&format!("`{value}`")),
            "`{value}` undocumented"
        );
    }
    assert!(
        doc.contains(&format!("schema_version` is `{SCHEMA_VERSION}`")),
        "the doc must state the current schema version"
    );
}

// ---------------------------------------------------------------------------------------------
// Wording fixed alongside these snapshots.

#[test]
fn partial_summary_ends_with_one_period() {
    let report = partial_daemon_lost_report();
    assert!(
        report.summary.ends_with("DOCKER_HOST."),
        "{}",
        report.summary
    );
    assert!(!report.summary.contains(".."), "{}", report.summary);
}

#[test]
fn the_disk_still_full_hint_follows_only_a_complete_run() {
    // Both end at or above the threshold; only the complete run has shown that removable
    // dangling images are not enough.
    let hint = "removable dangling images are not enough";
    assert!(pruned_report().to_text(false).contains(hint));
    let partial = partial_gate_closed_report();
    assert_eq!(partial.disk_after.as_ref().unwrap().used_percent, 85);
    let text = partial.to_text(false);
    assert!(text.contains("now 85 % full"), "{text}");
    assert!(!text.contains(hint), "{text}");
    // Nothing left to remove and still full: the hint shows.
    let mut input = input(
        false,
        &open_snapshot(),
        &images(),
        None,
        Some(disk(83, Some(10))),
    );
    input.plan = plan::Plan::default();
    input.action = Action::NothingToDo;
    let nothing = Report::new(input);
    assert_eq!(nothing.decision, Decision::NothingToDo);
    assert!(
        nothing.to_text(false).contains(hint),
        "{}",
        nothing.to_text(false)
    );
}
