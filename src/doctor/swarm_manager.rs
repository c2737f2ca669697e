//! The `swarm_manager` check: when `gates.swarm.manager_host` is set and this node is a swarm
//! worker, can the manager be asked for this node's tasks, the way every run asks it (over TLS
//! with `gates.swarm.manager_tls_cert_path` where that is set)? A manager that cannot be asked
//! keeps the swarm gate of every run closed, so nothing is ever pruned: that fails. A client
//! key other users can read warns.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use super::daemon::DaemonProbe;
use super::{Check, CheckName};
use crate::config::Settings;
use crate::engine::{EngineError, tls};

const NAME: CheckName = CheckName::SwarmManager;

/// What asking the manager gave.
#[derive(Debug)]
pub enum ManagerProbe {
    /// `gates.swarm.manager_host` is not set.
    NotSet,
    /// It is set, but this node is not a swarm worker (`role` says what it is), so no run asks.
    NotAsked { host: String, role: &'static str },
    /// The manager was asked for this node's tasks.
    Asked {
        host: String,
        /// How many tasks it lists for this node, or what went wrong.
        answer: Result<usize, EngineError>,
        /// The client key of the TLS files, and its mode bits (or why stat failed).
        key_mode: Option<(PathBuf, Result<u32, String>)>,
    },
}

/// Asks the manager, as a run on this node would.
pub async fn probe(settings: &Settings, daemon: &DaemonProbe) -> ManagerProbe {
    let Some(host) = &settings.swarm_manager_host else {
        return ManagerProbe::NotSet;
    };
    let role = match &daemon.info {
        Err(_) => Some("of unknown role (the daemon did not answer)"),
        Ok(info) if info.swarm.is_manager() => Some("a swarm manager, which asks nobody"),
        Ok(info) if !info.swarm.is_worker() => Some("not an active swarm node"),
        Ok(_) => None,
    };
    if let Some(role) = role {
        return ManagerProbe::NotAsked {
            host: host.to_string(),
            role,
        };
    }
    let node_id = daemon
        .info
        .as_ref()
        .map(|info| info.swarm.node_id.as_str())
        .unwrap_or_default();
    let answer = crate::worker_gather::ask_manager(host, settings, node_id)
        .await
        .map(|cluster| cluster.tasks.len());
    let key_mode = settings.swarm_manager_tls.as_ref().map(|files| {
        let key = files.key();
        let mode = std::fs::metadata(&key)
            .map(|meta| meta.permissions().mode())
            .map_err(|error| error.to_string());
        (key, mode)
    });
    ManagerProbe::Asked {
        host: host.to_string(),
        answer,
        key_mode,
    }
}

/// What every failure's fix ends with.
const OR_UNSET: &str = "or unset gates.swarm.manager_host to judge this worker from local \
evidence only; until then every run's swarm gate stays closed";

/// The `swarm_manager` check from what [`probe`] found.
pub fn check(probe: &ManagerProbe) -> Check {
    match probe {
        ManagerProbe::NotSet => Check::ok(
            NAME,
            "gates.swarm.manager_host is not set: a worker judges itself from local evidence \
             (gates.swarm.worker_evidence)",
        ),
        ManagerProbe::NotAsked { host, role } => Check::ok(
            NAME,
            format!("gates.swarm.manager_host is {host}, but this node is {role}: not asked"),
        ),
        ManagerProbe::Asked {
            host,
            answer: Err(error),
            ..
        } => {
            let (problem, fix) = problem_and_fix(error);
            Check::fail(
                NAME,
                format!(
                    "the swarm manager at {host} cannot be asked for this node's tasks: {problem}"
                ),
                format!("{fix}, {OR_UNSET}"),
            )
        }
        ManagerProbe::Asked {
            host,
            answer: Ok(tasks),
            key_mode,
        } => {
            let detail = format!(
                "the swarm manager at {host} lists {tasks} task(s) for this node, so runs judge it \
                 exactly"
            );
            match key_mode {
                Some((key, Ok(mode))) if mode & 0o077 != 0 => Check::warn(
                    NAME,
                    format!(
                        "{detail}; but its client key {} has mode {:04o}: other users can read it",
                        key.display(),
                        mode & 0o7777
                    ),
                    format!("chmod 600 {}", key.display()),
                ),
                _ => Check::ok(NAME, detail),
            }
        }
    }
}

/// The problem, and the fix that goes with it (TLS errors name the files to check).
fn problem_and_fix(error: &EngineError) -> (String, String) {
    match error {
        EngineError::Tls {
            reason,
            dir,
            setting,
            ..
        } => (
            format!("the TLS handshake failed: {reason}"),
            tls::handshake_fix(dir, setting),
        ),
        EngineError::TlsSetup {
            reason, setting, ..
        } => (
            format!("its TLS files cannot be used: {reason}"),
            tls::setup_fix(setting),
        ),
        EngineError::Unreachable { reason, .. } => (
            format!("it cannot be reached: {reason}"),
            "check that the manager, or the read-only API proxy in front of it, listens at that \
             address and that this node may reach it"
                .to_string(),
        ),
        EngineError::Api {
            status, message, ..
        } => (
            format!("it answered HTTP {status}: {message}"),
            "point gates.swarm.manager_host at a swarm manager (a worker answers 503), and let \
             its proxy allow GET /tasks, /services, /nodes, /info and /version"
                .to_string(),
        ),
        other => (
            other.to_string(),
            "check what answers at gates.swarm.manager_host".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ENGINE_TLS_SETTING;
    use crate::doctor::Status;
    use crate::engine::Speaker;

    fn asked(answer: Result<usize, EngineError>, mode: Option<u32>) -> ManagerProbe {
        ManagerProbe::Asked {
            host: "https://10.0.0.1:2376".into(),
            answer,
            key_mode: mode.map(|mode| (PathBuf::from("/etc/pg/key.pem"), Ok(mode))),
        }
    }

    #[test]
    fn each_outcome_has_its_status_and_fix() {
        let tls = EngineError::Tls {
            endpoint: "https://10.0.0.1:2376".into(),
            reason: "invalid peer certificate: UnknownIssuer".into(),
            dir: "/etc/pg".into(),
            setting: ENGINE_TLS_SETTING,
            engine: Speaker::Unknown,
        };
        let gone = EngineError::Unreachable {
            endpoint: "https://10.0.0.1:2376".into(),
            reason: "Connection refused".into(),
            engine: Speaker::Unknown,
        };
        let worker = EngineError::Api {
            operation: "GET /tasks",
            status: 503,
            message: "This node is not a swarm manager.".into(),
            engine: Speaker::Unknown,
        };
        for (probe, status, detail, fix) in [
            (ManagerProbe::NotSet, Status::Ok, "is not set", ""),
            (
                ManagerProbe::NotAsked {
                    host: "tcp://m:2375".into(),
                    role: "a swarm manager, which asks nobody",
                },
                Status::Ok,
                "not asked",
                "",
            ),
            (asked(Ok(3), Some(0o600)), Status::Ok, "lists 3 task(s)", ""),
            (asked(Ok(3), None), Status::Ok, "lists 3 task(s)", ""),
            (
                asked(Ok(1), Some(0o644)),
                Status::Warn,
                "mode 0644",
                "chmod 600 /etc/pg/key.pem",
            ),
            (
                asked(Err(tls), None),
                Status::Fail,
                "TLS handshake failed: invalid peer certificate",
                "/etc/pg/ca.pem",
            ),
            (
                asked(Err(gone), None),
                Status::Fail,
                "cannot be reached: Connection refused",
                "read-only API proxy",
            ),
            (
                asked(Err(worker), None),
                Status::Fail,
                "HTTP 503",
                "a worker answers 503",
            ),
        ] {
            let check = check(&probe);
            assert_eq!(check.name, NAME);
            assert_eq!(check.status, status, "{check:?}");
            assert!(check.detail.contains(detail), "{detail}: {check:?}");
            assert!(check.fix.contains(fix), "{fix}: {check:?}");
            if status == Status::Fail {
                assert!(
                    check.fix.contains("unset gates.swarm.manager_host"),
                    "{check:?}"
                );
            }
        }
    }
}
