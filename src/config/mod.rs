//! Settings: the flags, the environment and the config file, each read into one
//! [`SettingsLayer`], combined key by key in one place (`flags.or(env).or(file)`: flag >
//! environment > file), then defaults applied and rules checked once, into an immutable
//! [`Settings`].
//!
//! Any problem here is a [`ConfigError`] (exit status 2) that names the key and where it was
//! set (flag, environment variable, or file and line), and how to fix it. Nothing is contacted
//! and nothing is deleted on a bad config.
//!
//! [`Settings::check`] (`pruneguard config --check`) applies every rule that needs only the
//! values (types, ranges, globs, path syntax) and none that looks at the host (such as the
//! metrics file's directory existing), so that a build sandbox can validate a generated file.

mod effective;
mod env;
mod file;
mod flags;
mod host;
mod layer;
pub mod ranges;
mod tiers;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{OutputFormat, RunArgs, StatusArgs, WatchArgs};
use crate::engine::TlsFiles;
use crate::policy::{
    DEFAULT_DISK_THRESHOLD, DiskGate, GatePolicy, Policy, QuietGate, SwarmGate, WorkloadGate,
};
use crate::worker_evidence::WorkerEvidence;

pub use env::Environment;
pub use host::{DEFAULT_SOCKET, DEFAULT_TCP_PORT, DEFAULT_TLS_PORT, HostUrl};
pub use layer::{
    DiskLayer, DiskPath, EngineLayer, GatesLayer, OutputLayer, PolicyLayer, QuietLayer,
    SettingsLayer, Source, Sourced, StateLayer, SwarmLayer, WorkloadLayer,
};
pub use values::{format_duration, format_size};

/// `--max-list-size`'s parser: `4MiB`, `512KiB`, `1GiB` or bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    values::size(text)
}

/// The default bound on one list answer; see `engine::bounded`.
pub const DEFAULT_MAX_LIST_SIZE: u64 = crate::engine::LIST_ANSWER_LIMIT;
/// The range `engine.max_list_size` may take: below 1 MiB even a small host's lists fail, and a
/// larger bound than 1 GiB bounds nothing a machine of this kind survives.
pub const MAX_LIST_SIZE_RANGE: std::ops::RangeInclusive<u64> = 1024 * 1024..=1024 * 1024 * 1024;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/pruneguard/config.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pruneguard";
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);
/// The shortest API timeout: a shorter one fails requests to a healthy, busy daemon.
pub const MIN_API_TIMEOUT: Duration = ranges::API_TIMEOUT.min;
/// The names of every environment variable the settings read.
pub const ENV_VARS: [&str; env::ALL.len()] = env::ALL;

/// A configuration problem: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// `problem` about `key`, prefixed with where the value was set.
    fn at(source: &Source, key: &str, problem: &str) -> Self {
        Self(format!("{}: {problem}", source.locate(key)))
    }
}

/// The command the settings are for: a plan never waits for gates unless its own command line
/// says so (`plan --wait-for-gates`), whatever the file or the environment set for runs.
pub use crate::decision::Mode;

/// The resolved settings of one invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Docker daemon to talk to (a `tcp://` host already upgraded when TLS is asked for).
    pub host: HostUrl,
    /// The TLS files of `host`: set exactly when `host` is a TLS host.
    pub tls: Option<TlsFiles>,
    /// `engine.tls_verify` as configured (also when `host` is a unix socket, which it leaves).
    pub tls_verify: bool,
    /// `engine.tls_cert_path` as configured (also when `host` does not use it).
    pub tls_cert_path: Option<PathBuf>,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    pub policy: Policy,
    pub state_dir: PathBuf,
    pub metrics_file: Option<PathBuf>,
    pub output: OutputFormat,
    /// Decide and report only: `--dry-run`, and always for a plan.
    pub dry_run: bool,
    /// Per-request timeout for the Docker API; at least [`MIN_API_TIMEOUT`].
    pub api_timeout: Duration,
    /// The largest list answer (images, containers, services, tasks) read from the engine.
    pub max_list_size: u64,
    /// `pruneguard watch`: the time between the starts of two ticks (before jitter).
    pub watch_interval: Duration,
    /// `gates.swarm.manager_host`: the manager a worker asks for its own tasks.
    pub swarm_manager_host: Option<HostUrl>,
    /// The TLS files of `swarm_manager_host` (`gates.swarm.manager_tls_cert_path`): set
    /// exactly when that host is a TLS host.
    pub swarm_manager_tls: Option<TlsFiles>,
    /// The opt-in reclaim tiers (`[tiers.*]`, `--tier`).
    pub tiers: crate::tiers::TierSettings,
}

