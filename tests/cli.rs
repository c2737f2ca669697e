//! The command line as users meet it: `--help` (pinned by snapshots, so a renamed flag is a
//! visible change), `--version`, completions and the man page. No daemon needed.

use std::process::Command;

fn pruneguard(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pruneguard"))
        .args(args)
        .env("COLUMNS", "100")
        .env_remove("PRUNEGUARD_CONFIG")
        .env_remove("DOCKER_HOST")
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
        "--no-swarm-gate",
        "--swarm-stuck-after",
        "--wait-for-gates",
        "--wait-interval",
        "--metrics-file",
    ] {
        assert!(stdout.contains(flag), "run --help lacks {flag}");
    }
    insta::assert_snapshot!("run_help", stdout);
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
