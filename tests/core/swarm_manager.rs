//! A swarm manager's judgement of each service (issue 11, item 4): paused updates converge
//! until stuck, stuck is measured from the last progress, crash loops from pruneguard's own
//! record, and the detail never contradicts itself.

use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use pruneguard::gates::{self, CONVERGING_TASK_STATES, Evidence, GateVerdict};
use pruneguard::model::{CrashLoopRecord, CrashLoopSeen, Service, Snapshot, SwarmCluster, Task};
use pruneguard::policy::GatePolicy;
use pruneguard::swarm_manager;

use crate::fixtures::{ago, manager, now, policy, service, snapshot, task};
use crate::gates::{assert_closed_naming, swarm_evidence};

/// The service `stack_web`.
const WEB: &str = "websvc0000000000";
const DB: &str = "dbsvc00000000000";

fn web() -> Service {
    service(WEB, "stack_web", &[], None)
}

/// `stack_web` with its update in `state`, started `started_ago` seconds before now.
fn web_updating(state: &str, started_ago: i64) -> Service {
    service(WEB, "stack_web", &[], Some((state, started_ago)))
}

/// A task of `service_id` in `slot`, created `created_ago` and last changed `changed_ago`
/// seconds before now.
fn slot_task(
    service_id: &str,
    id: &str,
    slot: i64,
    (desired, state): (&str, &str),
    created_ago: i64,
    changed_ago: i64,
) -> Task {
    Task {
        state_changed_at: Some(ago(changed_ago)),
        ..task(
            id,
            service_id,
            Some(slot),
            desired,
            state,
            Some(created_ago),
        )
    }
}

/// A task of [`web()`] (see [`slot_task`]).
fn web_task(id: &str, slot: i64, status: (&str, &str), created: i64, changed: i64) -> Task {
    slot_task(WEB, id, slot, status, created, changed)
}

/// Slot `slot` of `service_id` in a crash loop: `failures` failed attempts (newest 5 s ago, one
/// every 10 s) and a fresh task waiting out the restart delay.
fn crash_loop(service_id: &str, slot: i64, failures: i64) -> Vec<Task> {
    let mut tasks: Vec<Task> = (1..=failures)
        .map(|n| {
            let created = n * 10;
            slot_task(
                service_id,
                &format!("fail{n}{slot}{}", &service_id[..4]),
                slot,
                ("shutdown", "failed"),
                created,
                created - 5,
            )
        })
        .collect();
    tasks.push(slot_task(
        service_id,
        &format!("next{slot}{}", &service_id[..4]),
        slot,
        ("ready", "pending"),
        4,
        4,
    ));
    tasks
}

fn cluster_of(services: Vec<Service>, tasks: Vec<Task>) -> SwarmCluster {
    SwarmCluster { services, tasks }
}

fn manager_snapshot(cluster: SwarmCluster, record: CrashLoopRecord) -> Snapshot {
    let mut snap = snapshot();
    manager(&mut snap);
    snap.swarm_cluster = Some(Ok(cluster));
    snap.crash_loops = record;
    snap
}

/// A record saying `service_id` was first seen crash-looping `seconds` ago.
fn seen(entries: &[(&str, i64)]) -> CrashLoopRecord {
    CrashLoopRecord {
        services: entries
            .iter()
            .map(|(id, seconds)| {
                (
                    (*id).to_string(),
                    CrashLoopSeen {
                        name: "x".into(),
                        first_seen: ago(*seconds),
                    },
                )
            })
            .collect(),
    }
}

fn stuck_after(seconds: u64) -> GatePolicy {
    let mut policy = policy();
    policy.swarm.stuck_after = Duration::from_secs(seconds);
    policy
}

fn judge(services: Vec<Service>, tasks: Vec<Task>, record: CrashLoopRecord) -> GateVerdict {
    let snap = manager_snapshot(cluster_of(services, tasks), record);
    gates::swarm_gate(&snap, &stuck_after(1800), now())
}

fn states(verdict: &GateVerdict) -> (Vec<String>, Vec<String>) {
    let Evidence::Swarm {
        converging, stuck, ..
    } = &verdict.evidence
    else {
        panic!("swarm evidence expected: {verdict:#?}");
    };
    let show = |items: &[gates::Converging]| {
        items
            .iter()
            .map(|item| format!("{}:{}", item.name, item.state))
            .collect()
    };
    (show(converging), show(stuck))
}

