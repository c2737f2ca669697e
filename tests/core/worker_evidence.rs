//! A swarm worker's own evidence (`pruneguard::worker_evidence`) and how the swarm gate reports
//! it: table tests per kind of evidence, the manager's task list, failed observations, and
//! properties (evidence left out of the policy never closes the gate; every kept event is
//! relevant and the sample stays bounded).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use pruneguard::gates::{self, Evidence, GateVerdict, SWARM_TASK_LABEL, SwarmRole};
use pruneguard::model::{Service, Snapshot, SwarmCluster, SwarmNode, Task};
use pruneguard::policy::GatePolicy;
use pruneguard::worker_evidence::{
    WorkerEvent, WorkerEvents, WorkerEvidence, WorkerObservations, classify,
};

use crate::fixtures::{container, now, policy, snapshot};

fn worker(
    events: Vec<WorkerEvent>,
    manager: Option<(String, Result<SwarmCluster, String>)>,
) -> Snapshot {
    let mut snap = snapshot();
    snap.daemon.swarm = SwarmNode {
        local_node_state: "active".into(),
        control_available: false,
        error: None,
        node_id: "node-a".into(),
    };
    let mut sample = WorkerEvents::default();
    for event in events {
        sample.push(event);
    }
    snap.swarm_worker = Some(WorkerObservations {
        events: Some(Ok(sample)),
        manager,
    });
    snap
}

fn ago(seconds: i64) -> DateTime<Utc> {
    now() - chrono::Duration::seconds(seconds)
}

