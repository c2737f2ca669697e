//! The imperative shell: for each command, resolve the settings, talk to the engine, run the
//! pure core, act, and report. `main` only parses flags and maps the result to an exit status.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use clap::CommandFactory as _;
use tracing::{debug, info, warn};

use crate::cli::{Cli, Command, OutputFormat, RunArgs, StatusArgs};
use crate::config::{ConfigError, Mode, Settings};
use crate::disk;
use crate::engine::{DockerEngine, Engine};
use crate::execute::{self, Recheck};
use crate::exit::Outcome;
use crate::gates::{self, GateName, GateVerdict};
use crate::human::{human_bytes, short_id};
use crate::lock::RunLock;
use crate::model::Snapshot;
use crate::plan;
use crate::report::{self, Report, ReportInput, WaitSummary};
use crate::snapshot::{self, Scope};

pub const LAST_RUN_FILE: &str = "last-run.json";

/// Runs one command to its end.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Run(args) => prune(&args, args.dry_run, false).await,
        Command::Plan(args) => prune(&args, true, true).await,
        Command::Doctor(args) => crate::doctor::run(&args).await,
        Command::Config(args) => {
            let settings = Settings::resolve(&args)?;
            print(&settings.effective())?;
            Ok(Outcome::Success)
        }
        Command::Status(args) => status(&args),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "pruneguard", &mut std::io::stdout());
            Ok(Outcome::Success)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .context("cannot render the man page")?;
            std::io::stdout()
                .write_all(&page)
                .context("cannot write to stdout")?;
            Ok(Outcome::Success)
        }
    }
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the report to stdout")
}

/// `run` and `plan`: gather, decide, act (unless dry), report.
async fn prune(args: &RunArgs, dry_run: bool, verbose_plan: bool) -> anyhow::Result<Outcome> {
    let mode = if verbose_plan { Mode::Plan } else { Mode::Run };
    let settings = Settings::resolve_for(args, mode)?;
    let dry_run = dry_run || settings.dry_run;
    let started = Instant::now();
    let started_at = Utc::now();
    // A dry run changes nothing, so it may run beside a real one.
    let _lock = if dry_run {
        None
    } else {
        Some(RunLock::acquire(&settings.state_dir)?)
    };
    let engine = DockerEngine::connect(&settings.host, settings.api_timeout).await?;
    info!(endpoint = engine.endpoint(), dry_run, "gathering");

    let (snapshot, verdicts, wait) = wait_for_gates(&engine, &settings).await?;
    let all_open = gates::all_open(&verdicts);
    let images = engine
        .images()
        .await
        .context("could not list images, so nothing can be planned")?;
    let containers = snapshot.containers.as_ref().map_err(|error| {
        anyhow::anyhow!("could not list containers ({error}), so it cannot be known which images are in use; nothing was deleted")
    })?;
    let now = Utc::now();
    let plan = plan::plan(&images, containers, settings.policy.min_age, now);
    for kept in &plan.kept_images {
        debug!(image = %short_id(&kept.id), reason = kept.reason.as_str(), "kept");
    }
    let disk_before = snapshot.disk.as_ref().ok().cloned();

    let execution = if !dry_run && all_open && !plan.candidates.is_empty() {
        let execution = execute::execute(&engine, &plan, execute::DEFAULT_CONCURRENCY, |when| {
            recheck_gates(&engine, &settings, when)
        })
        .await;
        Some(execution)
    } else {
        None
    };
    let disk_after = match (&execution, &disk_before) {
        (Some(_), Some(before)) => disk::usage(&before.path).ok(),
        _ => None,
    };

    let min_age = humantime::format_duration(settings.policy.min_age).to_string();
    let mut report = Report::new(ReportInput {
        started_at,
        dry_run,
        gates: verdicts,
        plan,
        execution,
        disk: disk_before,
        disk_after,
        wait,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        min_age: &min_age,
    });
    info!(
        decision = report.decision.as_str(),
        removed = report.removed.len(),
        candidates = report.candidates.len(),
        "{}",
        report.summary
    );
    if !dry_run {
        persist(&settings, &mut report);
    }
    let rendered = match settings.output {
        OutputFormat::Json => format!("{}\n", report.to_json()),
        OutputFormat::Text => report.to_text(verbose_plan),
    };
    print(&rendered)?;
    Ok(if !report.failed.is_empty() && !report.daemon_lost() {
        Outcome::DeletionsFailed
    } else if report.daemon_lost() {
        Outcome::RuntimeFailure
    } else {
        Outcome::Success
    })
}

