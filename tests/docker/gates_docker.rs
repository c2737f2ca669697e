//! The deploy-aware gates (workload, swarm, waiting) against real private daemons (issue #3).
//!
//! Every test starts its own sandbox (`support`), loads old dangling images and runs
//! `pruneguard run` with the disk and quiet gates opened on purpose (`--disk-threshold 0
//! --quiet-period 0s`), so that the gate under test alone decides whether anything is
//! deleted. What matters is checked on the daemon itself (the dangling images are there or
//! gone), in the exit status and in the JSON report.
//! Needs root and Docker: run `scripts/test.sh` (as root), which installs what is missing.

use crate::support;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead as _, BufReader, Read as _};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::{
    ImageSpec, OPEN_GATES, Running, Sandbox, gate, ids, json_command, json_run, pruneguard, run,
    spawn,
};

/// The busybox image containers and services run (tagged, so never a candidate).
pub(crate) const BUSYBOX: &str = "pg-busybox:1";

/// Loads a runnable busybox image and `x:1` three times, three days old: 2 old dangling
/// images (candidates) and 1 tagged. Returns the dangling IDs.
pub(crate) fn load_old_dangling(sb: &Sandbox) -> BTreeSet<String> {
    if sb.image_id(BUSYBOX).is_none() {
        sb.load_images(&ImageSpec::tagged(BUSYBOX, 1).busybox());
    }
    let ids = sb.load_images(&ImageSpec::tagged("x:1", 3).age_days(3));
    let dangling: BTreeSet<String> = ids[..2].iter().cloned().collect();
    assert!(
        dangling.is_subset(&sb.dangling_ids()),
        "the old images must be dangling"
    );
    dangling
}

pub(crate) fn detail(gate: &Value) -> &str {
    gate["detail"].as_str().unwrap_or_default()
}

/// The run skipped because `name` is closed, and not one dangling image was deleted.
pub(crate) fn assert_skipped_by(
    sb: &Sandbox,
    report: &Value,
    name: &str,
    dangling: &BTreeSet<String>,
) {
    assert_eq!(report["decision"], "skipped", "report:\n{report:#}");
    assert_eq!(gate(report, name)["open"], false, "report:\n{report:#}");
    assert!(
        ids(report, "removed").is_empty(),
        "nothing may be removed:\n{report:#}"
    );
    let left = sb.dangling_ids();
    assert!(
        dangling.is_subset(&left),
        "a closed {name} gate must keep every dangling image: had {dangling:?}, left {left:?}"
    );
}

/// Runs with `args`; asserts that the gate `name` skipped the run (nothing deleted) and that
/// its detail names each of `named`. Returns the report.
pub(crate) fn run_closed_by(
    sb: &Sandbox,
    args: &[&str],
    name: &str,
    dangling: &BTreeSet<String>,
    named: &[&str],
) -> Value {
    let report = json_run(sb, "run", args).report;
    assert_skipped_by(sb, &report, name, dangling);
    let closed = gate(&report, name);
    for needle in named {
        assert!(
            detail(closed).contains(needle),
            "the detail must name {needle}: {closed:#}"
        );
    }
    report
}

/// The run pruned: every gate open and exactly the old dangling images gone.
pub(crate) fn assert_pruned(sb: &Sandbox, report: &Value, dangling: &BTreeSet<String>) {
    for gate in report["gates"].as_array().expect("gates") {
        assert_eq!(gate["open"], true, "every gate must be open:\n{report:#}");
    }
    assert_eq!(report["decision"], "pruned", "report:\n{report:#}");
    assert_eq!(&ids(report, "removed"), dangling, "report:\n{report:#}");
    let left = sb.dangling_ids();
    assert!(
        left.is_disjoint(dangling),
        "the old dangling images must be gone, left: {left:?}"
    );
}

/// Polls `check` every 200 ms until it returns true; panics with `what` after `timeout`.
pub(crate) fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// workload gate

/// A dry run with `args` (a selector that matches nothing) finds the workload gate open.
fn assert_workload_open_for(sb: &Sandbox, args: &[&str]) {
    let report = json_run(sb, "run", &[&["--dry-run"], args].concat()).report;
    assert_eq!(gate(&report, "workload")["open"], true, "{report:#}");
    assert_eq!(report["decision"], "dry_run", "{report:#}");
}

