//! Signals during a run, with the daemon's answers held back by a proxy so that the signal
//! lands exactly while gathering or while deletes are in flight: the run stops (at once, or
//! after the deletes in flight), writes an `interrupted` report, `last-run.json` and metrics,
//! and dies by the signal.

use crate::faults_docker::{assert_partition, old_dangling, proxy_socket};
use crate::support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::proxy::Proxy;
use support::{Sandbox, ids, json_command, spawn};

/// Waits until `done` holds, polling; panics after `timeout` saying `what`.
fn wait_until(timeout: Duration, what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state dir's `last-run.json`, parsed.
fn last_run(sb: &Sandbox) -> Value {
    let text = std::fs::read_to_string(sb.state_dir().join("last-run.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn sigterm(pid: &str) {
    let status = Command::new("kill").args(["-TERM", pid]).status().unwrap();
    assert!(status.success(), "kill -TERM {pid}");
}

/// SIGTERM while the run is still gathering (the image list is held back): gathering only
/// reads, so the run stops at once, writes an `interrupted` report, and dies by SIGTERM.
#[test]
fn sigterm_while_gathering_stops_at_once_with_an_interrupted_report() {
    let sb = Sandbox::start();
    let (candidates, _) = old_dangling(&sb, 3);
    let proxy = Proxy::start(&proxy_socket(&sb), &sb.socket(), |request| {
        if request.method == "GET" && request.endpoint() == "/images/json" {
            request.sleep(Duration::from_secs(20));
        }
    });
    let mut child = spawn(json_command(&sb, "run").args(["-H", &proxy.host()]));
    wait_until(Duration::from_secs(20), "the image list request", || {
        proxy.count(|method, path| method == "GET" && path == "/images/json") > 0
    });
    let signalled = Instant::now();
    sigterm(&child.pid());
    let result = child.wait(Duration::from_secs(30));
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "{}",
        result.show()
    );
    assert_eq!(
        result.signal,
        Some(15),
        "dies by SIGTERM: {}",
        result.show()
    );
    assert_eq!(
        result.report["decision"],
        "interrupted",
        "{}",
        result.show()
    );
    assert_eq!(result.report["stopped"]["kind"], "interrupted");
    let last = last_run(&sb);
    assert_eq!(last["decision"], "interrupted");
    assert!(candidates.is_subset(&sb.image_ids()), "nothing was deleted");
    drop(proxy);
}

/// SIGTERM while deletes are in flight (each held back a second): no new delete starts, the
/// ones sent are seen through and recorded, the report, last-run.json and the metrics say
/// `interrupted`, and the process dies by SIGTERM. What is gone is exactly `removed`.
#[test]
fn sigterm_during_deletions_sees_in_flight_ones_through_and_reports_interrupted() {
    let sb = Sandbox::start();
    let (candidates, _) = old_dangling(&sb, 40);
    let before = sb.image_ids();
    let proxy = Proxy::start(&proxy_socket(&sb), &sb.socket(), |request| {
        if request.is_image_delete() {
            request.sleep(Duration::from_millis(1500));
        }
    });
    let metrics = sb.scratch().join("pruneguard.prom");
    let mut child = spawn(
        json_command(&sb, "run")
            .args(["-H", &proxy.host(), "--metrics-file"])
            .arg(&metrics),
    );
    wait_until(Duration::from_secs(30), "the first DELETE", || {
        proxy.count(|method, _| method == "DELETE") > 0
    });
    sigterm(&child.pid());
    let result = child.wait(Duration::from_secs(30));
    let deletes_sent = proxy.count(|method, _| method == "DELETE");
    drop(proxy);
    assert_eq!(
        result.signal,
        Some(15),
        "dies by SIGTERM: {}",
        result.show()
    );
    let report = &result.report;
    assert_eq!(report["decision"], "interrupted", "{report:#}");
    assert_partition(report, &candidates);
    let removed = ids(report, "removed");
    assert!(
        !removed.is_empty(),
        "the in-flight deletes were seen through: {report:#}"
    );
    assert!(
        !ids(report, "not_attempted").is_empty(),
        "no new delete started after the signal: {report:#}"
    );
    assert!(
        deletes_sent < candidates.len(),
        "{deletes_sent} deletes were sent"
    );
    let gone: BTreeSet<String> = before.difference(&sb.image_ids()).cloned().collect();
    assert_eq!(gone, removed, "exactly the removed images are gone");
    let last = last_run(&sb);
    assert_eq!(last["decision"], "interrupted");
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        metrics.contains("pruneguard_last_run_success 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("pruneguard_images_removed {}", removed.len())),
        "{metrics}"
    );
}
