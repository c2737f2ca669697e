//! Reading systemd units from disk for the `prune_timers` check: which `*.service` and
//! `*.timer` files exist in the unit directories (with `*.wants` links marking them enabled,
//! and `/dev/null` links or empty files masking them), their `Exec*=` lines, and the scripts
//! those run.

use std::path::{Path, PathBuf};

use tracing::debug;

use super::read_capped;

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

/// Unit files and scripts larger than this are not read (no unit is that big).
const MAX_UNIT_BYTES: u64 = 1 << 20;
const MAX_SCRIPT_BYTES: u64 = 256 << 10;

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

/// The unit directories to scan: [`UNIT_DIRS_ENV`] if set (even empty), else the defaults.
pub fn unit_dirs() -> Vec<PathBuf> {
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
pub fn gather(dirs: &[PathBuf]) -> Vec<UnitFile> {
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

#[expect(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "systemd unit names are case-sensitive: `X.SERVICE` is not a unit"
)]
fn is_unit_name(name: &str) -> bool {
    name.ends_with(".service") || name.ends_with(".timer")
}

#[expect(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "systemd directory names are case-sensitive too"
)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
