//! The environment layer: `PRUNEGUARD_*` and `DOCKER_HOST`, read from an [`Environment`] (the
//! process's, or a map a test builds) into a [`SettingsLayer`]. An empty variable counts as
//! unset, as systemd's `Environment=NAME=` and shells' `NAME= cmd` mean it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;
use super::host::HostUrl;
use super::layer::{SettingsLayer, Source, Sourced};
use super::values;

pub const CONFIG: &str = "PRUNEGUARD_CONFIG";
pub const HOST: &str = "DOCKER_HOST";
pub const API_TIMEOUT: &str = "PRUNEGUARD_API_TIMEOUT";
pub const MIN_AGE: &str = "PRUNEGUARD_MIN_AGE";
pub const AGE_BASIS: &str = "PRUNEGUARD_AGE_BASIS";
pub const WAIT: &str = "PRUNEGUARD_WAIT_FOR_GATES";
pub const WAIT_INTERVAL: &str = "PRUNEGUARD_WAIT_INTERVAL";
pub const DISK_PATH: &str = "PRUNEGUARD_DISK_PATH";
pub const DISK_PATHS: &str = "PRUNEGUARD_DISK_PATHS";
pub const DISK_THRESHOLD: &str = "PRUNEGUARD_DISK_THRESHOLD";
pub const DISK_INODE_THRESHOLD: &str = "PRUNEGUARD_DISK_INODE_THRESHOLD";
pub const QUIET_PERIOD: &str = "PRUNEGUARD_QUIET_PERIOD";
pub const STALE_LOCK_AFTER: &str = "PRUNEGUARD_WORKLOAD_STALE_LOCK_AFTER";
pub const NO_SWARM_GATE: &str = "PRUNEGUARD_NO_SWARM_GATE";
pub const SWARM_STUCK_AFTER: &str = "PRUNEGUARD_SWARM_STUCK_AFTER";
pub const STATE_DIR: &str = "PRUNEGUARD_STATE_DIR";
pub const OUTPUT: &str = "PRUNEGUARD_OUTPUT";
pub const METRICS_FILE: &str = "PRUNEGUARD_METRICS_FILE";
pub const MAX_LIST_SIZE: &str = "PRUNEGUARD_MAX_LIST_SIZE";
pub const WATCH_INTERVAL: &str = "PRUNEGUARD_WATCH_INTERVAL";
pub const SWARM_MANAGER_HOST: &str = "PRUNEGUARD_SWARM_MANAGER_HOST";
pub const SWARM_MANAGER_TLS_CERT_PATH: &str = "PRUNEGUARD_SWARM_MANAGER_TLS_CERT_PATH";
/// Docker's own: any non-empty value asks for TLS, as it does for the docker CLI.
pub const TLS_VERIFY: &str = "DOCKER_TLS_VERIFY";
pub const CERT_PATH: &str = "DOCKER_CERT_PATH";

/// Every variable pruneguard's settings read.
pub const ALL: [&str; 24] = [
    CONFIG,
    HOST,
    API_TIMEOUT,
    MIN_AGE,
    AGE_BASIS,
    WAIT,
    WAIT_INTERVAL,
    DISK_PATH,
    DISK_PATHS,
    DISK_THRESHOLD,
    DISK_INODE_THRESHOLD,
    QUIET_PERIOD,
    STALE_LOCK_AFTER,
    NO_SWARM_GATE,
    SWARM_STUCK_AFTER,
    STATE_DIR,
    OUTPUT,
    METRICS_FILE,
    MAX_LIST_SIZE,
    WATCH_INTERVAL,
    SWARM_MANAGER_HOST,
    SWARM_MANAGER_TLS_CERT_PATH,
    TLS_VERIFY,
    CERT_PATH,
];

/// Environment variables, as the settings see them.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, OsString>,
}

impl Environment {
    /// The process's environment (only the variables in [`ALL`]).
    pub fn from_process() -> Self {
        Self::from_pairs(
            ALL.iter()
                .filter_map(|name| std::env::var_os(name).map(|value| (*name, value))),
        )
    }