/// The detail agrees with the verdict: "nothing converging" exactly when the gate is open, and
/// a stuck sentence exactly when something is stuck.
fn assert_consistent(verdict: &GateVerdict) {
    let (_, converging, stuck) = swarm_evidence(verdict);
    let detail = &verdict.detail;
    assert_eq!(verdict.open, converging.is_empty(), "{detail}");
    assert_eq!(
        detail.starts_with("manager node: no service"),
        converging.is_empty(),
        "{detail}"
    );
    assert_eq!(
        detail.contains("stuck longer than stuck_after")
            || detail.contains("Stuck longer than stuck_after"),
        !stuck.is_empty(),
        "{detail}"
    );
    for name in converging.iter().chain(&stuck) {
        assert!(
            detail.contains(&format!("service {name}")),
            "{name}: {detail}"
        );
    }
    assert!(detail.ends_with('.') && !detail.contains(".."), "{detail}");
}

#[test]
fn update_states_paused_ones_converge_until_stuck() {
    // (update state, closes, the sentence)
    for (state, closes, sentence) in [
        (
            "updating",
            true,
            "service stack_web is updating, last progress 1m ago",
        ),
        (
            "rollback_started",
            true,
            "service stack_web is rolling back, last progress 1m ago",
        ),
        (
            "paused",
            true,
            "service stack_web's update is paused since 1m ago",
        ),
        (
            "rollback_paused",
            true,
            "service stack_web's rollback is paused since 1m ago",
        ),
        (
            "completed",
            false,
            "manager node: no service is updating, paused, crash-looping or starting a task.",
        ),
        ("rollback_completed", false, "manager node: no service"),
    ] {
        let verdict = judge(
            vec![web_updating(state, 60)],
            vec![],
            CrashLoopRecord::default(),
        );
        assert_eq!(!verdict.open, closes, "{state}: {}", verdict.detail);
        assert!(
            verdict.detail.contains(sentence),
            "{state}: {}",
            verdict.detail
        );
        assert_consistent(&verdict);
    }
    // The update's message says why it paused.
    let paused = Service {
        update_message: "update paused due to failure or early termination of task k3j".into(),
        ..web_updating("paused", 600)
    };
    let verdict = judge(vec![paused.clone()], vec![], CrashLoopRecord::default());
    assert_closed_naming(
        &verdict,
        &[
            "service stack_web's update is paused since 10m ago (update paused due to failure or early termination of task k3j).",
        ],
    );
    // A paused update with no progress for longer than stuck_after is stuck, and says so once.
    let verdict = judge(
        vec![Service {
            update_started_at: Some(ago(7200)),
            ..paused
        }],
        vec![web_task("old1", 1, ("running", "running"), 9000, 3600)],
        CrashLoopRecord::default(),
    );
    assert!(verdict.open, "{}", verdict.detail);
    assert_eq!(
        verdict.detail,
        "manager node: no service is converging but what is stuck longer than stuck_after (30m), which no longer blocks: service stack_web's update is paused since 1h ago (update paused due to failure or early termination of task k3j)."
    );
    assert_consistent(&verdict);
}

#[test]
fn stuck_is_measured_from_the_last_progress_not_the_update_start() {
    // (update started, latest task change, stuck)
    for (started, changed, stuck) in [
        // A long rolling update that keeps progressing: never stuck.
        (3 * 3600, 60, false),
        (86_400, 1799, false),
        (86_400, 1800, false),
        // No task changed for longer than stuck_after.
        (86_400, 1801, true),
        (7200, 7200, true),
        // The update's start is progress too: old task history does not make it stuck.
        (60, 86_400, false),
    ] {
        let verdict = judge(
            vec![web_updating("updating", started)],
            vec![
                web_task("new1", 1, ("running", "running"), changed + 30, changed),
                web_task("old1", 1, ("shutdown", "shutdown"), 90_000, 90_000),
                web_task("old2", 2, ("running", "running"), 90_000, 90_000),
            ],
            CrashLoopRecord::default(),
        );
        let (converging, stuck_items) = states(&verdict);
        assert_eq!(
            verdict.open, stuck,
            "{started} {changed}: {}",
            verdict.detail
        );
        if stuck {
            assert_eq!(stuck_items, vec!["stack_web:updating"]);
        } else {
            assert_eq!(converging, vec!["stack_web:updating"]);
        }
        assert_consistent(&verdict);
    }
    // No progress known at all (no task, no start time): never stuck.
    let verdict = judge(
        vec![Service {
            update_started_at: None,
            ..web_updating("updating", 0)
        }],
        vec![],
        CrashLoopRecord::default(),
    );
    assert_closed_naming(
        &verdict,
        &["service stack_web is updating, last progress unknown."],
    );
}