/// A live container of a matching stack closes the gate; the detail names it and the stack.
fn assert_stack_container_closes(state_args: &[&str], expected_state: &str) {
    let sb = Sandbox::start();
    let dangling = load_old_dangling(&sb);
    let name = "run-app-7_web.1";
    let mut args = vec![];
    args.extend_from_slice(state_args);
    args.extend_from_slice(&[
        "--name",
        name,
        "--label",
        "com.docker.stack.namespace=run-app-7",
        BUSYBOX,
    ]);
    sb.docker_ok(&args);
    assert_eq!(
        sb.docker_ok(["inspect", "--format", "{{.State.Status}}", name]),
        expected_state
    );

    // A stack that does not match leaves the gate open (dry run: nothing is deleted).
    assert_workload_open_for(&sb, &["--workload-stack", "other-*"]);

    // The detail names the container and the stack.
    let report = run_closed_by(
        &sb,
        &["--workload-stack", "run-app*"],
        "workload",
        &dangling,
        &[name, "run-app-7"],
    );
    let workload = gate(&report, "workload");
    let live = &workload["evidence"]["live"];
    assert_eq!(live[0]["name"], name, "{workload:#}");
    assert_eq!(live[0]["state"], expected_state, "{workload:#}");
}

#[test]
fn running_stack_container_closes_workload_gate() {
    assert_stack_container_closes(&["run", "-d"], "running");
}

#[test]
fn created_stack_container_closes_workload_gate() {
    assert_stack_container_closes(&["create"], "created");
}

#[test]
fn exited_stack_container_does_not_close_workload_gate() {
    let sb = Sandbox::start();
    let dangling = load_old_dangling(&sb);
    sb.docker_ok([
        "run",
        "--name",
        "run-app-7_migrate.1",
        "--label",
        "com.docker.stack.namespace=run-app-7",
        BUSYBOX,
        "busybox",
        "true",
    ]);
    assert_eq!(
        sb.docker_ok([
            "inspect",
            "--format",
            "{{.State.Status}}",
            "run-app-7_migrate.1"
        ]),
        "exited"
    );
    let report = json_run(&sb, "run", &["--workload-stack", "run-app*"]).report;
    assert_pruned(&sb, &report, &dangling);
}

#[test]
fn compose_project_container_closes_workload_gate() {
    let sb = Sandbox::start();
    let dangling = load_old_dangling(&sb);
    sb.docker_ok([
        "run",
        "-d",
        "--name",
        "run-app-compose-web-1",
        "--label",
        "com.docker.compose.project=run-app-compose",
        BUSYBOX,
    ]);
    // The detail names the container and the project.
    run_closed_by(
        &sb,
        &["--workload-stack", "run-app*"],
        "workload",
        &dangling,
        &["run-app-compose-web-1", "run-app-compose"],
    );
}

#[test]
fn label_selector_closes_workload_gate() {
    let sb = Sandbox::start();
    let dangling = load_old_dangling(&sb);
    sb.docker_ok([
        "run",
        "-d",
        "--name",
        "deployer",
        "--label",
        "ci.role=run-app",
        BUSYBOX,
    ]);
    // Same key, other value: no match (dry run, nothing deleted).
    assert_workload_open_for(&sb, &["--workload-label", "ci.role=other"]);

    // The detail names the container and the label.
    run_closed_by(
        &sb,
        &["--workload-label", "ci.role=run-app"],
        "workload",
        &dangling,
        &["deployer", "ci.role=run-app"],
    );
}

#[test]
fn container_name_glob_closes_workload_gate() {
    let sb = Sandbox::start();
    let dangling = load_old_dangling(&sb);
    sb.docker_ok(["run", "-d", "--name", "ci-deploy-42", BUSYBOX]);
    assert_workload_open_for(&sb, &["--workload-container", "ci-build-*"]);

    run_closed_by(
        &sb,
        &["--workload-container", "ci-deploy-*"],
        "workload",
        &dangling,
        &["ci-deploy-42"],
    );
}

#[test]
fn lock_file_closes_workload_gate_while_present() {
    let sb = Sandbox::start();
    let dangling = load_old_dangling(&sb);
    let lock = sb.scratch().join("deploy.lock");
    fs::write(&lock, "deploying\n").expect("write the lock file");
    // Two hours old, so the reported age is unmistakable.
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    fs::File::options()
        .write(true)
        .open(&lock)
        .and_then(|file| file.set_modified(two_hours_ago))
        .expect("age the lock file");
    let lock_arg = lock.to_str().expect("a UTF-8 path");

    // The detail names the lock file and its age.
    let report = run_closed_by(
        &sb,
        &["--workload-lock-file", lock_arg],
        "workload",
        &dangling,
        &[lock_arg, "2h"],
    );
    let workload = gate(&report, "workload");
    let evidence = &workload["evidence"]["lock_files"][0];
    assert_eq!(evidence["present"], true, "{workload:#}");
    let age = evidence["age_seconds"].as_i64().expect("age_seconds");
    assert!((7200..7300).contains(&age), "age {age}: {workload:#}");

    fs::remove_file(&lock).expect("remove the lock file");
    let report = json_run(&sb, "run", &["--workload-lock-file", lock_arg]).report;
    assert_pruned(&sb, &report, &dangling);
    assert_eq!(
        gate(&report, "workload")["evidence"]["lock_files"][0]["present"],
        false,
        "{report:#}"
    );
}

