//! `pruneguard watch` against a private daemon (issue 11, item 5): ticks every interval with
//! one log line each, serves `pruneguard_` metrics at `--metrics-listen`, survives a tick that
//! fails (daemon stopped: logged, counted, nothing deleted) and ends with exit 0 on SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use crate::gates_docker::{load_old_dangling, send_signal, wait_until};
use crate::support::{OPEN_GATES, Running, Sandbox, pruneguard, spawn};

/// A free TCP port on 127.0.0.1 (bound and released; the test binds it right after).
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("its address")
}

/// `GET path` over plain HTTP/1.0: (status code, body).
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())?;
    Some((status, body))
}

/// Starts `pruneguard watch --interval 1s --metrics-listen ADDR` with the gates opened; its
/// stderr lines arrive on the returned channel.
fn start_watch(sb: &Sandbox, addr: SocketAddr) -> (Running, mpsc::Receiver<String>) {
    let mut command = pruneguard(sb);
    command
        .arg("watch")
        .args(OPEN_GATES)
        .args([
            "--min-age",
            "0s",
            "--interval",
            "1s",
            "--metrics-listen",
            &addr.to_string(),
        ])
        .env("RUST_LOG", "pruneguard=info");
    let mut child = spawn(&mut command);
    let stderr = child.take_stderr();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines_rx)
}

/// Collects lines until `count` of them contain `needle` (or 30 s pass); returns all seen.
fn lines_until(lines: &mpsc::Receiver<String>, needle: &str, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen
        .iter()
        .filter(|line: &&String| line.contains(needle))
        .count()
        < count
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(error) => panic!(
                "fewer than {count} lines with {needle:?} ({error}); seen:\n{}",
                seen.join("\n")
            ),
        }
    }
    seen
}

#[test]
fn watch_ticks_serves_metrics_survives_a_failed_tick_and_exits_0_on_sigterm() {
    let sb = Sandbox::start();
    let dangling = load_old_dangling(&sb);
    let addr = free_addr();
    let (mut child, lines) = start_watch(&sb, addr);

    // Two ticks, one line each, every gate open (whether the first one prunes depends on the
    // age basis; when it does, exactly the old dangling images go).
    let seen = lines_until(&lines, "tick=", 2);
    let ticks: Vec<&String> = seen.iter().filter(|line| line.contains("tick=")).collect();
    assert!(ticks[0].contains("tick=1"), "{}", seen.join("\n"));
    assert!(ticks[1].contains("tick=2"), "{}", seen.join("\n"));
    for tick in &ticks {
        assert!(
            tick.contains("decision=\"pruned\"") || tick.contains("decision=\"nothing_to_do\""),
            "{}",
            seen.join("\n")
        );
    }
    if ticks[0].contains("decision=\"pruned\"") {
        assert!(
            sb.dangling_ids().is_disjoint(&dangling),
            "the first tick pruned them"
        );
    }

    // The latest tick's metrics, in the text format; other paths are 404.
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics answers");
    assert_eq!(status, 200, "{body}");
    for metric in [
        "pruneguard_last_run_success 1",
        "pruneguard_gate_open{gate=\"disk\"} 1",
        "pruneguard_watch_ticks_total{result=\"ok\"}",
        "pruneguard_build_info{",
    ] {
        assert!(body.contains(metric), "/metrics lacks {metric}:\n{body}");
    }
    assert_eq!(http_get(addr, "/").map(|(status, _)| status), Some(404));

    // The daemon stops: ticks fail, are logged and counted; the watch goes on, nothing deleted.
    sb.stop_daemon();
    let seen = lines_until(&lines, "tick failed, nothing was deleted", 2);
    assert!(
        seen.iter()
            .any(|line| line.contains("cannot reach the container engine")),
        "{}",
        seen.join("\n")
    );
    let mut failed_metrics = String::new();
    wait_until(
        "the metrics to show a failed tick",
        Duration::from_secs(10),
        || {
            failed_metrics = http_get(addr, "/metrics")
                .map(|(_, body)| body)
                .unwrap_or_default();
            failed_metrics.contains("pruneguard_last_run_success 0")
                && !failed_metrics.contains("pruneguard_watch_ticks_total{result=\"failed\"} 0")
        },
    );

    // Back again: the next tick succeeds.
    sb.start_daemon();
    lines_until(&lines, "decision=", 1);

    // SIGTERM: a clean stop, exit 0.
    send_signal("-TERM", &child.pid());
    let result = child.wait(Duration::from_secs(20));
    assert_eq!(
        result.code,
        0,
        "watch ends with exit 0 on SIGTERM: {}",
        result.show()
    );
    assert_eq!(result.signal, None);
    assert!(
        result.stdout.is_empty(),
        "watch writes nothing on stdout: {}",
        result.stdout
    );
    // The last tick's report is the state file, as for a run.
    let state =
        std::fs::read_to_string(sb.state_dir().join("last-run.json")).expect("last-run.json");
    assert!(state.contains("\"decision\""), "{state}");
}