#[test]
fn tasks_still_starting_make_one_sentence_per_service() {
    for state in CONVERGING_TASK_STATES {
        let verdict = judge(
            vec![web()],
            vec![web_task("task1", 1, ("running", state), 30, 30)],
            CrashLoopRecord::default(),
        );
        assert_closed_naming(
            &verdict,
            &[&format!(
                "manager node: service stack_web is starting, last progress 30s ago (task stack_web.1 is {state}: msg-{state})."
            )],
        );
        assert_eq!(states(&verdict).0, vec!["stack_web:starting"]);
        // Desired shutdown never counts: the task is on its way out.
        let verdict = judge(
            vec![web()],
            vec![web_task("task1", 1, ("shutdown", state), 30, 30)],
            CrashLoopRecord::default(),
        );
        assert!(
            verdict.open,
            "desired shutdown, {state}: {}",
            verdict.detail
        );
    }
    for state in [
        "running", "complete", "shutdown", "failed", "rejected", "orphaned", "remove",
    ] {
        let verdict = judge(
            vec![web()],
            vec![web_task("task1", 1, ("running", state), 30, 30)],
            CrashLoopRecord::default(),
        );
        assert!(verdict.open, "{state}: {}", verdict.detail);
    }
    // Two slots starting: still one sentence; a global service's task is named by its node.
    let verdict = judge(
        vec![web()],
        vec![
            web_task("task1", 1, ("running", "preparing"), 30, 20),
            Task {
                slot: None,
                ..web_task("task2", 0, ("running", "pending"), 30, 10)
            },
        ],
        CrashLoopRecord::default(),
    );
    assert_closed_naming(
        &verdict,
        &[
            "service stack_web is starting, last progress 10s ago (task stack_web.1 is preparing: msg-preparing, task stack_web.node1nnnnnnn is pending: msg-pending).",
        ],
    );
    // Pending forever (never placed): stuck once its last change is older than stuck_after.
    for (seconds, stuck) in [(1799, false), (1800, false), (1801, true), (86_400, true)] {
        let verdict = judge(
            vec![web()],
            vec![web_task(
                "task1",
                1,
                ("running", "pending"),
                seconds,
                seconds,
            )],
            CrashLoopRecord::default(),
        );
        assert_eq!(verdict.open, stuck, "{seconds}: {}", verdict.detail);
        assert_consistent(&verdict);
    }
}

#[test]
fn crash_loops_count_from_the_record_and_become_stuck_after_stuck_after() {
    // (record: first seen this long ago, stuck, "since" in the sentence)
    for (first_seen, stuck, since) in [
        (None, false, "0s"),
        (Some(600), false, "10m"),
        (Some(1800), false, "30m"),
        (Some(1801), true, "30m 1s"),
        (Some(3 * 86_400), true, "3d"),
        // A record from the future (a clock step): just started.
        (Some(-3600), false, "0s"),
    ] {
        let record =
            first_seen.map_or_else(CrashLoopRecord::default, |seconds| seen(&[(WEB, seconds)]));
        let verdict = judge(vec![web()], crash_loop(WEB, 1, 4), record);
        let sentence = format!(
            "service stack_web is crash-looping since {since} ago (slot stack_web.1: 4 attempts ended in a row, last: msg-failed)"
        );
        assert!(
            verdict.detail.contains(&sentence),
            "{first_seen:?}: {}",
            verdict.detail
        );
        assert_eq!(verdict.open, stuck, "{first_seen:?}: {}", verdict.detail);
        let (converging, stuck_items) = states(&verdict);
        let listed = if stuck { stuck_items } else { converging };
        assert_eq!(listed, vec!["stack_web:crash_looping"]);
        assert_consistent(&verdict);
    }
    // The task history alone never makes a loop old: failures days ago, no record.
    let mut old_history = crash_loop(WEB, 1, 5);
    for task in &mut old_history {
        task.created_at = task.created_at.map(|at| at - chrono::Duration::days(3));
        task.state_changed_at = task
            .state_changed_at
            .map(|at| at - chrono::Duration::days(3));
    }
    let verdict = judge(vec![web()], old_history, CrashLoopRecord::default());
    assert!(!verdict.open, "{}", verdict.detail);
}

