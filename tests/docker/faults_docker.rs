//! Faults during a run (issue 5): the daemon going away between plan and execute, an image
//! gaining a container after it was planned, a gate closing mid-run, two runs at once, a
//! socket pruneguard may not open, a daemon that is not there or answers slowly, and a state
//! directory or metrics file that cannot be written when the run ends.
//!
//! Most faults are injected by `support::proxy`: pruneguard talks to the sandbox through a
//! unix-socket proxy whose hook sees every request before it is forwarded.

use crate::support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::proxy::{Proxy, Request};
use support::{
    ImageSpec, OPEN_GATES, Run, Sandbox, bare_pruneguard, ids, json_command, pruneguard, run, spawn,
};

/// `pruneguard run` with the gates opened, a JSON report, through `host`.
fn run_via(sb: &Sandbox, host: &str, extra: &[&str]) -> Run {
    run(json_command(sb, "run").args(["-H", host]).args(extra))
}

/// `count` old dangling images (the candidates) and one tagged image, sharing one tiny layer.
pub(crate) fn old_dangling(sb: &Sandbox, count: usize) -> (BTreeSet<String>, String) {
    let mut loaded = sb.load_images(&ImageSpec::tagged("faults/app:1", count + 1).age_days(3));
    let tagged = loaded.pop().expect("the tagged image");
    (loaded.into_iter().collect(), tagged)
}

pub(crate) fn proxy_socket(sb: &Sandbox) -> PathBuf {
    sb.scratch().join("proxy.sock")
}

fn assert_hooks_ok(proxy: &Proxy) {
    let failures = proxy.hook_failures();
    assert!(failures.is_empty(), "a proxy hook failed: {failures:#?}");
}

/// Every image that disappeared was planned: `before \ after ⊆ planned`.
fn assert_only_planned_gone(
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
    planned: &BTreeSet<String>,
) -> BTreeSet<String> {
    let gone: BTreeSet<String> = before.difference(after).cloned().collect();
    let unplanned: Vec<&String> = gone.difference(planned).collect();
    assert!(
        unplanned.is_empty(),
        "unplanned images are gone: {unplanned:?}"
    );
    gone
}

/// The run stopped part way (decision `partial`) for the reason `kind`.
fn assert_stopped(report: &Value, kind: &str) {
    assert_eq!(report["decision"], "partial", "{report:#}");
    assert_eq!(report["stopped"]["kind"], kind, "{report:#}");
}

/// Each planned ID is in exactly one of removed, skipped, failed and `not_attempted`.
pub(crate) fn assert_partition(report: &Value, planned: &BTreeSet<String>) {
    let mut seen = BTreeSet::new();
    for field in [
        "removed",
        "skipped",
        "failed",
        "outcome_unknown",
        "not_attempted",
    ] {
        for id in ids(report, field) {
            assert!(
                seen.insert(id.clone()),
                "{id} is listed twice in {report:#}"
            );
        }
    }
    assert_eq!(
        &seen, planned,
        "the outcomes cover the plan exactly: {report:#}"
    );
}

#[test]
fn daemon_stopped_between_plan_and_execute_exits_1_and_reports_what_was_done() {
    let sb = Arc::new(Sandbox::start());
    let (candidates, tagged) = old_dangling(&sb, 10);
    let before = sb.image_ids();
    let stopped = Arc::new(AtomicBool::new(false));
    let proxy = {
        let sb = Arc::clone(&sb);
        let stopped = Arc::clone(&stopped);
        Proxy::start(&proxy_socket(&sb), &sb.socket(), move |request| {
            if (request.is_image_inspect() || request.is_image_delete())
                && !stopped.swap(true, Ordering::SeqCst)
            {
                sb.stop_daemon();
            }
        })
    };
    let result = run_via(&sb, &proxy.host(), &[]);
    assert_hooks_ok(&proxy);
    assert!(
        stopped.load(Ordering::SeqCst),
        "the hook stopped the daemon"
    );
    assert_eq!(
        result.code,
        1,
        "daemon lost is a runtime failure: {}",
        result.show()
    );
    let report = &result.report;
    assert!(report.is_object(), "a report on stdout: {}", result.show());
    assert_eq!(ids(report, "candidates"), candidates);
    assert_stopped(report, "daemon_lost");
    assert!(
        report["stopped"]["error"]
            .as_str()
            .unwrap()
            .contains(proxy.socket().to_str().unwrap()),
        "the error names the endpoint: {report:#}"
    );
    assert_partition(report, &candidates);
    let undone: BTreeSet<String> = ids(report, "failed")
        .union(&ids(report, "not_attempted"))
        .cloned()
        .collect();
    assert!(!undone.is_empty(), "something was not done: {report:#}");
    assert!(
        report["summary"]
            .as_str()
            .unwrap()
            .contains("the daemon stopped answering"),
        "{report:#}"
    );

    sb.start_daemon();
    let after = sb.image_ids();
    let gone = assert_only_planned_gone(&before, &after, &candidates);
    assert!(
        ids(report, "removed").is_subset(&gone),
        "what the report calls removed is gone"
    );
    assert!(
        ids(report, "not_attempted").is_disjoint(&gone),
        "what was not attempted is still there"
    );
    assert!(after.contains(&tagged));
    drop(proxy);
}

