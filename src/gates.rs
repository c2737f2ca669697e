//! Pure gate evaluation: `Snapshot` + policy + `now` → one verdict per gate, with the evidence
//! that decided it. No engine, no filesystem, no clock here.
//!
//! A gate that cannot be evaluated (its observation failed) is **closed**, with the error as
//! its detail: unknown means no.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::human::{format_duration, human_seconds, short_id};
use crate::model::{Container, DiskUsage, Event, LockFileState, Snapshot, SwarmCluster, Task};
use crate::policy::{GatePolicy, Pattern};
use crate::worker_evidence::{self, WorkerPolicy, WorkerReport};

pub const STACK_LABELS: [&str; 2] = ["com.docker.stack.namespace", "com.docker.compose.project"];
pub const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.id";
/// Task states between "scheduled" and "running": the service is still converging, and
/// `preparing` is the image pull.
pub const CONVERGING_TASK_STATES: [&str; 8] = [
    "new",
    "allocated",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
];
pub const CONVERGING_UPDATE_STATES: [&str; 2] = ["updating", "rollback_started"];

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum GateName {
    Disk,
    Workload,
    Swarm,
    Quiet,
}

impl GateName {
    pub const ALL: [Self; 4] = [Self::Disk, Self::Workload, Self::Swarm, Self::Quiet];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disk => "disk",
            Self::Workload => "workload",
            Self::Swarm => "swarm",
            Self::Quiet => "quiet",
        }
    }
}

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GateVerdict {
    pub name: GateName,
    pub open: bool,
    /// One or two sentences for people, naming what closed the gate.
    pub detail: String,
    pub evidence: Evidence,
}