fn event(
    kind: &str,
    action: &str,
    scope: &str,
    attributes: &[(&str, &str)],
    seconds_ago: i64,
) -> WorkerEvent {
    WorkerEvent {
        time: ago(seconds_ago),
        kind: kind.into(),
        action: action.into(),
        scope: scope.into(),
        id: "0123456789abcdef0123".into(),
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn task_container(action: &str, seconds_ago: i64) -> WorkerEvent {
    event(
        "container",
        action,
        "local",
        &[("name", "app_web.1.xyz"), (SWARM_TASK_LABEL, "xyz")],
        seconds_ago,
    )
}

fn worker_report(verdict: &GateVerdict) -> serde_json::Value {
    let Evidence::Swarm { role, worker, .. } = &verdict.evidence else {
        panic!("not swarm evidence: {verdict:?}");
    };
    assert_eq!(*role, SwarmRole::Worker);
    serde_json::to_value(worker).unwrap()
}

fn judge(snap: &Snapshot, policy: &GatePolicy) -> GateVerdict {
    gates::swarm_gate(snap, policy, now())
}

#[test]
fn each_kind_of_event_evidence_closes_the_gate_within_the_quiet_period_only() {
    let overlay = event(
        "network",
        "create",
        "swarm",
        &[("name", "app_default"), ("type", "overlay")],
        5,
    );
    let connect = event(
        "network",
        "connect",
        "swarm",
        &[("name", "app_default"), ("type", "overlay")],
        5,
    );
    let local_net = event(
        "network",
        "connect",
        "local",
        &[("name", "bridge"), ("type", "bridge")],
        5,
    );
    let pull = event("image", "pull", "local", &[("name", "reg/app:2")], 5);
    let plain_die = event("container", "die", "local", &[("name", "adhoc")], 5);
    // (event, closes, what the detail names)
    let table: Vec<(WorkerEvent, bool, &str)> = vec![
        (
            task_container("die", 5),
            true,
            "container app_web.1.xyz is exited",
        ),
        (
            task_container("destroy", 5),
            true,
            "container app_web.1.xyz is destroyed (a task arriving",
        ),
        (
            overlay,
            true,
            "network app_default is created (a task arriving on this node)",
        ),
        (connect, true, "network app_default is connected"),
        (pull, true, "image reg/app:2 is pulled"),
        (local_net, false, "no task arrived"),
        (plain_die, false, "no task container exited"),
        // Older than the quiet period (10m): history.
        (
            task_container("die", 601),
            false,
            "no task container exited",
        ),
    ];
    for (item, closes, named) in table {
        let shown = format!("{} {} {:?}", item.kind, item.action, item.attributes);
        let verdict = judge(&worker(vec![item], None), &policy());
        assert_eq!(!verdict.open, closes, "{shown}: {}", verdict.detail);
        assert!(
            verdict.detail.contains("judged from local evidence"),
            "{}",
            verdict.detail
        );
        assert!(
            verdict.detail.contains(named),
            "{shown}: {}",
            verdict.detail
        );
    }
}

#[test]
fn evidence_left_out_of_the_policy_is_not_looked_at() {
    let mut only_created = policy();
    only_created.swarm.worker_evidence = vec![WorkerEvidence::CreatedTasks];
    let snap = worker(vec![task_container("die", 5)], None);
    let verdict = judge(&snap, &only_created);
    assert!(verdict.open, "{}", verdict.detail);
    assert_eq!(
        worker_report(&verdict)["evidence"],
        serde_json::json!(["created_tasks"])
    );

    // No evidence at all: open, and the detail says that nothing is looked at.
    let mut none = policy();
    none.swarm.worker_evidence = Vec::new();
    let mut snap = worker(vec![task_container("die", 5)], None);
    snap.containers = Ok(vec![container(
        "app_web.1.abc",
        1,
        "created",
        &[(SWARM_TASK_LABEL, "t")],
    )]);
    let verdict = judge(&snap, &none);
    assert!(verdict.open, "{}", verdict.detail);
    assert!(
        verdict.detail.contains("no local evidence is configured"),
        "{}",
        verdict.detail
    );
}

#[test]
fn a_zero_quiet_period_reads_no_events_and_needs_none() {
    let mut quiet_off = policy();
    quiet_off.quiet.period = Duration::ZERO;
    let mut snap = worker(vec![task_container("die", 1)], None);
    snap.swarm_worker = None;
    let verdict = judge(&snap, &quiet_off);
    assert!(verdict.open, "{}", verdict.detail);
    assert_eq!(worker_report(&verdict)["window_seconds"], 0);
}

#[test]
fn events_that_were_not_read_close_the_gate() {
    let mut snap = worker(Vec::new(), None);
    snap.swarm_worker = Some(WorkerObservations {
        events: Some(Err("GET /events answered 500".into())),
        manager: None,
    });
    let verdict = judge(&snap, &policy());
    assert!(!verdict.open);
    assert!(
        verdict.detail.contains("GET /events answered 500"),
        "{}",
        verdict.detail
    );
    assert!(
        verdict.detail.contains("unknown state counts as closed"),
        "{}",
        verdict.detail
    );
    snap.swarm_worker = None;
    assert!(!judge(&snap, &policy()).open, "not gathered is unknown");
}

fn task(id: &str, desired: &str, state: &str) -> Task {
    Task {
        id: id.into(),
        service_id: "svc1".into(),
        slot: Some(2),
        node_id: Some("node-a".into()),
        desired_state: desired.into(),
        state: state.into(),
        created_at: Some(ago(30)),
        state_changed_at: Some(ago(30)),
        message: if state == "preparing" {
            "preparing".into()
        } else {
            String::new()
        },
    }
}

fn cluster(tasks: Vec<Task>) -> SwarmCluster {
    SwarmCluster {
        services: vec![Service {
            id: "svc1".into(),
            name: "app_web".into(),
            labels: BTreeMap::new(),
            update_state: None,
            update_started_at: None,
            image: None,
            previous_image: None,
            update_message: String::new(),
        }],
        tasks,
    }
}

#[test]
fn the_managers_task_list_closes_while_a_task_that_should_run_does_not() {
    let host = "unix:///run/manager.sock".to_string();
    // (tasks, closes)
    for (tasks, closes) in [
        (vec![task("t1", "running", "running")], false),
        (vec![task("t1", "running", "preparing")], true),
        (vec![task("t1", "running", "assigned")], true),
        (
            vec![
                task("t0", "shutdown", "shutdown"),
                task("t1", "running", "running"),
            ],
            false,
        ),
        (vec![task("t0", "shutdown", "failed")], false),
        (Vec::new(), false),
    ] {
        let shown = format!("{tasks:?}");
        let snap = worker(Vec::new(), Some((host.clone(), Ok(cluster(tasks.clone())))));
        let verdict = judge(&snap, &policy());
        assert_eq!(!verdict.open, closes, "{shown}: {}", verdict.detail);
        assert!(
            verdict
                .detail
                .contains("as the manager at unix:///run/manager.sock lists them"),
            "{}",
            verdict.detail
        );
        let report = worker_report(&verdict);
        assert_eq!(report["manager_host"], host.as_str());
        assert_eq!(report["manager_tasks"], tasks.len());
        if closes {
            assert!(
                verdict.detail.contains("task app_web.2 is"),
                "{}",
                verdict.detail
            );
        } else {
            assert!(
                verdict
                    .detail
                    .contains("every task assigned to this node runs"),
                "{}",
                verdict.detail
            );
        }
    }
}

#[test]
fn an_unreachable_manager_closes_the_gate_naming_the_host_and_the_fix() {
    let snap = worker(
        Vec::new(),
        Some((
            "tcp://10.214.0.1:2375".into(),
            Err(
                "cannot reach the Docker daemon at tcp://10.214.0.1:2375: connection refused"
                    .into(),
            ),
        )),
    );
    let verdict = judge(&snap, &policy());
    assert!(!verdict.open);
    for needle in [
        "the swarm manager at tcp://10.214.0.1:2375 (gates.swarm.manager_host)",
        "connection refused",
        "unset gates.swarm.manager_host",
        "read-only API proxy",
    ] {
        assert!(
            verdict.detail.contains(needle),
            "{needle}: {}",
            verdict.detail
        );
    }
    assert_eq!(
        worker_report(&verdict)["manager_host"],
        "tcp://10.214.0.1:2375"
    );
}

#[test]
fn worker_evidence_names_parse_and_unknown_ones_say_the_valid_ones() {
    for kind in WorkerEvidence::ALL {
        assert_eq!(WorkerEvidence::parse(kind.as_str()), Ok(kind));
    }
    let error = WorkerEvidence::parse("pull").unwrap_err();
    assert!(
        error.contains("\"pulls\"") && error.contains("\"created_tasks\""),
        "{error}"
    );
}

fn any_event() -> impl Strategy<Value = WorkerEvent> {
    (
        prop::sample::select(vec!["container", "network", "image", "volume"]),
        prop::sample::select(vec!["die", "destroy", "create", "connect", "pull", "start"]),
        prop::sample::select(vec!["swarm", "local", ""]),
        any::<bool>(),
        prop::sample::select(vec!["overlay", "bridge"]),
        0i64..2000,
    )
        .prop_map(|(kind, action, scope, task, net, seconds)| {
            let mut attributes = vec![("name", "x"), ("type", net)];
            if task {
                attributes.push((SWARM_TASK_LABEL, "t"));
            }
            event(kind, action, scope, &attributes, seconds)
        })
}

fn any_kinds() -> impl Strategy<Value = Vec<WorkerEvidence>> {
    prop::collection::vec(prop::sample::select(WorkerEvidence::ALL.to_vec()), 0..5)
}

proptest! {
    /// The sample is bounded, holds only relevant events, and counts every relevant one.
    #[test]
    fn the_sample_is_bounded_and_relevant(events in prop::collection::vec(any_event(), 0..80)) {
        let relevant = events.iter().filter(|e| classify(e).is_some()).count() as u64;
        let mut sample = WorkerEvents::default();
        for event in events {
            sample.push(event);
        }
        prop_assert_eq!(sample.seen, relevant);
        prop_assert!(sample.newest.len() <= WorkerEvents::KEEP);
        prop_assert!(sample.newest.iter().all(|e| classify(e).is_some()));
    }

    /// Whatever the events, a policy that leaves a kind out is never closed by that kind; and
    /// more kinds of evidence never open a gate that fewer kept closed.
    #[test]
    fn more_evidence_never_opens_and_left_out_evidence_never_closes(
        events in prop::collection::vec(any_event(), 0..30),
        kinds in any_kinds(),
    ) {
        let snap = worker(events, None);
        let mut some = policy();
        some.swarm.worker_evidence = kinds.clone();
        let mut all = policy();
        all.swarm.worker_evidence = WorkerEvidence::ALL.to_vec();
        let with_some = judge(&snap, &some);
        let with_all = judge(&snap, &all);
        prop_assert!(with_some.open || !with_all.open, "{} / {}", with_some.detail, with_all.detail);
        if let Evidence::Swarm { converging, .. } = &with_some.evidence {
            for item in converging {
                let kind = match (item.kind, item.state.as_str()) {
                    ("container", "exited") => WorkerEvidence::ExitedTasks,
                    ("container", "created") => WorkerEvidence::CreatedTasks,
                    ("image", _) => WorkerEvidence::Pulls,
                    _ => WorkerEvidence::TaskEvents,
                };
                prop_assert!(kinds.contains(&kind), "{item:?} came from {kind:?}, not in {kinds:?}");
            }
        }
    }
}
