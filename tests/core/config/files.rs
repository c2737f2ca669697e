//! The config file: every key parsed, flags over the file, and every error naming the key,
//! the file and the line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser as _;

use pruneguard::cli::{Cli, Command, OutputFormat, RunArgs};
use pruneguard::config::HostUrl;
use pruneguard::policy::{DiskPath, LabelSelector};

use super::*;

#[test]
fn defaults_with_no_config() {
    let settings = resolve(&no_config()).unwrap();
    let gates = &settings.policy.gates;
    assert_eq!(settings.config_file, None);
    assert_eq!(settings.host, HostUrl::Unix("/var/run/docker.sock".into()));
    assert_eq!(settings.policy.min_age, Duration::from_secs(24 * 3600));
    assert_eq!(gates.wait, Duration::ZERO);
    assert_eq!(gates.wait_interval, Duration::from_secs(30));
    assert_eq!(gates.disk.paths, vec![DiskPath::Auto]);
    assert_eq!(gates.disk.threshold_percent, 80);
    assert_eq!(gates.disk.inode_threshold_percent, None);
    assert_eq!(gates.quiet.period, Duration::from_secs(600));
    assert!(!gates.workload.has_selectors());
    assert_eq!(
        gates.workload.stale_lock_after,
        Duration::from_secs(6 * 3600)
    );
    assert!(gates.swarm.enabled);
    assert_eq!(gates.swarm.stuck_after, Duration::from_secs(1800));
    assert_eq!(settings.state_dir, PathBuf::from("/var/lib/pruneguard"));
    assert_eq!(settings.metrics_file, None);
    assert_eq!(settings.output, OutputFormat::Text);
    assert!(!settings.dry_run);
    assert_eq!(settings.api_timeout, Duration::from_secs(30));
}

#[test]
fn no_config_ignores_an_explicit_config_file() {
    let config = Config::new("[policy]\nmin_age = \"1h\"\n");
    let args = RunArgs {
        no_config: true,
        ..config.args()
    };
    let settings = resolve(&args).unwrap();
    assert_eq!(settings.config_file, None);
    assert_eq!(settings.policy.min_age, Duration::from_secs(24 * 3600));
}

pub fn full_file(dir: &Path) -> String {
    format!(
        r#"# every documented key
[policy]
min_age = "36h"

[gates]
wait = "15m"
wait_interval = "45s"

[gates.disk]
path = "/srv/docker"
threshold_percent = 70
inode_threshold_percent = 95

[gates.quiet]
period = "5m"

[gates.workload]
stacks = ["run-app*", "deploy-?"]
labels = ["ci.role=run-app", "ci.deploying"]
containers = ["migrate-*"]
lock_files = ["/run/deploy.lock", "/run/other.lock"]
stale_lock_after = "2h"

[gates.swarm]
enabled = false
stuck_after = "45m"

[state]
dir = "/var/lib/pg-test"

[output]
metrics_file = "{}/pruneguard.prom"
"#,
        dir.display()
    )
}

#[test]
fn every_file_key_is_parsed() {
    let metrics_dir = tempfile::tempdir().unwrap();
    let config = Config::new(&full_file(metrics_dir.path()));
    let settings = config.resolve().unwrap();
    let gates = &settings.policy.gates;
    assert_eq!(settings.config_file.as_deref(), Some(config.path.as_path()));
    assert_eq!(settings.policy.min_age, Duration::from_secs(36 * 3600));
    assert_eq!(gates.wait, Duration::from_secs(15 * 60));
    assert_eq!(gates.wait_interval, Duration::from_secs(45));
    assert_eq!(gates.disk.paths, vec![DiskPath::Path("/srv/docker".into())]);
    assert_eq!(gates.disk.threshold_percent, 70);
    assert_eq!(gates.disk.inode_threshold_percent, Some(95));
    assert_eq!(gates.quiet.period, Duration::from_secs(300));
    assert_eq!(
        patterns(&gates.workload.stacks),
        vec!["run-app*", "deploy-?"]
    );
    assert_eq!(
        gates.workload.labels,
        vec![
            LabelSelector {
                key: "ci.role".into(),
                value: Some("run-app".into())
            },
            LabelSelector {
                key: "ci.deploying".into(),
                value: None
            },
        ]
    );
    assert_eq!(patterns(&gates.workload.containers), vec!["migrate-*"]);
    assert_eq!(
        gates.workload.lock_files,
        vec![
            PathBuf::from("/run/deploy.lock"),
            PathBuf::from("/run/other.lock")
        ]
    );
    assert_eq!(gates.workload.stale_lock_after, Duration::from_secs(7200));
    assert!(!gates.swarm.enabled);
    assert_eq!(gates.swarm.stuck_after, Duration::from_secs(45 * 60));
    assert_eq!(settings.state_dir, PathBuf::from("/var/lib/pg-test"));
    assert_eq!(
        settings.metrics_file,
        Some(metrics_dir.path().join("pruneguard.prom"))
    );
    // Globs really match what they say.
    assert!(gates.workload.stacks[0].is_match("run-app-42"));
    assert!(gates.workload.stacks[1].is_match("deploy-x"));
    assert!(!gates.workload.stacks[1].is_match("deploy-xy"));
}

