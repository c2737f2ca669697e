//! `pruneguard config --check` (`Settings::check_with`): every rule about the values holds
//! exactly as for a run, and nothing about the host is looked at, so a Nix build sandbox can
//! validate a generated file whose directories exist only on the target machine.

use std::path::PathBuf;

use pruneguard::cli::RunArgs;
use pruneguard::config::{ConfigError, Environment, Settings};

use super::*;

fn check(args: &RunArgs) -> Result<Settings, ConfigError> {
    Settings::check_with(args, &Environment::default())
}

/// The error `check` gives for a config file holding `text`, asserted to exit 2 and to start
/// with `PATH:LINE:`.
fn check_error_at(text: &str, line: usize) -> String {
    let config = Config::new(text);
    let error = match check(&config.args()) {
        Ok(settings) => panic!("expected a config error for {text:?}, got {settings:#?}"),
        Err(error) => error,
    };
    let message = error.0.clone();
    assert_eq!(pruneguard::exit::code(&Err(error.into())), 2, "{message}");
    let location = format!("{}:{line}:", config.path.display());
    assert!(
        message.starts_with(&location),
        "expected {location:?} in {message}"
    );
    message
}

#[test]
fn a_metrics_file_in_a_directory_missing_here_is_valid_for_check_but_not_for_a_run() {
    let config = Config::new(
        "[output]\nmetrics_file = \"/nonexistent/pruneguard-metrics/pruneguard.prom\"\n",
    );
    let checked = check(&config.args()).expect("check must not look at directories");
    assert_eq!(
        checked.metrics_file,
        Some(PathBuf::from(
            "/nonexistent/pruneguard-metrics/pruneguard.prom"
        ))
    );
    assert_eq!(checked.config_file.as_deref(), Some(config.path.as_path()));
    assert_eq!(
        checked.validity(),
        format!("{} is valid", config.path.display())
    );
    // The run itself still refuses it: --check relaxes nothing but the host checks.
    let error = config.error();
    assert!(error.contains("does not exist"), "{error}");
}

#[test]
fn paths_that_exist_only_on_the_target_are_valid() {
    let config = Config::new(
        r#"[state]
dir = "/nonexistent/state"
[gates.disk]
path = "/nonexistent/docker"
[gates.workload]
lock_files = ["/nonexistent/run/app.lock"]
"#,
    );
    let settings = check(&config.args()).unwrap();
    assert_eq!(settings.state_dir, PathBuf::from("/nonexistent/state"));
    assert!(
        !PathBuf::from("/nonexistent").exists(),
        "check created a directory"
    );
}

#[test]
fn a_misspelt_key_is_an_error_at_its_line() {
    let error = check_error_at("[gates.disk]\ntreshold_percent = 70\n", 2);
    assert!(error.contains("treshold_percent"), "{error}");
}

#[test]
fn a_value_of_the_wrong_type_is_an_error_at_its_line() {
    let error = check_error_at("[gates.disk]\n\nthreshold_percent = \"80\"\n", 3);
    assert!(error.contains("threshold_percent"), "{error}");
}

#[test]
fn a_value_out_of_range_is_an_error_at_its_line() {
    check_error_at("[gates.disk]\nthreshold_percent = 101\n", 2);
    let error = check_error_at("[engine]\napi_timeout = \"10ms\"\n", 2);
    assert!(error.contains("engine.api_timeout"), "{error}");
}

#[test]
fn a_bad_glob_is_an_error_at_its_line() {
    let error = check_error_at("[gates.workload]\nstacks = [\"app-[\"]\n", 2);
    assert!(error.contains("gates.workload.stacks"), "{error}");
}

#[test]
fn relative_paths_are_errors_at_their_line() {
    for (text, key) in [
        (
            "[output]\nmetrics_file = \"pruneguard.prom\"\n",
            "output.metrics_file",
        ),
        ("[state]\ndir = \"state\"\n", "state.dir"),
        ("[gates.disk]\npath = \"docker\"\n", "gates.disk.path"),
        ("[gates.disk]\npaths = [\"docker\"]\n", "gates.disk.paths"),
        (
            "[gates.workload]\nlock_files = [\"run/app.lock\"]\n",
            "gates.workload.lock_files",
        ),
    ] {
        let error = check_error_at(text, 2);
        assert!(error.contains(key), "{key}: {error}");
        assert!(error.contains("not an absolute path"), "{key}: {error}");
    }
}

#[test]
fn a_missing_config_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let args = RunArgs {
        config: Some(dir.path().join("absent.toml")),
        ..RunArgs::default()
    };
    let error = check(&args).expect_err("a missing --config file must be an error");
    assert_exit_2(&error.0);
    assert!(error.0.contains("absent.toml"), "{}", error.0);
}

#[test]
fn without_a_config_file_the_defaults_are_valid() {
    let settings = check(&no_config()).unwrap();
    assert_eq!(settings.config_file, None);
    assert!(
        settings.validity().contains("no config file"),
        "{}",
        settings.validity()
    );
}

#[test]
fn the_environment_is_checked_too() {
    let env = Environment::from_pairs([("PRUNEGUARD_MIN_AGE", "soon")]);
    let error = Settings::check_with(&no_config(), &env).expect_err("a bad variable is an error");
    assert!(error.0.contains("PRUNEGUARD_MIN_AGE"), "{}", error.0);
}
