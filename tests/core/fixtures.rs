//! The fixtures every pure test module shares: one fixed clock, image IDs, and builders for
//! images, containers, disk usage, events, swarm services and tasks, snapshots and policies.
//! A module that needs a variant starts from these (struct update syntax) instead of keeping
//! its own copy, so that "an image", "a manager" or "a full disk" means one thing everywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone as _, Utc};

use pruneguard::model::{
    Container, DaemonInfo, DiskUsage, Event, Events, Image, Service, Snapshot, SwarmNode, Task,
};
use pruneguard::plan::Plan;
use pruneguard::policy::{GatePolicy, LabelSelector, Pattern, Policy};

/// One day, in seconds.
pub const DAY: i64 = 24 * 3600;

/// The fixed "now" of every pure test (the report snapshots print it).
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 3, 0, 0).unwrap()
}

/// `seconds` before [`now`] (negative: in the future).
pub fn ago(seconds: i64) -> DateTime<Utc> {
    now() - chrono::Duration::seconds(seconds)
}

/// The ID of fixture image `n` (0..=255): 64 hex digits whose first two are `n`, so IDs sort
/// like their numbers and their short forms (first 12 digits) stay distinct.
pub fn id(n: u32) -> String {
    assert!(n < 256, "fixture image numbers go up to 255, not {n}");
    format!("sha256:{n:02x}{}", "7d3f9a1c".repeat(8).get(..62).unwrap())
}

/// A label map from `(key, value)` pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// Image `n` of `n` × 1000 bytes, created `age_seconds` before [`now`] (negative: in the
/// future; `None`: the daemon did not say).
pub fn image(n: u32, tags: &[&str], parent: Option<u32>, age_seconds: Option<i64>) -> Image {
    Image {
        id: id(n),
        repo_tags: tags.iter().map(ToString::to_string).collect(),
        parent_id: parent.map(id),
        created: age_seconds.map(ago),
        size_bytes: u64::from(n) * 1000,
        repo_digests: Vec::new(),
        last_tag_time: None,
        shared_size_bytes: None,
    }
}

/// A container `name` of image `image` ([`id`]) in `state`, created a minute ago. Its ID is
/// the name in hex, so distinct names have distinct IDs.
pub fn container(name: &str, image: u32, state: &str, pairs: &[(&str, &str)]) -> Container {
    let mut hex = String::new();
    for byte in name.bytes() {
        write!(hex, "{byte:02x}").unwrap();
    }
    Container {
        id: format!("{hex:0<64}").chars().take(64).collect(),
        name: name.to_string(),
        image_id: id(image),
        state: state.to_string(),
        labels: labels(pairs),
        created: Some(ago(60)),
    }
}

/// `/var/lib/docker` on a 100 GiB ext4 file system, `used_percent` full, with
/// `inodes_used_percent` of its inodes used (`None`: the file system reports no inode counts).
pub fn disk(used_percent: u8, inodes_used_percent: Option<u8>) -> DiskUsage {
    let size = 100 * 1024 * 1024 * 1024_u64;
    let used = size / 100 * u64::from(used_percent);
    let inodes_total = 6_553_600;
    DiskUsage {
        path: PathBuf::from("/var/lib/docker"),
        fs_type: "ext4".into(),
        size_bytes: size,
        used_bytes: used,
        available_bytes: size - used,
        used_percent,
        inodes_total,
        inodes_used: inodes_total / 100 * u64::from(inodes_used_percent.unwrap_or(0)),
        inodes_used_percent,
    }
}

/// A daemon event `seconds_ago` before [`now`].
pub fn event(seconds_ago: i64, kind: &str, action: &str, subject: &str) -> Event {
    Event {
        time: ago(seconds_ago),
        kind: kind.into(),
        action: action.into(),
        subject: subject.into(),
    }
}

/// A swarm service; `update` is its update state and how many seconds ago the update started.
pub fn service(
    id: &str,
    name: &str,
    pairs: &[(&str, &str)],
    update: Option<(&str, i64)>,
) -> Service {
    Service {
        id: id.into(),
        name: name.into(),
        labels: labels(pairs),
        update_state: update.map(|(state, _)| state.to_string()),
        update_started_at: update.map(|(_, seconds)| ago(seconds)),
        image: None,
        previous_image: None,
        update_message: String::new(),
    }
}

/// A task of `service_id` on node `node1nnnnnnnnnnnnnnn`, created `created_seconds_ago`
/// (`None`: not known), whose message is `msg-STATE`.
pub fn task(
    id: &str,
    service_id: &str,
    slot: Option<i64>,
    desired: &str,
    state: &str,
    created_seconds_ago: Option<i64>,
) -> Task {
    Task {
        id: id.into(),
        service_id: service_id.into(),
        slot,
        node_id: Some("node1nnnnnnnnnnnnnnn".into()),
        desired_state: desired.into(),
        state: state.into(),
        created_at: created_seconds_ago.map(ago),
        // Its state last changed when it was created (tests that need progress set it).
        state_changed_at: created_seconds_ago.map(ago),
        message: format!("msg-{state}"),
    }
}

/// A standalone daemon (not in a swarm) whose disk is 90 % full and which sees no containers,
/// no events and no lock files: every gate of the default policy is open.
pub fn snapshot() -> Snapshot {
    Snapshot {
        daemon: DaemonInfo {
            server_version: "28.0.0".into(),
            api_version: "1.48".into(),
            docker_root_dir: Some("/var/lib/docker".into()),
            storage_driver: Some("overlay2".into()),
            swarm: SwarmNode {
                local_node_state: "inactive".into(),
                control_available: false,
                error: None,
                node_id: String::new(),
            },
            ..DaemonInfo::default()
        },
        disk: Ok(disk(90, Some(10))),
        more_disks: Vec::new(),
        containers: Ok(Vec::new()),
        events: Ok(Events::default()),
        swarm_cluster: None,
        swarm_worker: None,
        lock_files: Vec::new(),
        crash_loops: pruneguard::model::CrashLoopRecord::default(),
    }
}

/// Makes `snap`'s daemon an active swarm manager.
pub fn manager(snap: &mut Snapshot) {
    snap.daemon.swarm = SwarmNode {
        local_node_state: "active".into(),
        control_available: true,
        error: None,
        node_id: String::new(),
    };
}

/// The default policy's gates.
pub fn policy() -> GatePolicy {
    Policy::default().gates
}

/// A name glob, as the config would parse it.
pub fn pattern(text: &str) -> Pattern {
    Pattern::new(text).unwrap()
}

/// A label selector, as the config would parse it.
pub fn label(text: &str) -> LabelSelector {
    LabelSelector::parse(text).unwrap()
}

/// The IDs of `plan`'s candidates, in deletion order.
pub fn candidate_ids(plan: &Plan) -> Vec<String> {
    plan.candidates.iter().map(|c| c.id.clone()).collect()
}
