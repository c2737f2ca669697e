//! Pure: a swarm **worker's** own convergence. A worker cannot list services or tasks (its API
//! answers 503), so the swarm gate judges it from what the node itself shows, each kind of
//! evidence configurable (`gates.swarm.worker_evidence`):
//!
//! - `created_tasks`: swarm task containers that exist but have not started;
//! - `exited_tasks`: task containers that exited (`die`) within the quiet period: a task being
//!   replaced, whose successor may still be pulling;
//! - `task_events`: events of the quiet period that show a task arriving: a swarm-scoped
//!   network created or connected on this node (done before the task's image is pulled), a
//!   task container destroyed;
//! - `pulls`: image pulls within the quiet period.
//!
//! Opt-in and exact (`gates.swarm.manager_host`): the manager's list of the tasks assigned to
//! this node; any task that should run but does not closes the gate, and a manager that cannot
//! be asked closes it too (unknown means no).
//!
//! Gathering lives in `snapshot`/`engine`; this module only decides, and classifies one event
//! at a time so that the engine can keep a bounded sample of the relevant ones.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::gates::{Converging, SWARM_TASK_LABEL};
use crate::human::short_id;
use crate::model::{Container, Observed, SwarmCluster};

/// One kind of local evidence, by its config name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerEvidence {
    CreatedTasks,
    ExitedTasks,
    TaskEvents,
    Pulls,
}

impl WorkerEvidence {
    /// Every kind, in the order of the default `gates.swarm.worker_evidence`.
    pub const ALL: [Self; 4] = [
        Self::CreatedTasks,
        Self::ExitedTasks,
        Self::TaskEvents,
        Self::Pulls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedTasks => "created_tasks",
            Self::ExitedTasks => "exited_tasks",
            Self::TaskEvents => "task_events",
            Self::Pulls => "pulls",
        }
    }

    /// Parses a config name; the error names the valid ones.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text.trim())
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a kind of worker evidence; write any of {}",
                    Self::ALL
                        .iter()
                        .map(|kind| format!("\"{}\"", kind.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// Evidence read from the events of the quiet period (the others read the container list).
    pub fn reads_events(self) -> bool {
        !matches!(self, Self::CreatedTasks)
    }
}

impl fmt::Display for WorkerEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A daemon event as the worker evidence reads it (container, network and image events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct WorkerEvent {
    pub time: DateTime<Utc>,
    /// `container`, `network` or `image`.
    pub kind: String,
    pub action: String,
    /// The event's scope: `swarm` or `local` (empty when the daemon sent none).
    pub scope: String,
    /// The actor's ID (container, network or image).
    pub id: String,
    /// Its attributes: container labels and `name`, a network's `name` and `type`.
    pub attributes: BTreeMap<String, String>,
}

impl WorkerEvent {
    fn name(&self) -> &str {
        self.attributes
            .get("name")
            .map_or(self.id.as_str(), |name| name.as_str())
    }

    fn is_task_container(&self) -> bool {
        self.kind == "container" && self.attributes.contains_key(SWARM_TASK_LABEL)
    }

    fn is_swarm_network(&self) -> bool {
        self.kind == "network"
            && (self.scope == "swarm"
                || self
                    .attributes
                    .get("type")
                    .is_some_and(|kind| kind == "overlay"))
    }
}

/// Which kind of evidence an event is, if any: the engine keeps only these.
pub fn classify(event: &WorkerEvent) -> Option<WorkerEvidence> {
    match (event.kind.as_str(), event.action.as_str()) {
        ("container", "die") if event.is_task_container() => Some(WorkerEvidence::ExitedTasks),
        ("container", "destroy") if event.is_task_container() => Some(WorkerEvidence::TaskEvents),
        ("network", "create" | "connect") if event.is_swarm_network() => {
            Some(WorkerEvidence::TaskEvents)
        }
        ("image", "pull") => Some(WorkerEvidence::Pulls),
        _ => None,
    }
}

/// The relevant events of a window, bounded: how many arrived, and the newest
/// [`WorkerEvents::KEEP`] of them (newest last).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct WorkerEvents {
    pub seen: u64,
    pub newest: Vec<WorkerEvent>,
}

impl WorkerEvents {
    pub const KEEP: usize = 20;

    /// Counts `event` and keeps it if it is relevant (the oldest kept one goes when full).
    pub fn push(&mut self, event: WorkerEvent) {
        if classify(&event).is_none() {
            return;
        }
        self.seen += 1;
        if self.newest.len() == Self::KEEP {
            self.newest.remove(0);
        }
        self.newest.push(event);
    }
}

/// What a worker's snapshot holds for this module: gathered only on an active worker.
#[derive(Debug, Clone)]
pub struct WorkerObservations {
    /// The relevant events of the quiet period (`None`: not read, as no kind needs them or
    /// the quiet period is 0s).
    pub events: Option<Observed<WorkerEvents>>,
    /// `gates.swarm.manager_host`, as written, and what it answered about this node.
    pub manager: Option<(String, Observed<SwarmCluster>)>,
}

/// How the worker was judged, for the gate's evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct WorkerReport {
    /// The kinds of local evidence looked at (`gates.swarm.worker_evidence`).
    pub evidence: Vec<WorkerEvidence>,
    /// How far back the event-based evidence looked (the quiet period).
    pub window_seconds: u64,
    /// Relevant events in that window.
    pub events_seen: u64,
    /// `gates.swarm.manager_host`, when the manager was asked for this node's tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_host: Option<String>,
    /// Tasks the manager listed for this node (when it was asked and answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_tasks: Option<usize>,
}

