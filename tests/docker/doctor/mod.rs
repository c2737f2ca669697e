//! `pruneguard doctor` end to end: the built binary against a private daemon (healthy data
//! root, data root on tmpfs) and without one (unreachable daemon, registry credentials that
//! must never leak, file modes, conflicting prune units, a broken config file).
//!
//! Every run is isolated from the host: `DOCKER_CONFIG` and `HOME` point into a temp dir,
//! `PRUNEGUARD_UNIT_DIRS` replaces the systemd unit directories, `--state-dir` is a temp dir,
//! and every other `PRUNEGUARD_*`/`DOCKER_*` variable is removed. The sandbox tests need root
//! and Docker (`scripts/test.sh`); they fail, never skip, when the sandbox cannot start.
//!
//! - `swarm_manager`: the `swarm_manager` check against a real manager and worker.

mod swarm_manager;

use crate::support;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use pruneguard::doctor::CheckName;
use serde_json::Value;
use support::{Run, Sandbox, run};

const NO_DAEMON: &str = "unix:///nonexistent.sock";
/// Every check's name, in report order.
fn check_names() -> Vec<&'static str> {
    CheckName::ALL.iter().map(|name| name.as_str()).collect()
}

/// A private world for one doctor run: Docker client config, unit dirs, state dir.
pub(super) struct World {
    tmp: tempfile::TempDir,
}

impl World {
    pub(super) fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("pgdoctor.")
            .tempdir()
            .expect("temp dir");
        let world = Self { tmp };
        for dir in ["docker-config", "units", "home", "state-parent"] {
            fs::create_dir_all(world.path(dir)).expect("mkdir");
        }
        world
    }

    pub(super) fn path(&self, relative: &str) -> PathBuf {
        self.tmp.path().join(relative)
    }

    fn docker_config_file(&self) -> PathBuf {
        self.path("docker-config/config.json")
    }

    /// Writes `config.json` with mode 0600.
    fn write_docker_config(&self, text: &str) -> PathBuf {
        let path = self.docker_config_file();
        fs::write(&path, text).expect("write config.json");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    pub(super) fn state_dir(&self) -> PathBuf {
        self.path("state-parent/state")
    }

    /// The binary, isolated from the host's environment, with `doctor -H HOST --state-dir …`.
    pub(super) fn doctor(&self, host: &str) -> Command {
        self.doctor_with_state_dir(host, &self.state_dir())
    }

    fn doctor_with_state_dir(&self, host: &str, state_dir: &Path) -> Command {
        let mut cmd = support::bare_pruneguard();
        cmd.env("DOCKER_CONFIG", self.path("docker-config"))
            .env("HOME", self.path("home"))
            .env("PRUNEGUARD_UNIT_DIRS", self.path("units"))
            .arg("doctor")
            .arg("-H")
            .arg(host)
            .arg("--state-dir")
            .arg(state_dir);
        cmd
    }
}

fn with_args<I, S>(mut cmd: Command, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    cmd.args(args);
    cmd
}

/// Runs doctor with `--output json` and parses stdout, checking the document's shape.
pub(super) fn run_json(cmd: Command) -> (Run, Value) {
    let run = run(with_args(cmd, ["--output", "json"]));
    let json = run.json().clone();
    assert!(
        run.stdout.starts_with("{\"schema_version\":1,"),
        "{}",
        run.stdout
    );
    // serde_json's map is sorted; the order on the wire is pinned by the prefix above.
    let keys: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "checks",
            "healthy",
            "image_data",
            "image_store",
            "schema_version"
        ]
    );
    let names: Vec<&str> = json["checks"]
        .as_array()
        .expect("checks is an array")
        .iter()
        .map(|check| {
            let fields: Vec<&str> = check
                .as_object()
                .expect("a check is an object")
                .keys()
                .map(String::as_str)
                .collect();
            let status = check["status"].as_str().expect("status");
            // The daemon check names the engine it talked to, when it answered.
            if check["name"] == "daemon" && status == "ok" {
                assert_eq!(
                    fields,
                    ["detail", "engine", "fix", "name", "status"],
                    "{check}"
                );
                assert!(
                    matches!(check["engine"].as_str(), Some("docker" | "podman")),
                    "{check}"
                );
            } else {
                assert_eq!(fields, ["detail", "fix", "name", "status"], "{check}");
            }
            assert!(matches!(status, "ok" | "warn" | "fail"), "{check}");
            assert_eq!(
                check["fix"].as_str().expect("fix").is_empty(),
                status == "ok",
                "a fix exactly when not ok: {check}"
            );
            check["name"].as_str().expect("name")
        })
        .collect();
    assert_eq!(names, check_names(), "every check, in order");
    assert_eq!(
        json["healthy"].as_bool().expect("healthy"),
        run.code == 0,
        "healthy matches the exit status"
    );
    (run, json)
}