/// The config file to read: none with `--no-config`, else `--config`, `PRUNEGUARD_CONFIG`, or
/// the default path when it exists.
fn config_path(no_config: bool, flag: Option<&Path>, env: &Environment) -> Option<PathBuf> {
    if no_config {
        return None;
    }
    flag.map(Path::to_path_buf)
        .or_else(|| env.config_path())
        .or_else(|| {
            let default = PathBuf::from(DEFAULT_CONFIG_PATH);
            default.exists().then_some(default)
        })
}

fn file_layer(path: Option<&Path>) -> Result<SettingsLayer, ConfigError> {
    path.map_or_else(|| Ok(SettingsLayer::default()), file::load)
}

impl Settings {
    /// The settings of `run` (and `doctor`, `config`) from the process's environment.
    pub fn resolve(args: &RunArgs) -> Result<Self, ConfigError> {
        Self::resolve_for(args, Mode::Run)
    }

    /// The settings of the command `mode` from the process's environment.
    pub fn resolve_for(args: &RunArgs, mode: Mode) -> Result<Self, ConfigError> {
        Self::resolve_with(args, mode, &Environment::from_process())
    }

    /// The settings of the command `mode` from flags `args`, environment `env` and the config
    /// file they name.
    pub fn resolve_with(
        args: &RunArgs,
        mode: Mode,
        env: &Environment,
    ) -> Result<Self, ConfigError> {
        let flags = flags::layer(args)?;
        let environment = env.layer()?;
        let config_file = config_path(args.no_config, args.config.as_deref(), env);
        let file = file_layer(config_file.as_deref())?;
        let dry_run = args.dry_run || mode == Mode::Plan;
        Self::from_layer(flags.or(environment).or(file), config_file, mode, dry_run)
    }

    /// The settings of `watch` from the process's environment: a run's, and `--interval`
    /// (`watch.interval`) with the same precedence as every other key.
    pub fn resolve_watch(args: &WatchArgs) -> Result<Self, ConfigError> {
        Self::resolve_watch_with(args, &Environment::from_process())
    }

    /// [`Settings::resolve_watch`] with the environment `env`.
    pub fn resolve_watch_with(args: &WatchArgs, env: &Environment) -> Result<Self, ConfigError> {
        let mut flags = flags::layer(&args.run)?;
        flags.watch.interval = args
            .interval
            .map(|interval| Sourced::new(interval, Source::Flag("--interval")));
        let environment = env.layer()?;
        let config_file = config_path(args.run.no_config, args.run.config.as_deref(), env);
        let file = file_layer(config_file.as_deref())?;
        Self::from_layer(
            flags.or(environment).or(file),
            config_file,
            Mode::Run,
            args.run.dry_run,
        )
    }

    /// `pruneguard config --check`: the settings of `run` from the process's environment,
    /// validated without looking at the host.
    pub fn check(args: &RunArgs) -> Result<Self, ConfigError> {
        Self::check_with(args, &Environment::from_process())
    }

    /// [`Settings::check`] in environment `env`: the same layers and rules as
    /// [`Settings::resolve_with`] for a run, except the rules about the host's filesystem
    /// (whether the metrics file's directory exists). Only the config file itself is read.
    pub fn check_with(args: &RunArgs, env: &Environment) -> Result<Self, ConfigError> {
        let flags = flags::layer(args)?;
        let environment = env.layer()?;
        let config_file = config_path(args.no_config, args.config.as_deref(), env);
        let file = file_layer(config_file.as_deref())?;
        Self::combine(
            flags.or(environment).or(file),
            config_file,
            Mode::Run,
            args.dry_run,
            HostChecks::Skip,
        )
    }

    /// `status`'s state directory, through the same layers as a run's: `--state-dir`,
    /// `PRUNEGUARD_STATE_DIR`, the config file's `state.dir`, the default.
    pub fn resolve_state_dir(args: &StatusArgs) -> Result<PathBuf, ConfigError> {
        Self::resolve_state_dir_with(args, &Environment::from_process())
    }

