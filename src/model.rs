//! Plain data that the engine returns and the pure core reads: daemon info, swarm membership,
//! images, containers, events, swarm services and tasks, lock-file observations, disk usage,
//! and the [`Snapshot`] that bundles them. No I/O lives here; gathering is `snapshot`'s job.
//!
//! Each observation that can fail on its own is an [`Observed`] value: the error text travels
//! with the snapshot so that a gate depending on it can report it and stay closed.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::human::short_id;

/// An observation that may have failed; the error is kept as a sentence for the report.
pub type Observed<T> = Result<T, String>;

/// Everything the pure core may look at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub daemon: DaemonInfo,
    /// The first filesystem the disk gate measures (the data root's, unless configured).
    pub disk: Observed<DiskUsage>,
    /// The other filesystems that hold image data (e.g. containerd's root on the containerd
    /// image store), one per filesystem, in the order they were named.
    pub more_disks: Vec<DiskObservation>,
    pub containers: Observed<Vec<Container>>,
    pub events: Observed<Events>,
    /// Services and tasks; only gathered on a swarm manager.
    pub swarm_cluster: Option<Observed<SwarmCluster>>,
    /// A swarm worker's own evidence (recent events, the manager's view of its tasks); only
    /// gathered on an active worker with the swarm gate on.
    pub swarm_worker: Option<crate::worker_evidence::WorkerObservations>,
    pub lock_files: Vec<LockFile>,
    /// pruneguard's own record of when each crash loop was first seen (empty when none, lost
    /// or unreadable: a crash loop without a record has just started).
    pub crash_loops: CrashLoopRecord,
}

/// What `/info` says about the daemon.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct DaemonInfo {
    pub server_version: String,
    pub api_version: String,
    pub docker_root_dir: Option<String>,
    pub storage_driver: Option<String>,
    pub swarm: SwarmNode,
    /// Which engine answers: Docker, or Podman's Docker-compatible service.
    pub engine: EngineKind,
    /// The engine's own version (Podman's, not the compat API's; dockerd's `ServerVersion`).
    pub engine_version: String,
    /// Where the engine keeps images: its own layer store or containerd's.
    pub image_store: ImageStore,
    /// The containerd socket the daemon uses (`/info` `Containerd.Address`, API 1.46+).
    pub containerd_address: Option<String>,
}

/// The engine behind the socket, detected from `/version` (its components, its platform
/// name) and Podman's `Libpod-Api-Version` answer header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    #[default]
    Docker,
    Podman,
}

impl EngineKind {
    /// `docker` or `podman`, as JSON spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Podman => "podman",
        }
    }

    /// `Docker` or `Podman`, for sentences.
    pub fn title(self) -> &'static str {
        match self {
            Self::Docker => "Docker",
            Self::Podman => "Podman",
        }
    }

    /// Whether `DELETE /images/{id}?noprune=true` keeps the image's untagged parents. Docker
    /// honours it; Podman (4.3 seen, every version assumed) deletes them with the child
    /// (docs/decisions.md D10).
    pub fn honours_noprune(self) -> bool {
        match self {
            Self::Docker => true,
            Self::Podman => false,
        }
    }
}

/// The image store of a Docker daemon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageStore {
    /// The graph driver's own layer store (`overlay2`, …) under the data root.
    #[default]
    Classic,
    /// containerd's content store and snapshotter (`DriverStatus` says
    /// `driver-type: io.containerd.snapshotter.v1`).
    Containerd,
}

impl ImageStore {
    pub const CONTAINERD_DRIVER_TYPE: &'static str = "io.containerd.snapshotter.v1";

    /// The store `/info`'s `DriverStatus` pairs name.
    pub fn from_driver_status(pairs: &[Vec<String>]) -> Self {
        let containerd = pairs.iter().any(|pair| {
            matches!(pair.as_slice(), [key, value, ..]
                if key == "driver-type" && value == Self::CONTAINERD_DRIVER_TYPE)
        });
        if containerd {
            Self::Containerd
        } else {
            Self::Classic
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Containerd => "containerd",
        }
    }
}

/// One filesystem the disk gate measures, or the error measuring it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskObservation {
    pub path: PathBuf,
    pub usage: Observed<DiskUsage>,
}