#[test]
fn daemon_stopped_right_before_the_last_gate_check_deletes_nothing() {
    let sb = Arc::new(Sandbox::start());
    let (candidates, _) = old_dangling(&sb, 4);
    let before = sb.image_ids();
    let proxy = {
        let sb = Arc::clone(&sb);
        let listed = AtomicBool::new(false);
        let stopped = AtomicBool::new(false);
        Proxy::start(&proxy_socket(&sb), &sb.socket(), move |request| {
            if request.endpoint() == "/images/json" {
                listed.store(true, Ordering::SeqCst);
            } else if listed.load(Ordering::SeqCst)
                && request.endpoint() == "/info"
                && !stopped.swap(true, Ordering::SeqCst)
            {
                // The plan is made; the re-check right before deleting finds no daemon.
                sb.stop_daemon();
            }
        })
    };
    let result = run_via(&sb, &proxy.host(), &[]);
    assert_hooks_ok(&proxy);
    assert_eq!(result.code, 1, "{}", result.show());
    let report = &result.report;
    assert_stopped(report, "daemon_lost");
    assert_eq!(ids(report, "not_attempted"), candidates, "{report:#}");
    assert_partition(report, &candidates);
    assert_eq!(
        proxy.count(|method, path| method == "DELETE" || path.starts_with("/images/sha256")),
        0,
        "no image was touched"
    );
    drop(proxy);
    sb.start_daemon();
    assert_eq!(sb.image_ids(), before);
}

