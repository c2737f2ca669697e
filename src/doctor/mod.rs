//! `pruneguard doctor`: checks the host before pruneguard is trusted with a timer.
//!
//! This module owns the report ([`Status`], [`Check`], [`DoctorReport`]), the list of checks
//! ([`CheckName::ALL`], in report order) and [`run`], which probes the host and builds one
//! [`Check`] per name. Each check lives in its own module with a `probe()` that does the I/O
//! (it only reads; the state directory probe may create that directory, and removes the temp
//! file it writes) and a pure `check()` from the probe's result to a [`Check`], table-tested
//! there.
//!
//! Checks, in this order, each ending `ok`, `warn` or `fail` with a one-sentence detail and,
//! unless ok, the fix:
//!
//! | check | fails / warns when |
//! | --- | --- |
//! | `config` | the config file is invalid (fail; doctor goes on with defaults and flags), or others may write it (warn) |
//! | `daemon` | the engine (dockerd or Podman's service) cannot be reached (fail); its JSON names the engine (`engine`: `docker` \| `podman`) |
//! | `data_root` | Docker's data root is on tmpfs/ramfs, or on an overlay whose upper dir is (fail); the path is not on this machine (warn) |
//! | `image_store` | says the image store (classic or containerd) and the filesystems the disk gate measures; warns when one cannot be measured or containerd's root is not on this machine |
//! | `registry_auth` | no Docker Hub credentials (warn); `config.json` unreadable or malformed (fail) |
//! | `registry_auth_file_mode` | `config.json` is readable or writable by others (warn) |
//! | `prune_timers` | a `docker-prune` unit or a service running `docker system/image prune` is present (warn; fail with `--all`) |
//! | `policy` | `threshold_percent` or `min_age` is 0 (warn) |
//! | `state_dir` | the state directory cannot be created or written (warn) |
//! | `swarm_manager` | on a swarm worker with `gates.swarm.manager_host`, the manager cannot be asked for this node's tasks (fail), or the TLS client key is readable by others (warn) |
//!
//! Any `fail` makes doctor exit 1 ([`Outcome::CheckFailed`]); warnings alone exit 0.
//!
//! # Environment
//!
//! - `DOCKER_CONFIG`: the directory holding the Docker client's `config.json`, as for the docker
//!   CLI; otherwise `$HOME/.docker/config.json` of the user running doctor.
//! - `PRUNEGUARD_UNIT_DIRS`: a colon-separated list of systemd unit directories that **replaces**
//!   the default list scanned by `prune_timers` ([`DEFAULT_UNIT_DIRS`]). Meant for tests (which
//!   must not write into the host's `/etc`) and unusual layouts.
//!
//! # Secrets
//!
//! The registry check decodes the `auth` entry only to show the **username**; the password,
//! token, the `auth` string itself, `identitytoken` and `registrytoken` never reach a message, a
//! log line or the JSON report. Malformed JSON is reported by position only.

pub mod config;
pub mod daemon;
pub mod data_root;
pub mod image_store;
pub mod mountinfo;
pub mod policy;
pub mod prune_timers;
pub mod registry_auth;
pub mod registry_auth_file_mode;
pub mod state_dir;
pub mod swarm_manager;
pub mod units;

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::Path;

use anyhow::Context as _;
use serde::{Serialize, Serializer};
use tracing::{debug, info};

use crate::cli::{OutputFormat, RunArgs};
use crate::config::Settings;
use crate::exit::Outcome;
use crate::model::EngineKind;

pub use units::{DEFAULT_UNIT_DIRS, UNIT_DIRS_ENV};

/// Version of the JSON document `doctor --output json` prints.
pub const SCHEMA_VERSION: u32 = 1;

// ---------------------------------------------------------------------------------------------
// The checks

/// Every check doctor runs. Its [`as_str`](Self::as_str) is the name printed in the text and
/// JSON reports, a public promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckName {
    Config,
    Daemon,
    DataRoot,
    ImageStore,
    RegistryAuth,
    RegistryAuthFileMode,
    PruneTimers,
    Policy,
    StateDir,
    SwarmManager,
}

impl CheckName {
    /// Every check, in report order.
    pub const ALL: [CheckName; 10] = [
        Self::Config,
        Self::Daemon,
        Self::DataRoot,
        Self::ImageStore,
        Self::RegistryAuth,
        Self::RegistryAuthFileMode,
        Self::PruneTimers,
        Self::Policy,
        Self::StateDir,
        Self::SwarmManager,
    ];