/// This node's swarm membership, from `/info`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct SwarmNode {
    /// `inactive`, `pending`, `active`, `error` or `locked` (empty when unknown).
    pub local_node_state: String,
    pub control_available: bool,
    pub error: Option<String>,
    /// `Swarm.NodeID`: this node's ID in the swarm (empty when not in one).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node_id: String,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Image {
    pub id: String,
    /// Real tags only: Docker's `<none>:<none>` placeholder is dropped when gathering.
    pub repo_tags: Vec<String>,
    pub parent_id: Option<String>,
    /// `None` when the daemon reports no usable creation time.
    pub created: Option<DateTime<Utc>>,
    pub size_bytes: u64,
    /// `name@sha256:…` references the image was pulled or pushed by (its `RepoDigests`): how
    /// a swarm service's digest-pinned image reference is matched.
    pub repo_digests: Vec<String>,
    /// When the image was last tagged or untagged (`Metadata.LastTagTime` of image inspect);
    /// read on the containerd store only, for images whose creation time makes them old
    /// enough. `None` when not read or not recorded. Only ever makes an image later: its age
    /// reference, and its unused-since time.
    pub last_tag_time: Option<DateTime<Utc>>,
    /// Bytes of its layers that other images share (`SharedSize`, asked for with
    /// `shared-size=1`); `None` where the engine does not compute it (it sends -1, as
    /// dockerd before API 1.42 does). Unique bytes are `size_bytes` minus this.
    pub shared_size_bytes: Option<u64>,
}

impl Image {
    /// Untagged, as Docker's `dangling=true` filter understands it.
    pub fn is_dangling(&self) -> bool {
        self.repo_tags.is_empty()
    }

