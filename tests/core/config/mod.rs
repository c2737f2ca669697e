//! `config::Settings`: defaults, every file key, every source's precedence key by key, every
//! error naming the key and where it was set, the `effective` round trip, and no panic on any
//! input. Every test resolves in an environment it builds (never the process's own).

mod check;
mod disk_paths;
mod effective;
mod files;
mod layers;
mod props;
mod tls;

use std::path::PathBuf;

use pruneguard::cli::RunArgs;
use pruneguard::config::{ConfigError, Environment, Mode, Settings};

pub(crate) struct Config {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Config {
    pub(crate) fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }

    fn args(&self) -> RunArgs {
        RunArgs {
            config: Some(self.path.clone()),
            ..RunArgs::default()
        }
    }

    pub(crate) fn resolve(&self) -> Result<Settings, ConfigError> {
        resolve(&self.args())
    }

    fn error(&self) -> String {
        match self.resolve() {
            Ok(settings) => panic!("expected a config error, got {settings:#?}"),
            Err(error) => {
                let message = error.0.clone();
                assert_eq!(pruneguard::exit::code(&Err(error.into())), 2, "{message}");
                message
            }
        }
    }
}

/// The error for a config file holding `text`, asserted to start with `PATH:LINE:` (the file
/// and the line).
fn error_starting_at(text: &str, line: usize) -> String {
    let config = Config::new(text);
    let error = config.error();
    let location = format!("{}:{line}:", config.path.display());
    assert!(
        error.starts_with(&location),
        "expected {location:?} in {error}"
    );
    error
}

/// The error for a config file holding `text`, asserted to contain `PATH:AT`, where `AT` is the
/// line and the key in backticks, as in ``4: `policy.min_age` ``.
fn error_naming(text: &str, at: &str) -> String {
    let config = Config::new(text);
    let error = config.error();
    let location = format!("{}:{at}", config.path.display());
    assert!(
        error.contains(&location),
        "expected {location:?} in {error}"
    );
    error
}

fn assert_exit_2(message: &str) {
    let error = ConfigError(message.to_string());
    assert_eq!(
        pruneguard::exit::code(&Err(error.into())),
        2,
        "a ConfigError must exit 2: {message}"
    );
}

fn resolve_error(args: &RunArgs) -> String {
    match Settings::resolve(args) {
        Ok(settings) => panic!("expected a config error, got {settings:#?}"),
        Err(error) => {
            let message = error.to_string();
            // The real error type travels through anyhow to exit::code.
            assert_eq!(pruneguard::exit::code(&Err(error.into())), 2);
            message
        }
    }
}

fn patterns(list: &[pruneguard::policy::Pattern]) -> Vec<String> {
    list.iter().map(|p| p.text.clone()).collect()
}

fn no_config() -> RunArgs {
    RunArgs {
        no_config: true,
        ..RunArgs::default()
    }
}

/// Resolves `args` for a run in an empty environment.
fn resolve(args: &RunArgs) -> Result<Settings, ConfigError> {
    Settings::resolve_with(args, Mode::Run, &Environment::default())
}
