//! [`HostUrl`]: the Docker daemon's address, parsed once here from `-H/--host`, `DOCKER_HOST` or
//! `engine.host`. The engine connects to the typed value and `doctor` reads it, so the two can
//! no longer disagree about which URLs are valid.
//!
//! TLS is its own variant: `https://host[:port]` as written, or a `tcp://` address that the
//! settings upgrade ([`HostUrl::with_tls`]) when TLS is asked for the Docker way
//! (`DOCKER_TLS_VERIFY`, `--tlsverify`). Its certificates are a setting of their own.

use std::fmt;
use std::path::PathBuf;

/// The local daemon's socket, where dockerd listens by default.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// The port of a `tcp://` address that names none (dockerd's plain-HTTP port).
pub const DEFAULT_TCP_PORT: u16 = 2375;
/// The port of an `https://` address that names none (dockerd's TLS port).
pub const DEFAULT_TLS_PORT: u16 = 2376;

/// Where the Docker daemon listens: a unix socket, plain HTTP over TCP, or HTTP over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostUrl {
    /// `unix:///path/to/docker.sock`.
    Unix(PathBuf),
    /// `tcp://host:port` (or `http://host:port`): plain HTTP. `host` has no IPv6 brackets.
    Tcp { host: String, port: u16 },
    /// `https://host:port`, or a `tcp://` address with TLS asked for: the daemon's certificate
    /// is verified against the CA of the TLS setting that goes with this host.
    Tls { host: String, port: u16 },
}

impl Default for HostUrl {
    fn default() -> Self {
        Self::Unix(PathBuf::from(DEFAULT_SOCKET))
    }
}

impl HostUrl {
    /// Parses `unix:///path`, `tcp://host[:port]`, `http://host[:port]` or
    /// `https://host[:port]`. The error is a sentence fragment saying what to write instead (the
    /// caller names the key).
    pub fn parse(text: &str) -> Result<Self, String> {
        const FIX: &str =
            "write unix:///path/to/docker.sock, tcp://host:port or (TLS) https://host:port";
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!("{text:?} is not a Docker host URL; {FIX}"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "unix" => {
                let path = PathBuf::from(rest);
                if path.is_absolute() {
                    Ok(Self::Unix(path))
                } else {
                    Err(format!(
                        "{text:?} does not name a socket by its absolute path; write it as \
                         unix:///path/to/docker.sock (three slashes)"
                    ))
                }
            }
            "tcp" | "http" => parse_tcp(
                text,
                rest.strip_suffix('/').unwrap_or(rest),
                DEFAULT_TCP_PORT,
            ),
            "https" => parse_tcp(
                text,
                rest.strip_suffix('/').unwrap_or(rest),
                DEFAULT_TLS_PORT,
            )
            .map(HostUrl::with_tls),
            _ => Err(format!(
                "the scheme {scheme}:// in {text:?} is not supported; {FIX}"
            )),
        }
    }

    /// This host over TLS: a `tcp://` address becomes `https://` (same host and port, as the
    /// docker CLI does with `DOCKER_TLS_VERIFY`); a unix socket and a TLS host stay as they
    /// are.
    #[must_use]
    pub fn with_tls(self) -> Self {
        match self {
            Self::Tcp { host, port } => Self::Tls { host, port },
            other => other,
        }
    }

    /// Whether this host is spoken to over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls { .. })
    }
}

fn parse_tcp(text: &str, authority: &str, default_port: u16) -> Result<HostUrl, String> {
    let invalid = |why: &str| Err(format!("{text:?} is not a valid TCP address: {why}"));
    if authority.contains(['/', '?', '#', '@']) || authority.contains(char::is_whitespace) {
        return invalid("write only host:port after tcp://, with no path or user");
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return invalid("an IPv6 address needs its closing bracket, as in tcp://[::1]:2375");
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return invalid("write the port after the bracket, as in [::1]:2375"),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return invalid("the host is missing");
    }
    let port = match port {
        None => default_port,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return invalid(&format!("{port:?} is not a port from 1 to 65535")),
        },
    };
    Ok(HostUrl::Tcp {
        host: host.to_string(),
        port,
    })
}