#[test]
fn container_created_from_a_candidate_after_planning_keeps_that_image() {
    let sb = Arc::new(Sandbox::start());
    let (candidates, tagged) = old_dangling(&sb, 6);
    let before = sb.image_ids();
    let pinned: Arc<Mutex<Option<String>>> = Arc::default();
    let proxy = {
        let sb = Arc::clone(&sb);
        let pinned = Arc::clone(&pinned);
        Proxy::start(&proxy_socket(&sb), &sb.socket(), move |request| {
            if !request.is_image_inspect() {
                return;
            }
            let mut pinned = pinned.lock().unwrap();
            if pinned.is_none() {
                let id = request.image_id().expect("an image id");
                // Through the real socket, as another client on the host would.
                sb.docker_ok(["create", "--name", "late-user", id.as_str()]);
                *pinned = Some(id);
            }
        })
    };
    let result = run_via(&sb, &proxy.host(), &[]);
    assert_hooks_ok(&proxy);
    let pinned = pinned
        .lock()
        .unwrap()
        .clone()
        .expect("the hook pinned an image");
    assert!(candidates.contains(&pinned));
    assert_eq!(result.code, 0, "{}", result.show());
    let report = &result.report;
    assert_eq!(report["decision"], "pruned", "{report:#}");
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{report:#}");
    assert_eq!(skipped[0]["id"], pinned.as_str());
    let why = skipped[0]["why"].as_str().unwrap();
    assert!(
        why.contains("conflict") && why.contains("being used"),
        "the skip says the daemon refused: {why}"
    );
    let rest: BTreeSet<String> = candidates
        .iter()
        .filter(|id| **id != pinned)
        .cloned()
        .collect();
    assert_eq!(ids(report, "removed"), rest, "the rest is removed");
    assert_partition(report, &candidates);

    let after = sb.image_ids();
    assert_eq!(assert_only_planned_gone(&before, &after, &candidates), rest);
    assert!(
        after.contains(&pinned),
        "the image the new container uses stays"
    );
    assert!(after.contains(&tagged));
    assert_eq!(sb.container_ids().len(), 1, "the container is untouched");
    drop(proxy);
}

/// Many candidates and a daemon that deletes one image at a time, 100 ms each (the hook holds
/// every DELETE behind one mutex), so deleting lasts well over the 1 s between mid-run
/// re-checks whatever number of deletions pruneguard keeps in flight; after the first few
/// deletions `close_gate` closes a gate.
fn gate_closes_mid_run(
    sb: &Arc<Sandbox>,
    extra: &[&str],
    close_gate: impl Fn() + Send + Sync + 'static,
) {
    let (candidates, tagged) = old_dangling(sb, 60);
    let before = sb.image_ids();
    let deletes = Arc::new(Mutex::new(0_usize));
    let proxy = {
        let deletes = Arc::clone(&deletes);
        Proxy::start(&proxy_socket(sb), &sb.socket(), move |request| {
            if request.is_image_delete() {
                let mut deletes = deletes.lock().unwrap();
                request.sleep(Duration::from_millis(100));
                *deletes += 1;
                if *deletes == 4 {
                    close_gate();
                }
            }
        })
    };
    let result = run_via(sb, &proxy.host(), extra);
    assert_hooks_ok(&proxy);
    assert_eq!(
        result.code,
        0,
        "a gate closing is a normal stop, not a failure: {}",
        result.show()
    );
    let report = &result.report;
    assert_stopped(report, "gate_closed");
    let closed: Vec<&str> = report["stopped"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|gate| gate["name"].as_str().unwrap())
        .collect();
    assert_eq!(closed, ["workload"], "{report:#}");
    let removed = ids(report, "removed");
    let not_attempted = ids(report, "not_attempted");
    assert!(removed.len() >= 4, "{report:#}");
    assert!(
        !not_attempted.is_empty(),
        "the run stopped early: {report:#}"
    );
    assert!(ids(report, "failed").is_empty(), "{report:#}");
    assert_partition(report, &candidates);
    assert!(
        report["summary"]
            .as_str()
            .unwrap()
            .contains("stopped because a gate closed mid-run: workload"),
        "{report:#}"
    );
    // Nothing was deleted after the re-check that saw the gate closed.
    assert_eq!(
        proxy.count(|method, _| method == "DELETE"),
        removed.len(),
        "every DELETE sent was a recorded removal"
    );
    let after = sb.image_ids();
    assert_eq!(
        assert_only_planned_gone(&before, &after, &candidates),
        removed
    );
    assert!(not_attempted.is_subset(&after));
    assert!(after.contains(&tagged));
    drop(proxy);
}

#[test]
fn lock_file_appearing_mid_run_stops_deleting() {
    let sb = Arc::new(Sandbox::start());
    let lock_file = sb.scratch().join("deploy.lock");
    let lock_arg = lock_file.to_str().unwrap().to_owned();
    gate_closes_mid_run(&sb, &["--workload-lock-file", &lock_arg], move || {
        std::fs::write(&lock_file, "deploying").expect("create the lock file");
    });
}

#[test]
fn workload_container_appearing_mid_run_stops_deleting() {
    let sb = Arc::new(Sandbox::start());
    let deploy_image = sb.load_images(&ImageSpec::tagged("faults/deploy:1", 1));
    let hook_sb = Arc::clone(&sb);
    gate_closes_mid_run(&sb, &["--workload-label", "deploy=live"], move || {
        hook_sb.docker_ok([
            "create",
            "--label",
            "deploy=live",
            "--name",
            "deploying",
            deploy_image[0].as_str(),
        ]);
    });
}

#[test]
fn two_runs_at_once_exactly_one_acts() {
    let sb = Sandbox::start();
    let (candidates, tagged) = old_dangling(&sb, 5);
    let before = sb.image_ids();
    // The first run's first request is held for 3 s: it holds the run lock meanwhile (the lock
    // is taken before the daemon is contacted).
    let proxy = Proxy::start(&proxy_socket(&sb), &sb.socket(), |request| {
        if request.index == 0 {
            request.sleep(Duration::from_secs(3));
        }
    });
    let started = Instant::now();
    let first = spawn(json_command(&sb, "run").args(["-H", &proxy.host()]));
    while proxy.requests().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the first run never reached the daemon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run(json_command(&sb, "run"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the second run ended while the first still held the lock"
    );
    assert_eq!(second.code, 1, "{}", second.show());
    assert!(
        second
            .stderr
            .contains("another pruneguard run holds the lock")
            && second
                .stderr
                .contains(sb.state_dir().join("pruneguard.lock").to_str().unwrap()),
        "{}",
        second.show()
    );
    assert!(
        second.stdout.is_empty(),
        "the refused run reports nothing: {}",
        second.show()
    );
    assert_eq!(sb.image_ids(), before, "the refused run deleted nothing");

    let first = first.wait(Duration::from_secs(60));
    assert_hooks_ok(&proxy);
    assert_eq!(first.code, 0, "{}", first.show());
    assert_eq!(first.report["decision"], "pruned");
    assert_eq!(ids(&first.report, "removed"), candidates);
    let after = sb.image_ids();
    assert_eq!(
        assert_only_planned_gone(&before, &after, &candidates),
        candidates
    );
    assert!(after.contains(&tagged));
}

/// The same command run as `nobody` (uid and gid 65534, no supplementary groups).
fn as_nobody(command: &Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

#[test]
fn socket_permission_denied_names_the_socket_and_the_fix() {
    let sb = Sandbox::start();
    let socket = sb.socket();
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "dockerd's socket mode"
    );
    // Let `nobody` reach the socket, so the socket's own mode is what refuses it.
    for dir in socket.ancestors().skip(1) {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o011)).unwrap();
        }
    }
    // `run` takes the run lock first: give nobody a state directory it may write.
    let state = sb.scratch().join("nobody-state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    for subcommand in ["plan", "run"] {
        let mut command = pruneguard(&sb);
        command
            .arg(subcommand)
            .args(OPEN_GATES)
            .arg("--state-dir")
            .arg(&state);
        let result = run(as_nobody(&command));
        assert_eq!(result.code, 1, "{subcommand}: {}", result.show());
        let lines: Vec<&str> = result
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{subcommand}: one clear message: {}",
            result.show()
        );
        let message = lines[0];
        assert!(
            message.contains("permission denied")
                && message.contains(socket.to_str().unwrap())
                && message.contains("docker group"),
            "{subcommand}: names the socket and the fix: {message}"
        );
        assert!(result.stdout.is_empty(), "{}", result.show());
    }
}

