//! The `registry_auth` check: has the user that pulls images Docker Hub credentials (a login
//! in `config.json`, or a credential helper that is installed)? Anonymous pulls hit a lower
//! rate limit.
//!
//! Only the **username** is ever shown: passwords, tokens and the `auth` string never reach a
//! message (see the tests, which look for them).

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use serde_json::Value;

use super::{Check, CheckName, read_capped};

const NAME: CheckName = CheckName::RegistryAuth;

/// `config.json` files larger than this are not read (a real one is a few KiB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The registry keys that mean Docker Hub in `auths` and `credHelpers` (after
/// [`registry_host`]).
const DOCKER_HUB_HOSTS: &[&str] = &["index.docker.io", "docker.io", "registry-1.docker.io"];

/// What reading the Docker client config showed.
#[derive(Debug)]
pub enum AuthProbe {
    /// Neither `DOCKER_CONFIG` nor `HOME` is set.
    NoClientConfig,
    Read {
        path: PathBuf,
        contents: std::io::Result<String>,
        /// The `docker-credential-*` programs the file names that are on `PATH`.
        helpers_on_path: Vec<String>,
    },
}

/// Reads `config.json` (see [`docker_config_path`]) and looks up the credential helper it
/// names, if any, on `PATH`.
pub fn probe() -> AuthProbe {
    match docker_config_path() {
        Some(path) => probe_file(path, on_path),
        None => AuthProbe::NoClientConfig,
    }
}

/// Reads `path` and asks `installed` about the helper program it names.
fn probe_file(path: PathBuf, installed: impl Fn(&str) -> bool) -> AuthProbe {
    let contents = read_capped(&path, MAX_CONFIG_BYTES);
    let helpers_on_path = match contents.as_deref().map(parse_docker_config) {
        Ok(Ok(AuthSource::Helper { helper, .. } | AuthSource::Store { helper })) => {
            Some(helper_program(&helper))
                .filter(|program| installed(program))
                .into_iter()
                .collect()
        }
        _ => Vec::new(),
    };
    AuthProbe::Read {
        path,
        contents,
        helpers_on_path,
    }
}

/// The program docker runs for credential helper `helper`.
fn helper_program(helper: &str) -> String {
    format!("docker-credential-{helper}")
}

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

/// The `registry_auth` check from what [`probe`] found.
pub fn check(probe: &AuthProbe) -> Check {
    let AuthProbe::Read {
        path,
        contents,
        helpers_on_path,
    } = probe
    else {
        return Check::warn(
            NAME,
            "neither DOCKER_CONFIG nor HOME is set, so there is no Docker client config to read",
            "set HOME (or DOCKER_CONFIG) for the user that runs pruneguard",
        );
    };
    let login_fix = "run `docker login` as the user that pulls images (or set DOCKER_CONFIG to \
                     the directory of its config.json)";
    let anonymous = "pulls are anonymous and hit Docker Hub's lower rate limit";
    let text = match contents {
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
        let program = helper_program(helper);
        if helpers_on_path.contains(&program) {
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
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".docker").join("config.json"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    const SECRET: &str = "s3cr3t-P4ss";

    fn b64(text: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn read(path: &str, contents: std::io::Result<String>) -> AuthProbe {
        AuthProbe::Read {
            path: PathBuf::from(path),
            contents,
            helpers_on_path: vec!["docker-credential-pass".to_string()],
        }
    }

    fn check_of(text: &str) -> Check {
        check(&read("/home/ci/.docker/config.json", Ok(text.to_string())))
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
    #[expect(
        clippy::too_many_lines,
        reason = "one table, a row per kind of client config"
    )]
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
        let path = "/root/.docker/config.json";
        let missing = check(&read(
            path,
            Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        ));
        assert_eq!(missing.status, Status::Warn);
        assert!(missing.fix.contains("docker login"));
        let denied = check(&read(
            path,
            Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        ));
        assert_eq!(denied.status, Status::Fail);
        let unset = check(&AuthProbe::NoClientConfig);
        assert_eq!(unset.status, Status::Warn);
        assert!(unset.fix.contains("HOME"), "{unset:?}");
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
    fn probe_looks_up_the_named_helper() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credsStore":"pass"}"#).expect("write");
        let installed = probe_file(path.clone(), |program| program == "docker-credential-pass");
        let AuthProbe::Read {
            helpers_on_path, ..
        } = &installed
        else {
            panic!("{installed:?}");
        };
        assert_eq!(helpers_on_path, &["docker-credential-pass"]);
        assert_eq!(check(&installed).status, Status::Ok);
        let missing = probe_file(path, |_| false);
        assert_eq!(check(&missing).status, Status::Warn, "{missing:?}");
        let absent = probe_file(dir.path().join("none.json"), |_| true);
        assert!(
            check(&absent).detail.starts_with("there is no "),
            "{absent:?}"
        );
    }
}
