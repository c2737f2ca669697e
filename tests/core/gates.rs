//! The pure gates: every boundary, every state, and "unknown means closed".

use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;

use pruneguard::gates::{
    self, Evidence, GateName, GateVerdict, STACK_LABELS, SWARM_TASK_LABEL, SwarmRole,
};
use pruneguard::model::{
    Container, Events, LockFile, LockFileState, Snapshot, SwarmCluster, SwarmNode, Task,
};
use pruneguard::policy::GatePolicy;

use crate::fixtures::{
    ago, container, disk, event, label, manager, now, pattern, policy, service, snapshot, task,
};

pub(crate) fn assert_closed_naming(verdict: &GateVerdict, needles: &[&str]) {
    assert!(
        !verdict.open,
        "{:?} should be closed: {verdict:#?}",
        verdict.name
    );
    for needle in needles {
        assert!(
            verdict.detail.contains(needle),
            "{:?} detail should name {needle:?}: {}",
            verdict.name,
            verdict.detail
        );
    }
}

// ---------------------------------------------------------------------------------------------
// evaluate()

#[test]
fn evaluate_returns_every_gate_in_report_order() {
    let verdicts = gates::evaluate(&snapshot(), &policy(), now());
    let names: Vec<GateName> = verdicts.iter().map(|v| v.name).collect();
    assert_eq!(names, GateName::ALL.to_vec());
    assert!(gates::all_open(&verdicts), "{verdicts:#?}");
    assert!(gates::closed_names(&verdicts).is_empty());

    let mut snap = snapshot();
    snap.disk = Ok(disk(10, None));
    snap.events = Ok(vec![event(5, "image", "pull", "alpine:3")].into());
    let verdicts = gates::evaluate(&snap, &policy(), now());
    assert!(!gates::all_open(&verdicts));
    assert_eq!(gates::closed_names(&verdicts), vec!["disk", "quiet"]);
}

// ---------------------------------------------------------------------------------------------
// disk

#[test]
fn disk_threshold_boundaries() {
    // (threshold, used %, open)
    let table = [
        (80, 79, false),
        (80, 80, true),
        (80, 81, true),
        (80, 0, false),
        (80, 100, true),
        (0, 0, true),
        (0, 50, true),
        (100, 99, false),
        (100, 100, true),
        (1, 0, false),
        (1, 1, true),
    ];
    for (threshold, percent, open) in table {
        let mut policy = policy();
        policy.disk.threshold_percent = threshold;
        let mut snap = snapshot();
        snap.disk = Ok(disk(percent, Some(5)));
        let verdict = gates::disk_gate(&snap, &policy);
        assert_eq!(verdict.name, GateName::Disk);
        assert_eq!(
            verdict.open, open,
            "threshold {threshold}, used {percent}: {}",
            verdict.detail
        );
        assert!(
            verdict
                .detail
                .contains(&format!("is {percent} % full, threshold {threshold} %")),
            "{}",
            verdict.detail
        );
        assert!(
            verdict.detail.contains("/var/lib/docker"),
            "{}",
            verdict.detail
        );
        if !open {
            assert!(verdict.detail.contains("no pressure"), "{}", verdict.detail);
        }
        match &verdict.evidence {
            Evidence::Disk {
                usage: evidence,
                threshold_percent,
                inode_threshold_percent,
                filesystems,
            } => {
                assert_eq!(evidence, &disk(percent, Some(5)));
                assert_eq!(*threshold_percent, threshold);
                assert_eq!(*inode_threshold_percent, None);
                assert_eq!(filesystems.len(), 1, "one filesystem, listed once");
                assert_eq!(filesystems[0].used_percent, Some(percent));
                assert_eq!(filesystems[0].under_pressure, open);
            }
            other => panic!("disk evidence expected, got {other:?}"),
        }
    }
}

