//! The command line as users meet it: `--help` (pinned by snapshots, so a renamed flag is a
//! visible change), `--version`, completions and the man page. No daemon needed.

use std::process::Command;

use pruneguard::config::ENV_VARS;

fn pruneguard(args: &[&str]) -> (i32, String, String) {
    pruneguard_with(args, &[])
}

/// The binary with `args`, none of the settings' variables but `env`.
fn pruneguard_with(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pruneguard"));
    command.args(args).env("COLUMNS", "100");
    for name in ENV_VARS {
        command.env_remove(name);
    }
    let output = command
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn top_level_help_lists_the_commands_and_the_exit_statuses() {
    let (code, stdout, _) = pruneguard(&["--help"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("help", stdout);
}

/// Every subcommand's `--help`, pinned: a renamed or vanished flag is a visible change.
#[test]
fn every_subcommand_help_is_pinned() {
    for subcommand in ["plan", "doctor", "config", "status", "completions", "man"] {
        let (code, stdout, stderr) = pruneguard(&[subcommand, "--help"]);
        assert_eq!(code, 0, "{subcommand}: {stderr}");
        insta::assert_snapshot!(format!("{subcommand}_help"), stdout);
    }
}

/// clap's own consistency checks of the whole definition (conflicting names, bad defaults).
#[test]
fn the_command_line_definition_is_consistent() {
    use clap::CommandFactory as _;
    pruneguard::cli::Cli::command().debug_assert();
}

/// `pruneguard … | head` closes the pipe early: that is not an error (exit 0, nothing on
/// stderr), as with ripgrep. The reading end is closed before the command even starts.
#[test]
fn a_reader_that_went_away_is_not_an_error() {
    for args in [
        &["man"][..],
        &["completions", "bash"],
        &["config", "--no-config"],
    ] {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let mut command = Command::new(env!("CARGO_BIN_EXE_pruneguard"));
        for name in ENV_VARS {
            command.env_remove(name);
        }
        let output = command
            .args(args)
            .stdout(writer)
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn run_help_documents_every_contract_flag() {
    let (code, stdout, _) = pruneguard(&["run", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--config",
        "--no-config",
        "--host",
        "-H",
        "--dry-run",
        "--output",
        "--min-age",
        "--disk-threshold",
        "--disk-path",
        "--quiet-period",
        "--state-dir",
        "--workload-stack",
        "--workload-label",
        "--workload-container",
        "--workload-lock-file",
        "--disk-inode-threshold",
        "--workload-stale-lock-after",
        "--no-swarm-gate",
        "--swarm-stuck-after",
        "--api-timeout",
        "--wait-for-gates",
        "--wait-interval",
        "--metrics-file",
    ] {
        assert!(stdout.contains(flag), "run --help lacks {flag}");
    }
    // clap reads no environment (the settings do): the help names each variable itself.
    // Only `watch` has --interval (`watch.interval`).
    for name in ENV_VARS
        .iter()
        .filter(|name| **name != "PRUNEGUARD_WATCH_INTERVAL")
    {
        assert!(
            stdout.contains(&format!("[env: {name}]")),
            "run --help lacks {name}"
        );
    }
    insta::assert_snapshot!("run_help", stdout);
}

/// `watch --help` teaches the interval, the jitter, the metrics address, the signals and what
/// the exit status means for a supervisor; it takes every flag of a run as well.
#[test]
fn watch_help_documents_interval_metrics_and_signals() {
    let (code, stdout, _) = pruneguard(&["watch", "--help"]);
    assert_eq!(code, 0);
    for needle in [
        "--interval <DURATION>",
        "[env: PRUNEGUARD_WATCH_INTERVAL] [key: watch.interval]",
        "--metrics-listen <ADDR>",
        "GET /metrics",
        "90 % to 110 %",
        "SIGTERM or SIGINT during a tick",
        "exits 0",
        "Restart=on-failure",
        "--swarm-stuck-after",
        "[env: PRUNEGUARD_MIN_AGE]",
    ] {
        assert!(
            stdout.contains(needle),
            "watch --help lacks {needle:?}:\n{stdout}"
        );
    }
    insta::assert_snapshot!("watch_help", stdout);
}

#[test]
fn version_names_the_crate_version() {
    let (code, stdout, _) = pruneguard(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("pruneguard {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, stderr) = pruneguard(&["run", "--disk-threshold", "101"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--disk-threshold"), "{stderr}");
    let (code, _, _) = pruneguard(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn completions_and_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, stdout, stderr) = pruneguard(&["completions", shell]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.contains("wait-for-gates"),
            "{shell} completion lacks the run flags"
        );
    }
    let (code, stdout, _) = pruneguard(&["man"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(".TH pruneguard"), "not a roff man page");
    assert!(stdout.contains("Exit status"));
}

#[test]
fn status_reads_the_state_dir_of_its_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(
        state.join("last-run.json"),
        r#"{"started_at":"2024-05-01T03:00:00Z","dry_run":false,"decision":"skipped",
            "summary":"Skipped: the disk gate is closed.","gates":[],"removed":[],
            "reclaimed_bytes":0}"#,
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[state]\ndir = \"{}\"\n", state.display())).unwrap();
    let config = config.to_str().unwrap();

    let (code, stdout, stderr) = pruneguard(&["status", "--config", config]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("decision skipped"), "{stdout}");
    let (code, stdout, stderr) = pruneguard_with(
        &["status", "--output", "json"],
        &[("PRUNEGUARD_CONFIG", config)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"decision\":\"skipped\""), "{stdout}");
    // --no-config: the default directory, which holds no report here.
    let (code, _, stderr) = pruneguard(&["status", "--config", config, "--no-config"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("/var/lib/pruneguard"), "{stderr}");
}

#[test]
fn unsupported_hosts_and_short_timeouts_are_usage_errors_before_any_connection() {
    for args in [
        &["run", "--no-config", "-H", "https://127.0.0.1:1"][..],
        &["plan", "--no-config", "-H", "ssh://me@127.0.0.1"],
        &[
            "run",
            "--no-config",
            "--api-timeout",
            "500ms",
            "-H",
            "tcp://127.0.0.1:1",
        ],
    ] {
        let (code, stdout, stderr) = pruneguard(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains("engine."), "names the key: {stderr}");
    }
    let (code, _, stderr) =
        pruneguard_with(&["config", "--no-config"], &[("DOCKER_HOST", "https://x")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("environment variable DOCKER_HOST"),
        "{stderr}"
    );
}

#[test]
fn config_output_loads_back_as_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    let (code, first, stderr) = pruneguard_with(
        &[
            "config",
            "--no-config",
            "--min-age",
            "7d",
            "--workload-stack",
            "a*",
        ],
        &[
            ("PRUNEGUARD_API_TIMEOUT", "90s"),
            ("DOCKER_HOST", "tcp://10.0.0.2"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "min_age = \"7d\"",
        "api_timeout = \"90s\"",
        "host = \"tcp://10.0.0.2:2375\"",
    ] {
        assert!(first.contains(line), "{line} in {first}");
    }
    let file = dir.path().join("config.toml");
    std::fs::write(&file, &first).unwrap();
    let (code, second, stderr) = pruneguard(&["config", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let body = |text: &str| text.split_once('\n').unwrap().1.to_string();
    assert_eq!(body(&second), body(&first));
}

/// The README's settings table: one row per key `pruneguard config` prints, each with its
/// flag (in `run --help`) and variable (read by the settings), or `—`.
#[test]
fn readme_lists_every_setting_with_its_flag_and_variable() {
    let readme = include_str!("../../README.md");
    let configure = readme
        .split("\n## ")
        .find(|section| section.starts_with("Configure\n"))
        .expect("README has a Configure section");
    let rows: Vec<Vec<&str>> = configure
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| line.trim_matches('|').split(" | ").map(str::trim).collect())
        .filter(|cells: &Vec<&str>| cells.len() == 4)
        .collect();
    let (_, help, _) = pruneguard(&["run", "--help"]);
    let (_, watch_help, _) = pruneguard(&["watch", "--help"]);
    let (_, effective, _) = pruneguard(&["config", "--no-config"]);
    let mut table = String::new();
    let mut printed = Vec::new();
    for line in effective.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.to_string();
        } else if let Some(key) = line.split(" = ").next().filter(|_| line.contains(" = ")) {
            printed.push(format!("{table}.{key}"));
        } else if let Some((key, _)) = line
            .strip_prefix("# ")
            .and_then(|rest| rest.split_once(" is not set"))
        {
            printed.push(format!("{table}.{key}"));
        }
    }
    let keys: Vec<String> = rows
        .iter()
        .map(|row| row[0].trim_matches('`').to_string())
        .collect();
    assert_eq!(
        keys, printed,
        "the README table lists the printed keys, in order"
    );
    let mut variables = Vec::new();
    for row in &rows {
        // `—`: the key has no flag (the tiers' keys other than `enabled`).
        for flag in row[1].split(", ").filter(|flag| *flag != "—") {
            let flag = flag.trim_matches('`');
            // `watch.*` keys have their flag on `watch` only.
            let (command, text) = if row[0].starts_with("`watch.") {
                ("watch", &watch_help)
            } else {
                ("run", &help)
            };
            assert!(
                text.contains(flag),
                "{flag} ({}) is not in {command} --help",
                row[0]
            );
        }
        if row[2] != "—" {
            // A key may have an alias variable (`PRUNEGUARD_DISK_PATHS`, `PRUNEGUARD_DISK_PATH`).
            variables.extend(row[2].split(", ").map(|name| name.trim_matches('`')));
        }
    }
    for name in ENV_VARS.iter().filter(|name| **name != "PRUNEGUARD_CONFIG") {
        assert!(
            variables.contains(name),
            "{name} is not in the README table"
        );
    }
}

/// `config --check`: one line and exit 0 for a valid file (whose metrics directory exists only
/// on the target), exit 2 with `file:line` for a misspelt key, and nothing created anywhere.
#[test]
fn config_check_validates_a_file_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let valid = dir.path().join("valid.toml");
    std::fs::write(
        &valid,
        format!(
            "[state]\ndir = \"{}\"\n[output]\nmetrics_file = \"{}/metrics/m.prom\"\n",
            state.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let valid_arg = valid.to_str().unwrap();
    let (code, stdout, stderr) = pruneguard(&["config", "--check", "--config", valid_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, format!("{valid_arg} is valid\n"));
    assert!(!state.exists() && !dir.path().join("metrics").exists());

    // Without --check the same file is refused: its metrics directory does not exist here.
    let (code, _, stderr) = pruneguard(&["config", "--config", valid_arg]);
    assert_eq!(code, 2, "{stderr}");

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[gates.disk]\n\ntreshold_percent = 70\n").unwrap();
    let typo_arg = typo.to_str().unwrap();
    let (code, stdout, stderr) = pruneguard(&["config", "--check", "--config", typo_arg]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!("{typo_arg}:3:")) && stderr.contains("treshold_percent"),
        "{stderr}"
    );
}

/// The global flags mean the same before the subcommand as after it: `config` prints what
/// they set, identically in both places.
#[test]
fn global_flags_work_before_and_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[policy]\nmin_age = \"48h\"\n").unwrap();
    let config = config.to_str().unwrap();
    let flags = [
        "--config",
        config,
        "-H",
        "tcp://127.0.0.1:2375",
        "--output",
        "json",
        "--state-dir",
        "/srv/pg-state",
    ];
    let before: Vec<&str> = flags.iter().copied().chain(["config"]).collect();
    let after: Vec<&str> = ["config"].into_iter().chain(flags).collect();
    let (code, printed_before, stderr) = pruneguard(&before);
    assert_eq!(code, 0, "{before:?}: {stderr}");
    let (code, printed_after, stderr) = pruneguard(&after);
    assert_eq!(code, 0, "{after:?}: {stderr}");
    assert_eq!(printed_before, printed_after);
    for set in [
        "min_age = \"48h\"",
        "host = \"tcp://127.0.0.1:2375\"",
        "format = \"json\"",
        "dir = \"/srv/pg-state\"",
    ] {
        assert!(printed_before.contains(set), "{set}: {printed_before}");
    }
    // --no-config before the subcommand drops the file.
    let (code, printed, stderr) = pruneguard(&["--no-config", "--config", config, "config"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!printed.contains("min_age = \"48h\""), "{printed}");
}

/// A bad config file named before `plan` or `run` is read, and refused, as it is after them.
#[test]
fn a_config_flag_before_plan_or_run_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[gates.disk]\ntreshold_percent = 70\n").unwrap();
    let config = config.to_str().unwrap();
    for args in [
        &["--config", config, "plan"][..],
        &["plan", "--config", config],
        &["--config", config, "run"],
    ] {
        let (code, _, stderr) = pruneguard(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(config), "{args:?}: {stderr}");
        assert!(stderr.contains("treshold_percent"), "{args:?}: {stderr}");
    }
}

/// `status` takes the global flags too, `--state-dir` and `--output` before its name included.
#[test]
fn status_takes_the_global_flags_before_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("last-run.json"),
        r#"{"started_at":"2024-05-01T03:00:00Z","dry_run":false,"decision":"skipped",
            "summary":"Skipped: the disk gate is closed.","gates":[],"removed":[],
            "reclaimed_bytes":0}"#,
    )
    .unwrap();
    let state = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = pruneguard(&[
        "--no-config",
        "--state-dir",
        state,
        "--output",
        "json",
        "-H",
        "unix:///nowhere.sock",
        "status",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"decision\":\"skipped\""), "{stdout}");
    let (code, stdout, stderr) = pruneguard(&["--no-config", "--state-dir", state, "status"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("decision skipped"), "{stdout}");
}

/// `plan --help` shows only what applies to a plan: it is always dry, takes no lock and writes
/// neither a report nor metrics. `--dry-run` is still accepted (a run's flags work for a plan).
#[test]
fn plan_help_shows_only_what_applies_to_a_plan() {
    let (code, help, _) = pruneguard(&["plan", "--help"]);
    assert_eq!(code, 0);
    assert!(
        !help
            .lines()
            .any(|line| line.trim_start().starts_with("--dry-run")),
        "{help}"
    );
    assert!(!help.contains("run lock"), "{help}");
    assert!(
        help.contains("Not used by a plan, which takes no lock and writes no report"),
        "{help}"
    );
    let (_, run_help, _) = pruneguard(&["run", "--help"]);
    assert!(
        run_help
            .lines()
            .any(|line| line.trim_start().starts_with("--dry-run")),
        "{run_help}"
    );
    assert!(run_help.contains("Where the run lock"), "{run_help}");
    // Accepted: the refusal is the daemon's, not a usage error.
    let (code, _, stderr) = pruneguard(&[
        "plan",
        "--no-config",
        "--dry-run",
        "-H",
        "unix:///nonexistent/docker.sock",
    ]);
    assert_ne!(code, 2, "{stderr}");
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}
