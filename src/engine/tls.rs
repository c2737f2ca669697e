//! TLS to a daemon's TCP endpoint (`https://host:port`, or `tcp://` with TLS asked for), as
//! `dockerd --tlsverify` serves it: the daemon's certificate is always verified, against the
//! `ca.pem` of a certificate directory in Docker's own layout (what `DOCKER_CERT_PATH` names:
//! `ca.pem`, and `cert.pem` with `key.pem` when the daemon asks for a client certificate).
//! There is no way to skip verification: an unverified answer is not evidence.
//!
//! This module reads the files and builds the rustls client configuration; the bounded
//! transport (`bounded.rs`) wraps each connection in it, under the same size bounds. The
//! handshake's failures (rustls errors, or the daemon's TLS alerts) are found again in
//! bollard's errors (`bounded::find_cause`), so that `docker::map_error` can say what to fix
//! instead of "connection reset".

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The CA certificate(s) the daemon's certificate must chain to.
pub const CA_FILE: &str = "ca.pem";
/// The client certificate, presented when present (with [`KEY_FILE`]).
pub const CERT_FILE: &str = "cert.pem";
/// The client certificate's private key.
pub const KEY_FILE: &str = "key.pem";

/// A certificate directory, and the setting that named it (for messages: the fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The directory holding [`CA_FILE`], and [`CERT_FILE`] with [`KEY_FILE`].
    pub dir: PathBuf,
    /// The setting that points at `dir`, with its flag and variable, as a message names it:
    /// `engine.tls_cert_path (--tls-cert-path, DOCKER_CERT_PATH)`.
    pub setting: &'static str,
}

impl TlsFiles {
    pub fn ca(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join(CERT_FILE)
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }
}

/// Why the certificate directory cannot be used: a sentence fragment naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSetupError(pub String);

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a connection needs: the verified configuration and the name the daemon's certificate
/// must carry (a DNS name or an IP address, as written in the URL).
#[derive(Clone)]
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Reads `files` and makes the client for the daemon at `host` (no brackets for IPv6).
    pub fn new(files: &TlsFiles, host: &str) -> Result<Self, TlsSetupError> {
        let server_name = ServerName::try_from(host.to_string()).map_err(|_| {
            TlsSetupError(format!(
                "{host:?} is neither a DNS name nor an IP address that a certificate can name"
            ))
        })?;
        let roots = read_roots(&files.ca())?;
        let provider = Arc::new(provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsSetupError(format!("no TLS version to offer: {error}")))?
            .with_root_certificates(roots);
        let config = match read_identity(files)? {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|error| {
                TlsSetupError(format!(
                    "{} and {} are not a certificate and its key: {error}",
                    files.cert().display(),
                    files.key().display()
                ))
            })?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// ring's provider: it builds quickly and statically, with no C toolchain beyond `cc`.
/// rustls deprecates it for lacking post-quantum key exchange, which a daemon's API on a
/// private network does not need (aws-lc-rs would add minutes to every clean build).
#[expect(
    deprecated,
    reason = "ring has no post-quantum key exchange; see the function's comment"
)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// What to do when the certificate directory cannot be used (`setting` names it).
pub fn setup_fix(setting: &str) -> String {
    format!(
        "point {setting} at the directory that holds the CA certificate that signed the \
         daemon's certificate (ca.pem), and the client certificate (cert.pem with key.pem) when \
         the daemon asks for one, as DOCKER_CERT_PATH does for the docker CLI"
    )
}

/// What to check when the handshake with a daemon failed.
pub fn handshake_fix(dir: &str, setting: &str) -> String {
    format!(
        "check that {dir}/ca.pem is the CA that signed the daemon's certificate, that the \
         certificate names the host as the URL writes it, and that {dir}/cert.pem and key.pem \
         are a client certificate the daemon's --tlscacert trusts; the directory is \
         {setting}"
    )
}

fn read_roots(path: &Path) -> Result<rustls::RootCertStore, TlsSetupError> {
    let certs = read_certs(path)?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsSetupError(format!(
            "{} holds no CA certificate that can be used",
            path.display()
        )));
    }
    Ok(roots)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let unreadable = |error: &dyn fmt::Display| {
        TlsSetupError(format!("cannot read {}: {error}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| unreadable(&pem_error(&error)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(&pem_error(&error)))?;
    if certs.is_empty() {
        return Err(TlsSetupError(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certificate and key, when the directory has them: both or neither.
fn read_identity(files: &TlsFiles) -> Result<Option<Identity>, TlsSetupError> {
    let (cert, key) = (files.cert(), files.key());
    match (cert.exists(), key.exists()) {
        (false, false) => Ok(None),
        (true, false) | (false, true) => {
            let (there, missing) = if cert.exists() {
                (&cert, &key)
            } else {
                (&key, &cert)
            };
            Err(TlsSetupError(format!(
                "{} is there but {} is not: a client certificate needs both (or remove both \
                 to connect without one)",
                there.display(),
                missing.display()
            )))
        }
        (true, true) => {
            let chain = read_certs(&cert)?;
            let key = PrivateKeyDer::from_pem_file(&key).map_err(|error| {
                TlsSetupError(format!(
                    "cannot read a private key from {}: {}",
                    key.display(),
                    pem_error(&error)
                ))
            })?;
            Ok(Some((chain, key)))
        }
    }
}

/// PEM errors, worded for a person (the I/O ones carry the OS's own words).
fn pem_error(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "it holds no PEM item of that kind".to_string(),
        other => format!("it is not valid PEM ({other:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            dir: dir.to_path_buf(),
            setting: "engine.tls_cert_path",
        }
    }

    #[test]
    fn a_missing_ca_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = TlsClient::new(&files(dir.path()), "127.0.0.1").unwrap_err();
        assert!(error.0.contains("ca.pem"), "{error}");
        assert!(error.0.starts_with("cannot read"), "{error}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CA_FILE), "not a certificate\n").unwrap();
        let error = TlsClient::new(&files(dir.path()), "docker.lan").unwrap_err();
        assert!(error.0.contains("holds no PEM certificate"), "{error}");
    }

    #[test]
    fn a_name_no_certificate_can_carry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = TlsClient::new(&files(dir.path()), "bad name!").unwrap_err();
        assert!(error.0.contains("neither a DNS name"), "{error}");
    }
}