#[test]
fn disk_path_auto_means_the_data_root() {
    let config = Config::new("[gates.disk]\npath = \"auto\"\n");
    assert_eq!(
        config.resolve().unwrap().policy.gates.disk.paths,
        vec![DiskPath::Auto]
    );
}

#[test]
fn an_empty_file_gives_defaults() {
    let config = Config::new("");
    let settings = config.resolve().unwrap();
    assert_eq!(settings.config_file.as_deref(), Some(config.path.as_path()));
    assert_eq!(settings.policy.min_age, Duration::from_secs(24 * 3600));
    assert_eq!(settings.policy.gates.disk.threshold_percent, 80);
}

#[test]
fn flags_win_over_the_file() {
    let metrics_dir = tempfile::tempdir().unwrap();
    let flag_metrics = tempfile::tempdir().unwrap();
    let config = Config::new(&full_file(metrics_dir.path()));
    let args = RunArgs {
        host: Some("unix:///run/other.sock".into()),
        output: Some(OutputFormat::Json),
        state_dir: Some("/tmp/pg-state".into()),
        dry_run: true,
        min_age: Some(Duration::from_secs(7200)),
        disk_threshold: Some(90),
        disk_paths: vec!["/mnt/docker".into()],
        quiet_period: Some(Duration::ZERO),
        workload_stacks: vec!["flag-stack*".into()],
        workload_labels: vec!["flag=1".into()],
        workload_containers: vec!["flag-c*".into()],
        workload_lock_files: vec!["/run/flag.lock".into()],
        no_swarm_gate: true,
        swarm_stuck_after: Some(Duration::from_secs(60)),
        wait_for_gates: Some(Duration::from_secs(120)),
        wait_interval: Some(Duration::from_secs(5)),
        api_timeout: Some(Duration::from_secs(7)),
        metrics_file: Some(flag_metrics.path().join("m.prom")),
        ..config.args()
    };
    let settings = resolve(&args).unwrap();
    let gates = &settings.policy.gates;
    assert_eq!(settings.host, HostUrl::Unix("/run/other.sock".into()));
    assert_eq!(settings.output, OutputFormat::Json);
    assert_eq!(settings.state_dir, PathBuf::from("/tmp/pg-state"));
    assert!(settings.dry_run);
    assert_eq!(settings.policy.min_age, Duration::from_secs(7200));
    assert_eq!(gates.disk.threshold_percent, 90);
    assert_eq!(gates.disk.paths, vec![DiskPath::Path("/mnt/docker".into())]);
    // Flags not given: the file's values stay.
    assert_eq!(gates.disk.inode_threshold_percent, Some(95));
    assert_eq!(gates.workload.stale_lock_after, Duration::from_secs(7200));
    assert_eq!(gates.quiet.period, Duration::ZERO);
    // Repeatable flags replace the file's list, they do not add to it.
    assert_eq!(patterns(&gates.workload.stacks), vec!["flag-stack*"]);
    assert_eq!(
        gates.workload.labels,
        vec![LabelSelector {
            key: "flag".into(),
            value: Some("1".into())
        }]
    );
    assert_eq!(patterns(&gates.workload.containers), vec!["flag-c*"]);
    assert_eq!(
        gates.workload.lock_files,
        vec![PathBuf::from("/run/flag.lock")]
    );
    assert!(!gates.swarm.enabled);
    assert_eq!(gates.swarm.stuck_after, Duration::from_secs(60));
    assert_eq!(gates.wait, Duration::from_secs(120));
    assert_eq!(gates.wait_interval, Duration::from_secs(5));
    assert_eq!(settings.api_timeout, Duration::from_secs(7));
    assert_eq!(
        settings.metrics_file,
        Some(flag_metrics.path().join("m.prom"))
    );
}

#[test]
fn a_flag_for_one_list_leaves_the_other_lists_from_the_file() {
    let metrics_dir = tempfile::tempdir().unwrap();
    let config = Config::new(&full_file(metrics_dir.path()));
    let args = RunArgs {
        workload_stacks: vec!["only-this*".into()],
        ..config.args()
    };
    let settings = resolve(&args).unwrap();
    let workload = &settings.policy.gates.workload;
    assert_eq!(patterns(&workload.stacks), vec!["only-this*"]);
    assert_eq!(patterns(&workload.containers), vec!["migrate-*"]);
    assert_eq!(workload.labels.len(), 2);
    assert_eq!(workload.lock_files.len(), 2);
}

