//! Settings: the config file, the environment and the flags, resolved in one place
//! ([`Settings::resolve`]) into typed, validated values. Precedence: flag > environment >
//! file > default (clap has already merged flags with their environment variables).
//!
//! Any problem here is a [`ConfigError`] (exit status 2) that names the key, the file and the
//! line, and how to fix it. Nothing is contacted and nothing is deleted on a bad config.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::cli::{OutputFormat, RunArgs};
use crate::policy::{
    DEFAULT_DISK_THRESHOLD, DEFAULT_QUIET_PERIOD, DEFAULT_STALE_LOCK_AFTER, DEFAULT_STUCK_AFTER,
    DEFAULT_WAIT_INTERVAL, DiskGate, GatePolicy, LabelSelector, Pattern, Policy, QuietGate,
    SwarmGate, WorkloadGate,
};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/pruneguard/config.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pruneguard";
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);
/// A configuration problem: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn at(origin: &Origin<'_>, key: &str, span: Option<Range<usize>>, problem: &str) -> Self {
        Self(format!("{}: {problem}", origin.locate(key, span)))
    }
}

/// The resolved settings of one invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Docker host URL; `None` means the default local socket.
    pub host: Option<String>,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    pub policy: Policy,
    pub state_dir: PathBuf,
    pub metrics_file: Option<PathBuf>,
    pub output: OutputFormat,
    pub dry_run: bool,
    /// Per-request timeout for the Docker API.
    pub api_timeout: Duration,
}