    /// The check's name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Daemon => "daemon",
            Self::DataRoot => "data_root",
            Self::ImageStore => "image_store",
            Self::RegistryAuth => "registry_auth",
            Self::RegistryAuthFileMode => "registry_auth_file_mode",
            Self::PruneTimers => "prune_timers",
            Self::Policy => "policy",
            Self::StateDir => "state_dir",
            Self::SwarmManager => "swarm_manager",
        }
    }
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Serialised as [`CheckName::as_str`], so text and JSON share one spelling.
impl Serialize for CheckName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// The report

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One check's result. `fix` is empty when the check is ok.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: CheckName,
    pub status: Status,
    pub detail: String,
    pub fix: String,
    /// The engine the check talked to (`docker` | `podman`): set by the `daemon` check when
    /// the engine answered, absent from the JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineKind>,
}

impl Check {
    /// This check's result with the engine it talked to.
    #[must_use]
    pub fn with_engine(self, engine: EngineKind) -> Self {
        Self {
            engine: Some(engine),
            ..self
        }
    }

    pub fn ok(name: CheckName, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: String::new(),
            engine: None,
        }
    }

    pub fn warn(name: CheckName, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: fix.into(),
            engine: None,
        }
    }

    pub fn fail(name: CheckName, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: fix.into(),
            engine: None,
        }
    }
}

/// Everything doctor found; the JSON document as printed.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub schema_version: u32,
    /// No check failed (warnings allowed).
    pub healthy: bool,
    /// `classic` or `containerd`; `null` when the daemon did not answer.
    pub image_store: Option<crate::model::ImageStore>,
    /// The filesystems holding image data that the disk gate measures.
    pub image_data: Vec<ImageData>,
    pub checks: Vec<Check>,
}

/// One filesystem holding image data, as doctor's JSON lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageData {
    pub path: std::path::PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_percent: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const STATUS_WIDTH: usize = 6;
const NAME_WIDTH: usize = 24;