    /// An environment holding exactly `pairs`.
    pub fn from_pairs<K: Into<String>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }

    /// The variable's text; `None` when unset or empty.
    fn get(&self, name: &'static str) -> Result<Option<&str>, ConfigError> {
        match self.vars.get(name) {
            None => Ok(None),
            Some(value) => match value.to_str() {
                Some(text) if text.trim().is_empty() => Ok(None),
                Some(text) => Ok(Some(text)),
                None => Err(ConfigError(format!(
                    "environment variable {name} is not valid UTF-8; set it again or unset it"
                ))),
            },
        }
    }

    /// A path variable, relative to where the command runs (empty = unset).
    fn path(&self, name: &'static str) -> Option<PathBuf> {
        self.vars
            .get(name)
            .filter(|value| !value.is_empty())
            .map(|value| values::from_cwd(Path::new(value)))
    }

    /// The config file `PRUNEGUARD_CONFIG` names.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.vars
            .get(CONFIG)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    }

    /// Parses one variable; an error names the variable and the key it sets.
    fn value<T>(
        &self,
        name: &'static str,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<Sourced<T>>, ConfigError> {
        let source = Source::Env(name);
        self.get(name)?
            .map(|text| {
                parse(text)
                    .map(|value| Sourced::new(value, source.clone()))
                    .map_err(|problem| ConfigError::at(&source, key, &problem))
            })
            .transpose()
    }

    fn duration(
        &self,
        name: &'static str,
        key: &str,
    ) -> Result<Option<Sourced<Duration>>, ConfigError> {
        self.value(name, key, values::duration)
    }

    fn sourced_path(&self, name: &'static str) -> Option<Sourced<PathBuf>> {
        self.path(name)
            .map(|path| Sourced::new(path, Source::Env(name)))
    }

    /// The environment's layer.
    pub fn layer(&self) -> Result<SettingsLayer, ConfigError> {
        let mut layer = SettingsLayer::default();
        layer.engine.host = self.value(HOST, "engine.host", HostUrl::parse)?;
        // As the docker CLI reads it: set and not empty means TLS, whatever the value ("0"
        // too), so that pruneguard and the CLI agree on the same environment.
        layer.engine.tls_verify = self
            .get(TLS_VERIFY)?
            .map(|_| Sourced::new(true, Source::Env(TLS_VERIFY)));
        layer.engine.tls_cert_path = self.sourced_path(CERT_PATH);
        layer.engine.api_timeout = self.duration(API_TIMEOUT, "engine.api_timeout")?;
        layer.engine.max_list_size =
            self.value(MAX_LIST_SIZE, "engine.max_list_size", values::size)?;
        layer.policy.min_age = self.duration(MIN_AGE, "policy.min_age")?;
        layer.policy.age_basis = self.value(
            AGE_BASIS,
            "policy.age_basis",
            crate::policy::AgeBasis::parse,
        )?;
        let gates = &mut layer.gates;
        gates.wait = self.duration(WAIT, "gates.wait")?;
        gates.wait_interval = self.duration(WAIT_INTERVAL, "gates.wait_interval")?;
        gates.disk.paths = match (self.get(DISK_PATHS)?, self.get(DISK_PATH)?) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(format!(
                    "environment variables {DISK_PATHS} and {DISK_PATH} both set \
                     `gates.disk.paths`; unset {DISK_PATH} (the one-path alias) and list every \
                     path in {DISK_PATHS}, separated by `:`"
                )));
            }
            (Some(_), None) => {
                self.value(DISK_PATHS, "gates.disk.paths", values::disk_paths_from_cwd)?
            }
            (None, Some(text)) => Some(Sourced::new(
                vec![values::disk_path_from_cwd(Path::new(text))],
                Source::Env(DISK_PATH),
            )),
            (None, None) => None,
        };
        gates.disk.threshold_percent = self.value(
            DISK_THRESHOLD,
            "gates.disk.threshold_percent",
            values::percent_text,
        )?;
        gates.disk.inode_threshold_percent = self.value(
            DISK_INODE_THRESHOLD,
            "gates.disk.inode_threshold_percent",
            values::percent_text,
        )?;
        gates.quiet.period = self.duration(QUIET_PERIOD, "gates.quiet.period")?;
        gates.workload.stale_lock_after =
            self.duration(STALE_LOCK_AFTER, "gates.workload.stale_lock_after")?;
        // The variable says "no swarm gate", as the flag does: true disables the gate.
        gates.swarm.enabled = self.value(NO_SWARM_GATE, "gates.swarm.enabled", |text| {
            values::boolean(text).map(|disabled| !disabled)
        })?;
        gates.swarm.stuck_after = self.duration(SWARM_STUCK_AFTER, "gates.swarm.stuck_after")?;
        gates.swarm.manager_host = self.value(
            SWARM_MANAGER_HOST,
            "gates.swarm.manager_host",
            HostUrl::parse,
        )?;
        gates.swarm.manager_tls_cert_path = self.sourced_path(SWARM_MANAGER_TLS_CERT_PATH);
        layer.state.dir = self.sourced_path(STATE_DIR);
        layer.output.format = self.value(OUTPUT, "output.format", values::output_format)?;
        layer.output.metrics_file = self.sourced_path(METRICS_FILE);
        layer.watch.interval = self.duration(WATCH_INTERVAL, "watch.interval")?;
        Ok(layer)
    }
}
