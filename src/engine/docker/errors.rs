//! The one mapping from bollard's errors to the engine boundary's, so that every message names
//! the endpoint, the engine and the fix.

use std::time::Duration;

use bollard::errors::Error as BollardError;

use crate::engine::{EngineError, Speaker, TlsFiles, bounded};

/// Where an error happened: the endpoint as written, its TLS files when it has them, and the
/// request's timeout.
pub(super) struct Place<'a> {
    pub endpoint: &'a str,
    pub tls: Option<&'a TlsFiles>,
    pub timeout: Duration,
}

/// One mapping from bollard's errors to ours, so every message names the endpoint and the fix.
pub(super) fn map_error(
    place: &Place<'_>,
    operation: &'static str,
    engine: Speaker,
    error: BollardError,
) -> EngineError {
    let endpoint = place.endpoint.to_string();
    let timeout = place.timeout;
    if let Some(files) = place.tls
        && let Some(reason) = tls_reason(&error)
    {
        return EngineError::Tls {
            endpoint,
            reason,
            dir: files.dir.display().to_string(),
            setting: files.setting,
            engine,
        };
    }
    if let Some(limit) = bounded::too_large(&error) {
        return EngineError::Protocol {
            operation,
            message: bounded::too_large_message(limit, operation),
            engine,
        };
    }
    match error {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Api {
            operation,
            status: status_code,
            message: with_tls_hint(&endpoint, place.tls.is_none(), message.trim()),
            engine,
        },
        BollardError::RequestTimeoutError => EngineError::Timeout {
            endpoint,
            operation,
            timeout_secs: timeout.as_secs(),
            engine,
        },
        BollardError::SocketNotFoundError(path) => EngineError::Unreachable {
            endpoint,
            reason: format!("there is no socket at {path}"),
            engine,
        },
        BollardError::JsonDataError { .. }
        | BollardError::JsonSerdeError { .. }
        | BollardError::APIVersionParseError {} => EngineError::Protocol {
            operation,
            message: error.to_string(),
            engine,
        },
        BollardError::UnsupportedURISchemeError { uri } => EngineError::BadHost {
            host: uri,
            reason: "unsupported scheme".into(),
        },
        other => {
            // `IOError` is transparent: its `source()` skips the `io::Error` it holds.
            let kind = match &other {
                BollardError::IOError { err } => Some(err.kind()),
                other => io_error_kind(other),
            };
            if kind == Some(std::io::ErrorKind::PermissionDenied) {
                EngineError::PermissionDenied { endpoint, engine }
            } else {
                EngineError::Unreachable {
                    endpoint,
                    reason: error_chain(&other),
                    engine,
                }
            }
        }
    }
}

/// Go's answer to plain HTTP on a TLS port, with what to write instead.
fn with_tls_hint(endpoint: &str, plain: bool, message: &str) -> String {
    if plain && message.contains("HTTP request to an HTTPS server") {
        // The same hint for the engine and for a swarm manager: `connect` serves both.
        format!(
            "{message} {endpoint} serves TLS: write it as https://host:port with its TLS files \
             (engine.tls_cert_path for the engine, where DOCKER_TLS_VERIFY and DOCKER_CERT_PATH \
             work as for the docker CLI; gates.swarm.manager_tls_cert_path for a swarm manager)"
        )
    } else {
        message.to_string()
    }
}

/// The TLS failure inside `error` (the handshake's, or the daemon's alert), in words.
fn tls_reason(error: &BollardError) -> Option<String> {
    bounded::find_cause::<tokio_rustls::rustls::Error>(error).map(ToString::to_string)
}

fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = error.source();
    }
    None
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(error) = current {
        let text = error.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}
