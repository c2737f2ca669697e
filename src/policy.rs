//! The typed policy the pure core decides by: what may be removed and when (`min_age`), each
//! gate's settings, and the patterns and label selectors they match with. Built once by
//! `config` from the settings layers; read by `gates`, `plan` and `doctor`. No I/O.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use globset::{Glob, GlobMatcher};

use crate::worker_evidence::WorkerEvidence;

pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_DISK_THRESHOLD: u8 = 80;
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_STALE_LOCK_AFTER: Duration = Duration::from_secs(6 * 3600);
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_WAIT_INTERVAL: Duration = Duration::from_secs(30);
/// `watch.interval`: how often `pruneguard watch` runs a tick.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(3600);

/// What may be removed and when: everything the pure core needs.
#[derive(Debug, Clone)]
pub struct Policy {
    pub min_age: Duration,
    /// What `min_age` is measured from.
    pub age_basis: AgeBasis,
    pub gates: GatePolicy,
}

/// What an image's age (`min_age`) is measured from (`policy.age_basis`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AgeBasis {
    /// Since pruneguard first saw the image untagged and unused by every container, from its
    /// observation record (the default; an image without a record is not old enough).
    #[default]
    UnusedFor,
    /// Since the image's `Created` time (Docker's `until` on the classic store).
    Created,
}

impl AgeBasis {
    /// The name in the config file, the flag and the environment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnusedFor => "unused_for",
            Self::Created => "created",
        }
    }

    /// Parses `unused_for` or `created`; the error is a sentence fragment naming both.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "unused_for" => Ok(Self::UnusedFor),
            "created" => Ok(Self::Created),
            other => Err(format!(
                "{other:?} is not an age basis; use \"unused_for\" (since first seen untagged and unused, the default) or \"created\" (since the image was built)"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatePolicy {
    pub wait: Duration,
    pub wait_interval: Duration,
    pub disk: DiskGate,
    pub quiet: QuietGate,
    pub workload: WorkloadGate,
    pub swarm: SwarmGate,
}

#[derive(Debug, Clone)]
pub struct DiskGate {
    /// What to measure, in order (never empty); the default is `[Auto]`.
    pub paths: Vec<DiskPath>,
    pub threshold_percent: u8,
    pub inode_threshold_percent: Option<u8>,
}

/// One entry of `gates.disk.paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskPath {
    /// Every filesystem holding the engine's image data: the data root and, on the
    /// containerd image store, containerd's root.
    Auto,
    Path(PathBuf),
}

impl DiskPath {
    /// As the config file writes it.
    pub fn text(&self) -> String {
        match self {
            Self::Auto => "auto".to_string(),
            Self::Path(path) => path.display().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct QuietGate {
    /// Zero disables the gate.
    pub period: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct WorkloadGate {
    pub stacks: Vec<Pattern>,
    pub labels: Vec<LabelSelector>,
    pub containers: Vec<Pattern>,
    pub lock_files: Vec<PathBuf>,
    pub stale_lock_after: Duration,
}

impl WorkloadGate {
    pub fn has_selectors(&self) -> bool {
        self.matches_containers() || !self.lock_files.is_empty()
    }

    /// Stack, label or name selectors: the gate reads the container list.
    pub fn matches_containers(&self) -> bool {
        self.matches_services() || !self.containers.is_empty()
    }

    /// Stack or label selectors: on a swarm manager the gate also reads the services.
    pub fn matches_services(&self) -> bool {
        !(self.stacks.is_empty() && self.labels.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct SwarmGate {
    pub enabled: bool,
    pub stuck_after: Duration,
    /// What a worker node is judged by (`gates.swarm.worker_evidence`).
    pub worker_evidence: Vec<WorkerEvidence>,
    /// `gates.swarm.manager_host` as it is spoken to (a `tcp://` manager with TLS files shows
    /// as `https://`): a worker asks this manager for its own tasks.
    pub manager_host: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_age: DEFAULT_MIN_AGE,
            age_basis: AgeBasis::default(),
            gates: GatePolicy {
                wait: Duration::ZERO,
                wait_interval: DEFAULT_WAIT_INTERVAL,
                disk: DiskGate {
                    paths: vec![DiskPath::Auto],
                    threshold_percent: DEFAULT_DISK_THRESHOLD,
                    inode_threshold_percent: None,
                },
                quiet: QuietGate {
                    period: DEFAULT_QUIET_PERIOD,
                },
                workload: WorkloadGate {
                    stale_lock_after: DEFAULT_STALE_LOCK_AFTER,
                    ..WorkloadGate::default()
                },
                swarm: SwarmGate {
                    enabled: true,
                    stuck_after: DEFAULT_STUCK_AFTER,
                    worker_evidence: WorkerEvidence::ALL.to_vec(),
                    manager_host: None,
                },
            },
        }
    }
}

/// A glob with the text it came from, so reports can say which pattern matched.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err(
                "an empty glob matches nothing; remove it or write a pattern such as \"run-app*\""
                    .into(),
            );
        }
        let glob = Glob::new(text).map_err(|error| format!("invalid glob {text:?}: {error}"))?;
        Ok(Self {
            text: text.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn is_match(&self, candidate: &str) -> bool {
        self.matcher.is_match(candidate)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `key` (the label is present) or `key=value` (present with exactly that value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    pub key: String,
    pub value: Option<String>,
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.to_string())),
            None => (text.trim(), None),
        };
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(format!(
                "invalid label selector {text:?}; write `key` or `key=value`, e.g. ci.role=run-app"
            ));
        }
        Ok(Self {
            key: key.to_string(),
            value,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match (labels.get(&self.key), &self.value) {
            (Some(actual), Some(wanted)) => actual == wanted,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value}", self.key),
            None => f.write_str(&self.key),
        }
    }
}