#[test]
fn text_report_shows_closed_workload_gate_with_the_container() {
    let sb = Sandbox::start();
    let dangling = load_old_dangling(&sb);
    sb.docker_ok([
        "run",
        "-d",
        "--name",
        "run-app-7_api.1",
        "--label",
        "com.docker.stack.namespace=run-app-7",
        BUSYBOX,
    ]);
    let result = run(pruneguard(&sb).arg("run").args(OPEN_GATES).args([
        "--output",
        "text",
        "--workload-stack",
        "run-app*",
    ]));
    assert_eq!(result.code, 0, "{}", result.show());
    let text = result.stdout.trim_end();
    let line = text
        .lines()
        .find(|line| line.contains("CLOSED workload"))
        .unwrap_or_else(|| panic!("no `CLOSED workload` line in:\n{text}"));
    assert!(line.contains("run-app-7_api.1"), "line: {line}");
    for name in ["disk", "swarm", "quiet"] {
        assert!(
            text.lines()
                .any(|line| line.trim_start().starts_with("open") && line.contains(name)),
            "the {name} gate must be shown as open:\n{text}"
        );
    }
    assert!(
        dangling.is_subset(&sb.dangling_ids()),
        "nothing may be removed"
    );
}

// ---------------------------------------------------------------------------------------------
// swarm gate

/// A sandbox with old dangling images (returned) that is a single-node swarm manager.
pub(crate) fn swarm_manager() -> (Sandbox, BTreeSet<String>) {
    let sb = Sandbox::start();
    let dangling = load_old_dangling(&sb);
    sb.docker_ok(["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    (sb, dangling)
}

/// `docker service create --detach --no-resolve-image --name NAME ARGS… busybox`.
pub(crate) fn create_service(sb: &Sandbox, name: &str, args: &[&str]) {
    let create = [
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        name,
    ];
    sb.docker_ok([&create[..], args, &[BUSYBOX]].concat());
}

/// The state of a service's update (`updating`, `completed`, …; empty when it has none).
fn update_state(sb: &Sandbox, service: &str) -> String {
    sb.docker_ok([
        "service",
        "inspect",
        "--format",
        "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
        service,
    ])
}

/// `docker service ps` of one service: `(desired state, current state)` per task.
pub(crate) fn task_states(sb: &Sandbox, service: &str) -> Vec<(String, String)> {
    sb.docker_ok([
        "service",
        "ps",
        "--no-trunc",
        "--format",
        "{{.DesiredState}}|{{.CurrentState}}",
        service,
    ])
    .lines()
    .filter_map(|line| {
        line.split_once('|')
            .map(|(desired, current)| (desired.to_owned(), current.to_owned()))
    })
    .collect()
}

/// Waits until `replicas` tasks of `service` run and no update is in progress.
fn wait_converged(sb: &Sandbox, service: &str, replicas: usize) {
    wait_until(
        &format!("service {service} to run {replicas} task(s)"),
        Duration::from_secs(40),
        || {
            let running = task_states(sb, service)
                .iter()
                .filter(|(desired, current)| desired == "Running" && current.starts_with("Running"))
                .count();
            let update = update_state(sb, service);
            running == replicas && !matches!(update.as_str(), "updating" | "rollback_started")
        },
    );
}

#[test]
fn swarm_pending_service_closes_gate_until_stuck() {
    let (sb, dangling) = swarm_manager();
    create_service(
        &sb,
        "never-placed",
        &["--constraint", "node.labels.nope==1"],
    );
    wait_until(
        "the task of never-placed to be pending",
        Duration::from_secs(20),
        || {
            task_states(&sb, "never-placed")
                .iter()
                .any(|(_, current)| current.starts_with("Pending"))
        },
    );
    let created = Instant::now();

    // The detail names the service.
    let report = run_closed_by(
        &sb,
        &["--swarm-stuck-after", "10m"],
        "swarm",
        &dangling,
        &["never-placed"],
    );
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["evidence"]["role"], "manager", "{swarm:#}");
    let converging = swarm["evidence"]["converging"]
        .as_array()
        .expect("converging");
    assert!(
        converging.iter().any(|item| item["kind"] == "service"
            && item["name"] == "never-placed"
            && item["state"] == "starting"
            && item["message"]
                .as_str()
                .is_some_and(|message| message.contains("is pending"))),
        "{swarm:#}"
    );

    // Past stuck_after it is reported as stuck and no longer blocks.
    // (Ages are whole seconds and must exceed 2s: 3.5 s after the task was pending.)
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(created.elapsed()));
    let report = json_run(&sb, "run", &["--swarm-stuck-after", "2s"]).report;
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["open"], true, "{swarm:#}");
    let stuck = swarm["evidence"]["stuck"].as_array().expect("stuck");
    assert!(
        stuck.iter().any(|item| item["name"]
            .as_str()
            .is_some_and(|name| name.starts_with("never-placed"))),
        "the pending task must be listed as stuck: {swarm:#}"
    );
    assert!(
        detail(swarm).contains("never-placed"),
        "the detail must still name the stuck service: {swarm:#}"
    );
    assert_pruned(&sb, &report, &dangling);
}