#[test]
fn what_is_and_is_not_a_crash_loop() {
    let looping = |tasks: Vec<Task>| {
        let verdict = judge(vec![web()], tasks, seen(&[(WEB, 86_400)]));
        assert_consistent(&verdict);
        let (converging, stuck) = states(&verdict);
        (converging, stuck)
    };
    let crash = vec!["stack_web:crash_looping".to_string()];
    // Two failed attempts, then one waiting: a loop (stuck, the record is a day old).
    assert_eq!(looping(crash_loop(WEB, 1, 2)).1, crash);
    // One failure is not yet a loop, but the replacement waiting out its restart delay
    // (desired ready) is not running either: the service is starting.
    assert_eq!(
        looping(crash_loop(WEB, 1, 1)),
        (vec!["stack_web:starting".to_string()], vec![]),
        "a task waiting out its restart delay (desired ready) is starting"
    );
    // Rejected and complete attempts count like failed ones; the newest may itself have ended.
    assert_eq!(
        looping(vec![
            web_task("a", 1, ("shutdown", "rejected"), 30, 25),
            web_task("b", 1, ("shutdown", "complete"), 20, 15),
            web_task("c", 1, ("running", "failed"), 10, 5),
        ])
        .1,
        crash
    );
    // Running for a moment between two crashes: still the loop; running for longer than
    // CRASH_LOOP_SETTLE (10s): not converging at this moment.
    // (running since, crash-looping)
    for (since, still) in [
        (Some(5), true),
        (Some(10), true),
        (Some(11), false),
        (None, true),
    ] {
        let mut newest = web_task("c", 1, ("running", "running"), 40, 0);
        newest.state_changed_at = since.map(ago);
        let found = looping(vec![
            web_task("a", 1, ("shutdown", "failed"), 60, 55),
            web_task("b", 1, ("shutdown", "failed"), 50, 45),
            newest,
        ]);
        let expected = if still { crash.clone() } else { vec![] };
        assert_eq!(found, (vec![], expected), "running since {since:?}");
    }
    // Old failures before a task that ran and was shut down normally are history.
    assert_eq!(
        looping(vec![
            web_task("a", 1, ("shutdown", "failed"), 3 * 86_400, 3 * 86_400),
            web_task("b", 1, ("shutdown", "failed"), 2 * 86_400, 2 * 86_400),
            web_task("c", 1, ("shutdown", "shutdown"), 86_400, 3600),
            web_task("d", 1, ("running", "preparing"), 10, 10),
        ]),
        (vec!["stack_web:starting".to_string()], vec![])
    );
    // Scaled down or removed (desired shutdown): no loop.
    assert_eq!(
        looping(vec![
            web_task("a", 1, ("shutdown", "failed"), 30, 25),
            web_task("b", 1, ("shutdown", "failed"), 20, 15),
            web_task("c", 1, ("shutdown", "pending"), 10, 5),
        ]),
        (vec![], vec![])
    );
    // Failures of another service in the same slot number do not count.
    let verdict = judge(
        vec![web(), service(DB, "stack_db", &[], None)],
        [
            crash_loop(DB, 1, 0),
            vec![
                slot_task(DB, "a", 1, ("shutdown", "failed"), 30, 25),
                web_task("b", 1, ("shutdown", "failed"), 20, 15),
                web_task("c", 1, ("ready", "pending"), 10, 5),
            ],
        ]
        .concat(),
        CrashLoopRecord::default(),
    );
    // Neither is a loop; both have a task that should run and does not yet (starting).
    assert_eq!(
        states(&verdict),
        (
            vec![
                "stack_web:starting".to_string(),
                "stack_db:starting".to_string()
            ],
            vec![]
        ),
        "{}",
        verdict.detail
    );
}

