//! The `daemon` check: does the engine (dockerd, or Podman's Docker-compatible service) answer
//! `/info`, which engine is it, and which version? The check names the engine in its detail
//! and in the JSON report's `engine` field (`docker` | `podman`), and each failure's fix is
//! that engine's (both engines' when it never answered, so is unknown).
//!
//! The probe's [`DaemonInfo`] also feeds the `data_root` check.

use super::{Check, CheckName, or_unknown};
use crate::config::Settings;
use crate::engine::{DockerEngine, Engine as _, EngineError, Speaker, tls};
use crate::model::{DaemonInfo, EngineKind};

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
    match DockerEngine::connect(
        &settings.host,
        settings.tls.as_ref(),
        settings.api_timeout,
        settings.max_list_size,
    )
    .await
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
        Ok(info) => {
            // Podman's own version; dockerd's `ServerVersion` when detection found none.
            let version = if info.engine_version.is_empty() {
                &info.server_version
            } else {
                &info.engine_version
            };
            let rootless = if info.engine == EngineKind::Podman {
                " (rootful Podman is required; rootless is not supported yet)"
            } else {
                ""
            };
            Check::ok(
                NAME,
                format!(
                    "{} {} (API {}) at {}{rootless}",
                    info.engine.title(),
                    or_unknown(version),
                    or_unknown(&info.api_version),
                    probe.endpoint
                ),
            )
            .with_engine(info.engine)
        }
        Err(error) => {
            let (problem, fix) = problem_and_fix(error);
            Check::fail(NAME, problem, fix)
        }
    }
}

/// What went wrong, and the one fix for it. An [`EngineError`]'s message ends with advice for
/// the other commands; doctor puts its fix on the `fix:` line, so the detail is built from the
/// error's fields without that advice, lest the report say the fix twice in different words.
/// The fix is the engine's when the error knows it, both engines' otherwise.
fn problem_and_fix(error: &EngineError) -> (String, String) {
    match error {
        EngineError::Unreachable {
            endpoint,
            reason,
            engine,
        } => (
            format!(
                "cannot reach {} at {endpoint}: {reason}",
                engine.the_engine()
            ),
            format!(
                "{}, {}",
                start_fix(*engine),
                "or point pruneguard at the engine with -H/--host or DOCKER_HOST"
            ),
        ),
        EngineError::TlsSetup {
            endpoint,
            reason,
            setting,
        } => (
            format!("cannot speak TLS to {endpoint}: {reason}"),
            tls::setup_fix(setting),
        ),
        EngineError::Tls {
            endpoint,
            reason,
            dir,
            setting,
            engine,
        } => (
            format!(
                "the TLS handshake with {} at {endpoint} failed: {reason}",
                engine.the_engine()
            ),
            tls::handshake_fix(dir, setting),
        ),
        EngineError::MalformedId { id } => (
            format!("the engine listed a malformed image ID {id:?}"),
            "check what answers on the engine's socket (a proxy in front of it?)".into(),
        ),
        EngineError::MalformedReference { reference } => (
            format!("the engine listed a malformed tag {reference:?}"),
            "check what answers on the engine's socket (a proxy in front of it?)".into(),
        ),
        EngineError::PermissionDenied { endpoint, engine } => (
            format!("permission denied on the {} {endpoint}", engine.socket()),
            lowercase_first(engine.permission_hint()),
        ),
        EngineError::Timeout {
            endpoint,
            operation,
            timeout_secs,
            engine,
        } => (
            format!(
                "{} at {endpoint} did not answer {operation} within {timeout_secs}s: it may be \
                 overloaded or hung",
                engine.the_engine()
            ),
            format!(
                "see {} for why the engine is slow, or raise --api-timeout",
                engine.log_hint()
            ),
        ),
        EngineError::BadHost { host, reason } => (
            format!("unsupported engine host {host:?}: {reason}"),
            "use -H unix:///path/to/docker.sock (or podman.sock) or tcp://host:port".into(),
        ),
        // These messages state the problem only.
        EngineError::Api { engine, .. } | EngineError::Protocol { engine, .. } => (
            error.to_string(),
            format!(
                "check that -H/DOCKER_HOST points at dockerd or Podman's service, and see {}",
                engine.log_hint()
            ),
        ),
    }
}