#[test]
fn docker_host_pointing_nowhere_fails_fast_and_clearly() {
    let state = tempfile::tempdir().unwrap();
    for host in ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"] {
        let result = run(bare_pruneguard()
            .args(["run", "--no-config", "--state-dir"])
            .arg(state.path())
            .env("DOCKER_HOST", host));
        assert_eq!(result.code, 1, "{host}: {}", result.show());
        assert!(
            result.elapsed < Duration::from_secs(5),
            "{host}: {}",
            result.show()
        );
        assert!(
            result
                .stderr
                .contains(&format!("cannot reach the container engine at {host}"))
                && result.stderr.contains("dockerd")
                && result.stderr.contains("podman system service")
                && result.stderr.contains("-H/--host or DOCKER_HOST"),
            "{host}: {}",
            result.show()
        );
        assert!(result.stdout.is_empty());
    }
}

/// `pruneguard run --api-timeout 2s` through a proxy whose `hook` holds requests back: asserts
/// that the run fails (exit 1) without hanging (it ends within three times the timeout).
fn run_timing_out(
    sb: &Sandbox,
    hook: impl Fn(&Request<'_>) + Send + Sync + 'static,
) -> (Proxy, Run) {
    let timeout = Duration::from_secs(2);
    let proxy = Proxy::start(&proxy_socket(sb), &sb.socket(), hook);
    let result = run_via(sb, &proxy.host(), &["--api-timeout", "2s"]);
    assert!(result.elapsed < timeout * 3, "no hang: {}", result.show());
    assert_eq!(result.code, 1, "{}", result.show());
    (proxy, result)
}

#[test]
fn slow_daemon_fails_within_the_api_timeout() {
    let sb = Sandbox::start();
    // More candidates than pruneguard keeps deletions in flight, so some are never attempted.
    let (candidates, _) = old_dangling(&sb, 46);
    let before = sb.image_ids();

    // Every request is slow: the very first one (version negotiation) times out.
    let (proxy, result) = run_timing_out(&sb, |request| {
        request.sleep(Duration::from_secs(30));
    });
    assert!(
        result.stderr.contains("did not answer")
            && result.stderr.contains("within 2s")
            && result.stderr.contains(proxy.socket().to_str().unwrap()),
        "{}",
        result.show()
    );
    assert!(result.stdout.is_empty());
    drop(proxy);

    // Only deletions are slow: the daemon still answers pings, so it is not "lost"; each timed
    // out delete is looked up again (still there: failed), and after a few the run stops
    // starting new ones, with a report of what was and was not done.
    let (proxy, result) = run_timing_out(&sb, |request| {
        if request.is_image_delete() {
            request.sleep(Duration::from_secs(30));
        }
    });
    let report = &result.report;
    assert_stopped(report, "daemon_unresponsive");
    assert!(
        ids(report, "failed").len() >= pruneguard::execute::TRANSPORT_FAILURES_BEFORE_STOP,
        "every delete in flight was looked up again and found still there: {report:#}"
    );
    assert!(
        report["stopped"]["error"]
            .as_str()
            .unwrap()
            .contains("did not answer DELETE"),
        "{report:#}"
    );
    assert!(!ids(report, "failed").is_empty());
    assert!(!ids(report, "not_attempted").is_empty());
    assert_partition(report, &candidates);
    assert!(
        ids(report, "removed").is_empty(),
        "no DELETE was forwarded in time"
    );
    drop(proxy);
    assert_eq!(
        sb.image_ids(),
        before,
        "the held DELETEs were never forwarded"
    );
}

#[test]
fn daemon_that_stalls_after_the_headers_is_a_timeout_not_a_hang() {
    let sb = Sandbox::start();
    let (candidates, _) = old_dangling(&sb, 6);
    let before = sb.image_ids();
    // The image list's status line and headers arrive at once, its body never (in time).
    let (proxy, result) = run_timing_out(&sb, |request| {
        if request.method == "GET" && request.endpoint() == "/images/json" {
            request.stall_response_body(Duration::from_secs(30));
        }
    });
    assert!(
        result
            .stderr
            .contains("did not answer GET /images/json within 2s"),
        "{}",
        result.show()
    );
    drop(proxy);

    // Same for the answers to the deletions: the run stops and reports.
    let (proxy, result) = run_timing_out(&sb, |request| {
        if request.is_image_delete() {
            request.stall_response_body(Duration::from_secs(30));
        }
    });
    let report = &result.report;
    assert_stopped(report, "daemon_unresponsive");
    assert_partition(report, &candidates);
    // Each held answer was followed by a look: the image is gone, so it counts as removed.
    assert_eq!(
        ids(report, "removed"),
        candidates.clone(),
        "the deletes went through; only their answers were held: {report:#}"
    );
    drop(proxy);
    // The daemon did delete what it was asked to (only its answer was held): planned images.
    assert_only_planned_gone(&before, &sb.image_ids(), &candidates);
}

/// Unmounts a tmpfs when dropped (also when the test fails).
struct Mounted(PathBuf);

impl Mounted {
    /// A tmpfs of 64 KiB at `dir`, filled up with a file.
    fn full_tmpfs(dir: &Path) -> Mounted {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs on {}", dir.display());
        Mounted(dir.to_path_buf())
    }

    fn fill(&self) {
        use std::io::Write as _;
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = [0_u8; 4096];
        loop {
            if filler.write_all(&block).is_err() {
                break;
            }
        }
        assert!(
            std::fs::write(self.0.join("probe"), [0_u8; 4096]).is_err(),
            "the tmpfs is full"
        );
        let _ = std::fs::remove_file(self.0.join("probe"));
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn state_and_metrics_on_a_full_filesystem_are_warnings_not_failures() {
    let sb = Sandbox::start();
    let (candidates, tagged) = old_dangling(&sb, 3);
    let before = sb.image_ids();
    let full = Mounted::full_tmpfs(&sb.scratch().join("full"));
    let state = full.0.join("state");
    std::fs::create_dir(&state).unwrap();
    let metrics = full.0.join("pruneguard.prom");
    full.fill();

    let mut command = json_command(&sb, "run");
    command
        .arg("--state-dir")
        .arg(&state)
        .arg("--metrics-file")
        .arg(&metrics);
    let result = run(&mut command);
    assert_eq!(result.code, 0, "{}", result.show());
    let report = &result.report;
    assert_eq!(report["decision"], "pruned", "{report:#}");
    assert_eq!(ids(report, "removed"), candidates);
    let after = sb.image_ids();
    assert_eq!(
        assert_only_planned_gone(&before, &after, &candidates),
        candidates
    );
    assert!(after.contains(&tagged));
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|warning| warning.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{report:#}");
    assert!(
        warnings[0].contains("could not write the state file")
            && warnings[0].contains(state.join("last-run.json").to_str().unwrap()),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("could not write the metrics file")
            && warnings[1].contains(metrics.to_str().unwrap()),
        "{warnings:?}"
    );
    assert!(!metrics.exists());
    assert!(!state.join("last-run.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&full.0)
        .unwrap()
        .chain(std::fs::read_dir(&state).unwrap())
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file is left: {leftovers:?}"
    );

    // The text report says the same to a person.
    let result = run(pruneguard(&sb)
        .arg("run")
        .args(OPEN_GATES)
        .arg("--state-dir")
        .arg(&state)
        .arg("--metrics-file")
        .arg(&metrics));
    assert_eq!(result.code, 0, "{}", result.show());
    assert!(
        result.stdout.contains("nothing_to_do")
            && result
                .stdout
                .contains("Warning: could not write the state file")
            && result
                .stdout
                .contains("Warning: could not write the metrics file"),
        "{}",
        result.show()
    );
    drop(full);
}

/// Clears the immutable flag when dropped, so the sandbox's files can be removed.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) {
        let status = Command::new("chattr").arg("+i").arg(dir).status().unwrap();
        assert!(status.success(), "chattr +i {}", dir.display());
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn state_dir_made_unwritable_during_the_run_is_a_warning() {
    let sb = Sandbox::start();
    let (candidates, tagged) = old_dangling(&sb, 3);
    let before = sb.image_ids();
    let state = sb.state_dir();
    let metrics = state.join("pruneguard.prom");
    let guard = Immutable(state.clone());
    // After the run has taken its lock (in the state dir), the directory becomes immutable:
    // root ignores permission bits, but not the immutable flag.
    let proxy = {
        let state = state.clone();
        let done = AtomicBool::new(false);
        Proxy::start(&proxy_socket(&sb), &sb.socket(), move |request| {
            if request.is_image_delete() && !done.swap(true, Ordering::SeqCst) {
                Immutable::set(&state);
            }
        })
    };
    let result = run(pruneguard(&sb)
        .arg("run")
        .args(OPEN_GATES)
        .args(["-H", &proxy.host(), "--metrics-file"])
        .arg(&metrics));
    assert_hooks_ok(&proxy);
    assert_eq!(result.code, 0, "{}", result.show());
    assert!(
        result.stdout.contains("pruned")
            && result.stdout.contains("Removed 3 image(s)")
            && result
                .stdout
                .contains("Warning: could not write the state file")
            && result
                .stdout
                .contains("Warning: could not write the metrics file"),
        "{}",
        result.show()
    );
    let after = sb.image_ids();
    assert_eq!(
        assert_only_planned_gone(&before, &after, &candidates),
        candidates
    );
    assert!(after.contains(&tagged));
    drop(proxy);
    drop(guard);
}

#[test]
fn state_dir_unwritable_before_the_run_refuses_to_run() {
    // Without its lock a run cannot know it is alone, so it does not delete anything.
    let sb = Sandbox::start();
    let (_, _) = old_dangling(&sb, 2);
    let before = sb.image_ids();
    let state = sb.state_dir();
    let guard = Immutable(state.clone());
    Immutable::set(&state);
    let result = run(pruneguard(&sb).arg("run").args(OPEN_GATES));
    assert_eq!(result.code, 1, "{}", result.show());
    assert!(
        result.stderr.contains("cannot open the lock file")
            && result
                .stderr
                .contains(state.join("pruneguard.lock").to_str().unwrap())
            && result.stderr.contains("--state-dir"),
        "{}",
        result.show()
    );
    assert_eq!(sb.image_ids(), before);
    drop(guard);
}
