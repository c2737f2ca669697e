//! Pins the report's JSON, text and metrics renderings with insta snapshots, built from
//! deterministic inputs through the real pure core (gates, plan), and checks that
//! docs/report-schema.md names every field the JSON can hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};

use pruneguard::decision::{Action, WaitEnd};
use pruneguard::execute::{Execution, Failed, Removed, Skipped, Stop};
use pruneguard::gates::{self, GateName, GateVerdict};
use pruneguard::model::DiskUsage;
use pruneguard::model::{
    Container, DaemonInfo, Event, Image, LockFile, LockFileState, Service, Snapshot, SwarmCluster,
    SwarmNode, Task,
};
use pruneguard::plan;
use pruneguard::policy::{LabelSelector, Pattern, Policy};
use pruneguard::report::{Decision, Report, ReportInput, SCHEMA_VERSION, WaitSummary};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap()
}

fn ago(seconds: i64) -> DateTime<Utc> {
    now() - chrono::Duration::seconds(seconds)
}

fn id(n: u32) -> String {
    format!("sha256:{n:02x}{}", "7d3f9a1c".repeat(8).get(..62).unwrap())
}

fn disk(used_percent: u8) -> DiskUsage {
    let size = 100 * 1024 * 1024 * 1024_u64;
    let used = size / 100 * u64::from(used_percent);
    DiskUsage {
        path: PathBuf::from("/var/lib/docker"),
        fs_type: "ext4".into(),
        size_bytes: size,
        used_bytes: used,
        available_bytes: size - used,
        used_percent,
        inodes_total: 6_553_600,
        inodes_used: 655_360,
        inodes_used_percent: Some(10),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn image(n: u32, tags: &[&str], parent: Option<u32>, days: i64) -> Image {
    Image {
        id: id(n),
        repo_tags: tags.iter().map(ToString::to_string).collect(),
        parent_id: parent.map(id),
        created: Some(now() - chrono::Duration::days(days)),
        size_bytes: u64::from(n) * 50 * 1024 * 1024,
    }
}

fn images() -> Vec<Image> {
    vec![
        image(1, &[], None, 5),
        image(2, &[], Some(1), 4),
        image(3, &[], None, 3),
        image(4, &["registry.example/app:1.2"], None, 30),
        image(5, &[], None, 6),
        image(6, &[], None, 0),
        image(7, &[], None, 9),
        image(8, &["registry.example/app:1.3"], Some(7), 9),
        image(9, &[], None, 2),
    ]
}

fn containers() -> Vec<Container> {
    vec![Container {
        id: format!("9c1e5b7a2d4f{}", "0".repeat(52)),
        name: "old-job".into(),
        image_id: id(5),
        state: "exited".into(),
        labels: BTreeMap::new(),
        created: Some(ago(86_400 * 6)),
    }]
}

fn gate_policy() -> pruneguard::policy::GatePolicy {
    let mut policy = Policy::default().gates;
    policy.disk.inode_threshold_percent = Some(90);
    policy.workload.stacks = vec![Pattern::new("run-app*").unwrap()];
    policy.workload.labels = vec![LabelSelector::parse("ci.deploying").unwrap()];
    policy.workload.lock_files = vec![PathBuf::from("/run/deploy.lock")];
    policy
}

/// A manager whose gates are all open: one stuck task, no live workload, no recent events.
fn open_snapshot() -> Snapshot {
    Snapshot {
        daemon: DaemonInfo {
            server_version: "28.0.1".into(),
            api_version: "1.48".into(),
            docker_root_dir: Some("/var/lib/docker".into()),
            storage_driver: Some("overlay2".into()),
            swarm: SwarmNode {
                local_node_state: "active".into(),
                control_available: true,
                error: None,
            },
        },
        disk: Ok(disk(86)),
        containers: Ok(containers()),
        events: Ok(vec![Event {
            time: ago(3600),
            kind: "image".into(),
            action: "pull".into(),
            subject: "alpine:3.20".into(),
        }]),
        swarm_cluster: Some(Ok(SwarmCluster {
            services: vec![Service {
                id: "x8k2m4n6p8q0r2s4t6v8w0y2z".into(),
                name: "tools_broken".into(),
                labels: labels(&[("com.docker.stack.namespace", "tools")]),
                update_state: Some("completed".into()),
                update_started_at: Some(ago(86_400)),
            }],
            tasks: vec![Task {
                id: "h5j7k9m1n3p5q7r9s1t3v5w7".into(),
                service_id: "x8k2m4n6p8q0r2s4t6v8w0y2z".into(),
                slot: Some(1),
                node_id: Some("n0d3n0d3n0d3n0d3n0d3n0d".into()),
                desired_state: "running".into(),
                state: "pending".into(),
                created_at: Some(ago(7200)),
                message: "no suitable node (insufficient resources on 1 node)".into(),
            }],
        })),
        lock_files: vec![LockFile {
            path: PathBuf::from("/run/deploy.lock"),
            state: LockFileState::Absent,
        }],
    }
}

/// The same host while a deploy runs: every gate closed, one of them because its observation
/// failed.
fn closed_snapshot() -> Snapshot {
    let mut snap = open_snapshot();
    snap.disk = Err("statvfs(/var/lib/docker) failed: Permission denied (os error 13)".into());
    let mut live = containers();
    live.push(Container {
        id: format!("4f2a1c9e0b7d{}", "1".repeat(52)),
        name: "run-app-4711_web.1.x2k".into(),
        image_id: id(4),
        state: "running".into(),
        labels: labels(&[
            ("com.docker.stack.namespace", "run-app-4711"),
            ("com.docker.swarm.task.id", "t1"),
        ]),
        created: Some(ago(90)),
    });
    snap.containers = Ok(live);
    snap.events = Ok(vec![Event {
        time: ago(75),
        kind: "image".into(),
        action: "pull".into(),
        subject: "registry.example/app:1.4".into(),
    }]);
    snap.swarm_cluster = Some(Ok(SwarmCluster {
        services: vec![Service {
            id: "a1b2c3d4e5f6g7h8i9j0k1l2m".into(),
            name: "run-app-4711_web".into(),
            labels: labels(&[("com.docker.stack.namespace", "run-app-4711")]),
            update_state: Some("updating".into()),
            update_started_at: Some(ago(120)),
        }],
        tasks: vec![Task {
            id: "q9w8e7r6t5y4u3i2o1p0a9s".into(),
            service_id: "a1b2c3d4e5f6g7h8i9j0k1l2m".into(),
            slot: Some(2),
            node_id: Some("n0d3n0d3n0d3n0d3n0d3n0d".into()),
            desired_state: "running".into(),
            state: "preparing".into(),
            created_at: Some(ago(80)),
            message: "pulling registry.example/app:1.4".into(),
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

fn input(
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
    let mut input = input(false, &snap, &images(), Some(execution), Some(disk(82)));
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
        Some(disk(85)),
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
    let only_tagged = [image(4, &["registry.example/app:1.2"], None, 30)];
    Report::new(input(false, &open_snapshot(), &only_tagged, None, None))
}

fn all_reports() -> Vec<(&'static str, Report)> {
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
fn stable(text: &str) -> String {
    text.replace(
        &format!("\"pruneguard_version\": \"{VERSION}\""),
        "\"pruneguard_version\": \"[version]\"",
    )
    .replace(&format!("pruneguard {VERSION} "), "pruneguard [version] ")
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
    insta::assert_snapshot!("metrics_pruned", pruned_report().to_metrics(finished));
    insta::assert_snapshot!("metrics_skipped", skipped_report().to_metrics(finished));
    insta::assert_snapshot!(
        "metrics_partial_daemon_lost",
        partial_daemon_lost_report().to_metrics(finished)
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
    let mut input = input(false, &open_snapshot(), &images(), None, Some(disk(83)));
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
