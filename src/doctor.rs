//! `pruneguard doctor`: checks the host before pruneguard is trusted with a timer.
//!
//! Checks, in this order, each ending `ok`, `warn` or `fail` with a one-sentence detail and,
//! unless ok, the fix:
//!
//! | check | fails / warns when |
//! | --- | --- |
//! | `config` | the config file is invalid (fail; doctor goes on with defaults and flags), or others may write it (warn) |
//! | `daemon` | the Docker daemon cannot be reached (fail) |
//! | `data_root` | Docker's data root is on tmpfs/ramfs, or on an overlay whose upper dir is (fail); the path is not on this machine (warn) |
//! | `registry_auth` | no Docker Hub credentials (warn); `config.json` unreadable or malformed (fail) |
//! | `registry_auth_file_mode` | `config.json` is readable or writable by others (warn) |
//! | `prune_timers` | a `docker-prune` unit or a service running `docker system/image prune` is present (warn; fail with `--all`) |
//! | `policy` | `threshold_percent` or `min_age` is 0 (warn) |
//! | `state_dir` | the state directory cannot be created or written (warn) |
//!
//! Any `fail` makes doctor exit 1 ([`Outcome::CheckFailed`]); warnings alone exit 0.
//!
//! The deciding logic is pure (texts and plain values in, a [`Check`] out) and table-tested in
//! this file; the I/O lives in the `probe_*`/`gather_*` functions, which only read (the state
//! directory check may create that directory, and removes the temp file it writes).
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

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, info};

use crate::cli::{OutputFormat, RunArgs};
use crate::config::{ConfigError, DEFAULT_CONFIG_PATH, Settings};
use crate::engine::{DockerEngine, Engine as _, EngineError};
use crate::exit::Outcome;
use crate::model::DaemonInfo;
use crate::policy::Policy;

/// Version of the JSON document `doctor --output json` prints.
pub const SCHEMA_VERSION: u32 = 1;

/// Environment variable replacing the unit directories `prune_timers` scans.
pub const UNIT_DIRS_ENV: &str = "PRUNEGUARD_UNIT_DIRS";

/// Where systemd units live on the distributions pruneguard targets (NixOS included), scanned
/// non-recursively plus one level of `*.wants` directories.
pub const DEFAULT_UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/nix/var/nix/profiles/system/etc/systemd/system",
];

/// The registry keys that mean Docker Hub in `auths` and `credHelpers` (after
/// [`registry_host`]).
const DOCKER_HUB_HOSTS: &[&str] = &["index.docker.io", "docker.io", "registry-1.docker.io"];

/// The unit names of NixOS's `virtualisation.docker.autoPrune`.
const AUTOPRUNE_UNITS: &[&str] = &["docker-prune.service", "docker-prune.timer"];

/// Unit files and scripts larger than this are not read (no unit is that big).
const MAX_UNIT_BYTES: u64 = 1 << 20;
const MAX_SCRIPT_BYTES: u64 = 256 << 10;

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
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: String,
}

impl Check {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

/// Everything doctor found; the JSON document as printed.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub schema_version: u32,
    /// No check failed (warnings allowed).
    pub healthy: bool,
    pub checks: Vec<Check>,
}

const STATUS_WIDTH: usize = 6;
const NAME_WIDTH: usize = 24;

