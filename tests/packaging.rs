//! Packaging checks: runs `tests/packaging/check.sh`, which parses every `.nix` file, evaluates
//! `nix/module.nix` structurally with stand-ins for nixpkgs, and runs `systemd-analyze verify`
//! (and an exposure ceiling from `systemd-analyze security`) on the units the module generates
//! and on `contrib/systemd/`. The full NixOS check is the flake's VM test (`nix/vm-test.nix`).
//!
//! It also runs `tests/packaging/deb.sh`: the Debian package built with cargo-deb, installed
//! into a fresh Debian 12 root filesystem (debootstrap, cached), checked there and purged.
//!
//! Needs `nix-instantiate` and `nix` (Debian: `nix-bin`) and `systemd-analyze` (Debian:
//! `systemd`); the .deb check needs root (it installs debootstrap and cargo-deb when missing).
//! Without them a test is skipped on a developer machine, but fails when `CI=true` or
//! `PRUNEGUARD_REQUIRE_DOCKER=1`: there a missing tool is a broken setup, not a reason to pass.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLS: [&str; 3] = ["nix-instantiate", "nix", "systemd-analyze"];

fn on_path(tool: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|paths| env::split_paths(&paths).any(|dir| is_executable(&dir.join(tool))))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn required() -> bool {
    env::var("CI").is_ok_and(|value| value == "true" || value == "1")
        || env::var("PRUNEGUARD_REQUIRE_DOCKER").is_ok_and(|value| value == "1")
}

#[test]
fn packaging_checks_pass() {
    let missing: Vec<&str> = TOOLS.into_iter().filter(|tool| !on_path(tool)).collect();
    if !missing.is_empty() {
        let message = format!(
            "packaging checks need {} on PATH (apt-get install nix-bin systemd)",
            missing.join(", ")
        );
        assert!(
            !required(),
            "{message}; CI=true or PRUNEGUARD_REQUIRE_DOCKER=1 is set, so this is a failure"
        );
        eprintln!("SKIPPED: {message}");
        return;
    }

    run_script("tests/packaging/check.sh", "packaging checks:");
}

/// The .deb, installed into a fresh Debian 12 root, run there, verified and purged.
#[test]
fn debian_package_installs_runs_and_purges_cleanly() {
    if !rustix::process::geteuid().is_root() {
        let message = "the .deb check needs root (debootstrap, chroot, mounts)";
        assert!(
            !required(),
            "{message}; CI=true or PRUNEGUARD_REQUIRE_DOCKER=1 is set, so this is a failure"
        );
        eprintln!("SKIPPED: {message}");
        return;
    }
    run_script("tests/packaging/deb.sh", "deb checks:");
}

/// Runs `script` (relative to the repository) with bash; it must succeed and print its
/// summary line, `summary N ok, 0 failing`.
fn run_script(script: &str, summary: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = root.join(script);
    let output = Command::new("bash")
        .arg(&script)
        // check.sh runs the module's build-time `config --check` with the real binary.
        .env("PRUNEGUARD_BIN", env!("CARGO_BIN_EXE_pruneguard"))
        .current_dir(&root)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        script.display(),
        output.status
    );
    assert!(
        stdout.contains(summary) && stdout.contains(", 0 failing"),
        "{} did not print its summary:\n{stdout}",
        script.display()
    );
}