/// What a gate looked at, for the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Evidence {
    Disk {
        #[serde(flatten)]
        usage: DiskUsage,
        threshold_percent: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        inode_threshold_percent: Option<u8>,
    },
    Workload {
        live: Vec<WorkloadMatch>,
        lock_files: Vec<LockFileEvidence>,
    },
    Swarm {
        node_state: String,
        role: SwarmRole,
        converging: Vec<Converging>,
        stuck: Vec<Converging>,
        /// On a worker: which evidence judged it (`worker_evidence`), and the manager asked.
        #[serde(skip_serializing_if = "Option::is_none")]
        worker: Option<WorkerReport>,
    },
    Quiet {
        period_seconds: u64,
        /// How many events of the quiet period the daemon sent.
        events_seen: u64,
        /// A bounded sample of them, newest first (the oldest and newest few).
        events: Vec<Event>,
    },
    /// The gate was not evaluated (disabled) or needed nothing.
    None {},
    /// The observation the gate needed failed.
    Error { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct WorkloadMatch {
    /// `container` or `service`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub state: String,
    /// The selector that matched, e.g. `stack run-app*` or `label ci.role=run-app`.
    pub matched: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LockFileEvidence {
    pub path: PathBuf,
    pub present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    pub stale: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SwarmRole {
    None,
    Manager,
    Worker,
    Unknown,
}

/// A service, task or task container that is still converging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Converging {
    /// `service`, `task` or `container` (a worker's local evidence).
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_seconds: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Converging {
    fn describe(&self) -> String {
        let mut text = format!("{} {} is {}", self.kind, self.name, self.state);
        if let Some(seconds) = self.for_seconds {
            text.push_str(&format!(" for {}", human_seconds(seconds)));
        }
        if !self.message.is_empty() {
            text.push_str(&format!(" ({})", self.message));
        }
        text
    }
}

/// Every gate, in report order.
pub fn evaluate(snapshot: &Snapshot, policy: &GatePolicy, now: DateTime<Utc>) -> Vec<GateVerdict> {
    vec![
        disk_gate(snapshot, policy),
        workload_gate(snapshot, policy, now),
        swarm_gate(snapshot, policy, now),
        quiet_gate(snapshot, policy, now),
    ]
}

pub fn all_open(verdicts: &[GateVerdict]) -> bool {
    verdicts.iter().all(|verdict| verdict.open)
}

/// Names of the closed gates, for logs and summaries.
pub fn closed_names(verdicts: &[GateVerdict]) -> Vec<&'static str> {
    verdicts
        .iter()
        .filter(|verdict| !verdict.open)
        .map(|verdict| verdict.name.as_str())
        .collect()
}

fn error_verdict(name: GateName, what: &str, error: &str) -> GateVerdict {
    GateVerdict {
        name,
        open: false,
        detail: format!(
            "closed because {what} could not be read ({error}); an unknown state counts as closed."
        ),
        evidence: Evidence::Error {
            error: error.to_string(),
        },
    }
}

pub fn disk_gate(snapshot: &Snapshot, policy: &GatePolicy) -> GateVerdict {
    let threshold = policy.disk.threshold_percent;
    let inode_threshold = policy.disk.inode_threshold_percent;
    let usage = match &snapshot.disk {
        Ok(usage) => usage,
        Err(error) => return error_verdict(GateName::Disk, "the disk usage", error),
    };
    let bytes_pressure = usage.used_percent >= threshold;
    let inode_pressure = match (inode_threshold, usage.inodes_used_percent) {
        (Some(limit), Some(percent)) => percent >= limit,
        _ => false,
    };
    let mut detail = format!(
        "{} ({}) is {} % full, threshold {} %",
        usage.path.display(),
        usage.fs_type,
        usage.used_percent,
        threshold
    );
    if let Some(limit) = inode_threshold {
        match usage.inodes_used_percent {
            Some(percent) => {
                detail.push_str(&format!("; inodes {percent} % used, threshold {limit} %"));
            }
            None => detail.push_str("; this filesystem reports no inode counts"),
        }
    }
    let open = bytes_pressure || inode_pressure;
    detail.push_str(if open {
        ": under pressure."
    } else {
        ": no pressure, so nothing needs pruning."
    });
    GateVerdict {
        name: GateName::Disk,
        open,
        detail,
        evidence: Evidence::Disk {
            usage: usage.clone(),
            threshold_percent: threshold,
            inode_threshold_percent: inode_threshold,
        },
    }
}

pub fn quiet_gate(snapshot: &Snapshot, policy: &GatePolicy, now: DateTime<Utc>) -> GateVerdict {
    let period = policy.quiet.period;
    if period.is_zero() {
        return GateVerdict {
            name: GateName::Quiet,
            open: true,
            detail: "disabled (quiet period 0s).".into(),
            evidence: Evidence::None {},
        };
    }
    let events = match &snapshot.events {
        Ok(events) => events,
        Err(error) => return error_verdict(GateName::Quiet, "the daemon's recent events", error),
    };
    let period_seconds = i64::try_from(period.as_secs()).unwrap_or(i64::MAX);
    let mut recent: Vec<Event> = events
        .sample
        .iter()
        .filter(|event| (now - event.time).num_seconds() <= period_seconds)
        .cloned()
        .collect();
    recent.sort_by_key(|event| std::cmp::Reverse(event.time));
    // The sample holds the oldest and the newest events; when all of it is recent, so is
    // everything between, and the daemon's count is the count.
    let count = if recent.len() == events.sample.len() {
        events.seen
    } else {
        recent.len() as u64
    };
    let period_text = format_duration(period);
    let detail = match recent.first() {
        None => {
            format!("no image pull/load/import/tag or container create in the last {period_text}.")
        }
        Some(latest) => format!(
            "{} {} {} {} ago ({} such event(s) in the last {period_text}); waiting for the host to settle.",
            latest.kind,
            latest.action,
            short_subject(&latest.subject),
            human_seconds((now - latest.time).num_seconds()),
            count
        ),
    };
    GateVerdict {
        name: GateName::Quiet,
        open: recent.is_empty(),
        detail,
        evidence: Evidence::Quiet {
            period_seconds: period.as_secs(),
            events_seen: count,
            events: recent,
        },
    }
}

/// Is a container part of what is running now? `exited` and `dead` ones are not.
fn is_live(container: &Container) -> bool {
    !matches!(container.state.as_str(), "exited" | "dead")
}

fn stack_match(stacks: &[Pattern], labels: &BTreeMap<String, String>) -> Option<String> {
    STACK_LABELS.iter().find_map(|label| {
        let value = labels.get(*label)?;
        stacks
            .iter()
            .find(|pattern| pattern.is_match(value))
            .map(|pattern| format!("stack {pattern} ({label}={value})"))
    })
}

pub fn workload_gate(snapshot: &Snapshot, policy: &GatePolicy, now: DateTime<Utc>) -> GateVerdict {
    let workload = &policy.workload;
    if !workload.has_selectors() {
        return GateVerdict {
            name: GateName::Workload,
            open: true,
            detail: "no workload selectors configured.".into(),
            evidence: Evidence::None {},
        };
    }
    let needs_containers = workload.matches_containers();
    let needs_services = workload.matches_services();
    let mut live = Vec::new();
    if needs_containers {
        let containers = match &snapshot.containers {
            Ok(containers) => containers,
            Err(error) => return error_verdict(GateName::Workload, "the container list", error),
        };
        for container in containers.iter().filter(|container| is_live(container)) {
            let matched = stack_match(&workload.stacks, &container.labels)
                .or_else(|| {
                    workload
                        .labels
                        .iter()
                        .find(|selector| selector.matches(&container.labels))
                        .map(|selector| format!("label {selector}"))
                })
                .or_else(|| {
                    workload
                        .containers
                        .iter()
                        .find(|pattern| pattern.is_match(&container.name))
                        .map(|pattern| format!("container name {pattern}"))
                });
            if let Some(matched) = matched {
                live.push(WorkloadMatch {
                    kind: "container",
                    id: container.short_id().to_string(),
                    name: container.name.clone(),
                    state: container.state.clone(),
                    matched,
                });
            }
        }
    }
    if needs_services {
        match &snapshot.swarm_cluster {
            Some(Ok(cluster)) => {
                for service in &cluster.services {
                    let matched = stack_match(&workload.stacks, &service.labels).or_else(|| {
                        workload
                            .labels
                            .iter()
                            .find(|selector| selector.matches(&service.labels))
                            .map(|selector| format!("label {selector}"))
                    });
                    if let Some(matched) = matched {
                        live.push(WorkloadMatch {
                            kind: "service",
                            id: short_id(&service.id).to_string(),
                            name: service.name.clone(),
                            state: "deployed".into(),
                            matched,
                        });
                    }
                }
            }
            Some(Err(error)) => {
                return error_verdict(GateName::Workload, "the swarm service list", error);
            }
            None => {}
        }
    }
    let lock_files = lock_file_evidence(snapshot, workload.stale_lock_after, now);

    let reasons = workload_reasons(&live, &lock_files, workload.stale_lock_after);
    let open = reasons.is_empty();
    let mut detail = if open {
        "no configured workload is live.".to_string()
    } else {
        format!("{}.", reasons.join("; "))
    };
    if needs_services && snapshot.daemon.swarm.is_worker() {
        detail.push_str(
            " Swarm services cannot be listed on a worker node; only its containers were matched.",
        );
    }
    GateVerdict {
        name: GateName::Workload,
        open,
        detail,
        evidence: Evidence::Workload { live, lock_files },
    }
}

/// One phrase per live workload and per present lock file; none means the gate is open.
fn workload_reasons(
    live: &[WorkloadMatch],
    lock_files: &[LockFileEvidence],
    stale_lock_after: std::time::Duration,
) -> Vec<String> {
    let mut reasons: Vec<String> = live
        .iter()
        .map(|found| {
            format!(
                "{} {} is {} (matches {})",
                found.kind, found.name, found.state, found.matched
            )
        })
        .collect();
    for lock in lock_files.iter().filter(|lock| lock.present) {
        let mut text = format!("lock file {} exists", lock.path.display());
        if let Some(age) = lock.age_seconds {
            text.push_str(&format!(" (age {})", human_seconds(age)));
        }
        if let Some(error) = &lock.error {
            text.push_str(&format!(" but cannot be checked ({error})"));
        }
        if lock.stale {
            text.push_str(&format!(
                "; it is older than stale_lock_after ({}), so it may be left over from a crashed deploy: a human must look and remove it",
                format_duration(stale_lock_after)
            ));
        }
        reasons.push(text);
    }
    reasons
}

/// Each configured lock file: present or not, its age, and whether it is older than
/// `stale_lock_after` (a stale one still closes the gate; the detail asks a human to look).
fn lock_file_evidence(
    snapshot: &Snapshot,
    stale_lock_after: std::time::Duration,
    now: DateTime<Utc>,
) -> Vec<LockFileEvidence> {
    let stale_after = i64::try_from(stale_lock_after.as_secs()).unwrap_or(i64::MAX);
    snapshot
        .lock_files
        .iter()
        .map(|lock| match &lock.state {
            LockFileState::Absent => LockFileEvidence {
                path: lock.path.clone(),
                present: false,
                age_seconds: None,
                stale: false,
                error: None,
            },
            LockFileState::Present { modified } => {
                let age_seconds = modified.map(|modified| (now - modified).num_seconds().max(0));
                LockFileEvidence {
                    path: lock.path.clone(),
                    present: true,
                    age_seconds,
                    stale: age_seconds.is_some_and(|age| age > stale_after),
                    error: None,
                }
            }
            LockFileState::Unreadable { error } => LockFileEvidence {
                path: lock.path.clone(),
                present: true,
                age_seconds: None,
                stale: false,
                error: Some(error.clone()),
            },
        })
        .collect()
}

pub fn swarm_gate(snapshot: &Snapshot, policy: &GatePolicy, now: DateTime<Utc>) -> GateVerdict {
    let swarm = &snapshot.daemon.swarm;
    let closed = |role: SwarmRole, detail: String| GateVerdict {
        name: GateName::Swarm,
        open: false,
        detail,
        evidence: Evidence::Swarm {
            node_state: swarm.local_node_state.clone(),
            role,
            converging: Vec::new(),
            stuck: Vec::new(),
            worker: None,
        },
    };
    if !policy.swarm.enabled {
        return GateVerdict {
            name: GateName::Swarm,
            open: true,
            detail: "disabled by configuration.".into(),
            evidence: Evidence::None {},
        };
    }
    match swarm.local_node_state.as_str() {
        "" | "inactive" => {
            return GateVerdict {
                name: GateName::Swarm,
                open: true,
                detail: "not a swarm node.".into(),
                evidence: Evidence::Swarm {
                    node_state: swarm.local_node_state.clone(),
                    role: SwarmRole::None,
                    converging: Vec::new(),
                    stuck: Vec::new(),
                    worker: None,
                },
            };
        }
        "active" => {}
        state => {
            let reason = swarm.error.as_deref().unwrap_or("no error reported");
            return closed(
                SwarmRole::Unknown,
                format!(
                    "the node's swarm state is {state} ({reason}); cluster convergence cannot be judged."
                ),
            );
        }
    }
    let (role, found, worker) = match converging_in_swarm(snapshot, policy, now) {
        Ok(found) => found,
        Err(verdict) => return *verdict,
    };
    let stuck_after = i64::try_from(policy.swarm.stuck_after.as_secs()).unwrap_or(i64::MAX);
    let (stuck, converging): (Vec<Converging>, Vec<Converging>) =
        found.into_iter().partition(|item| {
            item.for_seconds
                .is_some_and(|seconds| seconds > stuck_after)
        });
    GateVerdict {
        name: GateName::Swarm,
        open: converging.is_empty(),
        detail: swarm_detail(
            role,
            &converging,
            &stuck,
            policy.swarm.stuck_after,
            worker.as_ref(),
        ),
        evidence: Evidence::Swarm {
            node_state: swarm.local_node_state.clone(),
            role,
            converging,
            stuck,
            worker,
        },
    }
}

/// What is converging on an active swarm node: the cluster's view on a manager, local evidence
/// on a worker. An observation that failed is a closed verdict.
type SwarmFindings = (SwarmRole, Vec<Converging>, Option<WorkerReport>);

fn converging_in_swarm(
    snapshot: &Snapshot,
    policy: &GatePolicy,
    now: DateTime<Utc>,
) -> Result<SwarmFindings, Box<GateVerdict>> {
    if snapshot.daemon.swarm.control_available {
        match &snapshot.swarm_cluster {
            Some(Ok(cluster)) => Ok((
                SwarmRole::Manager,
                converging_on_manager(cluster, now),
                None,
            )),
            Some(Err(error)) => Err(Box::new(error_verdict(
                GateName::Swarm,
                "the swarm services and tasks (manager node)",
                error,
            ))),
            None => Err(Box::new(GateVerdict {
                name: GateName::Swarm,
                open: false,
                detail: "closed because the swarm services and tasks were not gathered.".into(),
                evidence: Evidence::Swarm {
                    node_state: snapshot.daemon.swarm.local_node_state.clone(),
                    role: SwarmRole::Manager,
                    converging: Vec::new(),
                    stuck: Vec::new(),
                    worker: None,
                },
            })),
        }
    } else {
        let containers = match &snapshot.containers {
            Ok(containers) => containers,
            Err(error) => {
                return Err(Box::new(error_verdict(
                    GateName::Swarm,
                    "the container list (worker node, local evidence)",
                    error,
                )));
            }
        };
        let worker_policy = WorkerPolicy {
            evidence: &policy.swarm.worker_evidence,
            window: policy.quiet.period,
        };
        let (found, report, judged) = worker_evidence::judge(
            containers,
            snapshot.swarm_worker.as_ref(),
            &worker_policy,
            now,
        );
        match judged {
            Ok(()) => Ok((SwarmRole::Worker, found, Some(report))),
            // Unknown means no: what could not be read closes the gate, with what was found.
            Err(problem) => Err(Box::new(GateVerdict {
                name: GateName::Swarm,
                open: false,
                detail: format!(
                    "{}: closed because {problem}; an unknown state counts as closed.",
                    worker_evidence::detail_head(&report)
                ),
                evidence: Evidence::Swarm {
                    node_state: snapshot.daemon.swarm.local_node_state.clone(),
                    role: SwarmRole::Worker,
                    converging: found,
                    stuck: Vec::new(),
                    worker: Some(report),
                },
            })),
        }
    }
}

fn swarm_detail(
    role: SwarmRole,
    converging: &[Converging],
    stuck: &[Converging],
    stuck_after: std::time::Duration,
    worker: Option<&WorkerReport>,
) -> String {
    let describe = |items: &[Converging]| {
        items
            .iter()
            .map(Converging::describe)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut detail = match (role, converging.is_empty(), worker) {
        (SwarmRole::Worker, true, Some(report)) => format!(
            "{}: {}.",
            worker_evidence::detail_head(report),
            worker_evidence::nothing_found(report)
        ),
        (SwarmRole::Worker, false, Some(report)) => format!(
            "{}: {}.",
            worker_evidence::detail_head(report),
            describe(converging)
        ),
        (SwarmRole::Worker, true, None) => "worker node, judged from local evidence: no swarm task container is still being created.".to_string(),
        (SwarmRole::Worker, false, None) => format!(
            "worker node, judged from local evidence: {}.",
            describe(converging)
        ),
        (_, true, _) => "manager node: no service is updating and no task is still starting.".to_string(),
        (_, false, _) => format!("manager node: {}.", describe(converging)),
    };
    if !stuck.is_empty() {
        detail.push_str(&format!(
            " Stuck longer than stuck_after ({}), so not blocking: {}.",
            format_duration(stuck_after),
            describe(stuck)
        ));
    }
    detail
}

fn seconds_since(now: DateTime<Utc>, since: Option<DateTime<Utc>>) -> Option<i64> {
    since.map(|since| (now - since).num_seconds().max(0))
}

/// Services mid-update and tasks that should run but have not started yet. A task slot that
/// keeps failing (crash loop) counts from its oldest failed attempt, so that a service that
/// never converges is eventually reported as stuck rather than blocking forever.
fn converging_on_manager(cluster: &SwarmCluster, now: DateTime<Utc>) -> Vec<Converging> {
    let names: HashMap<&str, &str> = cluster
        .services
        .iter()
        .map(|service| (service.id.as_str(), service.name.as_str()))
        .collect();
    let mut found = Vec::new();
    for service in &cluster.services {
        let Some(state) = &service.update_state else {
            continue;
        };
        if CONVERGING_UPDATE_STATES.contains(&state.as_str()) {
            found.push(Converging {
                kind: "service",
                id: short_id(&service.id).to_string(),
                name: service.name.clone(),
                state: state.clone(),
                since: service.update_started_at,
                for_seconds: seconds_since(now, service.update_started_at),
                message: String::new(),
            });
        }
    }
    let slot_key = |task: &Task| {
        (
            task.service_id.clone(),
            task.slot.map_or_else(
                || task.node_id.clone().unwrap_or_default(),
                |slot| slot.to_string(),
            ),
        )
    };
    // Each slot's tasks, oldest first, to find the failures that lead up to a task.
    let mut slots: HashMap<(String, String), Vec<&Task>> = HashMap::new();
    for task in &cluster.tasks {
        slots.entry(slot_key(task)).or_default().push(task);
    }
    for history in slots.values_mut() {
        // A task without a creation time is taken as the newest.
        history.sort_by_key(|task| (task.created_at.is_none(), task.created_at));
    }
    for task in &cluster.tasks {
        if task.desired_state != "running" || !CONVERGING_TASK_STATES.contains(&task.state.as_str())
        {
            continue;
        }
        let since = crash_loop_start(&slots[&slot_key(task)], task).or(task.created_at);
        let service = names.get(task.service_id.as_str()).copied().unwrap_or("?");
        let name = match task.slot {
            Some(slot) => format!("{service}.{slot}"),
            None => format!(
                "{service}.{}",
                task.node_id.as_deref().map_or("?", short_id)
            ),
        };
        found.push(Converging {
            kind: "task",
            id: short_id(&task.id).to_string(),
            name,
            state: task.state.clone(),
            since,
            for_seconds: seconds_since(now, since),
            message: task.message.clone(),
        });
    }
    found
}

/// A crash loop: the unbroken run of failed or rejected tasks right before `task` in its slot.
/// The slot has been trying since the first of them. An older failure followed by a task that
/// ran and was shut down normally is history, not a loop.
fn crash_loop_start(history: &[&Task], task: &Task) -> Option<DateTime<Utc>> {
    let position = history.iter().position(|other| other.id == task.id)?;
    history[..position]
        .iter()
        .rev()
        .take_while(|earlier| matches!(earlier.state.as_str(), "failed" | "rejected"))
        .filter_map(|earlier| earlier.created_at)
        .min()
}

/// Image IDs are long; people recognise the first 12 hex digits.
fn short_subject(subject: &str) -> &str {
    if subject.starts_with("sha256:") {
        short_id(subject)
    } else {
        subject
    }
}
