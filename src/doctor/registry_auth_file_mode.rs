//! The `registry_auth_file_mode` check: may other users read or write the Docker client's
//! `config.json`, which may hold registry credentials?

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use super::registry_auth::docker_config_path;
use super::{Check, CheckName};

const NAME: CheckName = CheckName::RegistryAuthFileMode;

/// What `stat` said about `config.json`.
#[derive(Debug)]
pub enum ModeProbe {
    /// Neither `DOCKER_CONFIG` nor `HOME` is set.
    NoClientConfig,
    Stat {
        path: PathBuf,
        /// The mode bits, or why stat failed.
        mode: std::io::Result<u32>,
    },
}

/// Stats `config.json` (the file the `registry_auth` check reads).
pub fn probe() -> ModeProbe {
    match docker_config_path() {
        None => ModeProbe::NoClientConfig,
        Some(path) => {
            let mode = std::fs::metadata(&path).map(|meta| meta.permissions().mode());
            ModeProbe::Stat { path, mode }
        }
    }
}

/// The `registry_auth_file_mode` check from what [`probe`] found.
pub fn check(probe: &ModeProbe) -> Check {
    let ModeProbe::Stat { path, mode } = probe else {
        return Check::ok(
            NAME,
            "no Docker client config to check (neither DOCKER_CONFIG nor HOME is set)",
        );
    };
    match mode {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Check::ok(
            NAME,
            format!("there is no {}, so nothing to protect", path.display()),
        ),
        Err(error) => Check::warn(
            NAME,
            format!("cannot stat {}: {error}", path.display()),
            "run doctor as the user that owns it",
        ),
        Ok(mode) => {
            let bits = mode & 0o7777;
            let others = match (bits & 0o004 != 0, bits & 0o002 != 0) {
                (true, true) => Some("readable and writable by every user"),
                (true, false) => Some("readable by every user"),
                (false, true) => Some("writable by every user"),
                (false, false) => None,
            };
            match others {
                Some(what) => Check::warn(
                    NAME,
                    format!(
                        "{} has mode {bits:04o}: {what}, and it may hold registry credentials",
                        path.display()
                    ),
                    format!("chmod 600 {}", path.display()),
                ),
                None => Check::ok(
                    NAME,
                    format!(
                        "{} has mode {bits:04o} (not readable by others)",
                        path.display()
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn file_mode_verdicts() {
        let stat = |mode: std::io::Result<u32>| ModeProbe::Stat {
            path: "/root/.docker/config.json".into(),
            mode,
        };
        let table = [
            (0o100_600, Status::Ok),
            (0o100_640, Status::Ok),
            (0o100_660, Status::Ok),
            (0o100_644, Status::Warn),
            (0o100_604, Status::Warn),
            (0o100_602, Status::Warn),
            (0o100_666, Status::Warn),
        ];
        for (mode, status) in table {
            let check = check(&stat(Ok(mode)));
            assert_eq!(check.status, status, "{mode:o}");
            if status == Status::Warn {
                assert_eq!(check.fix, "chmod 600 /root/.docker/config.json");
            }
        }
        let missing = check(&stat(Err(std::io::Error::from(
            std::io::ErrorKind::NotFound,
        ))));
        assert_eq!(missing.status, Status::Ok);
        let denied = check(&stat(Err(std::io::Error::from(
            std::io::ErrorKind::PermissionDenied,
        ))));
        assert_eq!(denied.status, Status::Warn);
        assert_eq!(check(&ModeProbe::NoClientConfig).status, Status::Ok);
    }
}
