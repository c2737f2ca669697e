//! The `Snapshot`: plain data gathered from the host (engine, filesystem, clock) before any
//! decision is made. Gathering is the only I/O that happens before deciding; everything after
//! it (`gates`, `plan`) is a pure function of this data.
//!
//! Each observation that can fail on its own is an [`Observed`] value: the error text travels
//! with the snapshot so that a gate depending on it can report it and stay closed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::disk::{self, DiskUsage};
use crate::engine::{Engine, EngineError, EventWindow};

/// An observation that may have failed; the error is kept as a sentence for the report.
pub type Observed<T> = Result<T, String>;

/// Everything the pure core may look at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub daemon: DaemonInfo,
    pub disk: Observed<DiskUsage>,
    pub images: Vec<Image>,
    pub containers: Observed<Vec<Container>>,
    pub events: Observed<Vec<Event>>,
    /// Services and tasks; only gathered on a swarm manager.
    pub swarm_cluster: Option<Observed<SwarmCluster>>,
    pub lock_files: Vec<LockFile>,
}

/// What `/info` says about the daemon.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DaemonInfo {
    pub server_version: String,
    pub api_version: String,
    pub docker_root_dir: Option<String>,
    pub storage_driver: Option<String>,
    pub swarm: SwarmNode,
}

/// This node's swarm membership, from `/info`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SwarmNode {
    /// `inactive`, `pending`, `active`, `error` or `locked` (empty when unknown).
    pub local_node_state: String,
    pub control_available: bool,
    pub error: Option<String>,
}

impl SwarmNode {
    /// An active swarm node that can answer for the cluster.
    pub fn is_manager(&self) -> bool {
        self.local_node_state == "active" && self.control_available
    }

    /// An active swarm node that cannot see the cluster (the API answers 503).
    pub fn is_worker(&self) -> bool {
        self.local_node_state == "active" && !self.control_available
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub id: String,
    /// Real tags only: Docker's `<none>:<none>` placeholder is dropped when gathering.
    pub repo_tags: Vec<String>,
    pub parent_id: Option<String>,
    /// `None` when the daemon reports no usable creation time.
    pub created: Option<DateTime<Utc>>,
    pub size_bytes: u64,
}

impl Image {
    /// Untagged, as Docker's `dangling=true` filter understands it.
    pub fn is_dangling(&self) -> bool {
        self.repo_tags.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub image_id: String,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub state: String,
    pub labels: BTreeMap<String, String>,
    pub created: Option<DateTime<Utc>>,
}

impl Container {
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }
}

/// A daemon event relevant to the quiet gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub time: DateTime<Utc>,
    /// `image` or `container`.
    pub kind: String,
    pub action: String,
    /// Image reference or container name, whatever identifies the subject best.
    pub subject: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SwarmCluster {
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `UpdateStatus.State`, e.g. `updating`, `rollback_started`, `completed`.
    pub update_state: Option<String>,
    pub update_started_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub id: String,
    pub service_id: String,
    /// Replicated services number their tasks by slot; global services use the node.
    pub slot: Option<i64>,
    pub node_id: Option<String>,
    pub desired_state: String,
    pub state: String,
    pub created_at: Option<DateTime<Utc>>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockFile {
    pub path: PathBuf,
    pub state: LockFileState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LockFileState {
    Absent,
    Present { modified: Option<DateTime<Utc>> },
    Unreadable { error: String },
}

/// Docker's 12-character short ID, without the `sha256:` prefix.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// Converts Docker's unix-seconds timestamps; zero or negative means "unknown" (Docker reports
/// the zero time for images without a creation date).
pub fn unix_time(seconds: i64) -> Option<DateTime<Utc>> {
    if seconds <= 0 {
        return None;
    }
    Utc.timestamp_opt(seconds, 0).single()
}

/// What a gather is for: the plan needs every container (to know which images are in use);
/// a re-check of the gates lists containers only when a gate looks at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Plan,
    GatesOnly,
}

/// Gathers everything but the image list (listed once, right before planning). Daemon
/// unreachable is an error (a runtime failure, not a closed gate); any other failure of a
/// single observation is recorded in the snapshot instead.
pub async fn gather<E: Engine>(
    engine: &E,
    settings: &Settings,
    now: DateTime<Utc>,
    daemon: DaemonInfo,
    scope: Scope,
) -> anyhow::Result<Snapshot> {
    let gates = &settings.policy.gates;
    let disk_path = disk_path(settings, &daemon);
    let disk = disk::usage(&disk_path).map_err(|error| format!("{error:#}"));
    let containers = if scope == Scope::Plan || gates_need_containers(settings, &daemon) {
        observe(engine.containers().await)?
    } else {
        // Not looked at by any gate in this re-check (listing thousands is not free).
        Ok(Vec::new())
    };
    let events = if gates.quiet.period.is_zero() {
        Ok(Vec::new())
    } else {
        // A period longer than chrono can count back means "since the beginning".
        let since = Duration::from_std(gates.quiet.period)
            .ok()
            .and_then(|period| now.checked_sub_signed(period))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        observe(engine.events(EventWindow { since, until: now }).await)?
    };
    // Services feed both the swarm gate and the workload gate's stack and label selectors.
    let swarm_cluster = if daemon.swarm.is_manager() {
        Some(observe(engine.swarm_cluster().await)?)
    } else {
        None
    };
    let lock_files = gates
        .workload
        .lock_files
        .iter()
        .map(|path| observe_lock_file(path))
        .collect();
    Ok(Snapshot {
        daemon,
        disk,
        images: Vec::new(),
        containers,
        events,
        swarm_cluster,
        lock_files,
    })
}

/// The workload gate's container selectors and a swarm worker's local evidence read the
/// container list; nothing else in a gate does.
fn gates_need_containers(settings: &Settings, daemon: &DaemonInfo) -> bool {
    let gates = &settings.policy.gates;
    gates.workload.matches_containers() || (gates.swarm.enabled && daemon.swarm.is_worker())
}

/// Keeps an API failure as evidence for the gate that needed it, but lets "the daemon went
/// away" through as a runtime failure: that is not a closed gate, it is a failed run.
fn observe<T>(result: Result<T, EngineError>) -> anyhow::Result<Observed<T>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) if error.is_unreachable() => Err(error.into()),
        Err(error) => Ok(Err(error.to_string())),
    }
}

/// The filesystem the disk gate measures: `--disk-path`, else the daemon's data root when it
/// exists on this machine, else `/`.
pub fn disk_path(settings: &Settings, daemon: &DaemonInfo) -> PathBuf {
    if let Some(path) = &settings.policy.gates.disk.path {
        return path.clone();
    }
    match &daemon.docker_root_dir {
        // Not here at all: a remote daemon, whose disk this machine cannot see.
        Some(root) if matches!(Path::new(root).try_exists(), Ok(false)) => PathBuf::from("/"),
        // Present, or unknown (permission denied): measure it, and let an error close the gate
        // rather than silently measuring another filesystem.
        Some(root) => PathBuf::from(root),
        None => PathBuf::from("/"),
    }
}

fn observe_lock_file(path: &Path) -> LockFile {
    let state = match std::fs::metadata(path) {
        Ok(meta) => LockFileState::Present {
            modified: meta.modified().ok().map(DateTime::<Utc>::from),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => LockFileState::Absent,
        Err(error) => LockFileState::Unreadable {
            error: error.to_string(),
        },
    };
    LockFile {
        path: path.to_path_buf(),
        state,
    }
}
