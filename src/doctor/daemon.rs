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
    match DockerEngine::connect(&settings.host, settings.api_timeout, settings.max_list_size).await
    {
        Ok(engine) => {
            let info = engine.info().await;
            DaemonProbe {
                endpoint: engine.endpoint().to_string(),
                info,
            }
        }
        Err(error) => DaemonProbe {
            endpoint: settings.host.to_string(),
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
        Err(error) => {
            let (problem, fix) = problem_and_fix(error);
            Check::fail(NAME, problem, fix)
        }
    }
}

/// What went wrong, and the one fix for it. An [`EngineError`]'s message ends with advice for
/// the other commands; doctor puts its fix on the `fix:` line, so the detail is built from the
/// error's fields without that advice, lest the report say the fix twice in different words.
fn problem_and_fix(error: &EngineError) -> (String, &'static str) {
    match error {
        EngineError::Unreachable { endpoint, reason } => (
            format!("cannot reach the Docker daemon at {endpoint}: {reason}"),
            "start dockerd (`systemctl start docker`), or point pruneguard at the daemon with \
             -H/--host or DOCKER_HOST",
        ),
        EngineError::MalformedId { id } => (
            format!("the daemon listed a malformed image ID {id:?}"),
            "check what answers on the Docker socket (a proxy in front of the daemon?)",
        ),
        EngineError::MalformedReference { reference } => (
            format!("the daemon listed a malformed tag {reference:?}"),
            "check what answers on the Docker socket (a proxy in front of the daemon?)",
        ),
        EngineError::PermissionDenied { endpoint } => (
            format!("permission denied on the Docker socket {endpoint}"),
            "run pruneguard as root or as a user in the docker group",
        ),
        EngineError::Timeout {
            endpoint,
            operation,
            timeout_secs,
        } => (
            format!(
                "the Docker daemon at {endpoint} did not answer {operation} within \
                 {timeout_secs}s: it may be overloaded or hung"
            ),
            "see `journalctl -u docker` for why the daemon is slow, or raise --api-timeout",
        ),
        EngineError::BadHost { host, reason } => (
            format!("unsupported Docker host {host:?}: {reason}"),
            "use -H unix:///path/to/docker.sock or tcp://host:port",
        ),
        // These messages state the problem only.
        EngineError::Api { .. } | EngineError::Protocol { .. } => (
            error.to_string(),
            "check that -H/DOCKER_HOST points at a Docker daemon, and see `journalctl -u docker`",
        ),
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

    /// Every failure, with a phrase only its fix uses: the text report (detail and `fix:`
    /// line) says that fix once, and still says what went wrong.
    #[test]
    fn a_failing_daemon_says_its_fix_once() {
        let endpoint = || "unix:///run/d.sock".to_string();
        // (error, what went wrong, a phrase of the fix)
        let table = [
            (
                EngineError::Unreachable {
                    endpoint: endpoint(),
                    reason: "there is no socket at /run/d.sock".into(),
                },
                "cannot reach the Docker daemon at unix:///run/d.sock: there is no socket",
                "DOCKER_HOST",
            ),
            (
                EngineError::PermissionDenied {
                    endpoint: endpoint(),
                },
                "permission denied on the Docker socket unix:///run/d.sock",
                "docker group",
            ),
            (
                EngineError::Timeout {
                    endpoint: endpoint(),
                    operation: "GET /info",
                    timeout_secs: 5,
                },
                "did not answer GET /info within 5s",
                "journalctl -u docker",
            ),
            (
                EngineError::BadHost {
                    host: "ftp://x".into(),
                    reason: "the scheme ftp is not supported".into(),
                },
                "unsupported Docker host \"ftp://x\": the scheme ftp is not supported",
                "unix:///path/to/docker.sock",
            ),
            (
                EngineError::Api {
                    operation: "GET /info",
                    status: 500,
                    message: "boom".into(),
                },
                "answered GET /info with HTTP 500: boom",
                "journalctl -u docker",
            ),
            (
                EngineError::Protocol {
                    operation: "GET /info",
                    message: "not JSON".into(),
                },
                "unexpected answer from the Docker daemon to GET /info: not JSON",
                "journalctl -u docker",
            ),
        ];
        for (error, problem, fix_phrase) in table {
            let check = check(&DaemonProbe {
                endpoint: endpoint(),
                info: Err(error),
            });
            assert_eq!(check.status, Status::Fail);
            assert!(check.detail.contains(problem), "{check:?}");
            assert!(check.fix.contains(fix_phrase), "{check:?}");
            let text = crate::doctor::DoctorReport::new(vec![check]).to_text();
            assert_eq!(text.matches(fix_phrase).count(), 1, "{text}");
        }
    }
}
