//! Pure: a swarm manager's judgement of each service, for the swarm gate. One verdict per
//! service, in this order:
//!
//! 1. **crash-looping**: a slot whose newest task wants to run but is not running (or has run
//!    for less than [`CRASH_LOOP_SETTLE`]), right after
//!    at least [`CRASH_LOOP_MIN_FAILURES`] tasks of that slot that ended (failed, rejected,
//!    or complete while the slot wants to run). Measured from pruneguard's own record of when
//!    the loop was first seen ([`CrashLoopRecord`]): swarm keeps about five tasks per slot,
//!    which would otherwise cap the measured time at a few seconds. No record means the loop
//!    has just started.
//! 2. **updating / rolling back / paused**: `UpdateStatus.State` in
//!    [`CONVERGING_UPDATE_STATES`] or [`PAUSED_UPDATE_STATES`]; a paused update is not done,
//!    it waits for a human or a fix.
//! 3. **starting**: tasks that should run but are still between `new` and `starting`
//!    (`preparing` is the image pull).
//!
//! Updates and starting tasks are measured from the service's **last progress**: its latest
//! task state change (`Status.Timestamp`, the newest over its tasks) or the update's start,
//! whichever is later. A long rolling update that keeps progressing is never stuck; one that
//! has made no progress for `stuck_after` is. Unknown progress is never stuck.
//!
//! The gate (`gates::swarm_gate`) splits the verdicts into converging and stuck by
//! `for_seconds > stuck_after`.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::gates::{CONVERGING_TASK_STATES, CONVERGING_UPDATE_STATES, Converging};
use crate::human::{human_seconds, short_id};
use crate::model::{CrashLoopRecord, CrashLoopSeen, Service, SwarmCluster, Task};

/// Update states that stopped part way: swarm waits for a human (`docker service update`).
pub const PAUSED_UPDATE_STATES: [&str; 2] = ["paused", "rollback_paused"];
/// Task states that end a task attempt without it being shut down on purpose.
pub const ENDED_TASK_STATES: [&str; 3] = ["failed", "rejected", "complete"];
/// Ended attempts in a row, right before a slot's newest task, that make a crash loop.
pub const CRASH_LOOP_MIN_FAILURES: usize = 2;
/// A slot's newest task that has run this long after a crash loop has left it; until then
/// it is still part of the loop (a process that exits at once is `running` for a moment).
pub const CRASH_LOOP_SETTLE: chrono::TimeDelta = chrono::TimeDelta::seconds(10);
/// A task's desired states while its slot wants it to run (`ready`: waiting out the restart
/// delay).
const WANTS_TO_RUN: [&str; 2] = ["running", "ready"];

/// The `state` of a crash-looping service's entry.
pub const CRASH_LOOPING: &str = "crash_looping";
/// The `state` of a service whose tasks are still starting (no update in progress).
pub const STARTING: &str = "starting";

/// What is converging on a manager, one entry per service (`kind` `service`), with `since` the
/// point its duration is measured from.
pub fn converging(
    cluster: &SwarmCluster,
    record: &CrashLoopRecord,
    now: DateTime<Utc>,
) -> Vec<Converging> {
    let tasks = tasks_by_service(cluster);
    let mut found = Vec::new();
    for service in &cluster.services {
        let own = tasks
            .get(service.id.as_str())
            .map_or(&[][..], Vec::as_slice);
        if let Some(judged) = judge(service, own, record, now) {
            found.push(judged);
        }
    }
    found
}

fn judge(
    service: &Service,
    tasks: &[&Task],
    record: &CrashLoopRecord,
    now: DateTime<Utc>,
) -> Option<Converging> {
    let entry = |state: &str, since: Option<DateTime<Utc>>, message: String| Converging {
        kind: "service",
        id: short_id(&service.id).to_string(),
        name: service.name.clone(),
        state: state.to_string(),
        since,
        for_seconds: since.map(|since| (now - since).num_seconds().max(0)),
        message,
    };
    if let Some(found) = crash_loop(service, tasks, now) {
        // No record yet (first sight, or a lost record): the loop starts now, never "old".
        let since = record
            .services
            .get(&service.id)
            .map_or(now, |seen| seen.first_seen.min(now));
        return Some(entry(CRASH_LOOPING, Some(since), found.describe()));
    }
    let progress = last_progress(service, tasks);
    let starting = starting_tasks(service, tasks);
    if let Some(state) = &service.update_state
        && (CONVERGING_UPDATE_STATES.contains(&state.as_str())
            || PAUSED_UPDATE_STATES.contains(&state.as_str()))
    {
        // The update's own message first, then what its tasks are doing.
        let message = [service.update_message.clone(), starting]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return Some(entry(state, progress, message));
    }
    (!starting.is_empty()).then(|| entry(STARTING, progress, starting))
}