impl DoctorReport {
    pub fn new(checks: Vec<Check>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            healthy: checks.iter().all(|check| check.status != Status::Fail),
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
                check.name
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
    let (settings, config) = resolve_settings(args)?;
    let config_valid = config.status != Status::Fail;
    let mut checks = vec![config];

    let (endpoint, daemon) = probe_daemon(&settings).await;
    checks.push(daemon_check(&endpoint, &daemon));
    let info = daemon.as_ref().ok();
    checks.push(data_root_check(info, &probe_data_root(&endpoint, info)));

    let docker_config = docker_config_path();
    checks.push(gather_registry_auth(docker_config.as_deref()));
    checks.push(gather_registry_auth_mode(docker_config.as_deref()));

    let dirs = unit_dirs();
    checks.push(prune_timers_check(&dirs, &gather_units(&dirs)));

    checks.push(policy_check(&settings.policy, config_valid));
    checks.push(state_dir_check(
        &settings.state_dir,
        &probe_state_dir(&settings.state_dir),
    ));

    let report = DoctorReport::new(checks);
    for check in &report.checks {
        debug!(
            check = check.name,
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

// ---------------------------------------------------------------------------------------------
// config

/// Resolves the settings for the remaining checks, and the `config` check. A bad config file
/// does not stop doctor: it fails this check and the rest runs on defaults plus the flags.
fn resolve_settings(args: &RunArgs) -> Result<(Settings, Check), ConfigError> {
    let error = match Settings::resolve(args) {
        Ok(settings) => {
            let world_writable = settings
                .config_file
                .as_deref()
                .and_then(|path| std::fs::metadata(path).ok())
                .map(|meta| meta.permissions().mode() & 0o002 != 0);
            let check = config_check(
                Ok(settings.config_file.as_deref()),
                args.no_config,
                world_writable == Some(true),
            );
            return Ok((settings, check));
        }
        Err(error) => error,
    };
    let check = config_check(Err(&error), args.no_config, false);
    let without_file = RunArgs {
        config: None,
        no_config: true,
        ..args.clone()
    };
    // The flags themselves may be what is wrong (say --metrics-file in a missing directory):
    // then keep only what doctor needs from them, and finally nothing.
    let settings = Settings::resolve(&without_file)
        .or_else(|_| {
            Settings::resolve(&RunArgs {
                no_config: true,
                host: args.host.clone(),
                output: args.output,
                state_dir: args.state_dir.clone(),
                api_timeout: args.api_timeout,
                ..RunArgs::default()
            })
        })
        .or_else(|_| {
            Settings::resolve(&RunArgs {
                no_config: true,
                ..RunArgs::default()
            })
        })?;
    Ok((settings, check))
}

/// The `config` check from the outcome of resolving: the file read (if any) or the error.
pub fn config_check(
    resolved: Result<Option<&Path>, &ConfigError>,
    no_config: bool,
    world_writable: bool,
) -> Check {
    const NAME: &str = "config";
    match resolved {
        Err(error) => Check::fail(
            NAME,
            error.to_string(),
            "fix the config file (`pruneguard config --no-config` prints every key with its \
             default), or run with --no-config; until then doctor checks defaults and flags",
        ),
        Ok(Some(path)) if world_writable => Check::warn(
            NAME,
            format!(
                "{} is valid, but any user may write it and so change what pruneguard deletes",
                path.display()
            ),
            format!("chmod o-w {}", path.display()),
        ),
        Ok(Some(path)) => Check::ok(NAME, format!("{} is valid", path.display())),
        Ok(None) if no_config => {
            Check::ok(NAME, "--no-config: defaults, environment and flags apply")
        }
        Ok(None) => Check::ok(
            NAME,
            format!(
                "no config file at {DEFAULT_CONFIG_PATH}; defaults, environment and flags apply"
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// daemon

/// Connects and reads `/info`. Returns the endpoint as pruneguard names it.
async fn probe_daemon(settings: &Settings) -> (String, Result<DaemonInfo, EngineError>) {
    match DockerEngine::connect(&settings.host, settings.api_timeout).await {
        Ok(engine) => {
            let info = engine.info().await;
            (engine.endpoint().to_string(), info)
        }
        Err(error) => (settings.host.to_string(), Err(error)),
    }
}

pub fn daemon_check(endpoint: &str, result: &Result<DaemonInfo, EngineError>) -> Check {
    const NAME: &str = "daemon";
    match result {
        Ok(info) => Check::ok(
            NAME,
            format!(
                "Docker {} (API {}) at {endpoint}",
                or_unknown(&info.server_version),
                or_unknown(&info.api_version)
            ),
        ),
        Err(error) => Check::fail(NAME, error.to_string(), daemon_fix(error)),
    }
}

fn daemon_fix(error: &EngineError) -> &'static str {
    match error {
        EngineError::Unreachable { .. } => {
            "start dockerd (`systemctl start docker`), or point pruneguard at the daemon with \
             -H/--host or DOCKER_HOST"
        }
        EngineError::PermissionDenied { .. } => {
            "run pruneguard as root or as a user in the docker group"
        }
        EngineError::Timeout { .. } => {
            "see `journalctl -u docker` for why the daemon is slow, or raise --api-timeout"
        }
        EngineError::BadHost { .. } => "use -H unix:///path/to/docker.sock or tcp://host:port",
        EngineError::Api { .. } | EngineError::Protocol { .. } => {
            "check that -H/DOCKER_HOST points at a Docker daemon, and see `journalctl -u docker`"
        }
    }
}

fn or_unknown(text: &str) -> &str {
    if text.is_empty() { "?" } else { text }
}

// ---------------------------------------------------------------------------------------------
// data_root

/// One line of `/proc/self/mountinfo`, the fields doctor needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

impl Mount {
    /// An overlay's upper directory (`upperdir=` in its super options), unescaped.
    pub fn upper_dir(&self) -> Option<PathBuf> {
        if self.fs_type != "overlay" {
            return None;
        }
        self.super_options
            .split(',')
            .find_map(|option| option.strip_prefix("upperdir="))
            .map(|dir| PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(dir))))
    }
}

/// Parses `/proc/PID/mountinfo` (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS
/// [OPTIONAL…] - FSTYPE SOURCE SUPER-OPTIONS`. Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let separator = fields.iter().skip(6).position(|field| *field == "-")? + 6;
            let mount_point = fields.get(4)?;
            let fs_type = fields.get(separator + 1)?;
            Some(Mount {
                mount_point: PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(
                    mount_point,
                ))),
                fs_type: (*fs_type).to_string(),
                source: fields
                    .get(separator + 2)
                    .map(|source| String::from_utf8_lossy(&unescape_octal(source)).into_owned())
                    .unwrap_or_default(),
                super_options: fields.get(separator + 3).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The kernel escapes space, tab, newline and backslash in mountinfo as `\ooo`.
fn unescape_octal(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).filter(|digits| {
            bytes[index] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        if let Some(digits) = octal {
            let value = digits
                .iter()
                .fold(0_u32, |value, digit| value * 8 + u32::from(digit - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            index += 4;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    out
}

/// The mount holding `path`: the longest mount point that is a prefix of it (whole
/// components); among equal ones the last, which is mounted over the others.
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let mut best: Option<(usize, &Mount)> = None;
    for mount in mounts {
        if path.starts_with(&mount.mount_point) {
            let depth = mount.mount_point.components().count();
            if best.is_none_or(|(best_depth, _)| depth >= best_depth) {
                best = Some((depth, mount));
            }
        }
    }
    best.map(|(_, mount)| mount)
}

/// Filesystems whose contents are gone after a reboot. `rootfs` is the initramfs's.
pub fn is_volatile(fs_type: &str) -> bool {
    matches!(fs_type, "tmpfs" | "ramfs" | "rootfs")
}

/// Where a path's data lives, as the mount table tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsLocation {
    pub fs_type: String,
    pub mount_point: PathBuf,
    pub source: String,
    /// For an overlay: its upper directory and where that lives (`None` when not found).
    pub upper: Option<(PathBuf, Option<Box<FsLocation>>)>,
}

impl FsLocation {
    /// The data is lost at reboot: a volatile filesystem, or an overlay whose writes go to one.
    pub fn volatile(&self) -> bool {
        is_volatile(&self.fs_type)
            || self
                .upper
                .as_ref()
                .and_then(|(_, location)| location.as_deref())
                .is_some_and(Self::volatile)
    }

    fn describe(&self) -> String {
        let mut text = format!(
            "{} ({} at {})",
            self.fs_type,
            or_unknown(&self.source),
            self.mount_point.display()
        );
        if let Some((dir, location)) = &self.upper {
            let _ = write!(text, ", upper dir {} on ", dir.display());
            match location {
                Some(location) => text.push_str(&location.describe()),
                None => text.push_str("an unknown filesystem"),
            }
        }
        text
    }
}

/// Locates `path` (already canonical) in a mountinfo text, following overlay upper dirs.
pub fn locate_fs(mountinfo: &str, path: &Path) -> Option<FsLocation> {
    locate_in(&parse_mountinfo(mountinfo), path, 0)
}

fn locate_in(mounts: &[Mount], path: &Path, depth: usize) -> Option<FsLocation> {
    let mount = mount_of(mounts, path)?;
    let upper = if depth < 4 {
        mount.upper_dir().map(|dir| {
            let location = locate_in(mounts, &dir, depth + 1).map(Box::new);
            (dir, location)
        })
    } else {
        None
    };
    Some(FsLocation {
        fs_type: mount.fs_type.clone(),
        mount_point: mount.mount_point.clone(),
        source: mount.source.clone(),
        upper,
    })
}

/// What doctor could find out locally about the daemon's data root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootProbe {
    /// No daemon answered, so the data root is not known.
    DaemonUnreachable,
    /// The daemon did not say (`DockerRootDir` empty).
    NotReported,
    /// The daemon is on another machine: its path means nothing here.
    Remote { endpoint: String },
    /// The path does not exist here.
    Missing,
    /// The path exists but could not be examined.
    Inaccessible(String),
    /// Found in the mount table.
    Located(FsLocation),
    /// The mount table was unreadable; `statfs` names the type (overlay upper unknown).
    TypeOnly(String),
}

/// Gathers the [`RootProbe`]: canonical path, then `/proc/self/mountinfo`, else `statfs`.
fn probe_data_root(endpoint: &str, info: Option<&DaemonInfo>) -> RootProbe {
    let Some(info) = info else {
        return RootProbe::DaemonUnreachable;
    };
    let Some(root) = info
        .docker_root_dir
        .as_deref()
        .filter(|dir| !dir.is_empty())
    else {
        return RootProbe::NotReported;
    };
    if is_remote(endpoint) {
        return RootProbe::Remote {
            endpoint: endpoint.to_string(),
        };
    }
    let path = match std::fs::canonicalize(root) {
        Ok(path) => path,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return RootProbe::Missing,
        Err(error) => return RootProbe::Inaccessible(error.to_string()),
    };
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => match locate_fs(&text, &path) {
            Some(location) => RootProbe::Located(location),
            None => type_only(&path),
        },
        Err(error) => {
            debug!("cannot read /proc/self/mountinfo: {error}");
            type_only(&path)
        }
    }
}

fn type_only(path: &Path) -> RootProbe {
    match crate::disk::usage(path) {
        Ok(usage) => RootProbe::TypeOnly(usage.fs_type),
        Err(error) => RootProbe::Inaccessible(format!("{error:#}")),
    }
}

/// A TCP endpoint to anything but this machine.
pub fn is_remote(endpoint: &str) -> bool {
    let Some(rest) = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .or_else(|| endpoint.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    !matches!(host, "localhost" | "127.0.0.1" | "::1" | "") && !host.starts_with("127.")
}

pub fn data_root_check(info: Option<&DaemonInfo>, probe: &RootProbe) -> Check {
    const NAME: &str = "data_root";
    let root = info
        .and_then(|info| info.docker_root_dir.as_deref())
        .unwrap_or("?");
    let driver = format!(
        "storage driver {}",
        info.and_then(|info| info.storage_driver.as_deref())
            .filter(|driver| !driver.is_empty())
            .unwrap_or("?")
    );
    let move_it = "move Docker's data root to a persistent filesystem (`data-root` in \
                   /etc/docker/daemon.json; on NixOS `virtualisation.docker.daemon.settings.data-root`)";
    match probe {
        RootProbe::DaemonUnreachable => Check::warn(
            NAME,
            "daemon unreachable: the data root is not known, so it was not checked",
            "fix the daemon check, then run doctor again",
        ),
        RootProbe::NotReported => Check::warn(
            NAME,
            format!("the daemon did not report its data root (DockerRootDir); {driver}"),
            "check `docker info`; run doctor on the Docker host itself",
        ),
        RootProbe::Remote { endpoint } => Check::warn(
            NAME,
            format!(
                "the daemon at {endpoint} is on another machine, so its data root {root} was not \
                 checked; {driver}"
            ),
            "run pruneguard doctor on the Docker host itself",
        ),
        RootProbe::Missing => Check::warn(
            NAME,
            format!(
                "the data root {root} does not exist on this machine (a remote daemon, or another \
                 mount namespace?), so its filesystem was not checked; {driver}"
            ),
            "run pruneguard doctor on the Docker host itself, outside any container",
        ),
        RootProbe::Inaccessible(reason) => Check::warn(
            NAME,
            format!("cannot examine the data root {root}: {reason}; {driver}"),
            "run doctor as root (or as the user that runs pruneguard)",
        ),
        RootProbe::TypeOnly(fs_type) if is_volatile(fs_type) => Check::fail(
            NAME,
            format!(
                "{root} is on {fs_type}, which is emptied at every reboot: the image cache is lost \
                 and every deploy after a reboot pulls cold; {driver}"
            ),
            move_it,
        ),
        RootProbe::TypeOnly(fs_type) if fs_type == "overlay" => Check::warn(
            NAME,
            format!(
                "{root} is on overlay, and the mount table is unreadable, so whether its upper dir \
                 survives a reboot is unknown; {driver}"
            ),
            "run doctor where /proc/self/mountinfo is readable, or check the overlay's upperdir by hand",
        ),
        RootProbe::TypeOnly(fs_type) => {
            Check::ok(NAME, format!("{root} is on {fs_type}; {driver}"))
        }
        RootProbe::Located(location) if location.volatile() => Check::fail(
            NAME,
            format!(
                "{root} is on {}, which is emptied at every reboot: the image cache is lost and \
                 every deploy after a reboot pulls cold; {driver}",
                location.describe()
            ),
            move_it,
        ),
        RootProbe::Located(location) => Check::ok(
            NAME,
            format!("{root} is on {}; {driver}", location.describe()),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// registry_auth

/// Where the Docker Hub credentials come from, as `config.json` says. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSource {
    /// `credHelpers` names a helper for Docker Hub.
    Helper { registry: String, helper: String },
    /// `credsStore`: the default helper for every registry.
    Store { helper: String },
    /// `auths` holds a login (from `auth` or `username`).
    Login { registry: String, username: String },
    /// `auths` holds an identity token only (username unknown).
    Token { registry: String },
    /// Nothing for Docker Hub.
    None,
}

/// Docker's `ConvertToHostname`: drop the scheme and any path.
pub fn registry_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

fn is_docker_hub(key: &str) -> bool {
    DOCKER_HUB_HOSTS.contains(&registry_host(key))
}

/// Reads the Docker Hub credentials' source from a `config.json` text, in the docker CLI's
/// order (`credHelpers`, then `credsStore`, then `auths`). Errors are sentences that name
/// keys and positions, never values.
pub fn parse_docker_config(text: &str) -> Result<AuthSource, String> {
    // Parsing into a Value reports syntax errors by position only; type errors (which would
    // quote the offending value) cannot happen here.
    let value: Value =
        serde_json::from_str(text).map_err(|error| format!("it is not valid JSON ({error})"))?;
    let Value::Object(root) = value else {
        return Err("it is not a JSON object".to_string());
    };
    if let Some(helpers) = root.get("credHelpers") {
        let Value::Object(helpers) = helpers else {
            return Err("`credHelpers` is not an object".to_string());
        };
        for (registry, helper) in helpers {
            if is_docker_hub(registry) {
                let Value::String(helper) = helper else {
                    return Err(format!("`credHelpers.{registry}` is not a string"));
                };
                if !helper.is_empty() {
                    return Ok(AuthSource::Helper {
                        registry: registry.clone(),
                        helper: helper.clone(),
                    });
                }
            }
        }
    }
    match root.get("credsStore") {
        Some(Value::String(helper)) if !helper.is_empty() => {
            return Ok(AuthSource::Store {
                helper: helper.clone(),
            });
        }
        Some(Value::String(_) | Value::Null) | None => {}
        Some(_) => return Err("`credsStore` is not a string".to_string()),
    }
    let Some(auths) = root.get("auths") else {
        return Ok(AuthSource::None);
    };
    let Value::Object(auths) = auths else {
        return Err("`auths` is not an object".to_string());
    };
    let mut found = AuthSource::None;
    for (registry, entry) in auths.iter().filter(|(key, _)| is_docker_hub(key)) {
        let Value::Object(entry) = entry else {
            return Err(format!("`auths.{registry}` is not an object"));
        };
        if let Some(source) = login_of(registry, entry)? {
            match source {
                AuthSource::Login { .. } => return Ok(source),
                other => found = other,
            }
        }
    }
    Ok(found)
}

/// The login in one `auths` entry: `auth` (base64 `user:secret`, only the user is kept), else
/// `username`, else an identity token.
fn login_of(
    registry: &str,
    entry: &serde_json::Map<String, Value>,
) -> Result<Option<AuthSource>, String> {
    let login = |username: String| {
        Ok(Some(AuthSource::Login {
            registry: registry.to_string(),
            username,
        }))
    };
    match entry.get("auth") {
        Some(Value::String(auth)) if !auth.is_empty() => {
            let invalid = || {
                format!(
                    "the `auth` value of `auths.{registry}` is not base64 of `user:password`, so \
                     docker cannot use it"
                )
            };
            let decoded = decode_base64(auth.trim()).ok_or_else(invalid)?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
            let (user, _secret) = decoded.split_once(':').ok_or_else(invalid)?;
            if user.is_empty() {
                return Err(invalid());
            }
            return login(user.to_string());
        }
        Some(Value::String(_) | Value::Null) | None => {}
        Some(_) => return Err(format!("`auths.{registry}.auth` is not a string")),
    }
    if let Some(Value::String(username)) = entry.get("username")
        && !username.is_empty()
    {
        return login(username.clone());
    }
    if let Some(Value::String(token)) = entry.get("identitytoken")
        && !token.is_empty()
    {
        return Ok(Some(AuthSource::Token {
            registry: registry.to_string(),
        }));
    }
    Ok(None)
}

/// Standard base64 (RFC 4648, `+/`), padding optional, as the docker CLI writes `auth`.
/// `None` on anything else.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(text).ok()
}

/// The `registry_auth` check from the file's path, what reading it gave, and whether a
/// credential helper program is on `PATH`.
pub fn registry_auth_check(
    path: &Path,
    read: &std::io::Result<String>,
    helper_installed: impl Fn(&str) -> bool,
) -> Check {
    const NAME: &str = "registry_auth";
    let login_fix = "run `docker login` as the user that pulls images (or set DOCKER_CONFIG to \
                     the directory of its config.json)";
    let anonymous = "pulls are anonymous and hit Docker Hub's lower rate limit";
    let text = match read {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Check::warn(
                NAME,
                format!("there is no {}: {anonymous}", path.display()),
                login_fix,
            );
        }
        Err(error) => {
            return Check::fail(
                NAME,
                format!("cannot read {}: {error}", path.display()),
                format!(
                    "make {} readable by the user that runs pruneguard, or set DOCKER_CONFIG",
                    path.display()
                ),
            );
        }
    };
    let helper_check = |helper: &str, detail: String| {
        let program = format!("docker-credential-{helper}");
        if helper_installed(&program) {
            Check::ok(NAME, detail)
        } else {
            Check::warn(
                NAME,
                format!("{detail}, but {program} is not on PATH, so docker cannot get them"),
                format!(
                    "install {program}, or remove the helper from {} and run `docker login`",
                    path.display()
                ),
            )
        }
    };
    match parse_docker_config(text) {
        Err(reason) => Check::fail(
            NAME,
            format!("{} is malformed: {reason}", path.display()),
            format!(
                "repair or remove {} (then `docker login` writes a new one)",
                path.display()
            ),
        ),
        Ok(AuthSource::Login { registry, username }) => Check::ok(
            NAME,
            format!(
                "logged in to Docker Hub ({registry}) as {username} in {}",
                path.display()
            ),
        ),
        Ok(AuthSource::Token { registry }) => Check::ok(
            NAME,
            format!(
                "an identity token for Docker Hub ({registry}) in {}",
                path.display()
            ),
        ),
        Ok(AuthSource::Helper { registry, helper }) => helper_check(
            &helper,
            format!(
                "Docker Hub ({registry}) credentials come from the credential helper `{helper}` \
                 (credHelpers in {})",
                path.display()
            ),
        ),
        Ok(AuthSource::Store { helper }) => helper_check(
            &helper,
            format!(
                "credentials come from the credential store `{helper}` (credsStore in {})",
                path.display()
            ),
        ),
        Ok(AuthSource::None) => Check::warn(
            NAME,
            format!(
                "{} has no Docker Hub credentials: {anonymous}",
                path.display()
            ),
            login_fix,
        ),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`; `None` with neither set.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

fn gather_registry_auth(path: Option<&Path>) -> Check {
    let Some(path) = path else {
        return Check::warn(
            "registry_auth",
            "neither DOCKER_CONFIG nor HOME is set, so there is no Docker client config to read",
            "set HOME (or DOCKER_CONFIG) for the user that runs pruneguard",
        );
    };
    let read = read_capped(path, MAX_UNIT_BYTES);
    registry_auth_check(path, &read, on_path)
}

/// An executable file named `program` in a `PATH` directory.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
    })
}

// ---------------------------------------------------------------------------------------------
// registry_auth_file_mode

/// The `registry_auth_file_mode` check from the file's mode bits (`Err` when stat failed).
pub fn registry_auth_mode_check(path: &Path, mode: &std::io::Result<u32>) -> Check {
    const NAME: &str = "registry_auth_file_mode";
    match mode {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Check::ok(
            NAME,
            format!("there is no {}, so nothing to protect", path.display()),
        ),
        Err(error) => Check::warn(
            NAME,
            format!("cannot stat {}: {error}", path.display()),
            "run doctor as the user that owns it",
        ),
        Ok(mode) => {
            let bits = mode & 0o7777;
            let others = match (bits & 0o004 != 0, bits & 0o002 != 0) {
                (true, true) => Some("readable and writable by every user"),
                (true, false) => Some("readable by every user"),
                (false, true) => Some("writable by every user"),
                (false, false) => None,
            };
            match others {
                Some(what) => Check::warn(
                    NAME,
                    format!(
                        "{} has mode {bits:04o}: {what}, and it may hold registry credentials",
                        path.display()
                    ),
                    format!("chmod 600 {}", path.display()),
                ),
                None => Check::ok(
                    NAME,
                    format!(
                        "{} has mode {bits:04o} (not readable by others)",
                        path.display()
                    ),
                ),
            }
        }
    }
}

fn gather_registry_auth_mode(path: Option<&Path>) -> Check {
    let Some(path) = path else {
        return Check::ok(
            "registry_auth_file_mode",
            "no Docker client config to check (neither DOCKER_CONFIG nor HOME is set)",
        );
    };
    let mode = std::fs::metadata(path).map(|meta| meta.permissions().mode());
    registry_auth_mode_check(path, &mode)
}

// ---------------------------------------------------------------------------------------------
// prune_timers

/// One systemd unit as found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFile {
    /// The unit's name, e.g. `docker-prune.service`.
    pub name: String,
    /// Where it was first found (in precedence order).
    pub path: PathBuf,
    pub text: String,
    /// Texts of the scripts its `Exec*=` lines run directly (NixOS `script =` units).
    pub scripts: Vec<String>,
    /// A link to /dev/null or an empty file: systemd ignores it.
    pub masked: bool,
    /// Also linked from a `*.wants` directory.
    pub enabled: bool,
}

/// A unit that prunes behind pruneguard's back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneFinding {
    pub unit: String,
    pub path: PathBuf,
    /// `docker system prune` or `docker image prune`, when seen.
    pub command: Option<&'static str>,
    /// With `--all`/`-a`: tagged images no container uses are removed too.
    pub all: bool,
    pub enabled: bool,
}

/// Whether a unit conflicts with pruneguard: NixOS's autoPrune unit names, or a service whose
/// `Exec*=` lines (or the scripts they run) call `docker system prune` / `docker image prune`.
pub fn scan_unit(unit: &UnitFile) -> Option<PruneFinding> {
    if unit.masked {
        return None;
    }
    let mut command = None;
    let mut all = false;
    let exec_lines = exec_commands(&unit.text);
    let script_lines = unit.scripts.iter().flat_map(|script| {
        script
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
    });
    for line in exec_lines.iter().map(String::as_str).chain(script_lines) {
        if let Some((found, with_all)) = find_prune(line) {
            command.get_or_insert(found);
            all |= with_all;
        }
    }
    let autoprune = AUTOPRUNE_UNITS.contains(&unit.name.as_str());
    let prunes = unit.name.ends_with(".service") && command.is_some();
    (autoprune || prunes).then(|| PruneFinding {
        unit: unit.name.clone(),
        path: unit.path.clone(),
        command,
        all,
        enabled: unit.enabled,
    })
}

/// The values of a unit's `Exec*=` lines, with `\` continuations joined and comments skipped.
pub fn exec_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut pending: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        let (body, continues) = match line.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (line, false),
        };
        if let Some(command) = pending.as_mut() {
            command.push(' ');
            command.push_str(body.trim());
        } else if !line.starts_with(['#', ';'])
            && let Some((key, value)) = body.split_once('=')
            && key.trim().starts_with("Exec")
        {
            pending = Some(value.trim().to_string());
        }
        if !continues && let Some(command) = pending.take() {
            commands.push(command);
        }
    }
    commands.extend(pending);
    commands
}

/// The executable an `Exec*=` value runs (systemd's `@-:+!` prefixes removed).
pub fn exec_program(command: &str) -> Option<&str> {
    command
        .split_whitespace()
        .next()
        .map(|program| program.trim_start_matches(['@', '-', ':', '+', '!']))
        .map(|program| program.trim_matches(['"', '\'']))
        .filter(|program| !program.is_empty())
}

/// `docker … system prune …` or `docker … image prune …` in a command line: which one, and
/// whether with `--all`/`-a`. Shell separators split the line into commands first.
pub fn find_prune(line: &str) -> Option<(&'static str, bool)> {
    let mut found: Option<(&'static str, bool)> = None;
    for segment in line.split([';', '&', '|', '\n', '`', '(', ')']) {
        let cleaned = segment.replace(['"', '\''], " ");
        let tokens: Vec<&str> = cleaned.split_whitespace().collect();
        let Some(docker) = tokens
            .iter()
            .position(|token| token.rsplit('/').next() == Some("docker"))
        else {
            continue;
        };
        let rest = &tokens[docker + 1..];
        let Some(prune) = rest
            .windows(2)
            .position(|pair| matches!(pair[0], "system" | "image") && pair[1] == "prune")
        else {
            continue;
        };
        let command = if rest[prune] == "system" {
            "docker system prune"
        } else {
            "docker image prune"
        };
        let all = rest[prune + 2..].iter().any(|flag| is_all_flag(flag));
        found = Some(match found {
            Some((first, previous_all)) => (first, previous_all || all),
            None => (command, all),
        });
    }
    found
}

fn is_all_flag(flag: &str) -> bool {
    if flag == "--all" || flag == "--all=true" {
        return true;
    }
    flag.strip_prefix('-').is_some_and(|cluster| {
        !cluster.starts_with('-')
            && !cluster.is_empty()
            && cluster.chars().all(|c| c.is_ascii_alphabetic())
            && cluster.contains('a')
    })
}

/// The `prune_timers` check from the units found in `dirs`.
pub fn prune_timers_check(dirs: &[PathBuf], units: &[UnitFile]) -> Check {
    const NAME: &str = "prune_timers";
    let findings: Vec<PruneFinding> = units.iter().filter_map(scan_unit).collect();
    if findings.is_empty() {
        return Check::ok(
            NAME,
            format!(
                "no docker-prune unit and no service running `docker system prune` or `docker \
                 image prune` in {} unit director{}",
                dirs.len(),
                if dirs.len() == 1 { "y" } else { "ies" }
            ),
        );
    }
    let described: Vec<String> = findings
        .iter()
        .map(|finding| {
            let mut text = format!("{} ({}", finding.unit, finding.path.display());
            if finding.enabled {
                text.push_str(", enabled");
            }
            text.push(')');
            match (finding.command, finding.all) {
                (Some(command), true) => {
                    let _ = write!(
                        text,
                        " runs `{command} --all`, which removes every image no container uses, \
                         tagged base images included"
                    );
                }
                (Some(command), false) => {
                    let _ = write!(
                        text,
                        " runs `{command}` on its own schedule, blind to deploys and disk pressure"
                    );
                }
                (None, _) => text
                    .push_str(" is NixOS's docker autoPrune (`virtualisation.docker.autoPrune`)"),
            }
            text
        })
        .collect();
    let names: Vec<&str> = findings
        .iter()
        .map(|finding| finding.unit.as_str())
        .collect();
    let fix = format!(
        "disable it (`systemctl disable --now {}`; on NixOS set \
         `virtualisation.docker.autoPrune.enable = false`): pruneguard's gated run replaces it",
        names.join(" ")
    );
    let detail = described.join("; ");
    if findings.iter().any(|finding| finding.all) {
        Check::fail(NAME, detail, fix)
    } else {
        Check::warn(NAME, detail, fix)
    }
}

/// The unit directories to scan: [`UNIT_DIRS_ENV`] if set (even empty), else the defaults.
fn unit_dirs() -> Vec<PathBuf> {
    match std::env::var_os(UNIT_DIRS_ENV) {
        Some(value) => std::env::split_paths(&value)
            .filter(|dir| !dir.as_os_str().is_empty())
            .collect(),
        None => DEFAULT_UNIT_DIRS.iter().map(PathBuf::from).collect(),
    }
}

/// Reads `*.service` and `*.timer` in each directory and in its `*.wants` subdirectories. The
/// first file of a name wins (the directories are in systemd's precedence order); a later
/// link from a `*.wants` directory only marks it enabled.
fn gather_units(dirs: &[PathBuf]) -> Vec<UnitFile> {
    let mut units: Vec<UnitFile> = Vec::new();
    let mut add = |path: PathBuf, name: String, enabled: bool| {
        if let Some(existing) = units.iter_mut().find(|unit| unit.name == name) {
            existing.enabled |= enabled;
            return;
        }
        units.push(load_unit(path, name, enabled));
    };
    for dir in dirs {
        let mut wants = Vec::new();
        for (path, name) in sorted_entries(dir) {
            if is_wants_dir_name(&name) && path.is_dir() {
                wants.push(path);
            } else if is_unit_name(&name) {
                add(path, name, false);
            }
        }
        for wants_dir in wants {
            for (path, name) in sorted_entries(&wants_dir) {
                if is_unit_name(&name) {
                    add(path, name, true);
                }
            }
        }
    }
    units
}

// systemd unit names are case-sensitive: `X.SERVICE` is not a unit.
#[allow(clippy::case_sensitive_file_extension_comparisons)]
fn is_unit_name(name: &str) -> bool {
    name.ends_with(".service") || name.ends_with(".timer")
}

#[allow(clippy::case_sensitive_file_extension_comparisons)] // as above
fn is_wants_dir_name(name: &str) -> bool {
    name.ends_with(".wants")
}

fn sorted_entries(dir: &Path) -> Vec<(PathBuf, String)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            if error.kind() != std::io::ErrorKind::NotFound {
                debug!("cannot list {}: {error}", dir.display());
            }
            return Vec::new();
        }
    };
    let mut entries: Vec<(PathBuf, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            Some((entry.path(), name))
        })
        .collect();
    entries.sort_by(|a, b| a.1.cmp(&b.1));
    entries
}

fn load_unit(path: PathBuf, name: String, enabled: bool) -> UnitFile {
    let to_null = std::fs::read_link(&path).is_ok_and(|target| target == Path::new("/dev/null"));
    let text = if to_null {
        String::new()
    } else {
        read_capped(&path, MAX_UNIT_BYTES).unwrap_or_else(|error| {
            debug!("cannot read {}: {error}", path.display());
            String::new()
        })
    };
    let masked = to_null || std::fs::metadata(&path).is_ok_and(|meta| meta.len() == 0);
    let scripts = exec_commands(&text)
        .iter()
        .filter_map(|command| exec_program(command))
        .filter(|program| program.starts_with('/'))
        .filter_map(|program| read_script(Path::new(program)))
        .collect();
    UnitFile {
        name,
        path,
        text,
        scripts,
        masked,
        enabled,
    }
}

/// A small text file starting with `#!`, or nothing (binaries are not scanned).
fn read_script(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_SCRIPT_BYTES {
        return None;
    }
    let text = read_capped(path, MAX_SCRIPT_BYTES).ok()?;
    text.starts_with("#!").then_some(text)
}

fn read_capped(path: &Path, limit: u64) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_string(&mut text)?;
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// policy

/// The `policy` check: a summary of the effective policy, warning where a gate is defeated.
pub fn policy_check(policy: &Policy, config_valid: bool) -> Check {
    const NAME: &str = "policy";
    let gates = &policy.gates;
    let human = |duration| humantime::format_duration(duration).to_string();
    let workload = &gates.workload;
    let selectors = workload.stacks.len()
        + workload.labels.len()
        + workload.containers.len()
        + workload.lock_files.len();
    let mut summary = format!(
        "min_age {}, disk threshold {} %",
        human(policy.min_age),
        gates.disk.threshold_percent
    );
    if let Some(inodes) = gates.disk.inode_threshold_percent {
        let _ = write!(summary, " (inodes {inodes} %)");
    }
    let _ = write!(
        summary,
        ", quiet period {}, {selectors} workload selector(s), swarm gate {}",
        if gates.quiet.period.is_zero() {
            "0s (disabled)".to_string()
        } else {
            human(gates.quiet.period)
        },
        if gates.swarm.enabled { "on" } else { "off" }
    );
    if !config_valid {
        summary.push_str(" (defaults and flags: the config file was not used)");
    }
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    if gates.disk.threshold_percent == 0 {
        problems.push("threshold_percent is 0, so the disk gate is always open");
        fixes.push("set `gates.disk.threshold_percent` (--disk-threshold), e.g. 80");
    }
    if policy.min_age.is_zero() {
        problems.push("min_age is 0, so an image is a candidate the moment it is left dangling");
        fixes.push("set `policy.min_age` (--min-age), e.g. 24h");
    }
    if problems.is_empty() {
        Check::ok(NAME, summary)
    } else {
        Check::warn(
            NAME,
            format!("{summary}; {}", problems.join("; ")),
            fixes.join("; "),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// state_dir

/// What trying the state directory showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateDirProbe {
    Writable { created: bool },
    NotADirectory,
    CannotCreate(String),
    NotWritable(String),
}

/// Creates the directory if missing, then writes and removes a temp file in it.
fn probe_state_dir(dir: &Path) -> StateDirProbe {
    let created = match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => return StateDirProbe::NotADirectory,
        Ok(_) => false,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if let Err(error) = std::fs::create_dir_all(dir) {
                return StateDirProbe::CannotCreate(error.to_string());
            }
            true
        }
        Err(error) => return StateDirProbe::NotWritable(error.to_string()),
    };
    match tempfile::Builder::new()
        .prefix(".pruneguard-doctor-")
        .tempfile_in(dir)
    {
        // Dropping the temp file closes and deletes it.
        Ok(file) => match file.close() {
            Ok(()) => StateDirProbe::Writable { created },
            Err(error) => StateDirProbe::NotWritable(error.to_string()),
        },
        Err(error) => StateDirProbe::NotWritable(error.to_string()),
    }
}

pub fn state_dir_check(dir: &Path, probe: &StateDirProbe) -> Check {
    const NAME: &str = "state_dir";
    let fix = format!(
        "create it writable for the user that runs pruneguard (`install -d -m 0750 {}`), or \
         choose another with --state-dir / `state.dir`",
        dir.display()
    );
    match probe {
        StateDirProbe::Writable { created: false } => {
            Check::ok(NAME, format!("{} exists and is writable", dir.display()))
        }
        StateDirProbe::Writable { created: true } => Check::ok(
            NAME,
            format!(
                "{} did not exist; created it, and it is writable",
                dir.display()
            ),
        ),
        StateDirProbe::NotADirectory => Check::warn(
            NAME,
            format!("{} exists but is not a directory", dir.display()),
            fix,
        ),
        StateDirProbe::CannotCreate(reason) => Check::warn(
            NAME,
            format!(
                "{} does not exist and cannot be created: {reason}",
                dir.display()
            ),
            fix,
        ),
        StateDirProbe::NotWritable(reason) => Check::warn(
            NAME,
            format!("{} is not writable: {reason}", dir.display()),
            fix,
        ),
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // --- registry auth ------------------------------------------------------------------------

    const SECRET: &str = "s3cr3t-P4ss";

    fn b64(text: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn check_of(text: &str) -> Check {
        registry_auth_check(
            Path::new("/home/ci/.docker/config.json"),
            &Ok(text.to_string()),
            |program| program == "docker-credential-pass",
        )
    }

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        for text in [
            "",
            "a",
            "ab",
            "abc",
            "user:pass",
            "ci-bot:s3cr3t-P4ss",
            "ünï:cödé",
        ] {
            assert_eq!(
                decode_base64(&b64(text)).as_deref(),
                Some(text.as_bytes()),
                "{text}"
            );
            let unpadded = b64(text).trim_end_matches('=').to_string();
            assert_eq!(decode_base64(&unpadded).as_deref(), Some(text.as_bytes()));
        }
        assert_eq!(decode_base64("dXNlcjpwYXNz"), Some(b"user:pass".to_vec()));
        for garbage in ["not base64!", "a", "abcde", "ab===", "dXNl cjpw"] {
            assert_eq!(decode_base64(garbage), None, "{garbage}");
        }
    }

    #[test]
    #[allow(clippy::too_many_lines)] // one table
    fn docker_config_variants() {
        let auth = b64(&format!("ci-bot:{SECRET}"));
        // (config.json, expected status, text the detail must contain)
        let table: Vec<(String, Status, &str)> = vec![
            (
                format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#),
                Status::Ok,
                "as ci-bot",
            ),
            (
                format!(r#"{{"auths":{{"docker.io":{{"auth":"{auth}","email":"x@y"}}}}}}"#),
                Status::Ok,
                "as ci-bot",
            ),
            (
                format!(r#"{{"auths":{{"registry-1.docker.io":{{"auth":"{auth}"}}}}}}"#),
                Status::Ok,
                "(registry-1.docker.io) as ci-bot",
            ),
            (
                format!(
                    r#"{{"auths":{{"index.docker.io":{{"username":"deploy","password":"{SECRET}"}}}}}}"#
                ),
                Status::Ok,
                "as deploy",
            ),
            (
                format!(
                    r#"{{"auths":{{"https://index.docker.io/v1/":{{"identitytoken":"{SECRET}"}}}}}}"#
                ),
                Status::Ok,
                "identity token",
            ),
            (
                r#"{"auths":{"https://index.docker.io/v1/":{}},"credsStore":"pass"}"#.into(),
                Status::Ok,
                "credential store `pass`",
            ),
            (
                r#"{"auths":{"https://index.docker.io/v1/":{}},"credsStore":"desktop"}"#.into(),
                Status::Warn,
                "docker-credential-desktop is not on PATH",
            ),
            (
                r#"{"credHelpers":{"docker.io":"pass"}}"#.into(),
                Status::Ok,
                "credential helper `pass`",
            ),
            (
                r#"{"credHelpers":{"123.dkr.ecr.eu-west-1.amazonaws.com":"ecr-login"}}"#.into(),
                Status::Warn,
                "no Docker Hub credentials",
            ),
            (
                format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{auth}"}}}}}}"#),
                Status::Warn,
                "no Docker Hub credentials",
            ),
            ("{}".into(), Status::Warn, "no Docker Hub credentials"),
            (
                r#"{"auths":{}}"#.into(),
                Status::Warn,
                "no Docker Hub credentials",
            ),
            (
                r#"{"auths":{"https://index.docker.io/v1/":{}}}"#.into(),
                Status::Warn,
                "no Docker Hub credentials",
            ),
            (
                format!(r#"{{"auths":{{"docker.io":{{"auth":"{auth}""#),
                Status::Fail,
                "not valid JSON",
            ),
            ("[1,2]".into(), Status::Fail, "not a JSON object"),
            (
                format!(r#"{{"auths":{{"docker.io":{{"auth":"{SECRET}!"}}}}}}"#),
                Status::Fail,
                "not base64 of `user:password`",
            ),
            (
                format!(
                    r#"{{"auths":{{"docker.io":{{"auth":"{}"}}}}}}"#,
                    b64(SECRET)
                ),
                Status::Fail,
                "not base64 of `user:password`",
            ),
            (
                format!(r#"{{"auths":{{"docker.io":{{"auth":42,"password":"{SECRET}"}}}}}}"#),
                Status::Fail,
                "`auths.docker.io.auth` is not a string",
            ),
            (
                format!(r#"{{"auths":"{SECRET}"}}"#),
                Status::Fail,
                "`auths` is not an object",
            ),
            (
                format!(r#"{{"credsStore":["{SECRET}"]}}"#),
                Status::Fail,
                "`credsStore` is not a string",
            ),
        ];
        for (text, status, expected) in table {
            let check = check_of(&text);
            assert_eq!(check.status, status, "{text}: {check:?}");
            assert!(check.detail.contains(expected), "{text}: {check:?}");
            let shown = format!("{check:?}");
            for secret in [SECRET.to_string(), b64(SECRET), auth.clone()] {
                assert!(!shown.contains(&secret), "{text} leaks: {shown}");
            }
        }
    }

    #[test]
    fn docker_config_io_errors() {
        let path = Path::new("/root/.docker/config.json");
        let missing = registry_auth_check(
            path,
            &Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            |_| true,
        );
        assert_eq!(missing.status, Status::Warn);
        assert!(missing.fix.contains("docker login"));
        let denied = registry_auth_check(
            path,
            &Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
            |_| true,
        );
        assert_eq!(denied.status, Status::Fail);
    }

    #[test]
    fn registry_hosts_normalise_like_docker() {
        for key in [
            "https://index.docker.io/v1/",
            "http://index.docker.io/v1",
            "index.docker.io",
            "docker.io",
            "https://registry-1.docker.io",
        ] {
            assert!(is_docker_hub(key), "{key}");
        }
        for key in [
            "ghcr.io",
            "https://quay.io/v1/",
            "docker.io.evil.example",
            "",
        ] {
            assert!(!is_docker_hub(key), "{key}");
        }
    }

    #[test]
    fn file_mode_verdicts() {
        let path = Path::new("/root/.docker/config.json");
        let table = [
            (0o100_600, Status::Ok),
            (0o100_640, Status::Ok),
            (0o100_660, Status::Ok),
            (0o100_644, Status::Warn),
            (0o100_604, Status::Warn),
            (0o100_602, Status::Warn),
            (0o100_666, Status::Warn),
        ];
        for (mode, status) in table {
            let check = registry_auth_mode_check(path, &Ok(mode));
            assert_eq!(check.status, status, "{mode:o}");
            if status == Status::Warn {
                assert_eq!(check.fix, "chmod 600 /root/.docker/config.json");
            }
        }
        let missing = registry_auth_mode_check(
            path,
            &Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        );
        assert_eq!(missing.status, Status::Ok);
    }

    // --- mountinfo ----------------------------------------------------------------------------

    const MOUNTINFO: &str = "\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw,size=24684096k
25 22 0:23 / /run rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,mode=755
26 22 252:16 / /var/lib/docker rw,relatime shared:5 - xfs /dev/vdb rw,attr2
27 22 0:24 / /mnt/ram rw,relatime shared:6 - ramfs ramfs rw
28 22 0:25 / /srv/live rw,relatime shared:7 - overlay overlay rw,lowerdir=/ro,upperdir=/run/live/upper,workdir=/run/live/work
29 22 0:26 / /srv/disk rw,relatime shared:8 - overlay overlay rw,lowerdir=/ro,upperdir=/data/upper,workdir=/data/work
30 22 0:27 / /data/my\\040docker rw,relatime shared:9 - tmpfs tmpfs rw
31 22 0:28 / /data rw,relatime shared:10 - btrfs /dev/vdc rw
32 22 0:29 / /stacked rw,relatime - ext4 /dev/vdd rw
33 32 0:30 / /stacked rw,relatime - tmpfs tmpfs rw
34 22 0:31 / /nested rw - overlay overlay rw,lowerdir=/ro,upperdir=/srv/live/u,workdir=/srv/live/w
35 22 0:32 / /weird\\054dir rw - overlay overlay rw,lowerdir=/ro,upperdir=/dev/shm/a\\054b,workdir=/dev/shm/w
";

    #[test]
    fn parses_mountinfo_lines() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 14);
        assert_eq!(mounts[0].mount_point, Path::new("/"));
        assert_eq!(mounts[0].fs_type, "ext4");
        assert_eq!(mounts[0].source, "/dev/vda");
        assert_eq!(mounts[8].mount_point, Path::new("/data/my docker"));
        assert_eq!(
            mounts[6].upper_dir(),
            Some(PathBuf::from("/run/live/upper"))
        );
        assert_eq!(mounts[13].upper_dir(), Some(PathBuf::from("/dev/shm/a,b")));
        assert_eq!(mounts[0].upper_dir(), None);
        // Optional fields may be absent, and garbage is skipped.
        assert_eq!(parse_mountinfo("garbage\n1 2 3\n").len(), 0);
    }

    #[test]
    fn locates_the_filesystem_of_a_path() {
        // (path, fs type, mount point, volatile)
        let table = [
            ("/var/lib/docker", "xfs", "/var/lib/docker", false),
            ("/var/lib/docker/overlay2", "xfs", "/var/lib/docker", false),
            ("/var/lib/dockerd", "ext4", "/", false),
            ("/home/docker", "ext4", "/", false),
            ("/dev/shm/docker", "tmpfs", "/dev/shm", true),
            ("/mnt/ram/docker", "ramfs", "/mnt/ram", true),
            ("/srv/live/docker", "overlay", "/srv/live", true),
            ("/srv/disk/docker", "overlay", "/srv/disk", false),
            ("/data/my docker/x", "tmpfs", "/data/my docker", true),
            ("/data/my", "btrfs", "/data", false),
            ("/stacked/docker", "tmpfs", "/stacked", true),
            ("/nested/docker", "overlay", "/nested", true),
            ("/weird,dir/docker", "overlay", "/weird,dir", true),
        ];
        for (path, fs_type, mount_point, volatile) in table {
            let location = locate_fs(MOUNTINFO, Path::new(path)).expect(path);
            assert_eq!(location.fs_type, fs_type, "{path}");
            assert_eq!(location.mount_point, Path::new(mount_point), "{path}");
            assert_eq!(location.volatile(), volatile, "{path}: {location:?}");
        }
        let disk = locate_fs(MOUNTINFO, Path::new("/srv/disk/docker")).expect("found");
        let (upper, on) = disk.upper.expect("overlay has an upper dir");
        assert_eq!(upper, Path::new("/data/upper"));
        assert_eq!(on.expect("upper located").fs_type, "btrfs");
        assert_eq!(locate_fs("", Path::new("/var/lib/docker")), None);
    }

    fn info(root: &str) -> DaemonInfo {
        DaemonInfo {
            server_version: "20.10.24".into(),
            api_version: "1.41".into(),
            docker_root_dir: Some(root.into()),
            storage_driver: Some("overlay2".into()),
            swarm: crate::model::SwarmNode::default(),
        }
    }

    #[test]
    fn data_root_verdicts() {
        let located =
            |path: &str| RootProbe::Located(locate_fs(MOUNTINFO, Path::new(path)).expect(path));
        let table = [
            (
                "/var/lib/docker",
                located("/var/lib/docker"),
                Status::Ok,
                "xfs (/dev/vdb at /var/lib/docker); storage driver overlay2",
            ),
            (
                "/dev/shm/docker",
                located("/dev/shm/docker"),
                Status::Fail,
                "tmpfs",
            ),
            (
                "/srv/live/docker",
                located("/srv/live/docker"),
                Status::Fail,
                "upper dir /run/live/upper on tmpfs",
            ),
            (
                "/srv/disk/docker",
                located("/srv/disk/docker"),
                Status::Ok,
                "upper dir /data/upper on btrfs",
            ),
            (
                "/var/lib/docker",
                RootProbe::Missing,
                Status::Warn,
                "does not exist on this machine",
            ),
            (
                "/var/lib/docker",
                RootProbe::Remote {
                    endpoint: "tcp://10.0.0.2:2375".into(),
                },
                Status::Warn,
                "another machine",
            ),
            (
                "/var/lib/docker",
                RootProbe::TypeOnly("tmpfs".into()),
                Status::Fail,
                "tmpfs",
            ),
            (
                "/var/lib/docker",
                RootProbe::TypeOnly("ext4".into()),
                Status::Ok,
                "ext4",
            ),
            (
                "/var/lib/docker",
                RootProbe::TypeOnly("overlay".into()),
                Status::Warn,
                "unknown",
            ),
            (
                "/var/lib/docker",
                RootProbe::Inaccessible("denied".into()),
                Status::Warn,
                "denied",
            ),
            ("", RootProbe::NotReported, Status::Warn, "did not report"),
        ];
        for (root, probe, status, expected) in table {
            let info = info(root);
            let check = data_root_check(Some(&info), &probe);
            assert_eq!(check.status, status, "{root}: {check:?}");
            assert!(check.detail.contains(expected), "{root}: {check:?}");
            assert!(check.detail.contains("overlay2"), "{check:?}");
            if status == Status::Fail {
                assert!(check.detail.contains("reboot") && check.fix.contains("data-root"));
            }
        }
        let unknown = data_root_check(None, &RootProbe::DaemonUnreachable);
        assert_eq!(unknown.status, Status::Warn);
        assert!(unknown.detail.contains("daemon unreachable"));
    }

    #[test]
    fn remote_endpoints() {
        for (endpoint, remote) in [
            ("unix:///var/run/docker.sock", false),
            ("tcp://127.0.0.1:2375", false),
            ("tcp://localhost:2375", false),
            ("tcp://[::1]:2375", false),
            ("tcp://10.0.0.2:2375", true),
            ("http://docker.example:2375/", true),
        ] {
            assert_eq!(is_remote(endpoint), remote, "{endpoint}");
        }
    }

    // --- unit files ---------------------------------------------------------------------------

    fn unit(name: &str, text: &str, scripts: &[&str]) -> UnitFile {
        UnitFile {
            name: name.into(),
            path: PathBuf::from("/etc/systemd/system").join(name),
            text: text.into(),
            scripts: scripts.iter().map(ToString::to_string).collect(),
            ..UnitFile::default()
        }
    }

    const NIXOS_SERVICE: &str = "\
[Unit]
After=docker.service
Description=Prune docker resources
Requires=docker.service

[Service]
Environment=\"PATH=/nix/store/a-coreutils/bin\"
ExecStart=/nix/store/b-unit-script-docker-prune-start/bin/docker-prune-start
Type=oneshot
";

    const NIXOS_SCRIPT_ALL: &str = "\
#!/nix/store/c-bash/bin/bash
set -e
/nix/store/d-docker-24.0.9/bin/docker system prune -f --all
";

    #[test]
    fn finds_prune_commands() {
        let table = [
            (
                "docker system prune -f",
                Some(("docker system prune", false)),
            ),
            (
                "/usr/bin/docker system prune -af",
                Some(("docker system prune", true)),
            ),
            (
                "docker system prune --all --force",
                Some(("docker system prune", true)),
            ),
            ("docker image prune -f", Some(("docker image prune", false))),
            (
                "docker image prune -a -f --filter until=24h",
                Some(("docker image prune", true)),
            ),
            (
                "docker -H unix:///run/d.sock image prune --all=true",
                Some(("docker image prune", true)),
            ),
            (
                "/bin/sh -c 'docker system prune -f --volumes'",
                Some(("docker system prune", false)),
            ),
            (
                "/bin/sh -c \"docker image prune -fa\"",
                Some(("docker image prune", true)),
            ),
            (
                "docker ps -a; docker image prune -f",
                Some(("docker image prune", false)),
            ),
            ("docker container prune -f", None),
            ("docker volume prune -f", None),
            ("docker ps -a", None),
            ("echo system prune", None),
            ("docker system df", None),
            (
                "docker image prune --filter label=all",
                Some(("docker image prune", false)),
            ),
        ];
        for (line, expected) in table {
            assert_eq!(find_prune(line), expected, "{line}");
        }
    }

    #[test]
    fn reads_exec_lines() {
        let text = "[Service]\n# ExecStart=docker system prune -af\nExecStartPre=-/bin/true\nExecStart=/usr/bin/docker \\\n  image prune \\\n  -a\nDescription=x\n";
        assert_eq!(
            exec_commands(text),
            vec![
                "-/bin/true".to_string(),
                "/usr/bin/docker image prune -a".to_string()
            ]
        );
        assert_eq!(exec_program("-/bin/true"), Some("/bin/true"));
        assert_eq!(exec_program("@/usr/bin/x y"), Some("/usr/bin/x"));
    }

    #[test]
    #[allow(clippy::too_many_lines)] // one table
    fn unit_scan_verdicts() {
        // (units, expected status, names that must appear in the detail)
        let table: Vec<(Vec<UnitFile>, Status, Vec<&str>)> = vec![
            (
                vec![unit(
                    "docker-prune.service",
                    NIXOS_SERVICE,
                    &[NIXOS_SCRIPT_ALL],
                )],
                Status::Fail,
                vec!["docker-prune.service", "--all"],
            ),
            (
                vec![unit(
                    "docker-prune.service",
                    "[Service]\nExecStart=/run/current-system/sw/bin/docker system prune -f --all\n",
                    &[],
                )],
                Status::Fail,
                vec!["docker-prune.service"],
            ),
            (
                vec![
                    unit(
                        "docker-prune.service",
                        NIXOS_SERVICE,
                        &["#!/bin/sh\ndocker system prune -f\n"],
                    ),
                    unit("docker-prune.timer", "[Timer]\nOnCalendar=weekly\n", &[]),
                ],
                Status::Warn,
                vec!["docker-prune.service", "docker-prune.timer"],
            ),
            (
                vec![unit(
                    "docker-prune.timer",
                    "[Timer]\nOnCalendar=weekly\n",
                    &[],
                )],
                Status::Warn,
                vec!["docker-prune.timer", "autoPrune"],
            ),
            (
                vec![unit(
                    "image-cleanup.service",
                    "[Service]\nExecStart=/usr/bin/docker image prune -f\n",
                    &[],
                )],
                Status::Warn,
                vec!["image-cleanup.service", "docker image prune"],
            ),
            (
                vec![unit(
                    "gc.service",
                    "[Service]\nExecStart=/bin/sh -c 'docker image prune -a -f'\n",
                    &[],
                )],
                Status::Fail,
                vec!["gc.service"],
            ),
            (
                vec![
                    unit(
                        "docker.service",
                        "[Service]\nExecStart=/usr/bin/dockerd -H fd://\n",
                        &[],
                    ),
                    unit(
                        "sshd.service",
                        "[Service]\nExecStart=/usr/sbin/sshd -D\n",
                        &[],
                    ),
                    unit("backup.timer", "[Timer]\nOnCalendar=daily\n", &[]),
                    unit(
                        "notes.service",
                        "[Service]\n# ExecStart=docker system prune -af\nExecStart=/bin/true\n",
                        &[],
                    ),
                ],
                Status::Ok,
                vec![],
            ),
            (
                vec![UnitFile {
                    masked: true,
                    ..unit("docker-prune.service", "", &[])
                }],
                Status::Ok,
                vec![],
            ),
            (vec![], Status::Ok, vec![]),
        ];
        let dirs = [PathBuf::from("/etc/systemd/system")];
        for (units, status, names) in table {
            let check = prune_timers_check(&dirs, &units);
            assert_eq!(check.status, status, "{units:?}: {check:?}");
            for name in names {
                assert!(check.detail.contains(name), "{name}: {check:?}");
            }
            if status != Status::Ok {
                assert!(
                    check
                        .fix
                        .contains("virtualisation.docker.autoPrune.enable = false")
                );
                assert!(check.fix.contains("systemctl disable --now"));
            }
        }
    }

    #[test]
    fn gathers_units_from_dirs_and_wants() {
        let root = tempfile::tempdir().expect("tempdir");
        let etc = root.path().join("etc");
        let lib = root.path().join("lib");
        let wants = etc.join("timers.target.wants");
        std::fs::create_dir_all(&wants).expect("mkdir");
        std::fs::create_dir_all(&lib).expect("mkdir");
        let script = root.path().join("prune-start");
        std::fs::write(&script, NIXOS_SCRIPT_ALL).expect("write");
        std::fs::write(
            lib.join("docker-prune.service"),
            format!("[Service]\nExecStart={}\n", script.display()),
        )
        .expect("write");
        std::fs::write(
            lib.join("docker-prune.timer"),
            "[Timer]\nOnCalendar=daily\n",
        )
        .expect("write");
        std::os::unix::fs::symlink(
            lib.join("docker-prune.timer"),
            wants.join("docker-prune.timer"),
        )
        .expect("symlink");
        std::fs::write(
            etc.join("other.service"),
            "[Service]\nExecStart=/bin/true\n",
        )
        .expect("write");
        std::fs::write(etc.join("README"), "docker system prune -af").expect("write");
        let units = gather_units(&[etc.clone(), lib.clone()]);
        let names: Vec<&str> = units.iter().map(|unit| unit.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "other.service",
                "docker-prune.timer",
                "docker-prune.service"
            ]
        );
        assert!(units[1].enabled);
        assert_eq!(units[2].scripts.len(), 1);
        let check = prune_timers_check(&[etc.clone(), lib.clone()], &units);
        assert_eq!(check.status, Status::Fail, "{check:?}");

        // Masking in a higher-precedence directory hides the vendor unit.
        std::os::unix::fs::symlink("/dev/null", etc.join("docker-prune.service")).expect("symlink");
        std::os::unix::fs::symlink("/dev/null", etc.join("docker-prune.timer")).expect("symlink");
        let units = gather_units(&[etc, lib]);
        assert!(
            units
                .iter()
                .filter(|unit| unit.name.starts_with("docker-prune"))
                .all(|unit| unit.masked)
        );
        assert_eq!(prune_timers_check(&[], &units).status, Status::Ok);
    }

    // --- policy, state dir, config, report ----------------------------------------------------

    #[test]
    fn policy_verdicts() {
        let default = Policy::default();
        let check = policy_check(&default, true);
        assert_eq!(check.status, Status::Ok);
        assert!(
            check.detail.contains(
                "min_age 1day, disk threshold 80 %, quiet period 10m, 0 workload selector(s)"
            ),
            "{check:?}"
        );

        let mut open_disk = Policy::default();
        open_disk.gates.disk.threshold_percent = 0;
        let check = policy_check(&open_disk, true);
        assert_eq!(check.status, Status::Warn);
        assert!(check.detail.contains("always open") && check.fix.contains("--disk-threshold"));

        let no_age = Policy {
            min_age: Duration::ZERO,
            ..Policy::default()
        };
        let check = policy_check(&no_age, false);
        assert_eq!(check.status, Status::Warn);
        assert!(
            check.fix.contains("--min-age") && check.detail.contains("config file was not used")
        );
    }

    #[test]
    fn state_dir_probe_creates_and_leaves_nothing() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a/b");
        assert_eq!(
            probe_state_dir(&dir),
            StateDirProbe::Writable { created: true }
        );
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0);
        assert_eq!(
            probe_state_dir(&dir),
            StateDirProbe::Writable { created: false }
        );
        let file = root.path().join("file");
        std::fs::write(&file, "").expect("write");
        assert_eq!(probe_state_dir(&file), StateDirProbe::NotADirectory);
        let check = state_dir_check(&file, &StateDirProbe::NotADirectory);
        assert_eq!(check.status, Status::Warn);
        assert!(check.fix.contains("--state-dir"));
    }

    #[test]
    fn config_verdicts() {
        let error = ConfigError("the config file /x is not valid: boom".into());
        assert_eq!(config_check(Err(&error), false, false).status, Status::Fail);
        assert_eq!(config_check(Ok(None), false, false).status, Status::Ok);
        assert_eq!(
            config_check(Ok(Some(Path::new("/etc/p.toml"))), false, false).status,
            Status::Ok
        );
        let writable = config_check(Ok(Some(Path::new("/etc/p.toml"))), false, true);
        assert_eq!(writable.status, Status::Warn);
        assert_eq!(writable.fix, "chmod o-w /etc/p.toml");
    }

    #[test]
    fn report_renders_text_and_json() {
        let report = DoctorReport::new(vec![
            Check::ok(
                "daemon",
                "Docker 20.10.24 (API 1.41) at unix:///run/docker.sock",
            ),
            Check::warn("registry_auth", "no credentials", "run `docker login`"),
            Check::fail("config", "line one\n\nline two", "fix it"),
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
        let healthy = DoctorReport::new(vec![Check::warn("a", "b", "c")]);
        assert!(healthy.healthy);
        assert!(healthy.to_text().ends_with("\nhealthy\n"));
    }
}