#[test]
fn swarm_converged_service_leaves_gate_open_and_rolling_update_closes_it() {
    let (sb, dangling) = swarm_manager();
    create_service(
        &sb,
        "rolling",
        &["--replicas", "3", "--update-delay", "30s"],
    );
    wait_converged(&sb, "rolling", 3);

    // Converged: the gate is open and the run prunes.
    let report = json_run(&sb, "run", &[]).report;
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["evidence"]["role"], "manager", "{swarm:#}");
    assert_pruned(&sb, &report, &dangling);

    // A rolling update in progress closes it.
    let dangling = load_old_dangling(&sb);
    sb.docker_ok([
        "service",
        "update",
        "--detach",
        "--no-resolve-image",
        "--env-add",
        "X=1",
        "rolling",
    ]);
    wait_until(
        "service rolling to be updating",
        Duration::from_secs(20),
        || update_state(&sb, "rolling") == "updating",
    );
    // The detail names the service.
    let report = run_closed_by(&sb, &[], "swarm", &dangling, &["rolling"]);
    let swarm = gate(&report, "swarm");
    let converging = swarm["evidence"]["converging"]
        .as_array()
        .expect("converging");
    assert!(
        converging.iter().any(|item| item["kind"] == "service"
            && item["name"] == "rolling"
            && item["state"] == "updating"),
        "{swarm:#}"
    );
}

#[test]
fn swarm_worker_judges_from_local_evidence() {
    let (manager, worker) = Sandbox::pair();
    let manager_addr = manager.addr().expect("the pair's first address").to_owned();
    manager.docker_ok(["swarm", "init", "--advertise-addr", &manager_addr]);
    let token = manager.docker_ok(["swarm", "join-token", "-q", "worker"]);
    worker.docker_ok([
        "swarm",
        "join",
        "--token",
        &token,
        &format!("{manager_addr}:2377"),
    ]);
    assert_eq!(
        worker.api_get("/services").0,
        503,
        "a worker refuses /services"
    );
    let dangling = load_old_dangling(&worker);

    // A swarm task container that exists but has not started: the worker's local evidence.
    worker.docker_ok([
        "create",
        "--name",
        "web.1.local-evidence",
        "--label",
        "com.docker.swarm.task.id=pgtesttask1",
        BUSYBOX,
    ]);
    let report = run_closed_by(
        &worker,
        &["--workload-stack", "run-app*"],
        "swarm",
        &dangling,
        &["local evidence", "web.1.local-evidence"],
    );
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["evidence"]["role"], "worker", "{swarm:#}");

    // Without it the worker's gate is open, still judged locally, and the run prunes.
    worker.docker_ok(["rm", "web.1.local-evidence"]);
    let report = json_run(&worker, "run", &["--workload-stack", "run-app*"]).report;
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["evidence"]["role"], "worker", "{swarm:#}");
    assert!(detail(swarm).contains("local evidence"), "{swarm:#}");
    assert_pruned(&worker, &report, &dangling);
}

// ---------------------------------------------------------------------------------------------
// waiting for gates

