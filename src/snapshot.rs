//! Gathering: engine + filesystem + clock → [`crate::model::Snapshot`]. This is the only I/O that
//! happens before deciding; everything after it (`gates`, `plan`) is a pure function of the
//! snapshot, the policy and `now`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use crate::config::Settings;
use crate::disk;
use anyhow::Context as _;

use crate::engine::{Engine, EngineError, EventWindow};
use crate::gates::{self, GateVerdict};
use crate::model::{DaemonInfo, Events, LockFile, LockFileState, Observed, Snapshot};

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
        Ok(Events::default())
    } else {
        // Saturates at the epoch: before it, the daemon would answer with no events at all,
        // and the gate would open on an empty window.
        let since = Duration::from_std(gates.quiet.period)
            .ok()
            .and_then(|period| now.checked_sub_signed(period))
            .map_or(DateTime::UNIX_EPOCH, |since| {
                since.max(DateTime::UNIX_EPOCH)
            });
        observe(engine.events(EventWindow { since, until: now }).await)?
    };
    // Services feed both the swarm gate and the workload gate's stack and label selectors.
    let swarm_cluster = if daemon.swarm.is_manager() {
        Some(observe(engine.swarm_cluster().await)?)
    } else {
        None
    };
    let swarm_worker = if gates.swarm.enabled && daemon.swarm.is_worker() {
        Some(crate::worker_gather::gather(engine, settings, &daemon, now).await?)
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
        containers,
        events,
        swarm_cluster,
        swarm_worker,
        lock_files,
    })
}

/// Fresh evidence and verdicts for `execute`'s re-checks, all judged at one `now`. It starts
/// by asking the daemon, so a daemon that went away stops the run here, before any delete.
pub async fn recheck_gates<E: Engine>(
    engine: &E,
    settings: &Settings,
) -> anyhow::Result<Vec<GateVerdict>> {
    let daemon = engine
        .info()
        .await
        .context("could not read the daemon's /info")?;
    let now = Utc::now();
    let snapshot = gather(engine, settings, now, daemon, Scope::GatesOnly).await?;
    Ok(gates::evaluate(&snapshot, &settings.policy.gates, now))
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
