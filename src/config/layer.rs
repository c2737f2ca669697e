//! [`SettingsLayer`]: every setting as an `Option`, with the place it came from, in the config
//! file's own layout. Each source (flags, environment, file) becomes one layer of typed,
//! parsed values; [`SettingsLayer::or`] is the one place where layers are combined.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::OutputFormat;
use crate::policy::{AgeBasis, LabelSelector, Pattern};
use crate::worker_evidence::WorkerEvidence;

use super::host::HostUrl;

/// Where a value came from, so an error about it can say where to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag, by its name (`--wait-interval`).
    Flag(&'static str),
    /// An environment variable, by its name (`PRUNEGUARD_WAIT_INTERVAL`).
    Env(&'static str),
    /// A line of the config file.
    File { path: PathBuf, line: usize },
}

impl Source {
    /// Names the place and the key, for the start of an error message:
    /// ``/etc/pruneguard/config.toml:4: `gates.wait` ``, ``--wait-for-gates (`gates.wait`)``,
    /// ``environment variable PRUNEGUARD_WAIT_FOR_GATES (`gates.wait`)``.
    pub fn locate(&self, key: &str) -> String {
        match self {
            Self::Flag(flag) => format!("{flag} (`{key}`)"),
            Self::Env(name) => format!("environment variable {name} (`{key}`)"),
            Self::File { path, line } => format!("{}:{line}: `{key}`", path.display()),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Source) -> Self {
        Self { value, source }
    }
}

/// One of the disk gate's paths: `auto` (the filesystems of the engine's image data) or a path.
pub use crate::policy::DiskPath;

/// One source's settings; `None` means this source does not set the key.
#[derive(Debug, Clone, Default)]
pub struct SettingsLayer {
    pub engine: EngineLayer,
    pub policy: PolicyLayer,
    pub gates: GatesLayer,
    pub state: StateLayer,
    pub output: OutputLayer,
    pub watch: WatchLayer,
    /// `[tiers.*]` (issue 13).
    pub tiers: super::tiers::TiersLayer,
}

#[derive(Debug, Clone, Default)]
pub struct EngineLayer {
    pub host: Option<Sourced<HostUrl>>,
    /// `engine.tls_verify`: TLS to a `tcp://` host (Docker's `DOCKER_TLS_VERIFY`).
    pub tls_verify: Option<Sourced<bool>>,
    /// `engine.tls_cert_path`: the TLS files' directory (Docker's `DOCKER_CERT_PATH`).
    pub tls_cert_path: Option<Sourced<PathBuf>>,
    pub api_timeout: Option<Sourced<Duration>>,
    pub max_list_size: Option<Sourced<u64>>,
}

#[derive(Debug, Clone, Default)]
pub struct PolicyLayer {
    pub min_age: Option<Sourced<Duration>>,
    pub age_basis: Option<Sourced<AgeBasis>>,
}

#[derive(Debug, Clone, Default)]
pub struct GatesLayer {
    pub wait: Option<Sourced<Duration>>,
    pub wait_interval: Option<Sourced<Duration>>,
    pub disk: DiskLayer,
    pub quiet: QuietLayer,
    pub workload: WorkloadLayer,
    pub swarm: SwarmLayer,
}

#[derive(Debug, Clone, Default)]
pub struct DiskLayer {
    /// `gates.disk.paths`, or its one-path alias `gates.disk.path` (one layer sets one of them).
    pub paths: Option<Sourced<Vec<DiskPath>>>,
    pub threshold_percent: Option<Sourced<u8>>,
    pub inode_threshold_percent: Option<Sourced<u8>>,
}

#[derive(Debug, Clone, Default)]
pub struct QuietLayer {
    pub period: Option<Sourced<Duration>>,
}

/// A list replaces a lower layer's list as a whole: lists are not concatenated.
#[derive(Debug, Clone, Default)]
pub struct WorkloadLayer {
    pub stacks: Option<Sourced<Vec<Pattern>>>,
    pub labels: Option<Sourced<Vec<LabelSelector>>>,
    pub containers: Option<Sourced<Vec<Pattern>>>,
    pub lock_files: Option<Sourced<Vec<PathBuf>>>,
    pub stale_lock_after: Option<Sourced<Duration>>,
}

#[derive(Debug, Clone, Default)]
pub struct SwarmLayer {
    pub enabled: Option<Sourced<bool>>,
    pub stuck_after: Option<Sourced<Duration>>,
    pub worker_evidence: Option<Sourced<Vec<WorkerEvidence>>>,
    pub manager_host: Option<Sourced<HostUrl>>,
    pub manager_tls_cert_path: Option<Sourced<PathBuf>>,
}

#[derive(Debug, Clone, Default)]
pub struct StateLayer {
    pub dir: Option<Sourced<PathBuf>>,
}

#[derive(Debug, Clone, Default)]
pub struct WatchLayer {
    pub interval: Option<Sourced<Duration>>,
}

#[derive(Debug, Clone, Default)]
pub struct OutputLayer {
    pub format: Option<Sourced<OutputFormat>>,
    pub metrics_file: Option<Sourced<PathBuf>>,
}

impl SettingsLayer {
    /// This layer's values, and `lower`'s for every key this layer does not set: the one place
    /// where precedence is applied, key by key (`flags.or(env).or(file)`).
    #[must_use]
    pub fn or(self, lower: Self) -> Self {
        let (gates, low) = (self.gates, lower.gates);
        Self {
            engine: EngineLayer {
                host: self.engine.host.or(lower.engine.host),
                tls_verify: self.engine.tls_verify.or(lower.engine.tls_verify),
                tls_cert_path: self.engine.tls_cert_path.or(lower.engine.tls_cert_path),
                api_timeout: self.engine.api_timeout.or(lower.engine.api_timeout),
                max_list_size: self.engine.max_list_size.or(lower.engine.max_list_size),
            },
            policy: PolicyLayer {
                min_age: self.policy.min_age.or(lower.policy.min_age),
                age_basis: self.policy.age_basis.or(lower.policy.age_basis),
            },
            gates: GatesLayer {
                wait: gates.wait.or(low.wait),
                wait_interval: gates.wait_interval.or(low.wait_interval),
                disk: DiskLayer {
                    paths: gates.disk.paths.or(low.disk.paths),
                    threshold_percent: gates.disk.threshold_percent.or(low.disk.threshold_percent),
                    inode_threshold_percent: gates
                        .disk
                        .inode_threshold_percent
                        .or(low.disk.inode_threshold_percent),
                },
                quiet: QuietLayer {
                    period: gates.quiet.period.or(low.quiet.period),
                },
                workload: WorkloadLayer {
                    stacks: gates.workload.stacks.or(low.workload.stacks),
                    labels: gates.workload.labels.or(low.workload.labels),
                    containers: gates.workload.containers.or(low.workload.containers),
                    lock_files: gates.workload.lock_files.or(low.workload.lock_files),
                    stale_lock_after: gates
                        .workload
                        .stale_lock_after
                        .or(low.workload.stale_lock_after),
                },
                swarm: SwarmLayer {
                    enabled: gates.swarm.enabled.or(low.swarm.enabled),
                    stuck_after: gates.swarm.stuck_after.or(low.swarm.stuck_after),
                    worker_evidence: gates.swarm.worker_evidence.or(low.swarm.worker_evidence),
                    manager_host: gates.swarm.manager_host.or(low.swarm.manager_host),
                    manager_tls_cert_path: gates
                        .swarm
                        .manager_tls_cert_path
                        .or(low.swarm.manager_tls_cert_path),
                },
            },
            state: StateLayer {
                dir: self.state.dir.or(lower.state.dir),
            },
            output: OutputLayer {
                format: self.output.format.or(lower.output.format),
                metrics_file: self.output.metrics_file.or(lower.output.metrics_file),
            },
            watch: WatchLayer {
                interval: self.watch.interval.or(lower.watch.interval),
            },
            tiers: self.tiers.or(lower.tiers),
        }
    }
}
