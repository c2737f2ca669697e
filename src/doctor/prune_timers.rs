//! The `prune_timers` check: does another unit prune images behind pruneguard's back (NixOS's
//! `virtualisation.docker.autoPrune`, or any service running `docker system prune` / `docker
//! image prune`)? With `--all` it removes tagged base images too, which fails the check.
//!
//! [`units`] reads the unit files; this module decides which of them conflict.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::units::{self, UnitFile};
use super::{Check, CheckName};

const NAME: CheckName = CheckName::PruneTimers;

/// The unit names of NixOS's `virtualisation.docker.autoPrune`.
const AUTOPRUNE_UNITS: &[&str] = &["docker-prune.service", "docker-prune.timer"];

/// The units found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimersProbe {
    /// The directories scanned ([`units::unit_dirs`]).
    pub dirs: Vec<PathBuf>,
    pub units: Vec<UnitFile>,
}

/// Reads the units in [`units::unit_dirs`].
pub fn probe() -> TimersProbe {
    probe_in(units::unit_dirs())
}

fn probe_in(dirs: Vec<PathBuf>) -> TimersProbe {
    let units = units::gather(&dirs);
    TimersProbe { dirs, units }
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
    let exec_lines = units::exec_commands(&unit.text);
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

/// The `prune_timers` check from the units [`probe`] found.
pub fn check(probe: &TimersProbe) -> Check {
    let dirs = &probe.dirs;
    let findings: Vec<PruneFinding> = probe.units.iter().filter_map(scan_unit).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

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
    #[expect(clippy::too_many_lines, reason = "one table, a row per kind of unit")]
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
        for (units, status, names) in table {
            let check = check(&TimersProbe {
                dirs: vec![PathBuf::from("/etc/systemd/system")],
                units,
            });
            assert_eq!(check.status, status, "{check:?}");
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
    fn probe_reads_units_from_dirs_and_wants() {
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
        let probe = probe_in(vec![etc.clone(), lib.clone()]);
        let units = &probe.units;
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
        let verdict = check(&probe);
        assert_eq!(verdict.status, Status::Fail, "{verdict:?}");

        // Masking in a higher-precedence directory hides the vendor unit.
        std::os::unix::fs::symlink("/dev/null", etc.join("docker-prune.service")).expect("symlink");
        std::os::unix::fs::symlink("/dev/null", etc.join("docker-prune.timer")).expect("symlink");
        let probe = probe_in(vec![etc, lib]);
        assert!(
            probe
                .units
                .iter()
                .filter(|unit| unit.name.starts_with("docker-prune"))
                .all(|unit| unit.masked)
        );
        assert_eq!(check(&probe).status, Status::Ok);
    }
}
