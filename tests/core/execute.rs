//! `execute::execute` through a fake engine that records every call: exactly the planned IDs,
//! children first, per-image outcomes, stops on a lost daemon or a closed gate; and the report
//! decision for each kind of execution.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use pruneguard::decision::Action;
use pruneguard::engine::{Engine, EngineError, EventWindow, RemoveOutcome, Speaker};
use pruneguard::execute::{self, Execution, Interrupt, RECHECK_EVERY, Recheck, Stop};
use pruneguard::gates::{Evidence, GateName, GateVerdict};
use pruneguard::model::{Container, DaemonInfo, EngineKind, Events, Image, SwarmCluster};
use pruneguard::plan::{self, Candidate, Plan};
use pruneguard::report::{Decision, Report, ReportInput};

use crate::fixtures::{DAY, ago, candidate_ids, id, image, now};

/// What the fake daemon answers for one image. The first five are answers to the delete; the
/// last three are answers to the tag lookup that comes right before it.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Removed,
    Conflict,
    NotFound,
    ServerError,
    Unreachable,
    /// Tagged since the plan was made: the delete must not be sent.
    TaggedSince,
    /// Gone before the lookup: the delete must not be sent.
    GoneBeforeDelete,
    /// The lookup itself finds the daemon gone.
    LookupUnreachable,
    /// The delete times out on a daemon that still answers a ping; a second lookup then finds
    /// the image gone (`true`) or still there (`false`).
    HungDelete {
        gone: bool,
    },
    /// Docker deleted the image but reports untagging a tag on the way (it was tagged after
    /// the lookup), and a digest reference that is not a tag.
    RemovedUntagging,
    /// An engine that ignores `noprune` (Podman): it reports deleting these parents too.
    RemovedWithParents(Vec<String>),
}

impl Answer {
    /// Does execute get as far as sending the delete?
    fn reaches_delete(&self) -> bool {
        !matches!(
            self,
            Self::TaggedSince | Self::GoneBeforeDelete | Self::LookupUnreachable
        )
    }

    fn loses_daemon(&self) -> bool {
        matches!(self, Self::Unreachable | Self::LookupUnreachable)
    }
}

fn unreachable() -> EngineError {
    EngineError::Unreachable {
        endpoint: "fake://".into(),
        reason: "connection refused".into(),
        engine: Speaker::Known(EngineKind::Docker),
    }
}

/// A fake engine: answers from a table (default: untagged, then removed) and records every
/// tag lookup and delete in `log`, which the recheck closure shares so the order of checks and
/// deletions shows.
struct FakeEngine<'a> {
    answers: HashMap<String, Answer>,
    delay: Duration,
    log: &'a RefCell<Vec<String>>,
}

impl<'a> FakeEngine<'a> {
    fn new(log: &'a RefCell<Vec<String>>) -> Self {
        Self {
            answers: HashMap::new(),
            delay: Duration::ZERO,
            log,
        }
    }

    fn calls(&self, prefix: &str) -> Vec<String> {
        self.log
            .borrow()
            .iter()
            .filter_map(|entry| entry.strip_prefix(prefix).map(str::to_string))
            .collect()
    }

    /// Every ID passed to `remove_image`, in order.
    fn removes(&self) -> Vec<String> {
        self.calls("remove ")
    }

    /// Every ID passed to `image_tags`, in order.
    fn lookups(&self) -> Vec<String> {
        self.calls("tags ")
    }

    fn answer(&self, id: &str) -> &Answer {
        self.answers.get(id).unwrap_or(&Answer::Removed)
    }
}