#[test]
fn mixed_services_each_get_one_sentence_and_the_fresh_ones_hold_the_gate() {
    let services = vec![
        service(WEB, "stack_web", &[], None),
        service(DB, "stack_db", &[], Some(("paused", 7200))),
        service(
            "apisvc0000000000",
            "stack_api",
            &[],
            Some(("updating", 120)),
        ),
        service(
            "cachesvc00000000",
            "stack_cache",
            &[],
            Some(("completed", 86_400)),
        ),
        service("jobsvc0000000000", "stack_job", &[], None),
    ];
    let tasks = [
        crash_loop(WEB, 1, 5),
        vec![
            slot_task(DB, "db1", 1, ("running", "running"), 9000, 7000),
            slot_task(
                "apisvc0000000000",
                "api1",
                1,
                ("running", "preparing"),
                40,
                40,
            ),
            slot_task(
                "cachesvc00000000",
                "cache1",
                1,
                ("running", "running"),
                86_400,
                86_400,
            ),
            slot_task(
                "jobsvc0000000000",
                "job1",
                1,
                ("running", "pending"),
                60,
                60,
            ),
        ],
    ]
    .concat();
    let verdict = judge(services, tasks, seen(&[(WEB, 3600), ("gonesvc", 99_999)]));
    let (converging, stuck) = states(&verdict);
    assert_eq!(converging, vec!["stack_api:updating", "stack_job:starting"]);
    assert_eq!(stuck, vec!["stack_web:crash_looping", "stack_db:paused"]);
    assert_eq!(
        verdict.detail,
        "manager node: service stack_api is updating, last progress 40s ago (task stack_api.1 is preparing: msg-preparing); service stack_job is starting, last progress 1m ago (task stack_job.1 is pending: msg-pending). \
         Stuck longer than stuck_after (30m), so not blocking: service stack_web is crash-looping since 1h ago (slot stack_web.1: 5 attempts ended in a row, last: msg-failed); \
         service stack_db's update is paused since 1h 56m ago."
    );
    assert_consistent(&verdict);
}

fn record_of(record: &CrashLoopRecord) -> Vec<(String, DateTime<Utc>)> {
    record
        .services
        .iter()
        .map(|(id, seen)| (id.clone(), seen.first_seen))
        .collect()
}

#[test]
fn the_record_keeps_first_sightings_and_forgets_what_is_over() {
    let stuck_after = Duration::from_secs(1800);
    let update = |services: Vec<Service>, tasks: Vec<Task>, old: &CrashLoopRecord| {
        swarm_manager::updated_record(&cluster_of(services, tasks), old, now(), stuck_after)
    };
    // A new loop is first seen now; the record names the service.
    let first = update(
        vec![web()],
        crash_loop(WEB, 1, 3),
        &CrashLoopRecord::default(),
    );
    assert_eq!(record_of(&first), vec![(WEB.to_string(), now())]);
    assert_eq!(first.services[WEB].name, "stack_web");
    // A known loop keeps its first sighting (never moved later, never into the future).
    let old = seen(&[(WEB, 5000)]);
    assert_eq!(
        record_of(&update(vec![web()], crash_loop(WEB, 1, 3), &old)),
        vec![(WEB.to_string(), ago(5000))]
    );
    let future = seen(&[(WEB, -5000)]);
    assert_eq!(
        record_of(&update(vec![web()], crash_loop(WEB, 1, 3), &future)),
        vec![(WEB.to_string(), now())]
    );
    // Running between two crashes, last failure recent: the same loop, kept (not created).
    let between = vec![
        web_task("a", 1, ("shutdown", "failed"), 60, 55),
        web_task("b", 1, ("shutdown", "failed"), 50, 45),
        web_task("c", 1, ("running", "running"), 40, 30),
    ];
    assert_eq!(
        record_of(&update(vec![web()], between.clone(), &old)),
        vec![(WEB.to_string(), ago(5000))]
    );
    assert!(
        update(vec![web()], between, &CrashLoopRecord::default())
            .services
            .is_empty()
    );
    // Running for longer than stuck_after since the last failure: the loop is over.
    let recovered = vec![
        web_task("a", 1, ("shutdown", "failed"), 4000, 3990),
        web_task("b", 1, ("shutdown", "failed"), 3980, 3970),
        web_task("c", 1, ("running", "running"), 3960, 3950),
    ];
    assert!(update(vec![web()], recovered, &old).services.is_empty());
    // A service that is gone, or converged, is dropped: the record is bounded by the services.
    assert!(
        update(vec![], crash_loop(WEB, 1, 3), &old)
            .services
            .is_empty()
    );
    assert!(
        update(
            vec![web()],
            vec![web_task("a", 1, ("running", "running"), 60, 60)],
            &old
        )
        .services
        .is_empty()
    );
}