/// The service's tasks that should run but have not started yet, as one phrase (empty when
/// there are none).
fn starting_tasks(service: &Service, tasks: &[&Task]) -> String {
    tasks
        .iter()
        .filter(|task| {
            // `ready`: a replacement waiting out its restart delay after one failure, which
            // is not running either (two in a row make a crash loop instead).
            WANTS_TO_RUN.contains(&task.desired_state.as_str())
                && CONVERGING_TASK_STATES.contains(&task.state.as_str())
        })
        .map(|task| {
            let mut text = format!("task {} is {}", task_name(service, task), task.state);
            if !task.message.is_empty() {
                text.push_str(&format!(": {}", task.message));
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The service's last progress: the later of its update's start and its newest task state
/// change (a task without one counts from its creation).
pub fn last_progress(service: &Service, tasks: &[&Task]) -> Option<DateTime<Utc>> {
    tasks
        .iter()
        .filter_map(|task| task.state_changed_at.or(task.created_at))
        .chain(service.update_started_at)
        .max()
}

/// A crash loop found in one slot of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashLoop {
    /// `service.slot` (`service.node` for a global service).
    pub slot: String,
    /// Ended attempts in a row before the newest task.
    pub ended: usize,
    /// The last ended attempt's error or message.
    pub last_error: String,
    /// When the last attempt ended.
    pub last_ended_at: Option<DateTime<Utc>>,
    /// The newest task has been running for longer than [`CRASH_LOOP_SETTLE`]: a loop seen
    /// recently, but not converging now.
    pub running_now: bool,
}

impl CrashLoop {
    fn describe(&self) -> String {
        let mut text = format!("slot {}: {} attempts ended in a row", self.slot, self.ended);
        if !self.last_error.is_empty() {
            text.push_str(&format!(", last: {}", self.last_error));
        }
        text
    }
}

/// The service's crash loop, if one of its slots is in one now (its newest task is not
/// running, or only just). The slot with the most ended attempts is named.
pub fn crash_loop(service: &Service, tasks: &[&Task], now: DateTime<Utc>) -> Option<CrashLoop> {
    slot_loops(service, tasks, now)
        .into_iter()
        .filter(|found| !found.running_now)
        .max_by_key(|found| found.ended)
}

/// Every slot whose newest task wants to run right after enough ended attempts, running now
/// or not.
fn slot_loops(service: &Service, tasks: &[&Task], now: DateTime<Utc>) -> Vec<CrashLoop> {
    let mut slots: BTreeMap<String, Vec<&Task>> = BTreeMap::new();
    for task in tasks {
        slots
            .entry(task_name(service, task))
            .or_default()
            .push(task);
    }
    let mut found = Vec::new();
    for (slot, mut history) in slots {
        // Newest first; a task without a creation time is taken as the newest.
        history.sort_by_key(|task| std::cmp::Reverse((task.created_at.is_none(), task.created_at)));
        let Some(newest) = history.first() else {
            continue;
        };
        if !WANTS_TO_RUN.contains(&newest.desired_state.as_str()) {
            continue;
        }
        // A newest task that itself just ended (not yet replaced) counts as an attempt.
        let skip = usize::from(!ENDED_TASK_STATES.contains(&newest.state.as_str()));
        let ended: Vec<&&Task> = history
            .iter()
            .skip(skip)
            .take_while(|task| ENDED_TASK_STATES.contains(&task.state.as_str()))
            .collect();
        if ended.len() < CRASH_LOOP_MIN_FAILURES {
            continue;
        }
        found.push(CrashLoop {
            slot,
            ended: ended.len(),
            last_error: ended
                .first()
                .map(|task| task.message.clone())
                .unwrap_or_default(),
            last_ended_at: ended
                .iter()
                .filter_map(|task| task.state_changed_at.or(task.created_at))
                .max(),
            // A running task whose start time is unknown has not shown that it stays up.
            running_now: newest.state == "running"
                && newest
                    .state_changed_at
                    .is_some_and(|at| now.signed_duration_since(at) > CRASH_LOOP_SETTLE),
        });
    }
    found
}

/// The record after this observation: a service crash-looping now keeps its first sighting
/// (or gets `now`); one whose newest task runs between crashes keeps it while its last failure
/// is younger than `stuck_after` (a loop that pauses briefly is the same loop); every other
/// entry, and every service that is gone, is dropped. Bounded by the services present.
pub fn updated_record(
    cluster: &SwarmCluster,
    record: &CrashLoopRecord,
    now: DateTime<Utc>,
    stuck_after: Duration,
) -> CrashLoopRecord {
    let tasks = tasks_by_service(cluster);
    let keep_for = chrono::Duration::from_std(stuck_after).unwrap_or(chrono::Duration::MAX);
    let mut services = BTreeMap::new();
    for service in &cluster.services {
        let own = tasks
            .get(service.id.as_str())
            .map_or(&[][..], Vec::as_slice);
        let loops = slot_loops(service, own, now);
        let previous = record.services.get(&service.id);
        let looping_now = loops.iter().any(|found| !found.running_now);
        let first_seen = if looping_now {
            Some(previous.map_or(now, |seen| seen.first_seen.min(now)))
        } else {
            let recent_failure = loops.iter().any(|found| {
                found
                    .last_ended_at
                    .is_some_and(|ended| now.signed_duration_since(ended) <= keep_for)
            });
            previous
                .filter(|_| recent_failure)
                .map(|seen| seen.first_seen)
        };
        if let Some(first_seen) = first_seen {
            services.insert(
                service.id.clone(),
                CrashLoopSeen {
                    name: service.name.clone(),
                    first_seen,
                },
            );
        }
    }
    CrashLoopRecord { services }
}

fn tasks_by_service(cluster: &SwarmCluster) -> HashMap<&str, Vec<&Task>> {
    let mut tasks: HashMap<&str, Vec<&Task>> = HashMap::new();
    for task in &cluster.tasks {
        tasks
            .entry(task.service_id.as_str())
            .or_default()
            .push(task);
    }
    tasks
}

/// `service.slot` for a replicated service's task, `service.node` for a global one's.
fn task_name(service: &Service, task: &Task) -> String {
    match task.slot {
        Some(slot) => format!("{}.{slot}", service.name),
        None => format!(
            "{}.{}",
            service.name,
            task.node_id.as_deref().map_or("?", short_id)
        ),
    }
}

/// One sentence (without the final full stop) for a manager's service entry.
pub fn describe(item: &Converging) -> String {
    let ago = item.for_seconds.map_or_else(
        || "an unknown time".to_string(),
        |s| format!("{} ago", human_seconds(s)),
    );
    let progress = match item.for_seconds {
        Some(seconds) => format!("last progress {} ago", human_seconds(seconds)),
        None => "last progress unknown".to_string(),
    };
    let detail = |text: &str| {
        if item.message.is_empty() {
            String::new()
        } else {
            format!(" ({text})")
        }
    };
    match item.state.as_str() {
        CRASH_LOOPING => format!(
            "service {} is crash-looping since {ago}{}",
            item.name,
            detail(&item.message)
        ),
        "paused" => format!(
            "service {}'s update is paused since {ago}{}",
            item.name,
            detail(&item.message)
        ),
        "rollback_paused" => format!(
            "service {}'s rollback is paused since {ago}{}",
            item.name,
            detail(&item.message)
        ),
        STARTING => format!(
            "service {} is starting, {progress}{}",
            item.name,
            detail(&item.message)
        ),
        "rollback_started" => format!(
            "service {} is rolling back, {progress}{}",
            item.name,
            detail(&item.message)
        ),
        state => format!(
            "service {} is {state}, {progress}{}",
            item.name,
            detail(&item.message)
        ),
    }
}