impl DoctorReport {
    pub fn new(checks: Vec<Check>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            healthy: checks.iter().all(|check| check.status != Status::Fail),
            image_store: None,
            image_data: Vec::new(),
            checks,
        }
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks
            .iter()
            .filter(|check| check.status == status)
            .count()
    }

    /// The closing line of the text report.
    pub fn summary(&self) -> String {
        if self.healthy {
            "healthy".to_string()
        } else {
            format!(
                "{} check(s) failed, {} warning(s)",
                self.count(Status::Fail),
                self.count(Status::Warn)
            )
        }
    }

    pub fn to_json(&self) -> String {
        // Plain strings, booleans and numbers: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_else(|error| {
            format!("{{\"schema_version\":{SCHEMA_VERSION},\"error\":\"{error}\"}}")
        })
    }

    /// One line per check, `fix:` lines under warnings and failures, then the summary.
    pub fn to_text(&self) -> String {
        let indent = " ".repeat(STATUS_WIDTH + NAME_WIDTH);
        let mut out = String::new();
        for check in &self.checks {
            let mut lines = check.detail.lines();
            let first = lines.next().unwrap_or("");
            let _ = writeln!(
                out,
                "{:<STATUS_WIDTH$}{:<NAME_WIDTH$}{first}",
                check.status.as_str(),
                check.name.as_str()
            );
            for line in lines.filter(|line| !line.trim().is_empty()) {
                let _ = writeln!(out, "{indent}{line}");
            }
            if check.status != Status::Ok && !check.fix.is_empty() {
                let _ = writeln!(out, "{indent}fix: {}", check.fix);
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The command

/// `pruneguard doctor`: runs every check, prints the report, and fails when a check failed.
pub async fn run(args: &RunArgs) -> anyhow::Result<Outcome> {
    let (settings, config_file) = config::probe(args)?;
    let daemon = daemon::probe(&settings).await;
    let store = image_store::probe(&daemon, &settings);
    let manager = swarm_manager::probe(&settings, &daemon).await;
    let shared = Shared {
        settings: &settings,
        config_file: &config_file,
        daemon: &daemon,
        store: &store,
        manager: &manager,
    };
    let mut report = DoctorReport::new(
        CheckName::ALL
            .iter()
            .map(|&name| {
                let check = run_check(name, &shared);
                debug_assert_eq!(check.name, name, "a check reports under its own name");
                check
            })
            .collect(),
    );
    if let image_store::StoreProbe::Found {
        store, measured, ..
    } = &store
    {
        report.image_store = Some(*store);
        report.image_data = measured
            .iter()
            .map(|observed| ImageData {
                path: observed.path.clone(),
                fs_type: observed.usage.as_ref().ok().map(|u| u.fs_type.clone()),
                used_percent: observed.usage.as_ref().ok().map(|u| u.used_percent),
                error: observed.usage.as_ref().err().cloned(),
            })
            .collect();
    }
    for check in &report.checks {
        debug!(
            check = check.name.as_str(),
            status = check.status.as_str(),
            "{}",
            check.detail
        );
    }
    info!(
        failed = report.count(Status::Fail),
        warnings = report.count(Status::Warn),
        "doctor: {}",
        report.summary()
    );
    let rendered = match settings.output {
        OutputFormat::Json => format!("{}\n", report.to_json()),
        OutputFormat::Text => report.to_text(),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(rendered.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the report to stdout")?;
    Ok(if report.healthy {
        Outcome::Success
    } else {
        Outcome::CheckFailed
    })
}

/// What more than one check needs, probed once before the checks run.
struct Shared<'a> {
    /// From the config file when it is valid, else defaults and flags (see [`config::probe`]).
    settings: &'a Settings,
    config_file: &'a config::ConfigFile,
    daemon: &'a daemon::DaemonProbe,
    store: &'a image_store::StoreProbe,
    manager: &'a swarm_manager::ManagerProbe,
}

/// Probes what check `name` needs beyond [`Shared`] and judges it.
fn run_check(name: CheckName, shared: &Shared<'_>) -> Check {
    match name {
        CheckName::Config => config::check(shared.config_file),
        CheckName::Daemon => daemon::check(shared.daemon),
        CheckName::DataRoot => data_root::check(
            shared.daemon.info.as_ref().ok(),
            &data_root::probe(shared.daemon),
        ),
        CheckName::ImageStore => image_store::check(shared.daemon.info.as_ref().ok(), shared.store),
        CheckName::RegistryAuth => registry_auth::check(&registry_auth::probe()),
        CheckName::RegistryAuthFileMode => {
            registry_auth_file_mode::check(&registry_auth_file_mode::probe())
        }
        CheckName::PruneTimers => prune_timers::check(&prune_timers::probe()),
        CheckName::Policy => policy::check(&shared.settings.policy, shared.config_file.is_valid()),
        CheckName::StateDir => {
            let dir = &shared.settings.state_dir;
            state_dir::check(dir, &state_dir::probe(dir))
        }
        CheckName::SwarmManager => swarm_manager::check(shared.manager),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// `?` for an empty value in a message.
fn or_unknown(text: &str) -> &str {
    if text.is_empty() { "?" } else { text }
}

/// Reads at most `limit` bytes of a text file (unit files and `config.json` are small; a huge
/// one is not worth reading whole).
fn read_capped(path: &Path, limit: u64) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn check_names_are_the_published_ones_in_report_order() {
        let names = CheckName::ALL.map(CheckName::as_str);
        assert_eq!(
            names,
            [
                "config",
                "daemon",
                "data_root",
                "image_store",
                "registry_auth",
                "registry_auth_file_mode",
                "prune_timers",
                "policy",
                "state_dir",
                "swarm_manager",
            ]
        );
        for name in CheckName::ALL {
            assert_eq!(
                serde_json::to_value(name).expect("serialise"),
                Value::String(name.as_str().to_string()),
                "JSON and text spell {name} alike"
            );
            assert!(
                name.as_str().len() < NAME_WIDTH,
                "{name} fits its text column"
            );
        }
    }

    #[test]
    fn report_renders_text_and_json() {
        let report = DoctorReport::new(vec![
            Check::ok(
                CheckName::Daemon,
                "Docker 20.10.24 (API 1.41) at unix:///run/docker.sock",
            ),
            Check::warn(
                CheckName::RegistryAuth,
                "no credentials",
                "run `docker login`",
            ),
            Check::fail(CheckName::Config, "line one\n\nline two", "fix it"),
        ]);
        assert!(!report.healthy);
        let text = report.to_text();
        assert_eq!(
            text,
            "ok    daemon                  Docker 20.10.24 (API 1.41) at unix:///run/docker.sock\n\
             warn  registry_auth           no credentials\n\
             \x20                             fix: run `docker login`\n\
             fail  config                  line one\n\
             \x20                             line two\n\
             \x20                             fix: fix it\n\
             1 check(s) failed, 1 warning(s)\n"
        );
        let json: Value = serde_json::from_str(&report.to_json()).expect("json");
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["healthy"], false);
        assert_eq!(json["checks"][1]["status"], "warn");
        assert_eq!(json["checks"][0]["fix"], "");
        assert!(report.to_json().starts_with("{\"schema_version\":1,"));
        let healthy = DoctorReport::new(vec![Check::warn(CheckName::Policy, "b", "c")]);
        assert!(healthy.healthy);
        assert!(healthy.to_text().ends_with("\nhealthy\n"));
    }
}