pub(super) fn check<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|check| check["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {json}"))
}

pub(super) fn status<'a>(json: &'a Value, name: &str) -> &'a str {
    check(json, name)["status"].as_str().expect("status")
}

pub(super) fn detail<'a>(json: &'a Value, name: &str) -> &'a str {
    check(json, name)["detail"].as_str().expect("detail")
}

/// The text line of a check: `STATUS  NAME  detail`.
fn text_line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{stdout}"))
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
// ---------------------------------------------------------------------------------------------
// Without a daemon

#[test]
fn unreachable_daemon_fails_and_the_other_checks_still_run() {
    let world = World::new();
    let auth = base64(b"ci-bot:hunter2");
    world.write_docker_config(&format!(
        r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#
    ));

    let text = run(with_args(world.doctor(NO_DAEMON), ["--no-config"]));
    assert_eq!(text.code, 1, "{}\n{}", text.stdout, text.stderr);
    let daemon = text_line(&text.stdout, "daemon");
    assert!(daemon.starts_with("fail  daemon"), "{daemon}");
    assert!(daemon.contains("/nonexistent.sock"), "{daemon}");
    assert!(
        text.stdout.contains("fix: start dockerd"),
        "{}",
        text.stdout
    );
    assert!(
        text_line(&text.stdout, "data_root").contains("daemon unreachable"),
        "{}",
        text.stdout
    );
    for name in check_names() {
        text_line(&text.stdout, name);
    }
    assert_eq!(
        text.stdout.lines().last(),
        Some("1 check(s) failed, 2 warning(s)"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("hunter2") && !text.stdout.contains(&auth));

    let (json_run, json) = run_json(with_args(world.doctor(NO_DAEMON), ["--no-config"]));
    assert_eq!(json_run.code, 1);
    assert_eq!(json["healthy"], false);
    assert_eq!(status(&json, "daemon"), "fail");
    assert_eq!(status(&json, "data_root"), "warn");
    assert!(detail(&json, "data_root").contains("daemon unreachable"));
    assert_eq!(status(&json, "image_store"), "warn");
    assert!(json["image_store"].is_null(), "{json}");
    for name in [
        "config",
        "registry_auth",
        "registry_auth_file_mode",
        "prune_timers",
        "policy",
        "state_dir",
        "swarm_manager",
    ] {
        assert_eq!(status(&json, name), "ok", "{name}: {json}");
    }
    assert!(detail(&json, "registry_auth").contains("as ci-bot"));
    // Doctor changes nothing on the host: it says what a run would create instead.
    assert!(
        !world.state_dir().exists(),
        "doctor must not create the state dir"
    );
    assert!(
        detail(&json, "state_dir").contains("the first run will create it"),
        "{json}"
    );
    assert!(
        text_line(&text.stdout, "state_dir").contains("doctor created nothing"),
        "{}",
        text.stdout
    );
    // An existing state dir: looked at, written to by nothing (no probe file, no mtime change).
    fs::create_dir(world.state_dir()).expect("mkdir");
    let before = fs::metadata(world.state_dir())
        .and_then(|meta| meta.modified())
        .expect("mtime");
    let (_, json) = run_json(with_args(world.doctor(NO_DAEMON), ["--no-config"]));
    assert_eq!(status(&json, "state_dir"), "ok", "{json}");
    assert!(detail(&json, "state_dir").contains("exists and is writable"));
    assert_eq!(fs::read_dir(world.state_dir()).expect("list").count(), 0);
    let after = fs::metadata(world.state_dir())
        .and_then(|meta| meta.modified())
        .expect("mtime");
    assert_eq!(before, after, "doctor wrote into the state dir");
}

/// Each config.json variant: its verdict, and no secret in stdout or stderr (trace logs on),
/// text or JSON.
#[test]
fn registry_credentials_never_leak() {
    const PASSWORD: &str = "pw-Zq8!xK2#secret";
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.identity-token-value";
    const REGISTRY_TOKEN: &str = "registry-token-value-9f8e7d";
    let auth = base64(format!("ci-bot:{PASSWORD}").as_bytes());
    let unparsable = base64(PASSWORD.as_bytes()); // base64, but no `user:`
    // (config.json, expected status, text the detail must contain)
    let table: Vec<(String, &str, &str)> = vec![
        (
            format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#),
            "ok",
            "as ci-bot",
        ),
        (
            format!(
                r#"{{"auths":{{"index.docker.io":{{"username":"deployer","password":"{PASSWORD}","registrytoken":"{REGISTRY_TOKEN}"}}}}}}"#
            ),
            "ok",
            "as deployer",
        ),
        (
            format!(r#"{{"auths":{{"docker.io":{{"identitytoken":"{TOKEN}"}}}}}}"#),
            "ok",
            "identity token",
        ),
        (
            r#"{"auths":{"https://index.docker.io/v1/":{}},"credsStore":"desktop"}"#.into(),
            "warn",
            "credential store `desktop`",
        ),
        (
            r#"{"credHelpers":{"registry-1.docker.io":"pass"}}"#.into(),
            "warn",
            "credential helper `pass`",
        ),
        ("{}".into(), "warn", "no Docker Hub credentials"),
        (
            format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{auth}"}}}}}}"#),
            "warn",
            "no Docker Hub credentials",
        ),
        (
            format!(r#"{{"auths":{{"docker.io":{{"auth":"{auth}","#),
            "fail",
            "not valid JSON",
        ),
        (
            format!(r#"{{"auths":{{"docker.io":{{"auth":"{unparsable}"}}}}}}"#),
            "fail",
            "not base64 of `user:password`",
        ),
        (
            format!(r#"{{"auths":{{"docker.io":{{"auth":"{PASSWORD}"}}}}}}"#),
            "fail",
            "not base64 of `user:password`",
        ),
        (
            format!(r#"{{"auths":{{"docker.io":{{"auth":["{PASSWORD}"]}}}}}}"#),
            "fail",
            "is not a string",
        ),
    ];
    let secrets = [
        PASSWORD.to_string(),
        TOKEN.to_string(),
        REGISTRY_TOKEN.to_string(),
        auth.clone(),
        unparsable.clone(),
        base64(PASSWORD.as_bytes()),
    ];
    for (config, expected_status, expected_detail) in table {
        let world = World::new();
        world.write_docker_config(&config);
        let args = ["--no-config", "-vv"];
        let text = run(with_args(world.doctor(NO_DAEMON), args));
        let (json_run, json) = run_json(with_args(world.doctor(NO_DAEMON), args));
        assert_eq!(
            status(&json, "registry_auth"),
            expected_status,
            "{config}: {json}"
        );
        assert!(
            detail(&json, "registry_auth").contains(expected_detail),
            "{config}: {json}"
        );
        let line = text_line(&text.stdout, "registry_auth");
        assert!(line.starts_with(expected_status), "{config}: {line}");
        for output in [
            &text.stdout,
            &text.stderr,
            &json_run.stdout,
            &json_run.stderr,
        ] {
            for secret in &secrets {
                assert!(
                    !output.contains(secret.as_str()),
                    "{config}: the output shows {secret:?}:\n{output}"
                );
            }
        }
        // Doctor went on after a bad config.json.
        assert_eq!(status(&json, "state_dir"), "ok");
    }
}

#[test]
fn world_readable_docker_config_warns_with_chmod_600() {
    let world = World::new();
    let path = world.write_docker_config(r#"{"credsStore":"desktop"}"#);
    // (mode, expected status)
    for (mode, expected) in [
        (0o644, "warn"),
        (0o604, "warn"),
        (0o640, "ok"),
        (0o600, "ok"),
    ] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        let (_, json) = run_json(with_args(world.doctor(NO_DAEMON), ["--no-config"]));
        let mode_check = check(&json, "registry_auth_file_mode");
        assert_eq!(mode_check["status"], expected, "{mode:o}: {mode_check}");
        if expected == "warn" {
            assert_eq!(
                mode_check["fix"],
                format!("chmod 600 {}", path.display()),
                "{mode_check}"
            );
            assert!(
                mode_check["detail"]
                    .as_str()
                    .expect("detail")
                    .contains(&format!("{mode:04o}")),
                "{mode_check}"
            );
        }
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let text = run(with_args(world.doctor(NO_DAEMON), ["--no-config"]));
    assert!(
        text_line(&text.stdout, "registry_auth_file_mode").starts_with("warn"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains(&format!("fix: chmod 600 {}", path.display())),
        "{}",
        text.stdout
    );
}

fn write_unit(dir: &Path, name: &str, text: &str) -> PathBuf {
    fs::create_dir_all(dir).expect("mkdir");
    let path = dir.join(name);
    fs::write(&path, text).expect("write unit");
    path
}

#[test]
fn conflicting_prune_units_are_named() {
    // NixOS autoPrune with --all: the unit runs a generated script, which holds the command.
    let world = World::new();
    let units = world.path("units");
    let script = world.path("docker-prune-start");
    fs::write(
        &script,
        "#!/bin/sh\nset -e\n/nix/store/x-docker/bin/docker system prune -f --all\n",
    )
    .expect("write script");
    let service = write_unit(
        &units,
        "docker-prune.service",
        &format!(
            "[Unit]\nDescription=Prune docker resources\nAfter=docker.service\n\n[Service]\nType=oneshot\nExecStart={}\n",
            script.display()
        ),
    );
    let timer = write_unit(
        &units,
        "docker-prune.timer",
        "[Timer]\nOnCalendar=weekly\nPersistent=true\n",
    );
    fs::create_dir_all(units.join("timers.target.wants")).expect("mkdir");
    std::os::unix::fs::symlink(&timer, units.join("timers.target.wants/docker-prune.timer"))
        .expect("symlink");
    write_unit(
        &units,
        "sshd.service",
        "[Service]\nExecStart=/usr/sbin/sshd -D\n",
    );

    let (run_all, json) = run_json(with_args(world.doctor(NO_DAEMON), ["--no-config"]));
    let timers = check(&json, "prune_timers");
    assert_eq!(timers["status"], "fail", "{timers}");
    let text = timers["detail"].as_str().expect("detail");
    assert!(
        text.contains(&format!("docker-prune.service ({})", service.display())),
        "{timers}"
    );
    assert!(text.contains("docker-prune.timer"), "{timers}");
    assert!(text.contains("--all"), "{timers}");
    assert!(!text.contains("sshd"), "{timers}");
    let fix = timers["fix"].as_str().expect("fix");
    assert!(
        fix.contains("virtualisation.docker.autoPrune.enable = false"),
        "{fix}"
    );
    assert!(fix.contains("docker-prune.service"), "{fix}");
    assert_eq!(run_all.code, 1);

    // A plain dangling-only prune service elsewhere: a warning naming it.
    let world = World::new();
    let other = world.path("units-b");
    let plain = write_unit(
        &other,
        "image-gc.service",
        "[Service]\nType=oneshot\nExecStart=/usr/bin/docker image prune -f\n",
    );
    let mut cmd = with_args(world.doctor(NO_DAEMON), ["--no-config"]);
    cmd.env(
        "PRUNEGUARD_UNIT_DIRS",
        format!("{}:{}", world.path("units").display(), other.display()),
    );
    let (_, json) = run_json(cmd);
    let timers = check(&json, "prune_timers");
    assert_eq!(timers["status"], "warn", "{timers}");
    assert!(
        timers["detail"]
            .as_str()
            .expect("detail")
            .contains(&format!("image-gc.service ({})", plain.display())),
        "{timers}"
    );
    assert!(
        timers["detail"]
            .as_str()
            .expect("detail")
            .contains("docker image prune")
    );

    // An empty unit dir list is fine (and scans nothing of the host).
    let mut cmd = with_args(world.doctor(NO_DAEMON), ["--no-config"]);
    cmd.env("PRUNEGUARD_UNIT_DIRS", world.path("units"));
    let (_, json) = run_json(cmd);
    assert_eq!(status(&json, "prune_timers"), "ok");
}

#[test]
fn malformed_config_toml_fails_config_and_doctor_goes_on() {
    let world = World::new();
    world.write_docker_config(r#"{"auths":{"docker.io":{"username":"ci"}}}"#);
    // (config text, what the config check must name)
    let table = [
        ("[policy\nmin_age = \"24h\"\n", "unclosed table"),
        ("[policy]\nmin_age = \"soon\"\n", "policy.min_age"),
        ("[policy]\nmin_agee = \"24h\"\n", "min_agee"),
        (
            "[gates.disk]\nthreshold_percent = 140\n",
            "threshold_percent",
        ),
    ];
    for (toml, expected) in table {
        let config = world.path("config.toml");
        fs::write(&config, toml).expect("write config");
        // Flags still apply to the rest: --min-age 0s makes the policy check warn.
        let args = [
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--min-age"),
            OsStr::new("0s"),
        ];
        let (json_run, json) = run_json(with_args(world.doctor(NO_DAEMON), args));
        assert_eq!(json_run.code, 1, "{toml}");
        let config_check = check(&json, "config");
        assert_eq!(config_check["status"], "fail", "{toml}: {config_check}");
        let text = config_check["detail"].as_str().expect("detail");
        assert!(
            text.contains(&config.display().to_string()),
            "{config_check}"
        );
        assert!(text.contains(expected), "{toml}: {config_check}");
        assert!(
            config_check["fix"]
                .as_str()
                .expect("fix")
                .contains("--no-config")
        );
        assert_eq!(status(&json, "policy"), "warn", "{json}");
        assert!(detail(&json, "policy").contains("min_age 0s"), "{json}");
        assert!(detail(&json, "policy").contains("config file was not used"));
        assert_eq!(status(&json, "registry_auth"), "ok");
        assert_eq!(status(&json, "state_dir"), "ok");
        assert_eq!(status(&json, "daemon"), "fail");

        let text_run = run(with_args(world.doctor(NO_DAEMON), args));
        assert_eq!(text_run.code, 1);
        assert!(
            text_line(&text_run.stdout, "config").starts_with("fail"),
            "{}",
            text_run.stdout
        );
        assert_eq!(
            text_run.stdout.lines().last(),
            Some("2 check(s) failed, 3 warning(s)"),
            "{}",
            text_run.stdout
        );
    }
}

#[test]
fn unwritable_state_dir_warns() {
    let world = World::new();
    world.write_docker_config(r#"{"auths":{"docker.io":{"username":"ci"}}}"#);
    let file = world.path("not-a-dir");
    fs::write(&file, "").expect("write");
    let cmd = with_args(
        world.doctor_with_state_dir(NO_DAEMON, &file),
        ["--no-config"],
    );
    let (_, json) = run_json(cmd);
    let state = check(&json, "state_dir");
    assert_eq!(state["status"], "warn", "{state}");
    assert!(
        state["fix"].as_str().expect("fix").contains("--state-dir"),
        "{state}"
    );
}

// ---------------------------------------------------------------------------------------------
// With a private daemon

/// A sandbox whose data root is an ext4 loop mount (not wherever $TMPDIR is, which may be
/// tmpfs): the host is healthy when credentials, units and state are too.
#[test]
fn healthy_host_passes_with_exit_0() {
    let sandbox = Sandbox::start_with_disk_mb(64);
    let world = World::new();
    let auth = base64(b"ci-bot:hunter2-sandbox");
    world.write_docker_config(&format!(
        r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#
    ));
    let data_root = sandbox.data_root().display().to_string();

    let (json_run, json) = run_json(with_args(world.doctor(sandbox.host()), ["--no-config"]));
    assert_eq!(
        json_run.code, 0,
        "{}\n--- stderr\n{}",
        json_run.stdout, json_run.stderr
    );
    assert_eq!(json["healthy"], true);
    for name in check_names() {
        assert_eq!(status(&json, name), "ok", "{name}: {json}");
    }
    let daemon = detail(&json, "daemon");
    assert!(daemon.starts_with("Docker "), "{daemon}");
    assert!(daemon.contains("(API 1."), "{daemon}");
    assert!(daemon.contains(sandbox.host()), "{daemon}");
    let engine = json["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|check| check["name"] == "daemon"))
        .map(|check| check["engine"].clone());
    assert_eq!(engine, Some(serde_json::json!("docker")), "{json}");
    let root = detail(&json, "data_root");
    assert!(
        root.starts_with(&format!("{data_root} is on ext4")),
        "{root}"
    );
    assert!(root.contains("storage driver "), "{root}");
    assert!(detail(&json, "registry_auth").contains("as ci-bot"));
    // The image store, and the filesystem the disk gate measures (the data root, once).
    assert_eq!(json["image_store"], "classic", "{json}");
    let image_data = json["image_data"].as_array().expect("image_data");
    assert_eq!(image_data.len(), 1, "{json}");
    assert_eq!(image_data[0]["path"], data_root.as_str(), "{json}");
    assert!(image_data[0]["used_percent"].is_u64(), "{json}");
    let store = detail(&json, "image_store");
    assert!(
        store.starts_with("classic image store (storage driver overlay2); the disk gate measures ")
            && store.contains(&format!("{data_root} (ext4, "))
            && store.contains("engine's figures"),
        "{store}"
    );

    let text = run(with_args(world.doctor(sandbox.host()), ["--no-config"]));
    assert_eq!(text.code, 0, "{}", text.stdout);
    assert!(
        text_line(&text.stdout, "daemon").starts_with("ok    daemon "),
        "{}",
        text.stdout
    );
    assert!(text_line(&text.stdout, "data_root").starts_with("ok"));
    assert_eq!(text.stdout.lines().last(), Some("healthy"));
    for output in [
        &text.stdout,
        &text.stderr,
        &json_run.stdout,
        &json_run.stderr,
    ] {
        assert!(
            !output.contains("hunter2") && !output.contains(&auth),
            "{output}"
        );
    }
}

/// dockerd restarted on a tmpfs mounted over its data root: the image cache would not
/// survive a reboot, so `data_root` fails and doctor exits 1.
#[test]
fn data_root_on_tmpfs_fails() {
    let sandbox = Sandbox::start();
    let data_root = sandbox.data_root();
    sandbox.stop_daemon();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256m", "pgdoctor-tmpfs"])
        .arg(&data_root)
        .output()
        .expect("run mount");
    support::expect_success("mount -t tmpfs over the data root", &mounted);
    // The sandbox's containerd keeps its root below the data root.
    fs::create_dir_all(data_root.join("containerd")).expect("mkdir containerd");
    sandbox.start_daemon();
    assert_eq!(
        sandbox.docker_ok(["info", "--format", "{{.DockerRootDir}}"]),
        data_root.display().to_string()
    );

    let world = World::new();
    world.write_docker_config(r#"{"auths":{"docker.io":{"username":"ci"}}}"#);
    let (json_run, json) = run_json(with_args(world.doctor(sandbox.host()), ["--no-config"]));
    assert_eq!(json_run.code, 1, "{}", json_run.stdout);
    let root = check(&json, "data_root");
    assert_eq!(root["status"], "fail", "{root}");
    let text = root["detail"].as_str().expect("detail");
    assert!(
        text.starts_with(&format!("{} is on tmpfs", data_root.display())),
        "{root}"
    );
    assert!(text.contains("reboot"), "{root}");
    assert!(
        root["fix"].as_str().expect("fix").contains("data-root"),
        "{root}"
    );
    for name in check_names()
        .into_iter()
        .filter(|name| *name != "data_root")
    {
        assert_eq!(status(&json, name), "ok", "{name}: {json}");
    }

    let text_run = run(with_args(world.doctor(sandbox.host()), ["--no-config"]));
    assert_eq!(text_run.code, 1);
    assert!(text_line(&text_run.stdout, "data_root").starts_with("fail  data_root"));
    assert_eq!(
        text_run.stdout.lines().last(),
        Some("1 check(s) failed, 0 warning(s)")
    );
    // Stopping the sandbox unmounts everything below its directory, the tmpfs included.
}