    /// [`Settings::resolve_state_dir`] in environment `env`.
    pub fn resolve_state_dir_with(
        args: &StatusArgs,
        env: &Environment,
    ) -> Result<PathBuf, ConfigError> {
        let flags = flags::layer(&RunArgs {
            state_dir: args.state_dir.clone(),
            ..RunArgs::default()
        })?;
        let environment = env.layer()?;
        let config_file = config_path(args.no_config, args.config.as_deref(), env);
        let file = file_layer(config_file.as_deref())?;
        let layer = flags.or(environment).or(file);
        Ok(layer
            .state
            .dir
            .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), |dir| dir.value))
    }

    /// Applies the defaults to the combined `layer` and checks the rules that hold between
    /// keys or need the final value; an error names where the offending value was set.
    pub fn from_layer(
        layer: SettingsLayer,
        config_file: Option<PathBuf>,
        mode: Mode,
        dry_run: bool,
    ) -> Result<Self, ConfigError> {
        Self::combine(layer, config_file, mode, dry_run, HostChecks::Apply)
    }

    /// [`Settings::from_layer`], with the rules about the host applied or not.
    fn combine(
        layer: SettingsLayer,
        config_file: Option<PathBuf>,
        mode: Mode,
        dry_run: bool,
        host_checks: HostChecks,
    ) -> Result<Self, ConfigError> {
        let SettingsLayer {
            engine,
            policy,
            gates,
            state,
            output,
            watch,
            tiers,
        } = layer;
        let watch_interval = in_range(watch.interval, &ranges::WATCH_INTERVAL)?;
        let tiers = tiers::combine(tiers, in_range)?;
        let (host, tls) = engine_endpoint(&engine)?;
        let (swarm_manager_host, swarm_manager_tls) = manager_endpoint(&gates.swarm)?;
        let api_timeout = in_range(engine.api_timeout, &ranges::API_TIMEOUT)?;
        let max_list_size = check(
            engine.max_list_size,
            "engine.max_list_size",
            DEFAULT_MAX_LIST_SIZE,
            |size| MAX_LIST_SIZE_RANGE.contains(size),
            "must be from 1MiB to 1GiB; the default is 4MiB",
        )?;
        let wait_interval = in_range(gates.wait_interval, &ranges::WAIT_INTERVAL)?;
        let wait = match (mode, gates.wait) {
            (Mode::Plan, Some(wait)) if !matches!(wait.source, Source::Flag(_)) => None,
            (_, wait) => wait,
        };
        let wait = in_range(wait, &ranges::WAIT)?;
        let min_age = in_range(policy.min_age, &ranges::MIN_AGE)?;
        let quiet_period = in_range(gates.quiet.period, &ranges::QUIET_PERIOD)?;
        let stale_lock_after = in_range(
            gates.workload.stale_lock_after.clone(),
            &ranges::STALE_LOCK_AFTER,
        )?;
        let stuck_after = in_range(gates.swarm.stuck_after.clone(), &ranges::STUCK_AFTER)?;
        let metrics_file = metrics_file(output.metrics_file, host_checks)?;
        let workload = gates.workload;
        Ok(Self {
            host,
            tls,
            tls_verify: engine
                .tls_verify
                .as_ref()
                .is_some_and(|verify| verify.value),
            tls_cert_path: engine.tls_cert_path.clone().map(|path| path.value),
            config_file,
            policy: Policy {
                min_age,
                age_basis: policy
                    .age_basis
                    .map(|basis| basis.value)
                    .unwrap_or_default(),
                gates: GatePolicy {
                    wait,
                    wait_interval,
                    disk: DiskGate {
                        paths: gates
                            .disk
                            .paths
                            .map_or_else(|| vec![DiskPath::Auto], |paths| paths.value),
                        threshold_percent: gates
                            .disk
                            .threshold_percent
                            .map_or(DEFAULT_DISK_THRESHOLD, |percent| percent.value),
                        inode_threshold_percent: gates
                            .disk
                            .inode_threshold_percent
                            .map(|percent| percent.value),
                    },
                    quiet: QuietGate {
                        period: quiet_period,
                    },
                    workload: WorkloadGate {
                        stacks: workload.stacks.map(|list| list.value).unwrap_or_default(),
                        labels: workload.labels.map(|list| list.value).unwrap_or_default(),
                        containers: workload
                            .containers
                            .map(|list| list.value)
                            .unwrap_or_default(),
                        lock_files: workload
                            .lock_files
                            .map(|list| list.value)
                            .unwrap_or_default(),
                        stale_lock_after,
                    },
                    swarm: swarm_gate(&gates.swarm, stuck_after, swarm_manager_host.as_ref()),
                },
            },
            state_dir: state
                .dir
                .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), |dir| dir.value),
            metrics_file,
            output: output.format.map(|format| format.value).unwrap_or_default(),
            dry_run,
            api_timeout,
            max_list_size,
            watch_interval,
            swarm_manager_host,
            swarm_manager_tls,
            tiers,
        })
    }

    /// The effective configuration as a config file, for `pruneguard config`: every key, and
    /// loading it back gives the same settings.
    pub fn effective(&self) -> String {
        effective::render(self)
    }

    /// The one line `pruneguard config --check` prints for valid settings.
    pub fn validity(&self) -> String {
        match &self.config_file {
            Some(path) => format!("{} is valid", path.display()),
            None => {
                "no config file was read; the defaults, environment and flags are valid".to_string()
            }
        }
    }
}