#[test]
fn disk_inode_threshold() {
    // (inode threshold, inode %, bytes %, open)
    let table: [(Option<u8>, Option<u8>, u8, bool); 8] = [
        (Some(90), Some(89), 10, false),
        (Some(90), Some(90), 10, true),
        (Some(90), Some(91), 10, true),
        // Inode threshold off: inode pressure does not open the gate.
        (None, Some(100), 10, false),
        // Inode counts missing (btrfs): only bytes count.
        (Some(90), None, 10, false),
        (Some(90), None, 85, true),
        // Bytes alone open it even when inodes are fine.
        (Some(90), Some(1), 85, true),
        (Some(0), Some(0), 10, true),
    ];
    for (limit, inodes, bytes, open) in table {
        let mut policy = policy();
        policy.disk.inode_threshold_percent = limit;
        let mut snap = snapshot();
        snap.disk = Ok(disk(bytes, inodes));
        let verdict = gates::disk_gate(&snap, &policy);
        assert_eq!(
            verdict.open, open,
            "inode limit {limit:?}, inodes {inodes:?}, bytes {bytes}: {}",
            verdict.detail
        );
        match (limit, inodes) {
            (Some(limit), Some(percent)) => assert!(
                verdict
                    .detail
                    .contains(&format!("inodes {percent} % used, threshold {limit} %")),
                "{}",
                verdict.detail
            ),
            (Some(_), None) => assert!(
                verdict.detail.contains("reports no inode counts"),
                "{}",
                verdict.detail
            ),
            (None, _) => assert!(!verdict.detail.contains("inode"), "{}", verdict.detail),
        }
        if let Evidence::Disk {
            inode_threshold_percent,
            ..
        } = verdict.evidence
        {
            assert_eq!(inode_threshold_percent, limit);
        } else {
            panic!("disk evidence expected");
        }
    }
}