/// How to start the engine, as doctor's fix.
fn start_fix(engine: Speaker) -> &'static str {
    match engine {
        Speaker::Unknown => {
            "start dockerd (`systemctl start docker`) or Podman's service \
             (`systemctl start podman.socket`, or `podman system service --time=0` by hand)"
        }
        Speaker::Known(EngineKind::Docker) => "start dockerd (`systemctl start docker`)",
        Speaker::Known(EngineKind::Podman) => {
            "start Podman's service (`systemctl start podman.socket`, or \
             `podman system service --time=0` by hand; `systemctl status podman.socket` says why it stopped)"
        }
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn answering(engine: EngineKind, engine_version: &str, server_version: &str) -> DaemonProbe {
        DaemonProbe {
            endpoint: "unix:///run/docker.sock".into(),
            info: Ok(DaemonInfo {
                server_version: server_version.into(),
                engine,
                engine_version: engine_version.into(),
                ..DaemonInfo::default()
            }),
        }
    }

    #[test]
    fn a_daemon_that_answers_is_ok_with_its_engine_and_version() {
        // (probe, detail, JSON engine)
        let table = [
            (
                answering(EngineKind::Docker, "20.10.24", "20.10.24"),
                "Docker 20.10.24 (API ?) at unix:///run/docker.sock",
                "docker",
            ),
            (
                answering(EngineKind::Docker, "", "20.10.24"),
                "Docker 20.10.24 (API ?) at unix:///run/docker.sock",
                "docker",
            ),
            (
                answering(EngineKind::Podman, "5.8.6", "5.8.6"),
                "Podman 5.8.6 (API ?) at unix:///run/docker.sock (rootful Podman is required; rootless is not supported yet)",
                "podman",
            ),
        ];
        for (probe, detail, engine) in table {
            let check = check(&probe);
            assert_eq!(check.status, Status::Ok);
            assert_eq!(check.detail, detail);
            assert!(check.fix.is_empty());
            let json = serde_json::to_value(&check).unwrap();
            assert_eq!(json["engine"], engine, "{json}");
        }
        let failed = check(&DaemonProbe {
            endpoint: "unix:///x".into(),
            info: Err(EngineError::BadHost {
                host: "x".into(),
                reason: "y".into(),
            }),
        });
        let json = serde_json::to_value(&failed).unwrap();
        assert!(json.get("engine").is_none(), "{json}");
    }

    /// Every failure, with a phrase only its fix uses: the text report (detail and `fix:`
    /// line) says that fix once, and still says what went wrong, naming the engine (both
    /// before it is known) and its fix; never the other engine's.
    /// (error, what went wrong, a phrase of the fix, a phrase the fix must not have)
    #[expect(
        clippy::too_many_lines,
        reason = "one table, a row per error and engine"
    )]
    fn failures() -> Vec<(EngineError, &'static str, &'static str, &'static str)> {
        let endpoint = || "unix:///run/d.sock".to_string();
        let unknown = Speaker::Unknown;
        let docker = Speaker::Known(EngineKind::Docker);
        let podman = Speaker::Known(EngineKind::Podman);
        vec![
            (
                EngineError::Unreachable {
                    endpoint: endpoint(),
                    reason: "there is no socket at /run/d.sock".into(),
                    engine: unknown,
                },
                "cannot reach the container engine at unix:///run/d.sock: there is no socket",
                "podman system service",
                "journalctl",
            ),
            (
                EngineError::Unreachable {
                    endpoint: endpoint(),
                    reason: "connection refused".into(),
                    engine: docker,
                },
                "cannot reach the Docker daemon at unix:///run/d.sock: connection refused",
                "systemctl start docker",
                "podman",
            ),
            (
                EngineError::Unreachable {
                    endpoint: endpoint(),
                    reason: "connection refused".into(),
                    engine: podman,
                },
                "cannot reach the Podman service at unix:///run/d.sock: connection refused",
                "systemctl status podman.socket",
                "dockerd",
            ),
            (
                EngineError::PermissionDenied {
                    endpoint: endpoint(),
                    engine: unknown,
                },
                "permission denied on the engine socket unix:///run/d.sock",
                "docker group",
                "journalctl",
            ),
            (
                EngineError::PermissionDenied {
                    endpoint: endpoint(),
                    engine: podman,
                },
                "permission denied on the Podman socket unix:///run/d.sock",
                "rootful Podman socket",
                "docker group",
            ),
            (
                EngineError::Timeout {
                    endpoint: endpoint(),
                    operation: "GET /info",
                    timeout_secs: 5,
                    engine: docker,
                },
                "the Docker daemon at unix:///run/d.sock did not answer GET /info within 5s",
                "journalctl -u docker",
                "podman",
            ),
            (
                EngineError::Timeout {
                    endpoint: endpoint(),
                    operation: "GET /info",
                    timeout_secs: 5,
                    engine: podman,
                },
                "the Podman service at unix:///run/d.sock did not answer GET /info within 5s",
                "journalctl -u podman.service",
                "-u docker",
            ),
            (
                EngineError::BadHost {
                    host: "ftp://x".into(),
                    reason: "the scheme ftp is not supported".into(),
                },
                "unsupported engine host \"ftp://x\": the scheme ftp is not supported",
                "unix:///path/to/docker.sock",
                "journalctl",
            ),
            (
                EngineError::Api {
                    operation: "GET /info",
                    status: 500,
                    message: "boom".into(),
                    engine: docker,
                },
                "the Docker daemon answered GET /info with HTTP 500: boom",
                "journalctl -u docker",
                "podman.service",
            ),
            (
                EngineError::Protocol {
                    operation: "GET /info",
                    message: "not JSON".into(),
                    engine: podman,
                },
                "unexpected answer from the Podman service to GET /info: not JSON",
                "journalctl -u podman.service",
                "-u docker",
            ),
        ]
    }

    #[test]
    fn a_failing_daemon_says_its_fix_once() {
        let endpoint = || "unix:///run/d.sock".to_string();
        for (error, problem, fix_phrase, foreign) in failures() {
            let check = check(&DaemonProbe {
                endpoint: endpoint(),
                info: Err(error),
            });
            assert_eq!(check.status, Status::Fail);
            assert!(check.detail.contains(problem), "{check:?}");
            assert!(check.fix.contains(fix_phrase), "{check:?}");
            assert!(!check.fix.contains(foreign), "{check:?}");
            assert!(!check.detail.contains("Docker 5"), "{check:?}");
            let text = crate::doctor::DoctorReport::new(vec![check]).to_text();
            assert_eq!(text.matches(fix_phrase).count(), 1, "{text}");
        }
    }
}