#[test]
fn flags_parse_through_clap_with_their_documented_names() {
    let config = Config::new("[policy]\nmin_age = \"36h\"\n[gates.disk]\nthreshold_percent = 70\n");
    let cli = Cli::try_parse_from([
        "pruneguard",
        "run",
        "--config",
        config.path.to_str().unwrap(),
        "--min-age",
        "2h",
        "--disk-threshold",
        "85",
        "--workload-stack",
        "a*",
        "--workload-stack",
        "b*",
        "--workload-label",
        "k=v",
        "--workload-container",
        "c*",
        "--workload-lock-file",
        "/run/x.lock",
        "--no-swarm-gate",
        "--swarm-stuck-after",
        "1h",
        "--quiet-period",
        "0s",
        "--wait-for-gates",
        "10m",
        "--wait-interval",
        "10s",
        "--dry-run",
    ])
    .unwrap();
    let Command::Run(args) = cli.command else {
        panic!("run expected");
    };
    let settings = resolve(&args).unwrap();
    let gates = &settings.policy.gates;
    assert_eq!(settings.policy.min_age, Duration::from_secs(7200));
    assert_eq!(gates.disk.threshold_percent, 85);
    assert_eq!(patterns(&gates.workload.stacks), vec!["a*", "b*"]);
    assert_eq!(gates.workload.labels[0].to_string(), "k=v");
    assert_eq!(patterns(&gates.workload.containers), vec!["c*"]);
    assert_eq!(
        gates.workload.lock_files,
        vec![PathBuf::from("/run/x.lock")]
    );
    assert!(!gates.swarm.enabled);
    assert_eq!(gates.swarm.stuck_after, Duration::from_secs(3600));
    assert_eq!(gates.quiet.period, Duration::ZERO);
    assert_eq!(gates.wait, Duration::from_secs(600));
    assert_eq!(gates.wait_interval, Duration::from_secs(10));
    assert!(settings.dry_run);

    // clap itself refuses a percentage above 100.
    assert!(Cli::try_parse_from(["pruneguard", "run", "--disk-threshold", "101"]).is_err());
    assert!(Cli::try_parse_from(["pruneguard", "run", "--min-age", "soon"]).is_err());
}

// ---------------------------------------------------------------------------------------------
// Errors name the key, the file and the line.

#[test]
fn unknown_key_names_the_key_and_the_line() {
    for (text, line, key) in [
        (
            "[policy]\nmin_age = \"24h\"\nmax_age = \"48h\"\n",
            3,
            "max_age",
        ),
        (
            "[gates.disk]\nthreshold_percent = 80\n\n[gates.dsik]\n",
            4,
            "dsik",
        ),
        ("volumes = true\n", 1, "volumes"),
        ("[gates.workload]\nstack = [\"run-app*\"]\n", 2, "stack"),
    ] {
        let error = error_starting_at(text, line);
        assert!(error.contains(&format!("`{key}`")), "{error}");
    }
}

#[test]
fn bad_duration_names_key_file_and_line() {
    for (key_line, key) in [
        ("[policy]\nmin_age = \"one day\"", "policy.min_age"),
        ("[gates]\nwait = \"5 minutes please\"", "gates.wait"),
        ("[gates]\nwait_interval = \"x\"", "gates.wait_interval"),
        ("[gates.quiet]\nperiod = \"10\"", "gates.quiet.period"),
        (
            "[gates.workload]\nstale_lock_after = \"-1h\"",
            "gates.workload.stale_lock_after",
        ),
        (
            "[gates.swarm]\nstuck_after = \"\"",
            "gates.swarm.stuck_after",
        ),
    ] {
        let error = error_naming(
            &format!("# comment\n\n{key_line}\n"),
            &format!("4: `{key}`"),
        );
        assert!(error.contains("write a duration such as"), "{error}");
    }
}

#[test]
fn wrong_types_are_errors_naming_the_key_and_the_line() {
    for (text, line, key) in [
        (
            "[gates.disk]\nthreshold_percent = \"80\"\n",
            2,
            "threshold_percent",
        ),
        ("# x\n[policy]\nmin_age = 24\n", 3, "min_age"),
        ("[gates.swarm]\nenabled = \"no\"\n", 2, "enabled"),
        ("[gates.workload]\nstacks = \"run-app*\"\n", 2, "stacks"),
    ] {
        let error = error_starting_at(text, line);
        assert!(
            error.contains(key),
            "the key {key} should be named: {error}"
        );
    }
}

