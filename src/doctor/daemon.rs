//! The `daemon` check: does the Docker daemon answer `/info`, and which version is it?
//!
//! The probe's [`DaemonInfo`] also feeds the `data_root` check.

use super::{Check, CheckName, or_unknown};
use crate::config::Settings;
use crate::engine::{DockerEngine, Engine as _, EngineError};
use crate::model::DaemonInfo;

const NAME: CheckName = CheckName::Daemon;

/// What asking the daemon gave.
#[derive(Debug)]
pub struct DaemonProbe {
    /// Where the daemon is, as pruneguard names it.
    pub endpoint: String,
    pub info: Result<DaemonInfo, EngineError>,
}

/// Connects and reads `/info`.
pub async fn probe(settings: &Settings) -> DaemonProbe {
    match DockerEngine::connect(settings.host.as_deref(), settings.api_timeout).await {
        Ok(engine) => {
            let info = engine.info().await;
            DaemonProbe {
                endpoint: engine.endpoint().to_string(),
                info,
            }
        }
        Err(error) => DaemonProbe {
            endpoint: settings
                .host
                .clone()
                .unwrap_or_else(|| "the default socket".to_string()),
            info: Err(error),
        },
    }
}

/// The `daemon` check from what [`probe`] found.
pub fn check(probe: &DaemonProbe) -> Check {
    match &probe.info {
        Ok(info) => Check::ok(
            NAME,
            format!(
                "Docker {} (API {}) at {}",
                or_unknown(&info.server_version),
                or_unknown(&info.api_version),
                probe.endpoint
            ),
        ),
        Err(error) => Check::fail(NAME, error.to_string(), fix(error)),
    }
}

fn fix(error: &EngineError) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn a_daemon_that_answers_is_ok_with_its_version() {
        let probe = DaemonProbe {
            endpoint: "unix:///run/docker.sock".into(),
            info: Ok(DaemonInfo {
                server_version: "20.10.24".into(),
                api_version: String::new(),
                docker_root_dir: None,
                storage_driver: None,
                swarm: crate::model::SwarmNode::default(),
            }),
        };
        let check = check(&probe);
        assert_eq!(check.status, Status::Ok);
        assert_eq!(
            check.detail,
            "Docker 20.10.24 (API ?) at unix:///run/docker.sock"
        );
        assert!(check.fix.is_empty());
    }
}
