//! Pure gate evaluation: `Snapshot` + policy + `now` → one verdict per gate, with the evidence
//! that decided it. No engine, no filesystem, no clock here.
//!
//! A gate that cannot be evaluated (its observation failed) is **closed**, with the error as
//! its detail: unknown means no.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::human::{format_duration, human_seconds, short_id};
use crate::model::{Container, DiskUsage, Event, LockFileState, Snapshot};
use crate::policy::{GatePolicy, Pattern};

mod swarm;

use crate::worker_evidence::WorkerReport;
pub use swarm::swarm_gate;

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
        /// Every filesystem measured (the one above first), each with its Use%: the gate
        /// opens when any of them is at or above a threshold.
        filesystems: Vec<FilesystemEvidence>,
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

/// One filesystem the disk gate measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FilesystemEvidence {
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_percent: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used_percent: Option<u8>,
    /// At or above the byte threshold, or the inode threshold when one is set.
    pub under_pressure: bool,
    /// Why it could not be measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
        // A manager judges whole services (`swarm_manager`), each in one sentence.
        if self.kind == "service" {
            return crate::swarm_manager::describe(self);
        }
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

/// Open when any measured filesystem is at or above the threshold (bytes, or inodes when an
/// inode threshold is set). The first filesystem must be measurable; another that cannot be
/// measured is named, and cannot open the gate.
pub fn disk_gate(snapshot: &Snapshot, policy: &GatePolicy) -> GateVerdict {
    let threshold = policy.disk.threshold_percent;
    let inode_threshold = policy.disk.inode_threshold_percent;
    let usage = match &snapshot.disk {
        Ok(usage) => usage,
        Err(error) => return error_verdict(GateName::Disk, "the disk usage", error),
    };
    let pressure = |usage: &DiskUsage| {
        let inodes = match (inode_threshold, usage.inodes_used_percent) {
            (Some(limit), Some(percent)) => percent >= limit,
            _ => false,
        };
        usage.used_percent >= threshold || inodes
    };
    let measured = |usage: &DiskUsage| FilesystemEvidence {
        path: usage.path.clone(),
        fs_type: Some(usage.fs_type.clone()),
        used_percent: Some(usage.used_percent),
        inodes_used_percent: usage.inodes_used_percent,
        under_pressure: pressure(usage),
        error: None,
    };
    let mut filesystems = vec![measured(usage)];
    let mut phrases = vec![disk_phrase(usage, inode_threshold)];
    for other in &snapshot.more_disks {
        match &other.usage {
            Ok(usage) => {
                filesystems.push(measured(usage));
                phrases.push(disk_phrase(usage, inode_threshold));
            }
            Err(error) => {
                filesystems.push(FilesystemEvidence {
                    path: other.path.clone(),
                    fs_type: None,
                    used_percent: None,
                    inodes_used_percent: None,
                    under_pressure: false,
                    error: Some(error.clone()),
                });
                phrases.push(format!(
                    "{} could not be measured ({error})",
                    other.path.display()
                ));
            }
        }
    }
    let open = filesystems
        .iter()
        .any(|filesystem| filesystem.under_pressure);
    let mut detail = if phrases.len() == 1 {
        single_disk_detail(usage, threshold, inode_threshold)
    } else {
        let mut text = format!("{}; threshold {threshold} %", phrases.join(", "));
        if let Some(limit) = inode_threshold {
            text.push_str(&format!(", inodes {limit} %"));
        }
        text
    };
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
            filesystems,
        },
    }
}

/// One filesystem, as the gate has always said it.
fn single_disk_detail(usage: &DiskUsage, threshold: u8, inode_threshold: Option<u8>) -> String {
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
    detail
}

/// `/var/lib/docker (ext4) is 17 % full`, with the inode use when an inode threshold is set.
fn disk_phrase(usage: &DiskUsage, inode_threshold: Option<u8>) -> String {
    let mut phrase = format!(
        "{} ({}) is {} % full",
        usage.path.display(),
        usage.fs_type,
        usage.used_percent
    );
    if inode_threshold.is_some() {
        match usage.inodes_used_percent {
            Some(percent) => phrase.push_str(&format!(", inodes {percent} % used")),
            None => phrase.push_str(", reporting no inode counts"),
        }
    }
    phrase
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

/// Image IDs are long; people recognise the first 12 hex digits.
fn short_subject(subject: &str) -> &str {
    if subject.starts_with("sha256:") {
        short_id(subject)
    } else {
        subject
    }
}