#[test]
fn disk_observation_error_closes_with_the_error() {
    let mut snap = snapshot();
    snap.disk = Err("statvfs(/var/lib/docker) failed: Permission denied".into());
    let mut policy = policy();
    policy.disk.threshold_percent = 0; // would open on any usage
    let verdict = gates::disk_gate(&snap, &policy);
    assert_closed_naming(&verdict, &["Permission denied", "disk usage"]);
    assert_eq!(
        verdict.evidence,
        Evidence::Error {
            error: "statvfs(/var/lib/docker) failed: Permission denied".into()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// quiet

#[test]
fn quiet_disabled_with_period_zero() {
    let mut policy = policy();
    policy.quiet.period = Duration::ZERO;
    let mut snap = snapshot();
    snap.events = Ok(vec![event(0, "image", "pull", "alpine:3")].into());
    let verdict = gates::quiet_gate(&snap, &policy, now());
    assert!(verdict.open);
    assert!(verdict.detail.contains("disabled"), "{}", verdict.detail);
    assert_eq!(verdict.evidence, Evidence::None {});
    // Disabled means it needs no events at all, so an events error does not matter.
    snap.events = Err("boom".into());
    assert!(gates::quiet_gate(&snap, &policy, now()).open);
}

#[test]
fn quiet_period_boundaries() {
    let mut policy = policy();
    policy.quiet.period = Duration::from_secs(600);
    // (seconds ago, open)
    for (seconds_ago, open) in [
        (0, false),
        (1, false),
        (599, false),
        (600, false),
        (601, true),
        (3600, true),
        (-30, false), // a daemon clock slightly ahead: still counts as recent
    ] {
        let mut snap = snapshot();
        snap.events = Ok(vec![event(seconds_ago, "image", "pull", "registry/app:1")].into());
        let verdict = gates::quiet_gate(&snap, &policy, now());
        assert_eq!(verdict.open, open, "{seconds_ago}s ago: {}", verdict.detail);
        let Evidence::Quiet {
            period_seconds,
            events,
            events_seen,
        } = &verdict.evidence
        else {
            panic!("quiet evidence expected: {:?}", verdict.evidence);
        };
        assert_eq!(*period_seconds, 600);
        assert_eq!(events.len(), usize::from(!open));
        assert_eq!(*events_seen, u64::from(!open));
        if open {
            assert!(
                verdict.detail.contains("no image pull"),
                "{}",
                verdict.detail
            );
        } else {
            assert_closed_naming(&verdict, &["image pull registry/app:1", "1 such event"]);
        }
    }
}

#[test]
fn quiet_names_the_latest_event_and_keeps_only_recent_ones() {
    let mut policy = policy();
    policy.quiet.period = Duration::from_secs(600);
    let mut snap = snapshot();
    snap.events = Ok(vec![
        event(500, "image", "load", "old:1"),
        event(5000, "image", "pull", "ancient:1"),
        event(30, "container", "create", "deploy-web"),
        event(200, "image", "tag", "app:2"),
    ]
    .into());
    let verdict = gates::quiet_gate(&snap, &policy, now());
    assert_closed_naming(
        &verdict,
        &["container create deploy-web 30s ago", "3 such event"],
    );
    let Evidence::Quiet { events, .. } = &verdict.evidence else {
        panic!("quiet evidence expected");
    };
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, vec!["deploy-web", "app:2", "old:1"]);
}

#[test]
fn quiet_events_error_closes() {
    let mut snap = snapshot();
    snap.events = Err("the events stream broke".into());
    let verdict = gates::quiet_gate(&snap, &policy(), now());
    assert_closed_naming(&verdict, &["the events stream broke", "recent events"]);
    assert!(matches!(verdict.evidence, Evidence::Error { .. }));
}

// ---------------------------------------------------------------------------------------------
// workload

fn workload_policy(
    stacks: &[&str],
    labels: &[&str],
    containers: &[&str],
    lock_files: &[&str],
) -> GatePolicy {
    let mut policy = policy();
    policy.workload.stacks = stacks.iter().map(|s| pattern(s)).collect();
    policy.workload.labels = labels.iter().map(|s| label(s)).collect();
    policy.workload.containers = containers.iter().map(|s| pattern(s)).collect();
    policy.workload.lock_files = lock_files.iter().map(PathBuf::from).collect();
    policy
}

fn live(verdict: &GateVerdict) -> Vec<(String, String, String)> {
    match &verdict.evidence {
        Evidence::Workload { live, .. } => live
            .iter()
            .map(|m| (m.kind.to_string(), m.name.clone(), m.matched.clone()))
            .collect(),
        other => panic!("workload evidence expected, got {other:?}"),
    }
}

#[test]
fn workload_without_selectors_is_open() {
    let mut snap = snapshot();
    snap.containers = Ok(vec![container(
        "run-app-1",
        1,
        "running",
        &[("com.docker.stack.namespace", "run-app-1")],
    )]);
    let verdict = gates::workload_gate(&snap, &policy(), now());
    assert!(verdict.open);
    assert_eq!(verdict.detail, "no workload selectors configured.");
    assert_eq!(verdict.evidence, Evidence::None {});
    snap.containers = Err("cannot list".into());
    assert!(gates::workload_gate(&snap, &policy(), now()).open);
}

#[test]
fn workload_stack_glob_via_either_label() {
    let policy = workload_policy(&["run-app*"], &[], &[], &[]);
    for stack_label in STACK_LABELS {
        let mut snap = snapshot();
        snap.containers = Ok(vec![
            container(
                "run-app-7_web.1",
                1,
                "running",
                &[(stack_label, "run-app-7")],
            ),
            container("other_web.1", 1, "running", &[(stack_label, "other")]),
        ]);
        let verdict = gates::workload_gate(&snap, &policy, now());
        assert_closed_naming(
            &verdict,
            &[
                "container run-app-7_web.1 is running",
                &format!("stack run-app* ({stack_label}=run-app-7)"),
            ],
        );
        assert_eq!(
            live(&verdict).len(),
            1,
            "only the matching stack: {verdict:#?}"
        );
    }
    // A stack glob does not match a container name or another label.
    let mut snap = snapshot();
    snap.containers = Ok(vec![container(
        "run-app-7",
        1,
        "running",
        &[("app", "run-app-7")],
    )]);
    let verdict = gates::workload_gate(&snap, &policy, now());
    assert!(verdict.open, "{}", verdict.detail);
    assert_eq!(verdict.detail, "no configured workload is live.");
}

#[test]
fn workload_container_states() {
    let policy = workload_policy(&["run-app*"], &[], &[], &[]);
    for (state, closes) in [
        ("running", true),
        ("created", true),
        ("paused", true),
        ("restarting", true),
        ("removing", true),
        ("exited", false),
        ("dead", false),
    ] {
        let mut snap = snapshot();
        snap.containers = Ok(vec![container(
            "run-app-1-web",
            1,
            state,
            &[("com.docker.compose.project", "run-app-1")],
        )]);
        let verdict = gates::workload_gate(&snap, &policy, now());
        assert_eq!(!verdict.open, closes, "state {state}: {}", verdict.detail);
        if closes {
            assert_closed_naming(&verdict, &[&format!("run-app-1-web is {state}")]);
        }
    }
}

#[test]
fn workload_label_selectors() {
    // (selector, container labels, closes)
    type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let table: [Row; 7] = [
        ("ci.role", &[("ci.role", "run-app")], true),
        ("ci.role", &[("ci.role", "")], true),
        ("ci.role", &[("ci.other", "run-app")], false),
        ("ci.role=run-app", &[("ci.role", "run-app")], true),
        ("ci.role=run-app", &[("ci.role", "build")], false),
        ("ci.role=run-app", &[("ci.role", "run-app-2")], false),
        ("ci.role=", &[("ci.role", "")], true),
    ];
    for (selector, labels, closes) in table {
        let policy = workload_policy(&[], &[selector], &[], &[]);
        let mut snap = snapshot();
        snap.containers = Ok(vec![container("deploy", 1, "running", labels)]);
        let verdict = gates::workload_gate(&snap, &policy, now());
        assert_eq!(
            !verdict.open, closes,
            "{selector} on {labels:?}: {}",
            verdict.detail
        );
        if closes {
            assert_closed_naming(
                &verdict,
                &["container deploy", &format!("label {selector}")],
            );
        }
    }
}

#[test]
fn workload_container_name_glob() {
    let policy = workload_policy(&[], &[], &["deploy-*"], &[]);
    let mut snap = snapshot();
    snap.containers = Ok(vec![
        container("deploy-web", 1, "running", &[]),
        container("build-web", 1, "running", &[]),
        container("deploy-old", 1, "exited", &[]),
    ]);
    let verdict = gates::workload_gate(&snap, &policy, now());
    assert_closed_naming(&verdict, &["deploy-web", "container name deploy-*"]);
    assert!(!verdict.detail.contains("build-web"));
    assert!(!verdict.detail.contains("deploy-old"));
    assert_eq!(
        live(&verdict),
        vec![(
            "container".into(),
            "deploy-web".into(),
            "container name deploy-*".into()
        )]
    );
}

#[test]
fn workload_services_on_a_manager() {
    let mut snap = snapshot();
    manager(&mut snap);
    snap.swarm_cluster = Some(Ok(SwarmCluster {
        services: vec![
            service(
                "svc1aaaaaaaaaaaaaaaa",
                "run-app-3_web",
                &[("com.docker.stack.namespace", "run-app-3")],
                None,
            ),
            service(
                "svc2bbbbbbbbbbbbbbbb",
                "ingress-proxy",
                &[("ci.role", "proxy")],
                None,
            ),
            service("svc3cccccccccccccccc", "other_db", &[], None),
        ],
        tasks: vec![],
    }));
    let verdict =
        gates::workload_gate(&snap, &workload_policy(&["run-app*"], &[], &[], &[]), now());
    assert_closed_naming(&verdict, &["service run-app-3_web", "stack run-app*"]);
    assert_eq!(live(&verdict).len(), 1);
    assert_eq!(live(&verdict)[0].0, "service");

    let verdict = gates::workload_gate(
        &snap,
        &workload_policy(&[], &["ci.role=proxy"], &[], &[]),
        now(),
    );
    assert_closed_naming(&verdict, &["service ingress-proxy", "label ci.role=proxy"]);

    // Container name globs do not apply to services.
    let verdict =
        gates::workload_gate(&snap, &workload_policy(&[], &[], &["run-app*"], &[]), now());
    assert!(verdict.open, "{}", verdict.detail);

    // The service list failing closes a gate that needs it.
    snap.swarm_cluster = Some(Err("503 This node is not a swarm manager".into()));
    let verdict =
        gates::workload_gate(&snap, &workload_policy(&["run-app*"], &[], &[], &[]), now());
    assert_closed_naming(
        &verdict,
        &["503 This node is not a swarm manager", "service list"],
    );
    assert!(matches!(verdict.evidence, Evidence::Error { .. }));
}

fn lock(path: &str, state: LockFileState) -> LockFile {
    LockFile {
        path: PathBuf::from(path),
        state,
    }
}

#[test]
fn workload_lock_files() {
    let path = "/run/deploy.lock";
    let mut policy = workload_policy(&[], &[], &[], &[path]);
    policy.workload.stale_lock_after = Duration::from_secs(6 * 3600);
    let stale_after = 6 * 3600;

    let mut snap = snapshot();
    snap.lock_files = vec![lock(path, LockFileState::Absent)];
    let verdict = gates::workload_gate(&snap, &policy, now());
    assert!(verdict.open, "{}", verdict.detail);

    // Present and fresh.
    snap.lock_files = vec![lock(
        path,
        LockFileState::Present {
            modified: Some(ago(120)),
        },
    )];
    let verdict = gates::workload_gate(&snap, &policy, now());
    assert_closed_naming(&verdict, &["lock file /run/deploy.lock exists (age 2m)"]);
    assert!(!verdict.detail.contains("human"));

    // Exactly stale_lock_after old: not yet stale. One second more: stale, still closed.
    for (age, stale) in [(stale_after, false), (stale_after + 1, true)] {
        snap.lock_files = vec![lock(
            path,
            LockFileState::Present {
                modified: Some(ago(age)),
            },
        )];
        let verdict = gates::workload_gate(&snap, &policy, now());
        assert!(!verdict.open, "a stale lock file still closes the gate");
        let Evidence::Workload { lock_files, .. } = &verdict.evidence else {
            panic!("workload evidence expected");
        };
        assert_eq!(lock_files.len(), 1);
        assert!(lock_files[0].present);
        assert_eq!(lock_files[0].age_seconds, Some(age));
        assert_eq!(lock_files[0].stale, stale, "age {age}");
        assert_eq!(
            verdict.detail.contains("a human must look"),
            stale,
            "{}",
            verdict.detail
        );
        if stale {
            assert_closed_naming(
                &verdict,
                &["/run/deploy.lock", "older than stale_lock_after (6h)"],
            );
        }
    }

    // Present with an unknown mtime: closed, age unknown, not stale.
    snap.lock_files = vec![lock(path, LockFileState::Present { modified: None })];
    let verdict = gates::workload_gate(&snap, &policy, now());
    assert_closed_naming(&verdict, &["lock file /run/deploy.lock exists"]);

    // Unreadable: closed, with the error.
    snap.lock_files = vec![lock(
        path,
        LockFileState::Unreadable {
            error: "Permission denied (os error 13)".into(),
        },
    )];
    let verdict = gates::workload_gate(&snap, &policy, now());
    assert_closed_naming(
        &verdict,
        &["/run/deploy.lock", "cannot be checked (Permission denied"],
    );
    let Evidence::Workload { lock_files, .. } = &verdict.evidence else {
        panic!("workload evidence expected");
    };
    assert_eq!(
        lock_files[0].error.as_deref(),
        Some("Permission denied (os error 13)")
    );
}

#[test]
fn workload_lock_files_only_do_not_need_the_container_list() {
    let path = "/run/deploy.lock";
    let policy = workload_policy(&[], &[], &[], &[path]);
    let mut snap = snapshot();
    snap.containers = Err("containers broke".into());
    snap.lock_files = vec![lock(path, LockFileState::Absent)];
    assert!(gates::workload_gate(&snap, &policy, now()).open);
}

#[test]
fn workload_containers_error_closes() {
    for policy in [
        workload_policy(&["run-app*"], &[], &[], &[]),
        workload_policy(&[], &["ci.role"], &[], &[]),
        workload_policy(&[], &[], &["deploy-*"], &[]),
    ] {
        let mut snap = snapshot();
        snap.containers = Err("HTTP 500: boom".into());
        let verdict = gates::workload_gate(&snap, &policy, now());
        assert_closed_naming(&verdict, &["HTTP 500: boom", "container list"]);
        assert_eq!(
            verdict.evidence,
            Evidence::Error {
                error: "HTTP 500: boom".into()
            }
        );
    }
}

#[test]
fn workload_reports_every_match() {
    let path = "/run/deploy.lock";
    let policy = workload_policy(&["run-app*"], &["ci.role"], &["deploy-*"], &[path]);
    let mut snap = snapshot();
    snap.containers = Ok(vec![
        container(
            "a",
            1,
            "running",
            &[("com.docker.stack.namespace", "run-app-1")],
        ),
        container("b", 1, "running", &[("ci.role", "x")]),
        container("deploy-c", 1, "paused", &[]),
    ]);
    snap.lock_files = vec![lock(
        path,
        LockFileState::Present {
            modified: Some(ago(5)),
        },
    )];
    let verdict = gates::workload_gate(&snap, &policy, now());
    assert_closed_naming(
        &verdict,
        &[
            "container a is running",
            "container b is running (matches label ci.role)",
            "container deploy-c is paused (matches container name deploy-*)",
            "lock file /run/deploy.lock exists",
        ],
    );
    assert_eq!(live(&verdict).len(), 3);
}

// ---------------------------------------------------------------------------------------------
// swarm

pub(crate) fn swarm_evidence(verdict: &GateVerdict) -> (SwarmRole, Vec<String>, Vec<String>) {
    match &verdict.evidence {
        Evidence::Swarm {
            role,
            converging,
            stuck,
            ..
        } => (
            *role,
            converging.iter().map(|c| c.name.clone()).collect(),
            stuck.iter().map(|c| c.name.clone()).collect(),
        ),
        other => panic!("swarm evidence expected, got {other:?}"),
    }
}

#[test]
fn swarm_disabled_is_open() {
    let mut snap = snapshot();
    snap.daemon.swarm.local_node_state = "locked".into();
    let mut policy = policy();
    policy.swarm.enabled = false;
    let verdict = gates::swarm_gate(&snap, &policy, now());
    assert!(verdict.open);
    assert!(verdict.detail.contains("disabled"), "{}", verdict.detail);
    assert_eq!(verdict.evidence, Evidence::None {});
}

#[test]
fn swarm_node_states() {
    for state in ["inactive", ""] {
        let mut snap = snapshot();
        snap.daemon.swarm.local_node_state = state.into();
        snap.containers = Err("does not matter".into());
        let verdict = gates::swarm_gate(&snap, &policy(), now());
        assert!(verdict.open, "{state:?}");
        assert_eq!(verdict.detail, "not a swarm node.");
        assert_eq!(swarm_evidence(&verdict).0, SwarmRole::None);
    }
    for state in ["locked", "error", "pending", "something-new"] {
        let mut snap = snapshot();
        snap.daemon.swarm.local_node_state = state.into();
        snap.daemon.swarm.error = Some("raft: no leader".into());
        let verdict = gates::swarm_gate(&snap, &policy(), now());
        assert_closed_naming(
            &verdict,
            &[&format!("swarm state is {state}"), "raft: no leader"],
        );
        assert_eq!(swarm_evidence(&verdict).0, SwarmRole::Unknown);
    }
}

#[test]
fn swarm_manager_cluster_error_or_missing_closes() {
    let mut snap = snapshot();
    manager(&mut snap);
    snap.swarm_cluster = Some(Err("HTTP 500 listing tasks".into()));
    let verdict = gates::swarm_gate(&snap, &policy(), now());
    assert_closed_naming(
        &verdict,
        &["HTTP 500 listing tasks", "swarm services and tasks"],
    );
    // The error is the evidence, as for every gate whose observation failed.
    assert_eq!(
        verdict.evidence,
        Evidence::Error {
            error: "HTTP 500 listing tasks".into()
        }
    );

    snap.swarm_cluster = None;
    let verdict = gates::swarm_gate(&snap, &policy(), now());
    assert_closed_naming(&verdict, &["not gathered"]);
}

#[test]
fn swarm_worker_judges_from_local_evidence() {
    let mut snap = snapshot();
    snap.daemon.swarm = SwarmNode {
        local_node_state: "active".into(),
        control_available: false,
        error: None,
        node_id: String::new(),
    };
    // The event evidence of the quiet period was read and holds nothing.
    snap.swarm_worker = Some(pruneguard::worker_evidence::WorkerObservations {
        events: Some(Ok(pruneguard::worker_evidence::WorkerEvents::default())),
        manager: None,
    });
    // (state, has task label, closes)
    for (state, labelled, closes) in [
        ("created", true, true),
        ("running", true, false),
        ("exited", true, false),
        ("created", false, false),
    ] {
        let labels: &[(&str, &str)] = if labelled {
            &[(SWARM_TASK_LABEL, "task-xyz")]
        } else {
            &[]
        };
        snap.containers = Ok(vec![container("stack_web.1.abc", 1, state, labels)]);
        let verdict = gates::swarm_gate(&snap, &policy(), now());
        assert_eq!(
            !verdict.open, closes,
            "{state} {labelled}: {}",
            verdict.detail
        );
        assert!(
            verdict.detail.contains("judged from local evidence"),
            "{}",
            verdict.detail
        );
        assert_eq!(swarm_evidence(&verdict).0, SwarmRole::Worker);
        if closes {
            assert_closed_naming(&verdict, &["container stack_web.1.abc is created for 1m"]);
        }
    }
    snap.containers = Err("list failed".into());
    let verdict = gates::swarm_gate(&snap, &policy(), now());
    assert_closed_naming(&verdict, &["list failed", "container list", "worker"]);
    assert_eq!(
        verdict.evidence,
        Evidence::Error {
            error: "list failed".into()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Unknown means closed: any gate whose needed observation failed is closed.

fn observed<T: Clone + std::fmt::Debug + 'static>(
    ok: impl Strategy<Value = T>,
) -> impl Strategy<Value = Result<T, String>> {
    prop_oneof![
        3 => ok.prop_map(Ok),
        1 => "err-[a-z]{4,10}".prop_map(Err),
    ]
}

fn container_strategy() -> impl Strategy<Value = Container> {
    (
        prop::sample::select(vec!["run-app-1", "deploy-x", "web", "db"]),
        prop::sample::select(vec![
            "running",
            "created",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ]),
        prop::sample::subsequence(
            vec![
                ("com.docker.stack.namespace", "run-app-1"),
                ("com.docker.compose.project", "other"),
                ("ci.role", "run-app"),
                (SWARM_TASK_LABEL, "t1"),
            ],
            0..=4,
        ),
    )
        .prop_map(|(name, state, labels)| container(name, 1, state, &labels))
}

fn task_strategy() -> impl Strategy<Value = Task> {
    (
        prop::sample::select(vec!["s1", "s2"]),
        prop::option::of(1_i64..3),
        prop::sample::select(vec!["running", "shutdown"]),
        prop::sample::select(vec![
            "new",
            "pending",
            "preparing",
            "starting",
            "running",
            "failed",
            "rejected",
            "shutdown",
        ]),
        prop::option::of(0_i64..4000),
    )
        .prop_map(|(service, slot, desired, state, created)| {
            task("tttttttttttttttt", service, slot, desired, state, created)
        })
}

fn snapshot_strategy() -> impl Strategy<Value = Snapshot> {
    let cluster = (
        prop::collection::vec(
            prop::sample::select(vec![None, Some("updating"), Some("completed")]),
            0..3,
        ),
        prop::collection::vec(task_strategy(), 0..5),
    )
        .prop_map(|(updates, tasks)| SwarmCluster {
            services: updates
                .iter()
                .enumerate()
                .map(|(n, update)| {
                    service(
                        if n == 0 { "s1" } else { "s2" },
                        "svc",
                        &[("com.docker.stack.namespace", "run-app-2")],
                        update.map(|state| (state, 100)),
                    )
                })
                .collect(),
            tasks,
        });
    (
        observed((0_u8..=100, prop::option::of(0_u8..=100)).prop_map(|(p, i)| disk(p, i))),
        observed(prop::collection::vec(container_strategy(), 0..5)),
        observed(prop::collection::vec(
            (-10_i64..2000).prop_map(|s| event(s, "image", "pull", "x")),
            0..3,
        )),
        prop::sample::select(vec!["inactive", "active", "pending", "locked", "error", ""]),
        any::<bool>(),
        prop::option::of(observed(cluster)),
        prop::collection::vec(
            prop_oneof![
                Just(LockFileState::Absent),
                prop::option::of(0_i64..50_000).prop_map(|age| LockFileState::Present {
                    modified: age.map(ago)
                }),
                Just(LockFileState::Unreadable {
                    error: "EACCES".into()
                }),
            ],
            0..2,
        ),
    )
        .prop_map(
            |(disk, containers, events, state, control, cluster, locks)| {
                let mut snap = snapshot();
                snap.disk = disk;
                snap.containers = containers;
                snap.events = events.map(Events::from);
                snap.daemon.swarm.local_node_state = state.into();
                snap.daemon.swarm.control_available = control;
                snap.swarm_cluster = cluster;
                snap.lock_files = locks
                    .into_iter()
                    .enumerate()
                    .map(|(n, state)| lock(&format!("/run/lock{n}"), state))
                    .collect();
                snap
            },
        )
}

fn policy_strategy() -> impl Strategy<Value = GatePolicy> {
    (
        0_u8..=100,
        prop::option::of(0_u8..=100),
        prop::sample::select(vec![0_u64, 600]),
        prop::sample::subsequence(vec!["run-app*"], 0..=1),
        prop::sample::subsequence(vec!["ci.role"], 0..=1),
        prop::sample::subsequence(vec!["deploy-*"], 0..=1),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(threshold, inodes, quiet, stacks, labels, names, locks, swarm)| {
                let lock_paths: &[&str] = if locks { &["/run/lock0"] } else { &[] };
                let mut policy = workload_policy(&stacks, &labels, &names, lock_paths);
                policy.disk.threshold_percent = threshold;
                policy.disk.inode_threshold_percent = inodes;
                policy.quiet.period = Duration::from_secs(quiet);
                policy.swarm.enabled = swarm;
                policy
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn unknown_means_closed(snap in snapshot_strategy(), policy in policy_strategy()) {
        let verdicts = gates::evaluate(&snap, &policy, now());
        let gate = |name: GateName| verdicts.iter().find(|v| v.name == name).unwrap();
        prop_assert_eq!(verdicts.len(), 4);

        // A failed observation closes the gate, names the error, and is its evidence.
        let error_evidence = |name: GateName, error: &str| {
            gate(name).evidence == Evidence::Error { error: error.to_string() }
        };
        if let Err(error) = &snap.disk {
            prop_assert!(!gate(GateName::Disk).open);
            prop_assert!(gate(GateName::Disk).detail.contains(error.as_str()));
            prop_assert!(error_evidence(GateName::Disk, error));
        }
        if let Err(error) = &snap.events && !policy.quiet.period.is_zero() {
            prop_assert!(!gate(GateName::Quiet).open);
            prop_assert!(gate(GateName::Quiet).detail.contains(error.as_str()));
            prop_assert!(error_evidence(GateName::Quiet, error));
        }
        let workload = &policy.workload;
        let needs_containers = !(workload.stacks.is_empty() && workload.labels.is_empty() && workload.containers.is_empty());
        let needs_services = !(workload.stacks.is_empty() && workload.labels.is_empty());
        if let Err(error) = &snap.containers && needs_containers {
            prop_assert!(!gate(GateName::Workload).open);
            prop_assert!(gate(GateName::Workload).detail.contains(error.as_str()));
            prop_assert!(error_evidence(GateName::Workload, error));
        }
        if let Some(Err(error)) = &snap.swarm_cluster && needs_services {
            prop_assert!(!gate(GateName::Workload).open);
            if snap.containers.is_ok() {
                prop_assert!(gate(GateName::Workload).detail.contains(error.as_str()));
                prop_assert!(error_evidence(GateName::Workload, error));
            }
        }
        if snap.lock_files.iter().any(|l| matches!(l.state, LockFileState::Unreadable { .. }))
            && !workload.lock_files.is_empty()
        {
            prop_assert!(!gate(GateName::Workload).open);
        }
        let swarm = &snap.daemon.swarm;
        if policy.swarm.enabled && swarm.local_node_state == "active" {
            if swarm.control_available {
                if let Some(Err(error)) = &snap.swarm_cluster {
                    prop_assert!(!gate(GateName::Swarm).open);
                    prop_assert!(gate(GateName::Swarm).detail.contains(error.as_str()));
                    prop_assert!(error_evidence(GateName::Swarm, error));
                }
                if snap.swarm_cluster.is_none() {
                    prop_assert!(!gate(GateName::Swarm).open);
                }
            } else if let Err(error) = &snap.containers {
                prop_assert!(!gate(GateName::Swarm).open);
                prop_assert!(gate(GateName::Swarm).detail.contains(error.as_str()));
                prop_assert!(error_evidence(GateName::Swarm, error));
            }
        }
        if policy.swarm.enabled && !matches!(swarm.local_node_state.as_str(), "" | "inactive" | "active") {
            prop_assert!(!gate(GateName::Swarm).open);
        }
        // Every closed gate says something, and a disabled or selector-less gate is open.
        for verdict in &verdicts {
            if !verdict.open {
                prop_assert!(verdict.detail.len() > 10, "{:?}", verdict);
                prop_assert!(!matches!(verdict.evidence, Evidence::None {}), "closed without evidence: {:?}", verdict);
            }
        }
        if !policy.swarm.enabled {
            prop_assert!(gate(GateName::Swarm).open);
        }
        if !workload.has_selectors() {
            prop_assert!(gate(GateName::Workload).open);
        }
        if policy.quiet.period.is_zero() {
            prop_assert!(gate(GateName::Quiet).open);
        }
    }
}

#[test]
fn workload_on_a_swarm_worker_says_services_were_not_visible() {
    let policy = workload_policy(&["run-app*"], &[], &[], &[]);
    let mut snap = snapshot();
    snap.daemon.swarm = SwarmNode {
        local_node_state: "active".into(),
        control_available: false,
        error: None,
        node_id: String::new(),
    };
    snap.containers = Ok(vec![container(
        "run-app-1_web.1",
        1,
        "running",
        &[("com.docker.stack.namespace", "run-app-1")],
    )]);
    let verdict = gates::workload_gate(&snap, &policy, now());
    assert!(!verdict.open);
    assert!(
        verdict.detail.contains("cannot be listed on a worker"),
        "{}",
        verdict.detail
    );

    // A lock-file-only policy does not need services, so there is nothing to say.
    let policy = workload_policy(&[], &[], &[], &["/nonexistent/lock"]);
    let verdict = gates::workload_gate(&snap, &policy, now());
    assert!(!verdict.detail.contains("worker"), "{}", verdict.detail);

    // On a manager the services are listed, so neither.
    manager(&mut snap);
    snap.swarm_cluster = Some(Ok(SwarmCluster::default()));
    let verdict =
        gates::workload_gate(&snap, &workload_policy(&["run-app*"], &[], &[], &[]), now());
    assert!(!verdict.detail.contains("worker"), "{}", verdict.detail);
}

/// 20,000 events in the window: all counted, a bounded sample kept, the report stays small.
#[test]
fn a_flood_of_events_is_counted_in_full_but_kept_as_a_bounded_sample() {
    let mut policy = policy();
    policy.quiet.period = Duration::from_secs(600);
    let mut snap = snapshot();
    snap.events = Ok((0..20_000_i64)
        .map(|n| event(599 - n % 600, "image", "load", &format!("sha256:{n:064x}")))
        .collect::<Vec<_>>()
        .into());
    let verdict = gates::quiet_gate(&snap, &policy, now());
    assert!(!verdict.open);
    assert!(
        verdict.detail.contains("20000 such event(s)"),
        "{}",
        verdict.detail
    );
    let Evidence::Quiet {
        events,
        events_seen,
        ..
    } = &verdict.evidence
    else {
        panic!("quiet evidence expected: {:?}", verdict.evidence);
    };
    assert_eq!(*events_seen, 20_000);
    assert!(
        events.len() <= 2 * Events::KEEP_AT_EACH_END,
        "{}",
        events.len()
    );
    assert!(serde_json::to_string(&verdict).unwrap().len() < 10_000);
}