#[test]
fn wait_interval_zero_is_an_error() {
    let config = Config::new("[gates]\nwait_interval = \"0s\"\n");
    let error = config.error();
    assert!(error.contains("wait_interval"), "{error}");
}

#[test]
fn percentages_outside_0_to_100_are_errors() {
    for key in ["threshold_percent", "inode_threshold_percent"] {
        for value in ["101", "-1", "1000", "256"] {
            let error = error_naming(
                &format!("[gates.disk]\n{key} = {value}\n"),
                &format!("2: `gates.disk.{key}`"),
            );
            assert!(
                error.contains(&format!("{value} is not a percentage")),
                "{error}"
            );
        }
        for value in [0, 100] {
            let config = Config::new(&format!("[gates.disk]\n{key} = {value}\n"));
            assert!(config.resolve().is_ok(), "{key} = {value} is valid");
        }
    }
}

#[test]
fn bad_globs_and_selectors_name_the_item() {
    for (body, key, line, needle) in [
        ("stacks = [\"\"]", "gates.workload.stacks", 2, "empty glob"),
        (
            "stacks = [\"  \"]",
            "gates.workload.stacks",
            2,
            "empty glob",
        ),
        (
            "stacks = [\"ok*\",\n  \"[\"]",
            "gates.workload.stacks",
            3,
            "invalid glob \"[\"",
        ),
        (
            "containers = [\"\"]",
            "gates.workload.containers",
            2,
            "empty glob",
        ),
        (
            "containers = [\"a[\"]",
            "gates.workload.containers",
            2,
            "invalid glob \"a[\"",
        ),
        (
            "labels = [\"=x\"]",
            "gates.workload.labels",
            2,
            "invalid label selector \"=x\"",
        ),
        (
            "labels = [\"\"]",
            "gates.workload.labels",
            2,
            "invalid label selector",
        ),
        (
            "labels = [\"a b=c\"]",
            "gates.workload.labels",
            2,
            "invalid label selector",
        ),
        (
            "lock_files = [\"\"]",
            "gates.workload.lock_files",
            2,
            "empty path",
        ),
    ] {
        let error = error_naming(
            &format!("[gates.workload]\n{body}\n"),
            &format!("{line}: `{key}"),
        );
        assert!(error.contains(needle), "expected {needle:?} in {error}");
    }
}

#[test]
fn bad_globs_and_selectors_from_flags_name_the_flag() {
    let cases: [(RunArgs, &str, &str); 4] = [
        (
            RunArgs {
                workload_stacks: vec![String::new()],
                ..no_config()
            },
            "--workload-stack",
            "empty glob",
        ),
        (
            RunArgs {
                workload_containers: vec!["[".into()],
                ..no_config()
            },
            "--workload-container",
            "invalid glob",
        ),
        (
            RunArgs {
                workload_labels: vec!["=x".into()],
                ..no_config()
            },
            "--workload-label",
            "\"=x\"",
        ),
        (
            RunArgs {
                workload_lock_files: vec![PathBuf::new()],
                ..no_config()
            },
            "--workload-lock-file",
            "empty path",
        ),
    ];
    for (args, flag, needle) in cases {
        let error = resolve_error(&args);
        assert!(error.contains(flag) && error.contains(needle), "{error}");
    }
}

#[test]
fn relative_paths_in_the_file_are_errors() {
    for (table, key) in [
        ("state", "dir"),
        ("output", "metrics_file"),
        ("gates.disk", "path"),
    ] {
        let error = error_naming(
            &format!("[{table}]\n{key} = \"relative/dir\"\n"),
            &format!("2: `{table}.{key}`"),
        );
        assert!(error.contains("not an absolute path"), "{error}");
    }
}

#[test]
fn missing_config_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let error = resolve_error(&RunArgs {
        config: Some(path.clone()),
        ..RunArgs::default()
    });
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("--no-config"), "{error}");
}

#[test]
fn metrics_file_in_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("pruneguard.prom");
    // From the file.
    let config = Config::new(&format!(
        "[output]\nmetrics_file = \"{}\"\n",
        missing.display()
    ));
    let error = config.error();
    assert!(error.contains(&missing.display().to_string()), "{error}");
    assert!(error.contains("does not exist"), "{error}");
    // From the flag.
    let error = resolve_error(&RunArgs {
        metrics_file: Some(missing.clone()),
        ..no_config()
    });
    assert!(error.contains(&missing.display().to_string()), "{error}");
    // An existing directory is fine.
    let ok = RunArgs {
        metrics_file: Some(dir.path().join("pruneguard.prom")),
        ..no_config()
    };
    assert!(resolve(&ok).is_ok());
}