    /// The time an image's age is counted from: the later of its creation and its last tag
    /// change. On the containerd store Docker's own `until` filter counts from the image
    /// record (created when the image lost its tag), so counting from `created` alone would
    /// be laxer than `docker image prune`. `None` when the creation time is unknown.
    pub fn age_reference(&self) -> Option<DateTime<Utc>> {
        let created = self.created?;
        Some(
            self.last_tag_time
                .map_or(created, |tagged| created.max(tagged)),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Event {
    pub time: DateTime<Utc>,
    /// `image` or `container`.
    pub kind: String,
    pub action: String,
    /// Image reference or container name, whatever identifies the subject best.
    pub subject: String,
}

/// The events of a window, bounded whatever the daemon sends: how many arrived, and a sample
/// of them (the oldest and the newest [`Events::KEEP_AT_EACH_END`]), in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Events {
    pub seen: u64,
    pub sample: Vec<Event>,
}

impl Events {
    pub const KEEP_AT_EACH_END: usize = 10;
}

/// Builds [`Events`] one event at a time in bounded memory.
#[derive(Debug, Default)]
pub struct EventSampler {
    seen: u64,
    head: Vec<Event>,
    tail: std::collections::VecDeque<Event>,
}

impl EventSampler {
    pub fn push(&mut self, event: Event) {
        self.seen += 1;
        if self.head.len() < Events::KEEP_AT_EACH_END {
            self.head.push(event);
        } else {
            if self.tail.len() == Events::KEEP_AT_EACH_END {
                self.tail.pop_front();
            }
            self.tail.push_back(event);
        }
    }

    pub fn finish(self) -> Events {
        let mut sample = self.head;
        sample.extend(self.tail);
        Events {
            seen: self.seen,
            sample,
        }
    }
}

impl From<Vec<Event>> for Events {
    fn from(events: Vec<Event>) -> Self {
        let mut sampler = EventSampler::default();
        for event in events {
            sampler.push(event);
        }
        sampler.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SwarmCluster {
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `UpdateStatus.State`, e.g. `updating`, `rollback_started`, `completed`.
    pub update_state: Option<String>,
    pub update_started_at: Option<DateTime<Utc>>,
    /// `Spec.TaskTemplate.ContainerSpec.Image`, as written (`name:tag@sha256:…`, `name@sha256:…`,
    /// `name:tag`, or an image ID).
    pub image: Option<String>,
    /// The same of `PreviousSpec`: the release a rollback returns to.
    pub previous_image: Option<String>,
    /// `UpdateStatus.Message`, e.g. why an update paused (empty when none).
    pub update_message: String,
}

/// A container `destroy` event: the container that used `image` was removed at `time`, so
/// that image was in use until then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ContainerDestroy {
    pub time: DateTime<Utc>,
    /// The image reference the container was created with (an ID or a name), as the event's
    /// `image` attribute gives it.
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Task {
    pub id: String,
    pub service_id: String,
    /// Replicated services number their tasks by slot; global services use the node.
    pub slot: Option<i64>,
    pub node_id: Option<String>,
    pub desired_state: String,
    pub state: String,
    pub created_at: Option<DateTime<Utc>>,
    /// `Status.Timestamp`: when the task's state last changed (its last progress).
    pub state_changed_at: Option<DateTime<Utc>>,
    pub message: String,
}

/// When pruneguard first saw each service crash-looping, by service ID: swarm keeps only a few
/// tasks per slot, so the task history alone cannot say how long a loop has lasted. Kept in the
/// state directory between runs (`swarm-crash-loops.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct CrashLoopRecord {
    pub services: BTreeMap<String, CrashLoopSeen>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct CrashLoopSeen {
    /// The service's name when it was last seen looping (for people reading the file).
    pub name: String,
    pub first_seen: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LockFile {
    pub path: PathBuf,
    pub state: LockFileState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LockFileState {
    Absent,
    Present { modified: Option<DateTime<Utc>> },
    Unreadable { error: String },
}

/// Usage of one filesystem, in bytes and inodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct DiskUsage {
    pub path: PathBuf,
    pub fs_type: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub used_percent: u8,
    pub inodes_total: u64,
    pub inodes_used: u64,
    pub inodes_used_percent: Option<u8>,
}

impl DiskUsage {
    /// Builds usage from raw `statvfs` counts (block counts already multiplied out to bytes).
    pub fn from_counts(path: PathBuf, fs_type: String, counts: RawCounts) -> Self {
        let used_bytes = counts.total_bytes.saturating_sub(counts.free_bytes);
        let inodes_used = counts.inodes_total.saturating_sub(counts.inodes_free);
        Self {
            path,
            fs_type,
            size_bytes: counts.total_bytes,
            used_bytes,
            available_bytes: counts.available_bytes,
            used_percent: df_percent(used_bytes, counts.available_bytes).unwrap_or(0),
            inodes_total: counts.inodes_total,
            inodes_used,
            // Some filesystems (btrfs) report no inode counts at all.
            inodes_used_percent: df_percent(inodes_used, counts.inodes_available),
        }
    }

    /// Used fraction (0.0–1.0) on the same basis as `used_percent`, for metrics.
    #[expect(clippy::cast_precision_loss)] // a ratio for a gauge; sub-byte precision is irrelevant
    pub fn used_ratio(&self) -> f64 {
        let basis = self.used_bytes + self.available_bytes;
        if basis == 0 {
            0.0
        } else {
            self.used_bytes as f64 / basis as f64
        }
    }
}

/// Raw counts from `statvfs`, in bytes and inodes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCounts {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub available_bytes: u64,
    pub inodes_total: u64,
    pub inodes_free: u64,
    pub inodes_available: u64,
}

/// `df`'s Use%: used / (used + available), rounded up; reserved blocks count as neither.
/// `None` when there is nothing to measure (both zero).
pub fn df_percent(used: u64, available: u64) -> Option<u8> {
    let basis = u128::from(used) + u128::from(available);
    if basis == 0 {
        return None;
    }
    let percent = (u128::from(used) * 100).div_ceil(basis);
    // used <= basis, so the quotient is at most 100.
    Some(u8::try_from(percent).unwrap_or(100))
}

/// `sha256:` and 64 lowercase hex digits: the only image ID pruneguard plans or sends.
pub fn is_image_id(id: &str) -> bool {
    id.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A tag reference (`repo:tag`, `registry:5000/team/app:3f9c`) in a strict subset of the
/// distribution grammar: the only kind of name pruneguard puts into a request path (the
/// `unused_tagged` tier's `DELETE /images/{name:tag}`). Lowercase path components of
/// letters, digits and single `.`/`_`/`-` separators (`__` allowed), an optional registry host
/// with a port first, and a tag of `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. No `@`, `%`, `?`,
/// `#`, spaces, `..` or empty components, so no value can change the path or the query.
pub fn is_tag_reference(reference: &str) -> bool {
    if reference.len() > 255 {
        return false;
    }
    let Some((name, tag)) = reference.rsplit_once(':') else {
        return false;
    };
    if tag.contains('/') || !is_tag(tag) {
        return false;
    }
    let mut components = name.split('/').peekable();
    let Some(first) = components.next() else {
        return false;
    };
    let has_more = components.peek().is_some();
    let first_ok =
        if has_more && (first.contains('.') || first.contains(':') || first == "localhost") {
            is_registry_host(first)
        } else {
            is_path_component(first)
        };
    first_ok && components.all(is_path_component)
}

fn is_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    !bytes.is_empty()
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes
            .iter()
            .all(|byte| alnum(byte) || matches!(byte, b'.' | b'_' | b'-'))
        && !component.contains("..")
        && !component.contains("___")
        && !component.contains(".-")
        && !component.contains("-.")
        && !component.contains("._")
        && !component.contains("_.")
}

fn is_registry_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|port| {
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|byte| byte.is_ascii_digit())
    });
    port_ok
        && !name.is_empty()
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
                && bytes
                    .iter()
                    .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-')
        })
}

/// Some engines (Podman) send IDs as bare hex: give a bare 64-hex ID its `sha256:` prefix.
/// Anything else is returned as it came, for [`is_image_id`] to judge.
pub fn normalize_image_id(id: &str) -> String {
    let prefixed = format!("sha256:{id}");
    if is_image_id(&prefixed) {
        prefixed
    } else {
        id.to_string()
    }
}