/// A sandbox with old dangling images (returned) and an empty deploy lock file (its path).
fn locked_sandbox() -> (Sandbox, BTreeSet<String>, String) {
    let sb = Sandbox::start();
    let dangling = load_old_dangling(&sb);
    let lock = sb.scratch().join("deploy.lock");
    fs::write(&lock, "").expect("write the lock file");
    let lock = lock.to_str().expect("a UTF-8 path").to_owned();
    (sb, dangling, lock)
}

/// The arguments of a run that waits up to `wait` (re-checking every second) for the workload
/// gate that the lock file `lock` closes.
fn wait_for_lock<'a>(lock: &'a str, wait: &'a str) -> [&'a str; 6] {
    [
        "--workload-lock-file",
        lock,
        "--wait-for-gates",
        wait,
        "--wait-interval",
        "1s",
    ]
}

/// Spawns `pruneguard run … --output json ARGS`, logging at info level.
fn spawn_run(sb: &Sandbox, args: &[&str]) -> Running {
    spawn(
        json_command(sb, "run")
            .args(args)
            .env("RUST_LOG", "pruneguard=info"),
    )
}

#[test]
fn wait_ends_when_lock_file_is_removed_and_run_prunes() {
    let (sb, dangling, lock) = locked_sandbox();
    let started = Instant::now();
    let child = spawn_run(&sb, &wait_for_lock(&lock, "60s"));
    std::thread::sleep(Duration::from_secs(3));
    fs::remove_file(&lock).expect("remove the lock file");
    let result = child.wait(Duration::from_secs(40));
    let report = result.json();
    assert_eq!(result.code, 0, "{report:#}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run must go on soon after the lock is gone, took {:?}",
        started.elapsed()
    );
    assert_pruned(&sb, report, &dangling);
    assert!(!ids(report, "removed").is_empty());
    let wait = &report["wait"];
    assert_eq!(wait["ended"], "gates_open", "{report:#}");
    assert!(wait["evaluations"].as_u64().unwrap_or(0) >= 2, "{report:#}");
    assert!(
        wait["held_by"]
            .as_array()
            .is_some_and(|held| held.iter().any(|name| name == "workload")),
        "{report:#}"
    );
}

#[test]
fn wait_that_times_out_skips() {
    let (sb, dangling, lock) = locked_sandbox();
    let started = Instant::now();
    let report = json_run(&sb, "run", &wait_for_lock(&lock, "3s")).report;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(30),
        "a 3s wait took {took:?}"
    );
    assert_skipped_by(&sb, &report, "workload", &dangling);
    let wait = &report["wait"];
    assert_eq!(wait["ended"], "timeout", "{report:#}");
    assert!(wait["evaluations"].as_u64().unwrap_or(0) >= 2, "{report:#}");
}

#[test]
fn sigterm_during_wait_skips_promptly() {
    let (sb, dangling, lock) = locked_sandbox();
    let mut child = spawn_run(&sb, &wait_for_lock(&lock, "60s"));
    // Send SIGTERM only once the wait has begun (the log says so), not during start-up.
    let stderr = child.take_stderr();
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut lines = BufReader::new(stderr);
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.contains("waiting for gates") {
                let _ = lines_tx.send(());
            }
            seen.push_str(&line);
            line.clear();
        }
        let mut rest = String::new();
        let _ = lines.read_to_string(&mut rest);
        seen + &rest
    });
    let waiting = lines_rx.recv_timeout(Duration::from_secs(30)).is_ok();
    if !waiting {
        drop(child); // kills it, so that its stderr ends
        panic!(
            "pruneguard never started waiting; stderr:\n{}",
            reader.join().unwrap_or_default()
        );
    }
    let signalled = Instant::now();
    send_signal("-TERM", &child.pid());
    let result = child.wait(Duration::from_secs(20));
    let took = signalled.elapsed();
    let stderr = reader.join().unwrap_or_default();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM must end the 60s wait promptly, took {took:?}\n{stderr}"
    );
    // The skip report is written, then the run ends by the signal, as systemd expects of a
    // stopped unit (a plain exit 143 would be recorded as a failure).
    assert_eq!(
        result.signal,
        Some(15),
        "a terminated wait reports a skip, then dies by SIGTERM, not {}\n--- stderr\n{stderr}",
        result.show()
    );
    let report = result.json();
    assert_skipped_by(&sb, report, "workload", &dangling);
    assert_eq!(report["wait"]["ended"], "terminated", "{report:#}");
}

/// Sends `signal` (e.g. `-STOP`) to `pid` with kill(1).
pub(crate) fn send_signal(signal: &str, pid: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid)
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}