// ---------------------------------------------------------------------------------------------
// The config file as written. Spans let validation errors name the line.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    policy: FilePolicy,
    gates: FileGates,
    state: FileState,
    output: FileOutput,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FilePolicy {
    min_age: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileGates {
    wait: Option<Spanned<String>>,
    wait_interval: Option<Spanned<String>>,
    disk: FileDisk,
    quiet: FileQuiet,
    workload: FileWorkload,
    swarm: FileSwarm,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileDisk {
    path: Option<Spanned<String>>,
    threshold_percent: Option<Spanned<i64>>,
    inode_threshold_percent: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileQuiet {
    period: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileWorkload {
    stacks: Option<Vec<Spanned<String>>>,
    labels: Option<Vec<Spanned<String>>>,
    containers: Option<Vec<Spanned<String>>>,
    lock_files: Option<Vec<Spanned<String>>>,
    stale_lock_after: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileSwarm {
    enabled: Option<bool>,
    stuck_after: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileState {
    dir: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileOutput {
    metrics_file: Option<Spanned<String>>,
}

/// Where a value came from, for error messages.
struct Origin<'a> {
    file: Option<(&'a Path, &'a str)>,
}

impl Origin<'_> {
    /// `file:line` of a span, or just the file.
    fn place(&self, span: Option<Range<usize>>) -> String {
        match (self.file, span) {
            (Some((path, text)), Some(span)) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("{}:{line}", path.display())
            }
            (Some((path, _)), None) => path.display().to_string(),
            (None, _) => "flag".to_string(),
        }
    }

    fn locate(&self, key: &str, span: Option<Range<usize>>) -> String {
        match self.file {
            Some(_) => format!("{}: `{key}`", self.place(span)),
            None => format!("`{key}`"),
        }
    }
}

/// Reads and parses a config file. Unknown keys and type errors name the line.
fn read_file(path: &Path) -> Result<(String, FileConfig), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigError(format!(
            "cannot read the config file {}: {error}. Fix the path given with --config or \
             PRUNEGUARD_CONFIG, or pass --no-config to run on defaults.",
            path.display()
        ))
    })?;
    let parsed = toml::from_str::<FileConfig>(&text).map_err(|error| {
        let origin = Origin {
            file: Some((path, &text)),
        };
        // toml's message names an unknown key but not the key of a value of the wrong type:
        // quoting the line names it either way.
        let quoted = error
            .span()
            .and_then(|span| text.get(..span.start.min(text.len())))
            .map(|before| {
                let start = before.rfind('\n').map_or(0, |newline| newline + 1);
                let line = text[start..].lines().next().unwrap_or("").trim();
                line.chars().take(100).collect::<String>()
            })
            .filter(|line| !line.is_empty())
            .map(|line| format!(" (in `{line}`)"))
            .unwrap_or_default();
        ConfigError(format!(
            "{}: {}{quoted}\nSee `pruneguard config --no-config` for every key with its default.",
            origin.place(error.span()),
            error.message().trim_end()
        ))
    })?;
    Ok((text, parsed))
}

impl Settings {
    /// Resolves flags (with their environment variables) over the config file over defaults.
    pub fn resolve(args: &RunArgs) -> Result<Self, ConfigError> {
        let config_path = if args.no_config {
            None
        } else if let Some(path) = &args.config {
            Some(path.clone())
        } else {
            let default = PathBuf::from(DEFAULT_CONFIG_PATH);
            default.exists().then_some(default)
        };
        let (text, file) = match &config_path {
            Some(path) => {
                let (text, file) = read_file(path)?;
                (Some(text), file)
            }
            None => (None, FileConfig::default()),
        };
        let origin = Origin {
            file: config_path.as_deref().zip(text.as_deref()),
        };
        Self::merge(args, file, &origin, config_path.clone())
    }

    #[allow(clippy::too_many_lines)] // one flat list of keys reads better than helpers per table
    fn merge(
        args: &RunArgs,
        file: FileConfig,
        origin: &Origin<'_>,
        config_file: Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let duration =
            |key: &str, value: Option<Spanned<String>>| -> Result<Option<Duration>, ConfigError> {
                value
                    .map(|spanned| {
                        let span = spanned.span();
                        crate::cli::parse_duration(spanned.get_ref())
                            .map_err(|problem| ConfigError::at(origin, key, Some(span), &problem))
                    })
                    .transpose()
            };
        let percent = |key: &str, value: Option<Spanned<i64>>| -> Result<Option<u8>, ConfigError> {
            value
                .map(|spanned| {
                    let span = spanned.span();
                    u8::try_from(*spanned.get_ref())
                        .ok()
                        .filter(|percent| *percent <= 100)
                        .ok_or_else(|| {
                            ConfigError::at(
                                origin,
                                key,
                                Some(span),
                                &format!(
                                    "{} is not a percentage; use a whole number from 0 to 100",
                                    spanned.get_ref()
                                ),
                            )
                        })
                })
                .transpose()
        };
        let absolute_path = |key: &str, value: Spanned<String>| -> Result<PathBuf, ConfigError> {
            let span = value.span();
            let path = PathBuf::from(value.into_inner());
            if path.is_absolute() {
                Ok(path)
            } else {
                Err(ConfigError::at(
                    origin,
                    key,
                    Some(span),
                    &format!(
                        "{} is not an absolute path; write it from /",
                        path.display()
                    ),
                ))
            }
        };
        let defaults = Policy::default();
        let min_age = args
            .min_age
            .or(duration("policy.min_age", file.policy.min_age)?)
            .unwrap_or(defaults.min_age);

        let disk_path = match (&args.disk_path, file.gates.disk.path) {
            (Some(path), _) => Some(from_cwd(path)),
            (None, Some(value)) if value.get_ref() == "auto" => None,
            (None, Some(value)) => Some(absolute_path("gates.disk.path", value)?),
            (None, None) => None,
        };
        let threshold_percent = args
            .disk_threshold
            .or(percent(
                "gates.disk.threshold_percent",
                file.gates.disk.threshold_percent,
            )?)
            .unwrap_or(DEFAULT_DISK_THRESHOLD);
        let inode_threshold_percent = percent(
            "gates.disk.inode_threshold_percent",
            file.gates.disk.inode_threshold_percent,
        )?;

        let quiet_period = args
            .quiet_period
            .or(duration("gates.quiet.period", file.gates.quiet.period)?)
            .unwrap_or(DEFAULT_QUIET_PERIOD);

        let workload_file = file.gates.workload;
        let stacks = parse_list(
            origin,
            "gates.workload.stacks (--workload-stack)",
            &args.workload_stacks,
            workload_file.stacks,
            Pattern::new,
        )?;
        let containers = parse_list(
            origin,
            "gates.workload.containers (--workload-container)",
            &args.workload_containers,
            workload_file.containers,
            Pattern::new,
        )?;
        let labels = parse_list(
            origin,
            "gates.workload.labels (--workload-label)",
            &args.workload_labels,
            workload_file.labels,
            LabelSelector::parse,
        )?;
        let flag_lock_files: Vec<String> = args
            .workload_lock_files
            .iter()
            .map(|path| from_cwd(path).display().to_string())
            .collect();
        let lock_files = parse_list(
            origin,
            "gates.workload.lock_files (--workload-lock-file)",
            &flag_lock_files,
            workload_file.lock_files,
            |text| {
                if text.trim().is_empty() {
                    Err("an empty path; remove it or name the lock file".to_string())
                } else {
                    Ok(PathBuf::from(text))
                }
            },
        )?;
        let stale_lock_after = duration(
            "gates.workload.stale_lock_after",
            workload_file.stale_lock_after,
        )?
        .unwrap_or(DEFAULT_STALE_LOCK_AFTER);

        let swarm_enabled = !args.no_swarm_gate && file.gates.swarm.enabled.unwrap_or(true);
        let stuck_after = args
            .swarm_stuck_after
            .or(duration(
                "gates.swarm.stuck_after",
                file.gates.swarm.stuck_after,
            )?)
            .unwrap_or(DEFAULT_STUCK_AFTER);

        let wait = args
            .wait_for_gates
            .or(duration("gates.wait", file.gates.wait)?)
            .unwrap_or(Duration::ZERO);
        let wait_interval = args
            .wait_interval
            .or(duration("gates.wait_interval", file.gates.wait_interval)?)
            .unwrap_or(DEFAULT_WAIT_INTERVAL);
        if wait_interval.is_zero() {
            return Err(ConfigError("`gates.wait_interval` (--wait-interval) must be longer than 0s; the default is 30s.".into()));
        }

        let state_dir = match (&args.state_dir, file.state.dir) {
            (Some(dir), _) => from_cwd(dir),
            (None, Some(value)) => absolute_path("state.dir", value)?,
            (None, None) => PathBuf::from(DEFAULT_STATE_DIR),
        };
        let metrics_file = match (&args.metrics_file, file.output.metrics_file) {
            (Some(path), _) => Some(from_cwd(path)),
            (None, Some(value)) => Some(absolute_path("output.metrics_file", value)?),
            (None, None) => None,
        };
        if let Some(path) = &metrics_file {
            check_metrics_dir(path)?;
        }

        Ok(Self {
            host: args.host.clone().filter(|host| !host.trim().is_empty()),
            config_file,
            policy: Policy {
                min_age,
                gates: GatePolicy {
                    wait,
                    wait_interval,
                    disk: DiskGate {
                        path: disk_path,
                        threshold_percent,
                        inode_threshold_percent,
                    },
                    quiet: QuietGate {
                        period: quiet_period,
                    },
                    workload: WorkloadGate {
                        stacks,
                        labels,
                        containers,
                        lock_files,
                        stale_lock_after,
                    },
                    swarm: SwarmGate {
                        enabled: swarm_enabled,
                        stuck_after,
                    },
                },
            },
            state_dir,
            metrics_file,
            output: args.output.unwrap_or_default(),
            dry_run: args.dry_run,
            api_timeout: args
                .api_timeout
                .unwrap_or(DEFAULT_API_TIMEOUT)
                .max(Duration::from_secs(1)),
        })
    }

    /// The effective configuration in the config file's own layout, for `pruneguard config`.
    pub fn to_toml(&self) -> String {
        let gates = &self.policy.gates;
        let human = |duration: Duration| humantime::format_duration(duration).to_string();
        let effective = EffectiveConfig {
            policy: EffectivePolicy {
                min_age: human(self.policy.min_age),
            },
            gates: EffectiveGates {
                wait: human(gates.wait),
                wait_interval: human(gates.wait_interval),
                disk: EffectiveDisk {
                    path: gates
                        .disk
                        .path
                        .as_ref()
                        .map_or_else(|| "auto".to_string(), |path| path.display().to_string()),
                    threshold_percent: gates.disk.threshold_percent,
                    inode_threshold_percent: gates.disk.inode_threshold_percent,
                },
                quiet: EffectiveQuiet {
                    period: human(gates.quiet.period),
                },
                workload: EffectiveWorkload {
                    stacks: gates
                        .workload
                        .stacks
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    labels: gates
                        .workload
                        .labels
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    containers: gates
                        .workload
                        .containers
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    lock_files: gates
                        .workload
                        .lock_files
                        .iter()
                        .map(|path| path.display().to_string())
                        .collect(),
                    stale_lock_after: human(gates.workload.stale_lock_after),
                },
                swarm: EffectiveSwarm {
                    enabled: gates.swarm.enabled,
                    stuck_after: human(gates.swarm.stuck_after),
                },
            },
            state: EffectiveState {
                dir: self.state_dir.display().to_string(),
            },
            output: EffectiveOutput {
                metrics_file: self
                    .metrics_file
                    .as_ref()
                    .map(|path| path.display().to_string()),
            },
        };
        let source = match &self.config_file {
            Some(path) => format!(
                "# Effective configuration (defaults < {} < environment < flags).\n",
                path.display()
            ),
            None => {
                "# Effective configuration (defaults < environment < flags; no config file read).\n"
                    .to_string()
            }
        };
        // Serialising plain strings, numbers and lists cannot fail.
        let body = toml::to_string_pretty(&effective)
            .unwrap_or_else(|error| format!("# cannot render: {error}\n"));
        format!("{source}{body}")
    }
}

/// A list setting: flags, when given, replace the file's list. Each item is parsed; an error
/// names the key and, for an item from the file, its line.
fn parse_list<T>(
    origin: &Origin<'_>,
    key: &str,
    flags: &[String],
    file: Option<Vec<Spanned<String>>>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    if flags.is_empty() {
        file.unwrap_or_default()
            .iter()
            .map(|item| {
                parse(item.get_ref())
                    .map_err(|problem| ConfigError::at(origin, key, Some(item.span()), &problem))
            })
            .collect()
    } else {
        let flag = Origin { file: None };
        flags
            .iter()
            .map(|item| parse(item).map_err(|problem| ConfigError::at(&flag, key, None, &problem)))
            .collect()
    }
}

/// A relative path on the command line means relative to where the command runs; resolving it
/// here keeps `pruneguard config`'s output loadable as a file (which takes absolute paths).
fn from_cwd(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A metrics file in a directory that does not exist is a configuration mistake best caught
/// before anything runs (`node_exporter`'s textfile directory is created by its own package).
fn check_metrics_dir(path: &Path) -> Result<(), ConfigError> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.is_dir() {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "the metrics file {} is in a directory that does not exist ({}). Create it (node_exporter's \
             textfile directory, e.g. /var/lib/prometheus/node-exporter) or fix `output.metrics_file` / --metrics-file.",
            path.display(),
            dir.display()
        )))
    }
}

#[derive(Serialize)]
struct EffectiveConfig {
    policy: EffectivePolicy,
    gates: EffectiveGates,
    state: EffectiveState,
    output: EffectiveOutput,
}

#[derive(Serialize)]
struct EffectivePolicy {
    min_age: String,
}

#[derive(Serialize)]
struct EffectiveGates {
    wait: String,
    wait_interval: String,
    disk: EffectiveDisk,
    quiet: EffectiveQuiet,
    workload: EffectiveWorkload,
    swarm: EffectiveSwarm,
}

#[derive(Serialize)]
struct EffectiveDisk {
    path: String,
    threshold_percent: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    inode_threshold_percent: Option<u8>,
}

#[derive(Serialize)]
struct EffectiveQuiet {
    period: String,
}

#[derive(Serialize)]
struct EffectiveWorkload {
    stacks: Vec<String>,
    labels: Vec<String>,
    containers: Vec<String>,
    lock_files: Vec<String>,
    stale_lock_after: String,
}

#[derive(Serialize)]
struct EffectiveSwarm {
    enabled: bool,
    stuck_after: String,
}

#[derive(Serialize)]
struct EffectiveState {
    dir: String,
}

#[derive(Serialize)]
struct EffectiveOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_file: Option<String>,
}
