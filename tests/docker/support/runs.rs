//! Running the binary under test and reading what it reports: the one way every docker test
//! starts pruneguard ([`pruneguard`], [`json_command`], [`run`], [`json_run`], [`spawn`];
//! [`bare_pruneguard_in_netns`] inside a sandbox's network namespace) and reads its exit, output
//! and JSON report ([`Run`], [`ids`], [`gate`]).

use std::borrow::BorrowMut;
use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Sandbox;

/// The binary under test, isolated from the host and aimed at no daemon: every
/// `PRUNEGUARD_*` and `DOCKER_*` variable (such as `PRUNEGUARD_CONFIG`, docker contexts and
/// TLS settings) and `RUST_LOG` removed, stdin null, and `PRUNEGUARD_AGE_BASIS=created`. [`pruneguard`] aims it at a sandbox.
pub fn bare_pruneguard() -> Command {
    isolated(Command::new(env!("CARGO_BIN_EXE_pruneguard")))
}

/// [`bare_pruneguard`] run inside the network namespace `netns` ([`in_netns`](super::in_netns)):
/// for a daemon that listens only there, such as a sandbox's TLS listener on 127.0.0.1 or a
/// swarm node's address. The environment and stdin set on the command are pruneguard's (nsenter
/// passes them on), and nsenter execs it: the child's pid is pruneguard's own, for signals.
pub fn bare_pruneguard_in_netns(netns: &str) -> Command {
    isolated(super::in_netns(netns, env!("CARGO_BIN_EXE_pruneguard")))
}

/// What [`bare_pruneguard`] does to its command: the host's settings removed, stdin null, the
/// old age basis.
fn isolated(mut cmd: Command) -> Command {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("PRUNEGUARD_")
            || key_text.starts_with("DOCKER_")
            || key_text == "RUST_LOG"
        {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null());
    // The age basis from before issue 11 (`created`), so that a test of one run keeps its
    // meaning ("old dangling images go"); tests of `unused_for` pass `--age-basis unused_for`,
    // which beats the variable.
    cmd.env("PRUNEGUARD_AGE_BASIS", "created");
    cmd
}

/// The binary under test ([`bare_pruneguard`]) aimed at `sandbox`: `DOCKER_HOST` set to it and
/// `PRUNEGUARD_STATE_DIR` to its state dir. Add `--no-config` yourself.
pub fn pruneguard(sandbox: &Sandbox) -> Command {
    let mut cmd = bare_pruneguard();
    cmd.env("DOCKER_HOST", sandbox.host())
        .env("PRUNEGUARD_STATE_DIR", sandbox.state_dir());
    cmd
}

/// The flags that open the disk and quiet gates on purpose (after `--no-config`): a sandbox's
/// disk is far from 80 % full, and the test has just loaded images, so whatever else a test
/// sets (or nothing) alone decides.
pub const OPEN_GATES: [&str; 5] = [
    "--no-config",
    "--disk-threshold",
    "0",
    "--quiet-period",
    "0s",
];

/// `pruneguard SUBCOMMAND` ([`pruneguard`]) with [`OPEN_GATES`] and `--output json`; add the
/// test's own arguments to it.
pub fn json_command(sandbox: &Sandbox, subcommand: &str) -> Command {
    let mut command = pruneguard(sandbox);
    command
        .arg(subcommand)
        .args(OPEN_GATES)
        .args(["--output", "json"]);
    command
}

/// A finished pruneguard process: exit code (-1 when killed by a signal), the signal that
/// killed it, its output, the JSON report on stdout (`Value::Null` when stdout is not JSON)
/// and how long it took.
pub struct Run {
    pub code: i32,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub report: Value,
    pub elapsed: Duration,
}

impl Run {
    /// Exit code (or signal), time, stdout and stderr, for failure messages.
    pub fn show(&self) -> String {
        let ended = match self.signal {
            Some(signal) => format!("killed by signal {signal}"),
            None => format!("exit {}", self.code),
        };
        format!(
            "{ended} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.elapsed, self.stdout, self.stderr
        )
    }

    /// The JSON report, asserting that stdout was one (a JSON object).
    pub fn json(&self) -> &Value {
        assert!(
            self.report.is_object(),
            "no JSON report on stdout: {}",
            self.show()
        );
        &self.report
    }
}