/// What the worker judgement needs from the policy.
#[derive(Debug, Clone)]
pub struct WorkerPolicy<'a> {
    pub evidence: &'a [WorkerEvidence],
    /// The quiet period: how recent an event or an exit must be to count.
    pub window: std::time::Duration,
}

/// Everything that says this worker is still converging, or why it cannot be judged (a failed
/// observation: the gate closes with that sentence).
pub fn judge(
    containers: &[Container],
    observed: Option<&WorkerObservations>,
    policy: &WorkerPolicy<'_>,
    now: DateTime<Utc>,
) -> (Vec<Converging>, WorkerReport, Result<(), String>) {
    let window_seconds = policy.window.as_secs();
    let window = i64::try_from(window_seconds).unwrap_or(i64::MAX);
    let wants = |kind: WorkerEvidence| policy.evidence.contains(&kind);
    let mut found = Vec::new();
    let mut problems = Vec::new();
    if wants(WorkerEvidence::CreatedTasks) {
        found.extend(created_tasks(containers, now));
    }
    let mut events_seen = 0;
    let needs_events = window > 0 && policy.evidence.iter().any(|kind| kind.reads_events());
    if needs_events {
        match observed.and_then(|observed| observed.events.as_ref()) {
            Some(Ok(events)) => {
                events_seen = events.seen;
                found.extend(recent_events(events, policy, window, now));
            }
            Some(Err(error)) => problems.push(format!(
                "the daemon's recent container, network and image events (worker evidence) could not be read ({error})"
            )),
            None => problems.push(
                "the daemon's recent container, network and image events (worker evidence) were not gathered".to_string(),
            ),
        }
    }
    let mut manager_host = None;
    let mut manager_tasks = None;
    if let Some((host, answer)) = observed.and_then(|observed| observed.manager.as_ref()) {
        manager_host = Some(host.clone());
        match answer {
            Ok(cluster) => {
                manager_tasks = Some(cluster.tasks.len());
                found.extend(not_running_tasks(cluster, now));
            }
            // The error is a sentence of its own (it may carry its own fix, as a TLS failure
            // does): it follows a colon, and the general advice comes after it.
            Err(error) => problems.push(format!(
                "the swarm manager at {host} (gates.swarm.manager_host) could not be asked for this node's tasks: {}. Check that the manager, or the read-only API proxy in front of it, answers from this node, or unset gates.swarm.manager_host to judge from local evidence only",
                error.trim_end_matches('.')
            )),
        }
    }
    let report = WorkerReport {
        evidence: policy.evidence.to_vec(),
        window_seconds,
        events_seen,
        manager_host,
        manager_tasks,
    };
    let verdict = if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    };
    (found, report, verdict)
}

/// The sentence that opens the worker's detail.
pub fn detail_head(report: &WorkerReport) -> String {
    match &report.manager_host {
        Some(host) => format!(
            "worker node, judged from its tasks as the manager at {host} lists them and from local evidence"
        ),
        None => "worker node, judged from local evidence".to_string(),
    }
}