/// Fresh evidence and verdicts for `execute`'s re-checks. It starts by asking the daemon, so
/// a daemon that went away stops the run here, before any delete is sent.
async fn recheck_gates(
    engine: &DockerEngine,
    settings: &Settings,
    when: Recheck,
) -> anyhow::Result<Vec<GateVerdict>> {
    let daemon = engine
        .info()
        .await
        .context("could not read the daemon's /info")?;
    let snapshot = snapshot::gather(engine, settings, Utc::now(), daemon, Scope::GatesOnly).await?;
    let mut verdicts = gates::evaluate(&snapshot, &settings.policy.gates, Utc::now());
    if when == Recheck::MidRun {
        verdicts.retain(|verdict| verdict.name != GateName::Disk);
    }
    Ok(verdicts)
}

/// Evaluates the gates, and while the disk gate is open but another is closed, re-evaluates
/// every `wait_interval` for up to `wait` (SIGTERM ends the wait with a skip).
async fn wait_for_gates(
    engine: &DockerEngine,
    settings: &Settings,
) -> anyhow::Result<(Snapshot, Vec<GateVerdict>, Option<WaitSummary>)> {
    let policy = &settings.policy.gates;
    let started = Instant::now();
    let mut evaluations = 0_u32;
    let mut held_by: Vec<String> = Vec::new();
    // Only a run that may wait takes over SIGTERM/SIGINT: once tokio listens for a signal its
    // default action is gone for good, and a run that does not wait must stay stoppable
    // (Ctrl-C, `systemctl stop`) while it deletes.
    let mut terminate = if policy.wait.is_zero() {
        None
    } else {
        Some(Termination::new()?)
    };
    loop {
        let daemon = engine
            .info()
            .await
            .context("could not read the daemon's /info")?;
        let now = Utc::now();
        // The last evaluation's containers feed the plan, so this gather lists them all.
        let snapshot = snapshot::gather(engine, settings, now, daemon, Scope::Plan).await?;
        let verdicts = gates::evaluate(&snapshot, policy, now);
        evaluations += 1;
        for verdict in verdicts.iter().filter(|verdict| !verdict.open) {
            info!(gate = verdict.name.as_str(), "closed: {}", verdict.detail);
            if !held_by.iter().any(|name| name == verdict.name.as_str()) {
                held_by.push(verdict.name.as_str().to_string());
            }
        }
        let disk_open = verdicts
            .iter()
            .any(|verdict| verdict.name == GateName::Disk && verdict.open);
        let all_open = gates::all_open(&verdicts);
        let remaining = policy.wait.saturating_sub(started.elapsed());
        let summary = |ended: &'static str, held_by: &[String]| {
            (!policy.wait.is_zero()).then(|| WaitSummary {
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                evaluations,
                held_by: held_by.to_vec(),
                ended,
            })
        };
        let ended = if all_open {
            Some("gates_open")
        } else if !disk_open {
            // Without disk pressure there is nothing to wait for.
            Some("disk_gate_closed")
        } else if remaining.is_zero() {
            Some("timeout")
        } else {
            None
        };
        if let Some(ended) = ended {
            if let Some(terminate) = terminate.take() {
                terminate.exit_on_signal();
            }
            return Ok((snapshot, verdicts, summary(ended, &held_by)));
        }
        let pause = policy.wait_interval.min(remaining);
        info!(closed = ?gates::closed_names(&verdicts), next_check_in = ?pause, "waiting for gates");
        let terminated = if let Some(terminate) = terminate.as_mut() {
            terminate.sleep_or_signal(pause).await
        } else {
            tokio::time::sleep(pause).await;
            false
        };
        if terminated {
            warn!("terminated while waiting for gates; skipping this run");
            return Ok((snapshot, verdicts, summary("terminated", &held_by)));
        }
    }
}