/// A [`Run`] of a process that ended with `output` after `elapsed`. Its output must be UTF-8:
/// pruneguard writes nothing else.
fn finish(output: Output, elapsed: Duration) -> Run {
    let text = |bytes: Vec<u8>, stream: &str| {
        String::from_utf8(bytes)
            .unwrap_or_else(|err| panic!("pruneguard wrote non-UTF-8 to {stream}: {err}"))
    };
    let stdout = text(output.stdout, "stdout");
    let stderr = text(output.stderr, "stderr");
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    Run {
        code: output.status.code().unwrap_or(-1),
        signal: std::os::unix::process::ExitStatusExt::signal(&output.status),
        stdout,
        stderr,
        report,
        elapsed,
    }
}

/// Runs `command` (the pruneguard binary) to its end; does not check the exit status.
pub fn run(mut command: impl BorrowMut<Command>) -> Run {
    let command = command.borrow_mut();
    let started = Instant::now();
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    finish(output, started.elapsed())
}

/// Runs `pruneguard SUBCOMMAND` ([`json_command`]) with `args`, asserting that it exits 0 with
/// a JSON report.
pub fn json_run(sandbox: &Sandbox, subcommand: &str, args: &[&str]) -> Run {
    let result = run(json_command(sandbox, subcommand).args(args));
    assert_eq!(
        result.code,
        0,
        "pruneguard {subcommand} {args:?} must exit 0\n{}",
        result.show()
    );
    result.json();
    result
}

/// Starts `command` (the pruneguard binary) with stdout and stderr piped, for a test that acts
/// while it runs. See [`Running`].
pub fn spawn(mut command: impl BorrowMut<Command>) -> Running {
    let command = command.borrow_mut();
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let child = command
        .spawn()
        .unwrap_or_else(|err| panic!("cannot spawn {command:?}: {err}"));
    Running {
        child: Some(child),
        started,
    }
}

/// A pruneguard process started by [`spawn`]. [`Running::wait`] turns it into a [`Run`];
/// dropping it unwaited (a test failing half way) kills it, so that no process outlives its
/// test holding the test's output.
pub struct Running {
    child: Option<Child>,
    started: Instant,
}

impl Running {
    fn child(&mut self) -> &mut Child {
        // Only `wait` takes the child, and it consumes `self`.
        self.child
            .as_mut()
            .expect("the process has not been waited for")
    }

    /// The process ID, to send it signals.
    pub fn pid(&mut self) -> String {
        self.child().id().to_string()
    }

    /// Its stderr, to read while it runs; the [`Run`] then has no stderr.
    pub fn take_stderr(&mut self) -> ChildStderr {
        self.child()
            .stderr
            .take()
            .expect("stderr is piped and not taken yet")
    }

    /// Waits for the process to end (its output is read meanwhile, so a full pipe cannot stall
    /// it); after `timeout` kills it and fails the test.
    pub fn wait(mut self, timeout: Duration) -> Run {
        let mut child = self
            .child
            .take()
            .expect("the process has not been waited for");
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for pruneguard") {
                break status;
            }
            if self.started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "pruneguard did not finish within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                    String::from_utf8_lossy(&stdout.join().unwrap_or_default()),
                    String::from_utf8_lossy(&stderr.join().unwrap_or_default())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = Output {
            status,
            stdout: stdout.join().expect("the stdout reader does not panic"),
            stderr: stderr.join().expect("the stderr reader does not panic"),
        };
        finish(output, self.started.elapsed())
    }
}

/// Reads `pipe` to its end on a thread of its own; an absent pipe reads as nothing.
fn read_all(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut bytes)
                .unwrap_or_else(|err| panic!("cannot read pruneguard's output: {err}"));
        }
        bytes
    })
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The image IDs a report lists in `field`: each entry's `id`, or for `not_attempted` (a list
/// of bare IDs) each entry itself. Panics when `field` is not an array or an entry has no ID.
pub fn ids(report: &Value, field: &str) -> BTreeSet<String> {
    report[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not an array in {report:#}"))
        .iter()
        .map(|entry| {
            let id = if field == "not_attempted" {
                entry.as_str()
            } else {
                entry["id"].as_str()
            };
            id.unwrap_or_else(|| panic!("no id in the {field} entry {entry}"))
                .to_owned()
        })
        .collect()
}

/// The verdict of the gate `name` (`disk`, `workload`, `swarm`, `quiet`) in a report.
pub fn gate<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["gates"]
        .as_array()
        .and_then(|gates| gates.iter().find(|gate| gate["name"] == name))
        .unwrap_or_else(|| panic!("no {name} gate in the report:\n{report:#}"))
}