/// What an open worker gate says it looked at.
pub fn nothing_found(report: &WorkerReport) -> String {
    let mut parts = Vec::new();
    if report.manager_host.is_some() {
        parts.push("every task assigned to this node runs".to_string());
    }
    for kind in &report.evidence {
        parts.push(match kind {
            WorkerEvidence::CreatedTasks => "no swarm task container is still being created".to_string(),
            WorkerEvidence::ExitedTasks if report.window_seconds > 0 => "no task container exited within the quiet period".to_string(),
            WorkerEvidence::TaskEvents if report.window_seconds > 0 => "no task arrived within the quiet period (swarm network created or connected, task container destroyed)".to_string(),
            WorkerEvidence::Pulls if report.window_seconds > 0 => "no image was pulled within the quiet period".to_string(),
            _ => continue,
        });
    }
    if parts.is_empty() {
        "no local evidence is configured (gates.swarm.worker_evidence = []) and no manager is asked, so nothing closes this gate".to_string()
    } else {
        parts.join(", ")
    }
}

fn seconds_since(now: DateTime<Utc>, since: Option<DateTime<Utc>>) -> Option<i64> {
    since.map(|since| (now - since).num_seconds().max(0))
}

/// Swarm task containers that exist but have not started yet.
fn created_tasks(containers: &[Container], now: DateTime<Utc>) -> Vec<Converging> {
    containers
        .iter()
        .filter(|container| {
            container.state == "created" && container.labels.contains_key(SWARM_TASK_LABEL)
        })
        .map(|container| Converging {
            kind: "container",
            id: container.short_id().to_string(),
            name: container.name.clone(),
            state: container.state.clone(),
            since: container.created,
            for_seconds: seconds_since(now, container.created),
            message: String::new(),
        })
        .collect()
}

/// The newest relevant event per subject and kind, within the window and wanted by the policy.
fn recent_events(
    events: &WorkerEvents,
    policy: &WorkerPolicy<'_>,
    window: i64,
    now: DateTime<Utc>,
) -> Vec<Converging> {
    let mut newest: BTreeMap<(WorkerEvidence, String, String), &WorkerEvent> = BTreeMap::new();
    for event in &events.newest {
        let Some(kind) = classify(event) else {
            continue;
        };
        let age = (now - event.time).num_seconds();
        if !policy.evidence.contains(&kind) || age > window {
            continue;
        }
        let key = (kind, event.name().to_string(), event.action.clone());
        if newest.get(&key).is_none_or(|kept| kept.time <= event.time) {
            newest.insert(key, event);
        }
    }
    let mut found: Vec<Converging> = newest
        .into_iter()
        .map(|((kind, name, action), event)| {
            let (item, state, message) = match kind {
                WorkerEvidence::ExitedTasks => (
                    "container",
                    "exited".to_string(),
                    "a task being replaced; its successor may still be pulling".to_string(),
                ),
                WorkerEvidence::Pulls => ("image", "pulled".to_string(), String::new()),
                _ => (
                    if event.kind == "network" {
                        "network"
                    } else {
                        "container"
                    },
                    match action.as_str() {
                        "create" => "created".to_string(),
                        "connect" => "connected".to_string(),
                        "destroy" => "destroyed".to_string(),
                        other => other.to_string(),
                    },
                    "a task arriving on this node".to_string(),
                ),
            };
            Converging {
                kind: item,
                id: short_id(&event.id).to_string(),
                name,
                state,
                // Event ages say how recent, not how long something has been stuck: no
                // `for_seconds`, so an event never counts as stuck.
                since: Some(event.time),
                for_seconds: None,
                message,
            }
        })
        .collect();
    found.sort_by_key(|item| std::cmp::Reverse(item.since));
    found
}

/// The manager's tasks for this node that should run but do not.
fn not_running_tasks(cluster: &SwarmCluster, now: DateTime<Utc>) -> Vec<Converging> {
    let names: BTreeMap<&str, &str> = cluster
        .services
        .iter()
        .map(|service| (service.id.as_str(), service.name.as_str()))
        .collect();
    cluster
        .tasks
        .iter()
        .filter(|task| task.desired_state == "running" && task.state != "running")
        .map(|task| {
            let service = names.get(task.service_id.as_str()).copied().unwrap_or("?");
            let name = match task.slot {
                Some(slot) => format!("{service}.{slot}"),
                None => format!(
                    "{service}.{}",
                    task.node_id.as_deref().map_or("?", short_id)
                ),
            };
            Converging {
                kind: "task",
                id: short_id(&task.id).to_string(),
                name,
                state: task.state.clone(),
                since: task.created_at,
                for_seconds: seconds_since(now, task.created_at),
                message: task.message.clone(),
            }
        })
        .collect()
}