fn service_tasks() -> impl Strategy<Value = Vec<Task>> {
    prop::collection::vec(
        (
            prop::option::of(1_i64..3),
            prop::sample::select(vec!["running", "shutdown", "ready"]),
            prop::sample::select(vec![
                "new",
                "pending",
                "preparing",
                "starting",
                "running",
                "failed",
                "rejected",
                "complete",
                "shutdown",
            ]),
            0_i64..10_000,
            prop::option::of(0_i64..10_000),
        ),
        0..8,
    )
    .prop_map(|tasks| {
        tasks
            .into_iter()
            .enumerate()
            .map(|(n, (slot, desired, state, created, changed))| Task {
                state_changed_at: changed.map(ago),
                ..task(&format!("t{n}"), WEB, slot, desired, state, Some(created))
            })
            .collect()
    })
}

fn update_state() -> impl Strategy<Value = Option<(&'static str, i64)>> {
    prop::option::of((
        prop::sample::select(vec![
            "updating",
            "rollback_started",
            "paused",
            "rollback_paused",
            "completed",
        ]),
        0_i64..100_000,
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A service that is not crash-looping and whose latest task change is within stuck_after
    /// is never stuck, however long ago its update started.
    #[test]
    fn recent_progress_is_never_stuck(
        mut tasks in service_tasks(),
        update in update_state(),
        stuck_after in 1_u64..5000,
        recent in 0_i64..5000,
        record_age in prop::option::of(0_i64..100_000),
    ) {
        let recent = recent.min(i64::try_from(stuck_after).unwrap());
        tasks.push(Task {
            state_changed_at: Some(ago(recent)),
            ..task("recent", WEB, Some(1), "running", "running", Some(recent + 1))
        });
        let web = service(WEB, "stack_web", &[], update);
        let own: Vec<&Task> = tasks.iter().collect();
        prop_assume!(swarm_manager::crash_loop(&web, &own, now()).is_none());
        let record = record_age.map_or_else(CrashLoopRecord::default, |age| seen(&[(WEB, age)]));
        let snap = manager_snapshot(cluster_of(vec![web], tasks), record);
        let mut policy = policy();
        policy.swarm.stuck_after = Duration::from_secs(stuck_after);
        let verdict = gates::swarm_gate(&snap, &policy, now());
        let (_, _, stuck) = swarm_evidence(&verdict);
        prop_assert!(stuck.is_empty(), "{}", verdict.detail);
        assert_consistent(&verdict);
    }

    /// Without a record (first sight, lost or corrupt), a crash loop is never stuck; and the
    /// detail always agrees with the verdict.
    #[test]
    fn a_crash_loop_without_a_record_is_never_stuck(
        tasks in service_tasks(),
        update in update_state(),
        stuck_after in 1_u64..5000,
    ) {
        let web = service(WEB, "stack_web", &[], update);
        let own: Vec<&Task> = tasks.iter().collect();
        let looping = swarm_manager::crash_loop(&web, &own, now()).is_some();
        let snap = manager_snapshot(cluster_of(vec![web], tasks), CrashLoopRecord::default());
        let mut policy = policy();
        policy.swarm.stuck_after = Duration::from_secs(stuck_after);
        let verdict = gates::swarm_gate(&snap, &policy, now());
        assert_consistent(&verdict);
        if looping {
            prop_assert!(!verdict.open, "{}", verdict.detail);
            prop_assert!(verdict.detail.contains("crash-looping since 0s ago"), "{}", verdict.detail);
        }
    }
}