impl fmt::Display for HostUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Self::Tls { host, port } if host.contains(':') => write!(f, "https://[{host}]:{port}"),
            Self::Tls { host, port } => write!(f, "https://{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms_parse_and_print_back() {
        for (text, parsed, printed) in [
            (
                "unix:///var/run/docker.sock",
                HostUrl::Unix("/var/run/docker.sock".into()),
                "unix:///var/run/docker.sock",
            ),
            (
                "tcp://127.0.0.1:1",
                HostUrl::Tcp {
                    host: "127.0.0.1".into(),
                    port: 1,
                },
                "tcp://127.0.0.1:1",
            ),
            (
                "tcp://docker.lan",
                HostUrl::Tcp {
                    host: "docker.lan".into(),
                    port: 2375,
                },
                "tcp://docker.lan:2375",
            ),
            (
                "http://10.0.0.2:2375/",
                HostUrl::Tcp {
                    host: "10.0.0.2".into(),
                    port: 2375,
                },
                "tcp://10.0.0.2:2375",
            ),
            (
                "tcp://[::1]:2376",
                HostUrl::Tcp {
                    host: "::1".into(),
                    port: 2376,
                },
                "tcp://[::1]:2376",
            ),
            (
                "https://docker.lan",
                HostUrl::Tls {
                    host: "docker.lan".into(),
                    port: 2376,
                },
                "https://docker.lan:2376",
            ),
            (
                "HTTPS://10.0.0.2:3376/",
                HostUrl::Tls {
                    host: "10.0.0.2".into(),
                    port: 3376,
                },
                "https://10.0.0.2:3376",
            ),
            (
                "https://[::1]",
                HostUrl::Tls {
                    host: "::1".into(),
                    port: 2376,
                },
                "https://[::1]:2376",
            ),
            (
                " TCP://[fe80::1] ",
                HostUrl::Tcp {
                    host: "fe80::1".into(),
                    port: 2375,
                },
                "tcp://[fe80::1]:2375",
            ),
        ] {
            let host = HostUrl::parse(text).unwrap();
            assert_eq!(host, parsed, "{text}");
            assert_eq!(host.to_string(), printed, "{text}");
            assert_eq!(HostUrl::parse(printed).unwrap(), host, "{printed}");
        }
    }

    #[test]
    fn tls_upgrades_tcp_only() {
        let tcp = HostUrl::parse("tcp://docker.lan:2376").unwrap();
        assert_eq!(
            tcp.clone().with_tls().to_string(),
            "https://docker.lan:2376"
        );
        assert!(tcp.clone().with_tls().is_tls());
        assert!(!tcp.is_tls());
        let unix = HostUrl::default();
        assert_eq!(unix.clone().with_tls(), unix);
    }

    #[test]
    fn unsupported_and_malformed_hosts_are_refused_with_the_fix() {
        for (text, needle) in [
            ("https://", "host is missing"),
            ("https://user@docker.lan", "no path or user"),
            ("ssh://me@docker.lan", "ssh:// in"),
            ("npipe:////./pipe/docker_engine", "npipe:// in"),
            ("/var/run/docker.sock", "not a Docker host URL"),
            ("", "not a Docker host URL"),
            ("unix://", "absolute path"),
            ("unix://docker.sock", "absolute path"),
            ("tcp://", "host is missing"),
            ("tcp://:2375", "host is missing"),
            ("tcp://host:0", "not a port"),
            ("tcp://host:65536", "not a port"),
            ("tcp://host:http", "not a port"),
            ("tcp://host:2375/v1.41", "no path"),
            ("tcp://user@host:2375", "no path or user"),
            ("tcp://[::1:2375", "closing bracket"),
            ("tcp://[::1]2375", "after the bracket"),
        ] {
            let error = HostUrl::parse(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }
}