impl Engine for FakeEngine<'_> {
    fn endpoint(&self) -> &'static str {
        "fake://"
    }
    async fn info(&self) -> Result<DaemonInfo, EngineError> {
        panic!("execute must not call info")
    }
    async fn ping(&self) -> Result<(), EngineError> {
        self.log.borrow_mut().push("ping".into());
        if self.answers.values().any(Answer::loses_daemon) {
            Err(unreachable())
        } else {
            Ok(())
        }
    }
    async fn images(&self) -> Result<Vec<Image>, EngineError> {
        panic!("execute must not list images")
    }
    async fn containers(&self) -> Result<Vec<Container>, EngineError> {
        panic!("execute must not list containers")
    }
    async fn events(&self, _window: EventWindow) -> Result<Events, EngineError> {
        panic!("execute must not read events")
    }
    async fn swarm_cluster(&self) -> Result<SwarmCluster, EngineError> {
        panic!("execute must not read the swarm")
    }
    async fn swarm_node_tasks(&self, _node_id: &str) -> Result<SwarmCluster, EngineError> {
        panic!("execute must not read the swarm")
    }
    async fn swarm_worker_events(
        &self,
        _window: EventWindow,
    ) -> Result<pruneguard::worker_evidence::WorkerEvents, EngineError> {
        panic!("execute must not read events")
    }
    async fn image_tags(&self, id: &str) -> Result<Option<Vec<String>>, EngineError> {
        let looked_before = self.lookups().contains(&id.to_string());
        self.log.borrow_mut().push(format!("tags {id}"));
        match self.answer(id) {
            Answer::HungDelete { gone: true } if looked_before => Ok(None),
            Answer::TaggedSince => Ok(Some(vec!["app:rebuilt".into(), "app:latest".into()])),
            Answer::GoneBeforeDelete => Ok(None),
            Answer::LookupUnreachable => Err(unreachable()),
            _ => Ok(Some(Vec::new())),
        }
    }
    async fn remove_image(&self, id: &str) -> Result<RemoveOutcome, EngineError> {
        self.log.borrow_mut().push(format!("remove {id}"));
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match self.answer(id) {
            Answer::Removed => Ok(RemoveOutcome::Removed {
                untagged_tags: Vec::new(),
                also_deleted: Vec::new(),
            }),
            Answer::RemovedWithParents(parents) => Ok(RemoveOutcome::Removed {
                untagged_tags: Vec::new(),
                also_deleted: parents.clone(),
            }),
            Answer::Conflict => Ok(RemoveOutcome::Conflict(
                "image is being used by stopped container 1234".into(),
            )),
            Answer::NotFound => Ok(RemoveOutcome::NotFound),
            Answer::ServerError => Err(EngineError::Api {
                operation: "DELETE /images",
                status: 500,
                message: "driver failed".into(),
                engine: Speaker::Known(EngineKind::Docker),
            }),
            Answer::Unreachable => Err(unreachable()),
            Answer::HungDelete { .. } => Err(EngineError::Timeout {
                endpoint: "fake://".into(),
                operation: "DELETE /images/{id}",
                timeout_secs: 30,
                engine: Speaker::Known(EngineKind::Docker),
            }),
            Answer::RemovedUntagging => Ok(RemoveOutcome::Removed {
                also_deleted: Vec::new(),
                untagged_tags: vec!["app:rebuilt".into()],
            }),
            other => panic!("remove_image sent for {id} although its lookup answered {other:?}"),
        }
    }
}

fn verdict(name: GateName, open: bool) -> GateVerdict {
    GateVerdict {
        name,
        open,
        detail: if open {
            format!("{} open.", name.as_str())
        } else {
            format!("{} closed by test.", name.as_str())
        },
        evidence: Evidence::None {},
    }
}

fn all_open() -> Vec<GateVerdict> {
    GateName::ALL
        .iter()
        .map(|name| verdict(*name, true))
        .collect()
}

fn one_closed(closed: GateName) -> Vec<GateVerdict> {
    GateName::ALL
        .iter()
        .map(|name| verdict(*name, *name != closed))
        .collect()
}

fn candidate(n: u32, wave: u32) -> Candidate {
    Candidate {
        id: id(n),
        size_bytes: u64::from(n) * 100,
        created: ago(2 * DAY),
        reason: "test".into(),
        wave,
    }
}

fn flat_plan(count: u32) -> Plan {
    Plan {
        candidates: (1..=count).map(|n| candidate(n, 0)).collect(),
        ..Plan::default()
    }
}

/// A recheck that answers from a script, one entry per call (the last repeats), and logs
/// each call with its answer. `Err` plays a re-check that could not reach the daemon.
type Script = Vec<Result<Vec<GateVerdict>, &'static str>>;

fn scripted(
    log: &RefCell<Vec<String>>,
    script: Script,
) -> impl FnMut(Recheck) -> std::future::Ready<anyhow::Result<Vec<GateVerdict>>> + '_ {
    let mut calls = 0_usize;
    move |when| {
        let index = calls.min(script.len() - 1);
        calls += 1;
        let answer = script[index]
            .clone()
            .map_err(|error| anyhow::anyhow!(error));
        let open = answer
            .as_ref()
            .is_ok_and(|verdicts| verdicts.iter().all(|v| v.open));
        log.borrow_mut().push(format!("check {when:?} open={open}"));
        std::future::ready(answer)
    }
}

