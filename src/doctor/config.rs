//! The `config` check: is the config file valid, and can only trusted users change it?
//!
//! [`probe`] also resolves the [`Settings`] every other check runs on. A bad config file does
//! not stop doctor: this check fails and the rest runs on defaults plus the flags.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use super::{Check, CheckName};
use crate::cli::RunArgs;
use crate::config::{ConfigError, DEFAULT_CONFIG_PATH, Environment, Mode, Settings};

const NAME: CheckName = CheckName::Config;

/// What resolving the settings showed about the config file.
#[derive(Debug)]
pub enum ConfigFile {
    /// The file (or a flag) is invalid; the settings are defaults plus what flags still apply.
    Invalid(ConfigError),
    /// This file was read and is valid.
    Valid { path: PathBuf, world_writable: bool },
    /// No file was read: `--no-config`, or there is none at the default path.
    Absent { no_config: bool },
}

impl ConfigFile {
    /// The settings came from the config file as the user wrote it (or there is none).
    pub fn is_valid(&self) -> bool {
        !matches!(self, Self::Invalid(_))
    }
}

/// Resolves the settings for the remaining checks (reading the config file) and stats the file.
/// Fails only when even the defaults do not resolve.
pub fn probe(args: &RunArgs) -> Result<(Settings, ConfigFile), ConfigError> {
    let error = match Settings::resolve(args) {
        Ok(settings) => {
            let file = match settings.config_file.clone() {
                Some(path) => {
                    let world_writable = std::fs::metadata(&path)
                        .is_ok_and(|meta| meta.permissions().mode() & 0o002 != 0);
                    ConfigFile::Valid {
                        path,
                        world_writable,
                    }
                }
                None => ConfigFile::Absent {
                    no_config: args.no_config,
                },
            };
            return Ok((settings, file));
        }
        Err(error) => error,
    };
    let without_file = RunArgs {
        config: None,
        no_config: true,
        ..args.clone()
    };
    // The flags themselves may be what is wrong (say --metrics-file in a missing directory):
    // then keep only what doctor needs from them, and finally nothing.
    let settings = Settings::resolve(&without_file)
        .or_else(|_| {
            Settings::resolve(&RunArgs {
                no_config: true,
                host: args.host.clone(),
                output: args.output,
                state_dir: args.state_dir.clone(),
                api_timeout: args.api_timeout,
                ..RunArgs::default()
            })
        })
        .or_else(|_| {
            // Defaults only: not even the environment (a bad DOCKER_HOST is reported by this
            // check, and the other checks still run).
            Settings::resolve_with(
                &RunArgs {
                    no_config: true,
                    ..RunArgs::default()
                },
                Mode::Run,
                &Environment::default(),
            )
        })?;
    Ok((settings, ConfigFile::Invalid(error)))
}

/// The `config` check from what [`probe`] found.
pub fn check(file: &ConfigFile) -> Check {
    match file {
        ConfigFile::Invalid(error) => Check::fail(
            NAME,
            error.to_string(),
            "fix the config file (`pruneguard config --no-config` prints every key with its \
             default), or run with --no-config; until then doctor checks defaults and flags",
        ),
        ConfigFile::Valid {
            path,
            world_writable: true,
        } => Check::warn(
            NAME,
            format!(
                "{} is valid, but any user may write it and so change what pruneguard deletes",
                path.display()
            ),
            format!("chmod o-w {}", path.display()),
        ),
        ConfigFile::Valid {
            path,
            world_writable: false,
        } => Check::ok(NAME, format!("{} is valid", path.display())),
        ConfigFile::Absent { no_config: true } => {
            Check::ok(NAME, "--no-config: defaults, environment and flags apply")
        }
        ConfigFile::Absent { no_config: false } => Check::ok(
            NAME,
            format!(
                "no config file at {DEFAULT_CONFIG_PATH}; defaults, environment and flags apply"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn config_verdicts() {
        let error = ConfigError("the config file /x is not valid: boom".into());
        let invalid = check(&ConfigFile::Invalid(error));
        assert_eq!(invalid.status, Status::Fail);
        assert!(invalid.detail.contains("boom"), "{invalid:?}");
        assert_eq!(
            check(&ConfigFile::Absent { no_config: false }).status,
            Status::Ok
        );
        assert_eq!(
            check(&ConfigFile::Valid {
                path: "/etc/p.toml".into(),
                world_writable: false
            })
            .status,
            Status::Ok
        );
        let writable = check(&ConfigFile::Valid {
            path: "/etc/p.toml".into(),
            world_writable: true,
        });
        assert_eq!(writable.status, Status::Warn);
        assert_eq!(writable.fix, "chmod o-w /etc/p.toml");
    }

    #[test]
    fn probe_goes_on_with_defaults_when_the_file_is_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pruneguard.toml");
        std::fs::write(&path, "no_such_key = 1\n").expect("write");
        let args = RunArgs {
            config: Some(path),
            ..RunArgs::default()
        };
        let (_settings, file) = probe(&args).expect("defaults resolve");
        assert!(!file.is_valid(), "{file:?}");
        assert_eq!(check(&file).status, Status::Fail);
    }
}