/// SIGTERM (systemd stopping the unit) or SIGINT ends a wait early.
struct Termination {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Termination {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// After the wait, a signal means what it means by default again: stop now. Deleting is
    /// safe to interrupt (each image is one request, gone or not), and the handlers cannot be
    /// uninstalled once tokio owns them.
    fn exit_on_signal(mut self) {
        tokio::spawn(async move {
            let code = tokio::select! {
                _ = self.term.recv() => 128 + 15,
                _ = self.int.recv() => 128 + 2,
            };
            warn!("terminated by a signal after the wait; stopping now");
            std::process::exit(code);
        });
    }

    /// True when a signal arrived before `pause` ended.
    async fn sleep_or_signal(&mut self, pause: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(pause) => false,
            _ = self.term.recv() => true,
            _ = self.int.recv() => true,
        }
    }
}

/// Writes the state file and the metrics; failures become warnings in the report, because the
/// decision already stands and the operator must still see it.
fn persist(settings: &Settings, report: &mut Report) {
    let state_file = settings.state_dir.join(LAST_RUN_FILE);
    if let Err(error) = report::write_atomically(&state_file, &format!("{}\n", report.to_json())) {
        let warning = format!(
            "could not write the state file {}: {error:#}",
            state_file.display()
        );
        warn!("{warning}");
        report.warnings.push(warning);
    }
    if let Some(path) = &settings.metrics_file
        && let Err(error) = report::write_atomically(path, &report.to_metrics(Utc::now()))
    {
        let warning = format!(
            "could not write the metrics file {}: {error:#}",
            path.display()
        );
        warn!("{warning}");
        report.warnings.push(warning);
    }
}

/// `status`: a summary of the last run's report in the state directory.
fn status(args: &StatusArgs) -> anyhow::Result<Outcome> {
    let dir = Settings::resolve_state_dir(args)?;
    let path = dir.join(LAST_RUN_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "no run has been recorded yet: {} does not exist. Run `pruneguard run` (or check --state-dir).",
                path.display()
            )
        }
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let report: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
        ConfigError(format!(
            "{} is not a pruneguard report: {error}",
            path.display()
        ))
    })?;
    if args.output == OutputFormat::Json {
        print(&text)?;
        return Ok(Outcome::Success);
    }
    let field = |name: &str| {
        report
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let mut out = format!(
        "Last run: {} ({}), decision {}.\n{}\n",
        field("started_at"),
        if report["dry_run"].as_bool().unwrap_or(false) {
            "dry run"
        } else {
            "run"
        },
        field("decision"),
        field("summary")
    );
    if let Some(gates) = report["gates"].as_array() {
        for gate in gates.iter().filter(|gate| gate["open"] == false) {
            out.push_str(&format!(
                "  closed {}: {}\n",
                gate["name"].as_str().unwrap_or("?"),
                gate["detail"].as_str().unwrap_or("")
            ));
        }
    }
    let reclaimed = report["reclaimed_bytes"].as_u64().unwrap_or(0);
    let removed = report["removed"].as_array().map_or(0, Vec::len);
    out.push_str(&format!(
        "Removed {removed} image(s); {} reclaimed.\n",
        human_bytes(reclaimed)
    ));
    print(&out)?;
    Ok(Outcome::Success)
}