fn attempted_sets(execution: &Execution) -> Vec<String> {
    let mut all: Vec<String> = execution
        .removed
        .iter()
        .map(|r| r.id.clone())
        .chain(execution.skipped.iter().map(|s| s.id.clone()))
        .chain(execution.failed.iter().map(|f| f.id.clone()))
        .chain(execution.outcome_unknown.iter().map(|f| f.id.clone()))
        .chain(execution.not_attempted.iter().cloned())
        .collect();
    all.sort();
    all
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn removes_exactly_the_planned_ids() {
    let log = RefCell::new(Vec::new());
    let engine = FakeEngine::new(&log);
    let plan = flat_plan(7);
    let execution = execute::execute(
        &engine,
        &plan,
        3,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;

    let mut asked = engine.removes();
    asked.sort();
    assert_eq!(
        asked,
        candidate_ids(&plan),
        "every planned ID asked exactly once"
    );
    let removed: Vec<String> = execution.removed.iter().map(|r| r.id.clone()).collect();
    let mut sorted = removed.clone();
    sorted.sort();
    assert_eq!(sorted, candidate_ids(&plan));
    assert!(execution.skipped.is_empty() && execution.failed.is_empty());
    assert!(execution.not_attempted.is_empty());
    assert_eq!(execution.stopped, None);
    // Sizes come from the plan.
    for removed in &execution.removed {
        let planned = plan.candidates.iter().find(|c| c.id == removed.id).unwrap();
        assert_eq!(removed.size_bytes, planned.size_bytes);
    }
    // One check, before the first deletion.
    assert_eq!(log.borrow()[0], "check BeforeStart open=true");
    assert_eq!(
        log.borrow()
            .iter()
            .filter(|e| e.starts_with("check"))
            .count(),
        1
    );
}

#[tokio::test]
async fn an_empty_plan_asks_nothing() {
    let log = RefCell::new(Vec::new());
    let engine = FakeEngine::new(&log);
    let execution = execute::execute(
        &engine,
        &Plan::default(),
        4,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;
    assert_eq!(execution, Execution::default());
    assert!(engine.removes().is_empty());
}

#[tokio::test]
async fn children_are_removed_before_their_parents() {
    // Two chains and a fork: 1 <- 2 <- 3, 1 <- 4, 10 <- 11, plus loose 20, 21, 22.
    let images = vec![
        image(1, &[], None, Some(9 * DAY)),
        image(2, &[], Some(1), Some(8 * DAY)),
        image(3, &[], Some(2), Some(7 * DAY)),
        image(4, &[], Some(1), Some(7 * DAY)),
        image(10, &[], None, Some(9 * DAY)),
        image(11, &[], Some(10), Some(8 * DAY)),
        image(20, &[], None, Some(3 * DAY)),
        image(21, &[], None, Some(3 * DAY)),
        image(22, &[], None, Some(3 * DAY)),
    ];
    let plan = plan::plan(&images, &[], Duration::from_secs(86_400), now());
    assert_eq!(plan.candidates.len(), images.len());
    for concurrency in [1, 2, 4, 16] {
        let log = RefCell::new(Vec::new());
        let engine = FakeEngine::new(&log);
        let execution = execute::execute(
            &engine,
            &plan,
            concurrency,
            &Interrupt::never(),
            scripted(&log, vec![Ok(all_open())]),
        )
        .await;
        assert_eq!(execution.removed.len(), images.len());
        let order = engine.removes();
        let position = |id: &str| order.iter().position(|x| x == id).unwrap();
        for child in &images {
            if let Some(parent) = &child.parent_id {
                assert!(
                    position(&child.id) < position(parent),
                    "concurrency {concurrency}: child {} after parent {parent}: {order:?}",
                    child.id
                );
            }
        }
        // Whole waves: every wave-n deletion before any wave-(n+1) one.
        let wave = |id: &str| plan.candidates.iter().find(|c| c.id == id).unwrap().wave;
        let waves: Vec<u32> = order.iter().map(|id| wave(id)).collect();
        assert!(waves.windows(2).all(|w| w[0] <= w[1]), "{waves:?}");
    }
}

#[tokio::test]
async fn parents_the_engine_deleted_with_their_child_are_removed_without_a_request() {
    // 1 <- 2 <- 3 planned; Podman deletes 2 and 1 with 3 (it ignores `noprune`).
    let images = vec![
        image(1, &[], None, Some(9 * DAY)),
        image(2, &[], Some(1), Some(8 * DAY)),
        image(3, &[], Some(2), Some(7 * DAY)),
    ];
    let plan = plan::plan(&images, &[], Duration::from_secs(86_400), now());
    assert_eq!(plan.candidates.len(), 3);
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine
        .answers
        .insert(id(3), Answer::RemovedWithParents(vec![id(2), id(1)]));
    let execution = execute::execute(
        &engine,
        &plan,
        4,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;
    let mut removed: Vec<String> = execution.removed.iter().map(|r| r.id.clone()).collect();
    removed.sort();
    assert_eq!(removed, vec![id(1), id(2), id(3)], "{execution:?}");
    assert!(execution.skipped.is_empty(), "{execution:?}");
    assert_eq!(
        engine.removes(),
        vec![id(3)],
        "one delete only: {:?}",
        log.borrow()
    );
}

#[tokio::test]
async fn conflict_not_found_and_errors_are_recorded_per_image() {
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine.answers.insert(id(2), Answer::Conflict);
    engine.answers.insert(id(3), Answer::NotFound);
    engine.answers.insert(id(4), Answer::ServerError);
    let plan = flat_plan(5);
    let execution = execute::execute(
        &engine,
        &plan,
        1,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;

    let removed: Vec<&str> = execution.removed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(removed, vec![id(1).as_str(), id(5).as_str()]);
    assert_eq!(execution.skipped.len(), 2);
    let conflict = execution.skipped.iter().find(|s| s.id == id(2)).unwrap();
    assert!(
        conflict.why.contains("conflict") && conflict.why.contains("stopped container 1234"),
        "{}",
        conflict.why
    );
    let gone = execution.skipped.iter().find(|s| s.id == id(3)).unwrap();
    assert_eq!(gone.why, "already gone (404)");
    assert_eq!(execution.failed.len(), 1);
    assert_eq!(execution.failed[0].id, id(4));
    assert!(
        execution.failed[0].error.contains("HTTP 500"),
        "{}",
        execution.failed[0].error
    );
    // A single failed request does not stop the run.
    assert_eq!(execution.stopped, None);
    assert!(execution.not_attempted.is_empty());
    assert_eq!(engine.removes(), candidate_ids(&plan));
}

#[tokio::test]
async fn a_lost_daemon_stops_the_run() {
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine.answers.insert(id(3), Answer::Unreachable);
    let plan = flat_plan(6);
    let execution = execute::execute(
        &engine,
        &plan,
        1,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;

    assert_eq!(engine.removes(), vec![id(1), id(2), id(3)]);
    let removed: Vec<&str> = execution.removed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(removed, vec![id(1).as_str(), id(2).as_str()]);
    // The delete was sent and the daemon is gone: whether it went through is unknown.
    assert!(execution.failed.is_empty(), "{:?}", execution.failed);
    assert_eq!(execution.outcome_unknown.len(), 1);
    assert_eq!(execution.outcome_unknown[0].id, id(3));
    assert_eq!(execution.not_attempted, vec![id(4), id(5), id(6)]);
    assert!(
        log.borrow().contains(&"ping".to_string()),
        "the daemon was pinged"
    );
    match &execution.stopped {
        Some(Stop::DaemonLost { error }) => {
            assert!(error.contains("connection refused"), "{error}");
        }
        other => panic!("DaemonLost expected, got {other:?}"),
    }
}

#[tokio::test]
async fn an_image_tagged_or_gone_since_the_plan_is_not_deleted() {
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine.answers.insert(id(1), Answer::TaggedSince);
    engine.answers.insert(id(2), Answer::GoneBeforeDelete);
    let plan = flat_plan(3);
    let execution = execute::execute(
        &engine,
        &plan,
        2,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;
    assert_eq!(engine.lookups().len(), 3);
    assert_eq!(engine.removes(), vec![id(3)]);
    let tagged = execution.skipped.iter().find(|s| s.id == id(1)).unwrap();
    assert!(
        tagged
            .why
            .contains("tagged since the plan was made (app:rebuilt, app:latest)"),
        "{}",
        tagged.why
    );
    let gone = execution.skipped.iter().find(|s| s.id == id(2)).unwrap();
    assert_eq!(gone.why, "already gone (404)");
    assert_eq!(execution.removed.len(), 1);
    assert_eq!(execution.stopped, None);
}

#[tokio::test]
async fn a_lost_daemon_at_the_tag_lookup_stops_the_run() {
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine.answers.insert(id(2), Answer::LookupUnreachable);
    let plan = flat_plan(4);
    let execution = execute::execute(
        &engine,
        &plan,
        1,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;
    assert_eq!(engine.removes(), vec![id(1)]);
    assert_eq!(engine.lookups(), vec![id(1), id(2)]);
    assert_eq!(execution.failed.len(), 1);
    assert_eq!(execution.failed[0].id, id(2));
    assert_eq!(execution.not_attempted, vec![id(3), id(4)]);
    assert!(matches!(execution.stopped, Some(Stop::DaemonLost { .. })));
}

#[tokio::test]
async fn a_lost_daemon_stops_before_the_next_wave() {
    // Parent 1 of child 2: the child's wave fails with the daemon gone, the parent is not tried.
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine.answers.insert(id(2), Answer::Unreachable);
    let plan = Plan {
        candidates: vec![candidate(2, 0), candidate(3, 0), candidate(1, 1)],
        ..Plan::default()
    };
    let execution = execute::execute(
        &engine,
        &plan,
        4,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;
    assert!(!engine.removes().contains(&id(1)));
    assert_eq!(execution.not_attempted, vec![id(1)]);
    assert!(matches!(execution.stopped, Some(Stop::DaemonLost { .. })));
    assert_eq!(attempted_sets(&execution), {
        let mut all = candidate_ids(&plan);
        all.sort();
        all
    });
}

#[tokio::test]
async fn a_gate_closed_before_start_removes_nothing() {
    let log = RefCell::new(Vec::new());
    let engine = FakeEngine::new(&log);
    let plan = flat_plan(4);
    let execution = execute::execute(
        &engine,
        &plan,
        4,
        &Interrupt::never(),
        scripted(&log, vec![Ok(one_closed(GateName::Workload))]),
    )
    .await;
    assert!(engine.removes().is_empty(), "nothing may be asked");
    assert!(execution.removed.is_empty());
    assert_eq!(execution.not_attempted, candidate_ids(&plan));
    match &execution.stopped {
        Some(Stop::GateClosed { gates }) => {
            // Only the closed gates are carried.
            assert_eq!(gates.len(), 1);
            assert_eq!(gates[0].name, GateName::Workload);
            assert!(!gates[0].open);
        }
        other => panic!("GateClosed expected, got {other:?}"),
    }
    assert_eq!(
        *log.borrow(),
        vec!["check BeforeStart open=false".to_string()]
    );
}

#[tokio::test]
async fn a_failed_recheck_before_start_is_a_lost_daemon() {
    let log = RefCell::new(Vec::new());
    let engine = FakeEngine::new(&log);
    let plan = flat_plan(2);
    let execution = execute::execute(
        &engine,
        &plan,
        4,
        &Interrupt::never(),
        scripted(&log, vec![Err("cannot reach the daemon")]),
    )
    .await;
    assert!(engine.removes().is_empty());
    assert_eq!(execution.not_attempted, candidate_ids(&plan));
    assert!(
        matches!(&execution.stopped, Some(Stop::DaemonLost { error }) if error.contains("cannot reach the daemon")),
        "{:?}",
        execution.stopped
    );
}

/// Each removal takes longer than `RECHECK_EVERY`, so a mid-run re-check happens before every
/// batch after the first: the script decides at which one the gate closes.
#[tokio::test]
async fn a_gate_closing_mid_run_stops_deleting() {
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine.delay = RECHECK_EVERY + Duration::from_millis(50);
    let plan = flat_plan(5);
    let execution = execute::execute(
        &engine,
        &plan,
        1,
        &Interrupt::never(),
        scripted(
            &log,
            vec![
                Ok(all_open()),
                Ok(all_open()),
                Ok(one_closed(GateName::Swarm)),
            ],
        ),
    )
    .await;
    assert_eq!(
        *log.borrow(),
        vec![
            "check BeforeStart open=true".to_string(),
            format!("tags {}", id(1)),
            format!("remove {}", id(1)),
            "check MidRun open=true".to_string(),
            format!("tags {}", id(2)),
            format!("remove {}", id(2)),
            "check MidRun open=false".to_string(),
        ]
    );
    let removed: Vec<&str> = execution.removed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(removed, vec![id(1).as_str(), id(2).as_str()]);
    assert_eq!(execution.not_attempted, vec![id(3), id(4), id(5)]);
    match &execution.stopped {
        Some(Stop::GateClosed { gates }) => {
            assert_eq!(
                gates.iter().map(|g| g.name).collect::<Vec<_>>(),
                vec![GateName::Swarm]
            );
        }
        other => panic!("GateClosed expected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_recheck_mid_run_stops_as_lost_daemon() {
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine.delay = RECHECK_EVERY + Duration::from_millis(50);
    let plan = flat_plan(3);
    let execution = execute::execute(
        &engine,
        &plan,
        1,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open()), Err("info timed out")]),
    )
    .await;
    assert_eq!(engine.removes(), vec![id(1)]);
    assert_eq!(execution.not_attempted, vec![id(2), id(3)]);
    assert!(
        matches!(&execution.stopped, Some(Stop::DaemonLost { error }) if error.contains("info timed out")),
        "{:?}",
        execution.stopped
    );
}

#[tokio::test]
async fn fast_deletions_are_not_rechecked_every_time() {
    let log = RefCell::new(Vec::new());
    let engine = FakeEngine::new(&log);
    let plan = flat_plan(50);
    // A closed verdict for any mid-run check: none may happen within RECHECK_EVERY.
    let execution = execute::execute(
        &engine,
        &plan,
        1,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open()), Ok(one_closed(GateName::Quiet))]),
    )
    .await;
    assert_eq!(execution.removed.len(), 50, "{:?}", execution.stopped);
    assert_eq!(
        log.borrow()
            .iter()
            .filter(|e| e.starts_with("check"))
            .count(),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Random plans and outcomes.

fn answer_strategy() -> impl Strategy<Value = Answer> {
    prop_oneof![
        12 => Just(Answer::Removed),
        2 => Just(Answer::Conflict),
        2 => Just(Answer::NotFound),
        1 => Just(Answer::ServerError),
        1 => Just(Answer::Unreachable),
        2 => Just(Answer::TaggedSince),
        1 => Just(Answer::GoneBeforeDelete),
        1 => Just(Answer::LookupUnreachable),
    ]
}

fn plan_strategy() -> impl Strategy<Value = (Plan, HashMap<String, Answer>)> {
    prop::collection::vec((0_u32..4, answer_strategy()), 0..30).prop_map(|items| {
        let mut candidates = Vec::new();
        let mut answers = HashMap::new();
        for (n, (wave, answer)) in items.into_iter().enumerate() {
            let candidate = candidate(u32::try_from(n).unwrap() + 1, wave);
            answers.insert(candidate.id.clone(), answer);
            candidates.push(candidate);
        }
        // A plan lists its candidates in deletion order.
        candidates.sort_by_key(|c| c.wave);
        (
            Plan {
                candidates,
                ..Plan::default()
            },
            answers,
        )
    })
}

fn assert_unique_and_planned(calls: &[String], planned: &HashSet<String>, what: &str) {
    let mut seen = HashSet::new();
    for call in calls {
        assert!(planned.contains(call), "{what} for unplanned {call}");
        assert!(seen.insert(call.clone()), "{what} twice for {call}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn execute_never_leaves_the_plan(
        (plan, answers) in plan_strategy(),
        concurrency in 0_usize..6,
        before in prop_oneof![6 => Just(0_u8), 1 => Just(1_u8), 1 => Just(2_u8)],
    ) {
        let log = RefCell::new(Vec::new());
        let mut engine = FakeEngine::new(&log);
        engine.answers = answers.clone();
        let script = match before {
            0 => vec![Ok(all_open())],
            1 => vec![Ok(one_closed(GateName::Disk))],
            _ => vec![Err("gone")],
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let execution = runtime.block_on(execute::execute(&engine, &plan, concurrency, &Interrupt::never(), scripted(&log, script)));

        let planned: HashSet<String> = candidate_ids(&plan).into_iter().collect();
        let removes = engine.removes();
        let lookups = engine.lookups();
        // Every ID asked about is planned, and asked at most once.
        assert_unique_and_planned(&removes, &planned, "remove_image");
        assert_unique_and_planned(&lookups, &planned, "image_tags");
        // A delete is only sent after a lookup that found the image still untagged.
        for id in &removes {
            prop_assert!(lookups.contains(id), "delete of {} without a lookup", id);
            prop_assert!(answers[id].reaches_delete(), "delete of {} after {:?}", id, answers[id]);
        }
        for id in &lookups {
            prop_assert_eq!(removes.contains(id), answers[id].reaches_delete(), "{}", id);
        }
        // removed ∪ skipped ∪ failed ∪ not_attempted == planned, disjointly.
        let mut expected = candidate_ids(&plan);
        expected.sort();
        prop_assert_eq!(attempted_sets(&execution), expected);
        // What was attempted is exactly what was looked up.
        let mut asked = lookups.clone();
        asked.sort();
        let mut recorded: Vec<String> = execution.removed.iter().map(|r| r.id.clone())
            .chain(execution.skipped.iter().map(|s| s.id.clone()))
            .chain(execution.failed.iter().map(|f| f.id.clone()))
            .chain(execution.outcome_unknown.iter().map(|f| f.id.clone()))
            .collect();
        recorded.sort();
        prop_assert_eq!(asked, recorded);
        // Outcomes match the daemon's answers.
        for removed in &execution.removed {
            prop_assert_eq!(&answers[&removed.id], &Answer::Removed);
        }
        for skipped in &execution.skipped {
            prop_assert!(
                matches!(answers[&skipped.id], Answer::Conflict | Answer::NotFound | Answer::TaggedSince | Answer::GoneBeforeDelete),
                "skipped: {:?}", skipped
            );
        }
        for failed in &execution.failed {
            prop_assert!(
                matches!(answers[&failed.id], Answer::ServerError | Answer::Unreachable | Answer::LookupUnreachable),
                "failed: {:?}", failed
            );
        }
        // Deletion order respects waves.
        let wave = |id: &str| plan.candidates.iter().find(|c| c.id == id).unwrap().wave;
        prop_assert!(lookups.windows(2).all(|w| wave(&w[0]) <= wave(&w[1])));

        if before == 0 {
            let lost = lookups.iter().any(|id| answers[id].loses_daemon());
            if lost {
                prop_assert!(
                    matches!(execution.stopped, Some(Stop::DaemonLost { .. })),
                    "stopped: {:?}", execution.stopped
                );
            } else {
                prop_assert_eq!(&execution.stopped, &None);
                prop_assert!(execution.not_attempted.is_empty());
                prop_assert_eq!(lookups.len(), plan.candidates.len());
            }
        } else {
            prop_assert!(lookups.is_empty() && removes.is_empty());
            prop_assert_eq!(execution.not_attempted.clone(), candidate_ids(&plan));
            let is_gate = matches!(execution.stopped, Some(Stop::GateClosed { .. }));
            prop_assert_eq!(is_gate, before == 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The report's decision.

fn report(
    dry_run: bool,
    gates: Vec<GateVerdict>,
    plan: Plan,
    execution: Option<Execution>,
) -> Report {
    Report::new(ReportInput {
        started_at: now(),
        dry_run,
        action: Action::decide(dry_run, &gates, &plan),
        gates,
        plan,
        execution,
        disk: None,
        disk_after: None,
        more_disks: Vec::new(),
        image_store: None,
        wait: None,
        duration_ms: 10,
        min_age: "1d",
    })
}

async fn run_with(
    plan: &Plan,
    answers: &[(u32, Answer)],
    script: Script,
    delay: Duration,
) -> Execution {
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine.delay = delay;
    for (n, answer) in answers {
        engine.answers.insert(id(*n), answer.clone());
    }
    execute::execute(
        &engine,
        plan,
        1,
        &Interrupt::never(),
        scripted(&log, script),
    )
    .await
}

#[tokio::test]
async fn report_decisions() {
    let plan = flat_plan(3);

    let execution = run_with(&plan, &[], vec![Ok(all_open())], Duration::ZERO).await;
    let r = report(false, all_open(), plan.clone(), Some(execution));
    assert_eq!(r.decision, Decision::Pruned);
    assert!(r.summary.starts_with("Pruned 3 image(s)"), "{}", r.summary);
    assert_eq!(r.removed_image_bytes, 100 + 200 + 300);

    // 409 and 404 are skips, not failures: still pruned.
    let execution = run_with(
        &plan,
        &[(1, Answer::Conflict), (2, Answer::NotFound)],
        vec![Ok(all_open())],
        Duration::ZERO,
    )
    .await;
    let r = report(false, all_open(), plan.clone(), Some(execution));
    assert_eq!(r.decision, Decision::Pruned);
    assert_eq!(r.skipped.len(), 2);

    // A failed deletion: partial.
    let execution = run_with(
        &plan,
        &[(2, Answer::ServerError)],
        vec![Ok(all_open())],
        Duration::ZERO,
    )
    .await;
    let r = report(false, all_open(), plan.clone(), Some(execution));
    assert_eq!(r.decision, Decision::Partial);
    assert!(r.summary.contains("1 deletion(s) failed"), "{}", r.summary);
    assert!(!r.runtime_failed());

    // The daemon went away: partial, and a runtime failure.
    let execution = run_with(
        &plan,
        &[(2, Answer::Unreachable)],
        vec![Ok(all_open())],
        Duration::ZERO,
    )
    .await;
    let r = report(false, all_open(), plan.clone(), Some(execution));
    assert_eq!(r.decision, Decision::Partial);
    assert!(r.runtime_failed());
    assert!(
        r.summary.contains("daemon stopped answering"),
        "{}",
        r.summary
    );
    assert!(r.summary.contains("1 not attempted"), "{}", r.summary);

    // A gate closed at the re-check before the first deletion: skipped.
    let execution = run_with(
        &plan,
        &[],
        vec![Ok(one_closed(GateName::Quiet))],
        Duration::ZERO,
    )
    .await;
    let r = report(false, all_open(), plan.clone(), Some(execution));
    assert_eq!(r.decision, Decision::Skipped);
    assert!(r.removed.is_empty());
    // A gate closed mid-run after some deletions: partial, naming the gate.
    let execution = run_with(
        &plan,
        &[],
        vec![Ok(all_open()), Ok(one_closed(GateName::Workload))],
        RECHECK_EVERY + Duration::from_millis(50),
    )
    .await;
    let r = report(false, all_open(), plan.clone(), Some(execution));
    assert_eq!(r.decision, Decision::Partial);
    assert_eq!(r.removed.len(), 1);
    assert!(
        r.summary.contains("gate closed mid-run: workload"),
        "{}",
        r.summary
    );

    // Gates closed from the start: skipped, naming the gate, nothing executed.
    let r = report(false, one_closed(GateName::Disk), plan.clone(), None);
    assert_eq!(r.decision, Decision::Skipped);
    assert!(
        r.summary.contains("the disk gate is closed"),
        "{}",
        r.summary
    );

    // Nothing to remove.
    let r = report(false, all_open(), Plan::default(), None);
    assert_eq!(r.decision, Decision::NothingToDo);
    assert!(r.summary.contains("older than 1d"), "{}", r.summary);

    // Dry runs.
    let r = report(true, all_open(), plan.clone(), None);
    assert_eq!(r.decision, Decision::DryRun);
    assert!(
        r.summary.contains("would remove 3 image(s)"),
        "{}",
        r.summary
    );
    let r = report(true, one_closed(GateName::Swarm), plan.clone(), None);
    assert_eq!(r.decision, Decision::Skipped);
    let r = report(true, all_open(), Plan::default(), None);
    assert_eq!(r.decision, Decision::NothingToDo);
}

/// A gate that closes at the re-check right before the first deletion: the summary, `gates`,
/// the metrics and `status` all name it, not the open verdicts the run began with.
#[tokio::test]
async fn a_gate_closed_at_the_first_recheck_shows_in_every_view() {
    let plan = flat_plan(3);
    let execution = run_with(
        &plan,
        &[],
        vec![Ok(one_closed(GateName::Quiet))],
        Duration::ZERO,
    )
    .await;
    let r = report(false, all_open(), plan.clone(), Some(execution));
    assert_eq!(r.decision, Decision::Skipped);
    assert_eq!(r.gate_open(GateName::Quiet), Some(false));
    assert_eq!(r.gate_open(GateName::Disk), Some(true));
    assert!(
        r.summary.contains("the quiet gate is closed"),
        "{}",
        r.summary
    );
    let metrics = r.to_metrics(now());
    assert!(
        metrics.contains("pruneguard_gate_open{gate=\"quiet\"} 0"),
        "{metrics}"
    );
    let last: pruneguard::state::LastRun = serde_json::from_str(&r.to_json()).unwrap();
    assert!(
        last.to_text()
            .contains("closed quiet: quiet closed by test."),
        "{}",
        last.to_text()
    );
}

/// A delete that hangs on a healthy daemon is not a lost daemon: the daemon answers a ping, the
/// image is looked up again, and the delete is recorded as what it turned out to be.
#[tokio::test]
async fn a_hung_delete_on_a_live_daemon_is_checked_not_called_a_lost_daemon() {
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine
        .answers
        .insert(id(1), Answer::HungDelete { gone: true });
    engine
        .answers
        .insert(id(2), Answer::HungDelete { gone: false });
    let plan = flat_plan(3);
    let execution = execute::execute(
        &engine,
        &plan,
        1,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;
    assert_eq!(execution.stopped, None, "the daemon was there all along");
    let removed: Vec<&str> = execution.removed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(removed, vec![id(1).as_str(), id(3).as_str()]);
    assert_eq!(execution.failed.len(), 1);
    assert_eq!(execution.failed[0].id, id(2));
    assert!(
        execution.failed[0].error.contains("still there"),
        "{}",
        execution.failed[0].error
    );
    assert!(execution.not_attempted.is_empty());
    let r = report(false, all_open(), plan, Some(execution));
    assert_eq!(r.decision, Decision::Partial);
    assert_eq!(r.outcome(), pruneguard::exit::Outcome::DeletionsFailed);
}

/// Docker reports untagging a tag: the image is removed *with the tags it lost*, which the
/// report, the metrics and the exit status (3) all show; a digest reference is not a tag.
#[tokio::test]
async fn a_delete_that_untagged_a_tag_is_reported_with_the_tags_lost() {
    let log = RefCell::new(Vec::new());
    let mut engine = FakeEngine::new(&log);
    engine.answers.insert(id(2), Answer::RemovedUntagging);
    let plan = flat_plan(2);
    let execution = execute::execute(
        &engine,
        &plan,
        1,
        &Interrupt::never(),
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;
    assert_eq!(execution.removed.len(), 2);
    assert_eq!(execution.tags_lost.len(), 1);
    assert_eq!(execution.tags_lost[0].id, id(2));
    assert_eq!(execution.tags_lost[0].tags, vec!["app:rebuilt".to_string()]);
    let r = report(false, all_open(), plan, Some(execution));
    assert_eq!(r.outcome(), pruneguard::exit::Outcome::DeletionsFailed);
    assert!(r.summary.contains("lost these tags"), "{}", r.summary);
    assert!(r.summary.contains("app:rebuilt"), "{}", r.summary);
    assert!(
        r.to_text(false).contains("lost tags"),
        "{}",
        r.to_text(false)
    );
    let metrics = r.to_metrics(now());
    assert!(metrics.contains("pruneguard_tags_lost 1"), "{metrics}");
    assert!(
        metrics.contains("pruneguard_last_run_success 0"),
        "{metrics}"
    );
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["tags_lost"][0]["tags"][0], "app:rebuilt");
}

/// Once interrupted, no new deletion starts; the report says interrupted.
#[tokio::test]
async fn an_interrupted_run_starts_no_new_deletion() {
    let log = RefCell::new(Vec::new());
    let engine = FakeEngine::new(&log);
    let plan = flat_plan(4);
    let interrupt = Interrupt::default();
    interrupt.set();
    let execution = execute::execute(
        &engine,
        &plan,
        2,
        &interrupt,
        scripted(&log, vec![Ok(all_open())]),
    )
    .await;
    assert!(engine.removes().is_empty());
    assert_eq!(execution.not_attempted, candidate_ids(&plan));
    assert!(matches!(execution.stopped, Some(Stop::Interrupted { .. })));
    let r = report(false, all_open(), plan, Some(execution));
    assert_eq!(r.decision, Decision::Interrupted);
    assert!(r.summary.starts_with("Interrupted by"), "{}", r.summary);
}