/// `output.metrics_file`, its directory checked when the host's rules apply.
fn metrics_file(
    file: Option<Sourced<PathBuf>>,
    host_checks: HostChecks,
) -> Result<Option<PathBuf>, ConfigError> {
    let Some(file) = file else {
        return Ok(None);
    };
    if host_checks == HostChecks::Apply {
        check_metrics_dir(&file)?;
    }
    Ok(Some(file.value))
}

/// The setting behind the engine's TLS files, as messages name it.
pub const ENGINE_TLS_SETTING: &str = "engine.tls_cert_path (--tls-cert-path, DOCKER_CERT_PATH)";
/// The setting behind the swarm manager's TLS files, as messages name it.
pub const MANAGER_TLS_SETTING: &str = "gates.swarm.manager_tls_cert_path \
(--swarm-manager-tls-cert-path, PRUNEGUARD_SWARM_MANAGER_TLS_CERT_PATH)";

/// The engine's host and its TLS files. As with the docker CLI, `engine.tls_verify`
/// (`DOCKER_TLS_VERIFY`, `--tlsverify`) makes a `tcp://` host TLS and does nothing to a unix
/// socket; a TLS host must have its certificate directory.
fn engine_endpoint(
    engine: &layer::EngineLayer,
) -> Result<(HostUrl, Option<TlsFiles>), ConfigError> {
    let mut host = engine
        .host
        .as_ref()
        .map(|host| host.value.clone())
        .unwrap_or_default();
    let verify = engine.tls_verify.as_ref().filter(|verify| verify.value);
    if verify.is_some() {
        host = host.with_tls();
    }
    if !host.is_tls() {
        return Ok((host, None));
    }
    let Some(dir) = &engine.tls_cert_path else {
        let problem = format!(
            "asks for TLS to {host}, which needs the CA certificate that signed the daemon's \
             certificate: set engine.tls_cert_path (--tls-cert-path, DOCKER_CERT_PATH) to the \
             directory with ca.pem, and cert.pem with key.pem when the daemon asks for a client \
             certificate (the docker CLI's default is ~/.docker)"
        );
        return Err(match (verify, &engine.host) {
            (Some(verify), _) => ConfigError::at(&verify.source, "engine.tls_verify", &problem),
            (None, Some(written)) => ConfigError::at(&written.source, "engine.host", &problem),
            // The default host is a unix socket, which is never TLS; say so all the same.
            (None, None) => ConfigError(format!("engine.host {problem}")),
        });
    };
    let files = TlsFiles {
        dir: dir.value.clone(),
        setting: ENGINE_TLS_SETTING,
    };
    Ok((host, Some(files)))
}

