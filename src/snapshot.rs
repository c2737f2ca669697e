//! Gathering: engine + filesystem + clock → [`crate::model::Snapshot`]. This is the only I/O that
//! happens before deciding; everything after it (`gates`, `plan`) is a pure function of the
//! snapshot, the policy and `now`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use crate::config::Settings;
use crate::disk;
use anyhow::Context as _;

use crate::engine::{Engine, EngineError, EventWindow, LastTagTime};
use crate::gates::{self, GateVerdict};
use crate::model::{
    CrashLoopRecord, DaemonInfo, DiskObservation, DiskUsage, Events, Image, ImageStore, LockFile,
    LockFileState, Observed, Snapshot,
};
use crate::policy::DiskPath;

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
    let (disk, more_disks) = split_disks(disk::usage_of_each(&disk_paths(settings, &daemon)));
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
    // The crash-loop record is kept current by every gather of a run that may delete.
    let crash_loops = match &swarm_cluster {
        Some(Ok(cluster)) if gates.swarm.enabled => crate::crash_record::observe(
            &settings.state_dir,
            cluster,
            now,
            gates.swarm.stuck_after,
            !settings.dry_run,
        ),
        _ => CrashLoopRecord::default(),
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
        more_disks,
        containers,
        events,
        swarm_cluster,
        swarm_worker,
        lock_files,
        crash_loops,
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

/// The first filesystem (the snapshot's `disk`) and the others.
pub fn split_disks(
    mut observed: Vec<DiskObservation>,
) -> (Observed<DiskUsage>, Vec<DiskObservation>) {
    if observed.is_empty() {
        // `disk_paths` never returns an empty list; measure `/` rather than nothing.
        observed = disk::usage_of_each(&[PathBuf::from("/")]);
    }
    let mut rest = observed.into_iter();
    let first = rest.next().map_or_else(
        || Err("no path to measure".to_string()),
        |first| first.usage,
    );
    (first, rest.collect())
}

/// The paths the disk gate measures, in order and without repeats: each entry of
/// `gates.disk.paths`, with `auto` standing for [`auto_disk_paths`].
pub fn disk_paths(settings: &Settings, daemon: &DaemonInfo) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in &settings.policy.gates.disk.paths {
        let more = match entry {
            DiskPath::Auto => auto_disk_paths(daemon),
            DiskPath::Path(path) => vec![path.clone()],
        };
        for path in more {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    paths
}

/// The filesystems that hold the engine's image data: the daemon's data root when it exists on
/// this machine (else `/`), and on the containerd image store containerd's root (see
/// [`crate::containerd`]) unless it is known not to exist here.
pub fn auto_disk_paths(daemon: &DaemonInfo) -> Vec<PathBuf> {
    let root = match &daemon.docker_root_dir {
        // Not here at all: a remote daemon, whose disk this machine cannot see.
        Some(root) if matches!(Path::new(root).try_exists(), Ok(false)) => None,
        // Present, or unknown (permission denied): measure it, and let an error close the gate
        // rather than silently measuring another filesystem.
        Some(root) => Some(PathBuf::from(root)),
        None => None,
    };
    let Some(root) = root else {
        return vec![PathBuf::from("/")];
    };
    let mut paths = vec![root.clone()];
    if daemon.image_store == ImageStore::Containerd {
        let containerd = crate::containerd::discover(&root, daemon.containerd_address.as_deref());
        if !matches!(containerd.path.try_exists(), Ok(false)) {
            paths.push(containerd.path);
        }
    }
    paths
}

/// On the containerd image store, reads `LastTagTime` for the images in `ids` (the plan's
/// candidates by creation time: a bounded number of requests) into `images`, so that the plan
/// can count their age from the later of the two. An image whose time cannot be read (an API
/// error, or gone since the listing) gets `now`: unknown counts as young. A daemon that went
/// away is an error.
pub async fn read_last_tag_times<E: Engine>(
    engine: &E,
    images: &mut [Image],
    ids: &[String],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    use futures_util::StreamExt as _;
    let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let answers: Vec<(String, Result<LastTagTime, EngineError>)> = futures_util::stream::iter(
        wanted
            .iter()
            .map(|id| async move { (id.to_string(), engine.last_tag_time(id).await) }),
    )
    .buffer_unordered(crate::execute::DEFAULT_CONCURRENCY)
    .collect()
    .await;
    let mut times = std::collections::HashMap::new();
    for (id, answer) in answers {
        let time = match answer {
            Ok(LastTagTime::Known(time)) => time,
            Ok(LastTagTime::Gone) => Some(now),
            Err(error) if error.is_unreachable() => {
                return Err(anyhow::Error::new(error).context(
                    "could not read the images' LastTagTime, so their age on the containerd \
                     image store is unknown; nothing was deleted",
                ));
            }
            Err(error) => {
                tracing::warn!(image = %crate::human::short_id(&id), "could not read LastTagTime ({error}); the image counts as tagged just now, so it is kept as too young");
                Some(now)
            }
        };
        times.insert(id, time);
    }
    for image in images.iter_mut() {
        if let Some(time) = times.get(&image.id) {
            image.last_tag_time = *time;
        }
    }
    Ok(())
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