/// The swarm manager's host and its TLS files: a certificate directory makes a `tcp://`
/// manager TLS, an `https://` manager needs one, and a unix socket takes none.
fn manager_endpoint(
    swarm: &layer::SwarmLayer,
) -> Result<(Option<HostUrl>, Option<TlsFiles>), ConfigError> {
    let key = "gates.swarm.manager_tls_cert_path";
    let Some(written) = &swarm.manager_host else {
        return match &swarm.manager_tls_cert_path {
            Some(dir) => Err(ConfigError::at(
                &dir.source,
                key,
                "is set, but gates.swarm.manager_host (--swarm-manager-host, \
                 PRUNEGUARD_SWARM_MANAGER_HOST) is not: set the manager's https://host:port, or \
                 unset this",
            )),
            None => Ok((None, None)),
        };
    };
    match (&written.value, &swarm.manager_tls_cert_path) {
        (HostUrl::Unix(_), Some(dir)) => Err(ConfigError::at(
            &dir.source,
            key,
            &format!(
                "is set, but the manager {} is a unix socket, which takes no TLS: unset it, or \
                 write the manager as https://host:port",
                written.value
            ),
        )),
        (host @ HostUrl::Tls { .. }, None) => Err(ConfigError::at(
            &written.source,
            "gates.swarm.manager_host",
            &format!(
                "{host} is a TLS host, which needs the CA certificate that signed the manager's \
                 certificate: set {MANAGER_TLS_SETTING} to the directory with ca.pem, and \
                 cert.pem with key.pem when the manager asks for a client certificate"
            ),
        )),
        (host, Some(dir)) => Ok((
            Some(host.clone().with_tls()),
            Some(TlsFiles {
                dir: dir.value.clone(),
                setting: MANAGER_TLS_SETTING,
            }),
        )),
        (host, None) => Ok((Some(host.clone()), None)),
    }
}

/// The swarm gate's policy from its layer (`stuck_after` already checked; the manager's host
/// as resolved, TLS included).
fn swarm_gate(
    swarm: &layer::SwarmLayer,
    stuck_after: Duration,
    manager_host: Option<&HostUrl>,
) -> SwarmGate {
    SwarmGate {
        enabled: swarm.enabled.as_ref().is_none_or(|enabled| enabled.value),
        stuck_after,
        worker_evidence: swarm.worker_evidence.as_ref().map_or_else(
            || WorkerEvidence::ALL.to_vec(),
            |list| dedup(list.value.clone()),
        ),
        manager_host: manager_host.map(ToString::to_string),
    }
}

/// A list of evidence kinds without repeats, in the order first given.
fn dedup(kinds: Vec<WorkerEvidence>) -> Vec<WorkerEvidence> {
    let mut seen = Vec::with_capacity(kinds.len());
    for kind in kinds {
        if !seen.contains(&kind) {
            seen.push(kind);
        }
    }
    seen
}

/// Whether the rules that look at the host's filesystem apply: not for `config --check`, which
/// may run where the settings will never be used (a Nix build sandbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostChecks {
    Apply,
    Skip,
}

/// A duration setting's value (or its default), which must lie in its documented range; the
/// error names the key where the value was set, the range and why.
fn in_range(
    value: Option<Sourced<Duration>>,
    range: &ranges::DurationRange,
) -> Result<Duration, ConfigError> {
    let problem = format!(
        "must be from {} to {} ({}); the default is {}",
        format_duration(range.min),
        format_duration(range.max),
        range.why,
        format_duration(range.default)
    );
    check(
        value,
        range.key,
        range.default,
        |duration| (range.min..=range.max).contains(duration),
        &problem,
    )
}

/// The value of `key` (or `default`), which must satisfy `rule`; the error says `problem`
/// where the value was set.
fn check<T>(
    value: Option<Sourced<T>>,
    key: &str,
    default: T,
    rule: impl Fn(&T) -> bool,
    problem: &str,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(sourced) if rule(&sourced.value) => Ok(sourced.value),
        Some(sourced) => Err(ConfigError::at(&sourced.source, key, problem)),
    }
}

/// A metrics file in a directory that does not exist is a configuration mistake best caught
/// before anything runs (`node_exporter`'s textfile directory is created by its own package).
fn check_metrics_dir(file: &Sourced<PathBuf>) -> Result<(), ConfigError> {
    let path = &file.value;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.is_dir() {
        return Ok(());
    }
    Err(ConfigError::at(
        &file.source,
        "output.metrics_file",
        &format!(
            "the metrics file {} is in a directory that does not exist ({}). Create it \
             (node_exporter's textfile directory, e.g. /var/lib/prometheus/node-exporter) or \
             fix the path.",
            path.display(),
            dir.display()
        ),
    ))
}
