//! The imperative shell: for each command, resolve the settings, talk to the engine, run the
//! pure core, act, and report. Decisions are made by pure functions ([`Action::decide`],
//! [`Report::outcome`]); this module only wires calls. `main` parses flags and maps the
//! result to an exit status.

use std::io::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use chrono::Utc;
use clap::CommandFactory as _;
use tracing::{debug, info};

use crate::cli::{Cli, Command, OutputFormat, RunArgs, StatusArgs};
use crate::config::Settings;
use crate::decision::{Action, Mode};
use crate::disk;
use crate::engine::{DockerEngine, Engine};
use crate::execute::{self, Execution, Stop};
use crate::exit::Outcome;
use crate::gates::GateVerdict;
use crate::human::short_id;
use crate::model::{DiskUsage, ImageStore};
use crate::plan::{self, Plan};
use crate::policy::AgeBasis;
use crate::report::{Report, ReportInput, WaitSummary};
use crate::signals::{self, Signals};
use crate::snapshot;
use crate::state::{self, LastRunFile, RunLock};
use crate::wait;

/// Runs one command to its end.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Run(args) => prune(&args, Mode::Run).await,
        Command::Plan(args) => prune(&args, Mode::Plan).await,
        Command::Watch(args) => crate::watch::run(&args).await,
        Command::Doctor(args) => crate::doctor::run(&args).await,
        Command::Config(args) if args.check => {
            let settings = Settings::check(&args.run)?;
            print(format!("{}\n", settings.validity()).as_bytes())?;
            Ok(Outcome::Success)
        }
        Command::Config(args) => {
            let settings = Settings::resolve(&args.run)?;
            print(settings.effective().as_bytes())?;
            Ok(Outcome::Success)
        }
        Command::Status(args) => status(&args),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "pruneguard", &mut script);
            print(&script)?;
            Ok(Outcome::Success)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .context("cannot render the man page")?;
            print(&page)?;
            Ok(Outcome::Success)
        }
    }
}

/// Writes to stdout. A reader that went away (`pruneguard plan | head`) is not an error: the
/// output was wanted only that far, as ripgrep treats it.
fn print(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write the report to stdout")
        }
        _ => Ok(()),
    }
}

/// Writes to stdout through a buffer, as [`print`] does (a reader that went away is no error).
fn print_with(
    write: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock<'static>>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match write(&mut stdout).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write the report to stdout")
        }
        _ => Ok(()),
    }
}

/// `run` and `plan`: gather, decide, act (unless dry), report.
async fn prune(args: &RunArgs, mode: Mode) -> anyhow::Result<Outcome> {
    // A plan never deletes, and waits only when its own command line asks it to.
    let settings = Settings::resolve_for(args, mode)?;
    let signals = Signals::install()?;
    // A dry run changes nothing, so it may run beside a real one.
    let _lock = if settings.dry_run {
        None
    } else {
        Some(RunLock::acquire(&settings.state_dir)?)
    };
    let report = pass(&settings, mode, &signals).await?;
    info!(
        decision = report.decision.as_str(),
        removed = report.removed.len(),
        candidates = report.candidates.len(),
        "{}",
        report.summary
    );
    match settings.output {
        OutputFormat::Json => print_with(|out| report.write_json(out))?,
        OutputFormat::Text => print(report.to_text(mode == Mode::Plan).as_bytes())?,
    }
    Ok(signals
        .received()
        .map_or_else(|| report.outcome(), Outcome::Signalled))
}

/// One gather → decide → act → report, as `run` and `plan` do it and as each tick of `watch`
/// does it: writes the state file and the metrics file unless it is a dry
/// run, and returns the report (not printed). The caller holds the run lock and the signals.
/// An error is a runtime failure before any report exists (the daemon unreachable, a list
/// refused): nothing was deleted then.
pub async fn pass(settings: &Settings, mode: Mode, signals: &Signals) -> anyhow::Result<Report> {
    let dry_run = settings.dry_run;
    let wait = settings.policy.gates.wait;
    let started = Instant::now();
    let started_at = Utc::now();
    let engine = DockerEngine::connect(
        &settings.host,
        settings.tls.as_ref(),
        settings.api_timeout,
        settings.max_list_size,
    )
    .await?;
    debug!(endpoint = engine.endpoint(), dry_run, ?mode, "gathering");

    // Gathering only reads, so a signal may abandon it at once; a waiting run ends its wait
    // itself, with a skip report that says so.
    let decided = tokio::select! {
        decided = decide(&engine, settings, wait, dry_run, signals) => Some(decided?),
        () = signals.arrived(), if wait.is_zero() => None,
    };
    let (decided, execution) = if let Some(decided) = decided {
        let execution = if decided.action == Action::Execute {
            Some(
                execute::execute(
                    &engine,
                    &decided.plan,
                    execute::DEFAULT_CONCURRENCY,
                    signals.interrupt(),
                    |_| snapshot::recheck_gates(&engine, settings),
                )
                .await,
            )
        } else {
            None
        };
        (decided, execution)
    } else {
        let signal = signals.received().map_or("a signal", signals::name);
        let execution = Execution {
            stopped: Some(Stop::Interrupted {
                signal: signal.into(),
            }),
            ..Execution::default()
        };
        (Decided::interrupted_early(), Some(execution))
    };
    let disk_before = decided.disk.clone();
    let observation_warnings = decided.warnings.clone();
    let mut disk_after = match (&execution, &disk_before) {
        // Measured again whenever deleting ran, as before the hardening.
        (Some(_), Some(before)) => disk::usage(&before.path).ok(),
        _ => None,
    };
    let dangling_reclaimed = freed(disk_before.as_ref(), disk_after.as_ref());
    let tier_outcomes = run_tiers(
        &engine,
        settings,
        &decided,
        execution.as_ref(),
        disk_before.as_ref(),
        &mut disk_after,
        signals,
    )
    .await?;

    let more_disks: Vec<(DiskUsage, Option<DiskUsage>)> = decided
        .more_disks
        .into_iter()
        .map(|before| {
            let after = execution
                .as_ref()
                .and_then(|_| disk::usage(&before.path).ok());
            (before, after)
        })
        .collect();

    let min_age = crate::human::format_duration(settings.policy.min_age);
    let mut report = Report::new(ReportInput {
        started_at,
        dry_run,
        action: decided.action,
        gates: decided.verdicts,
        plan: decided.plan,
        execution,
        disk: disk_before,
        disk_after,
        more_disks,
        image_store: decided.image_store,
        wait: decided.wait,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        min_age: &min_age,
    });
    report.warnings.extend(observation_warnings);
    if decided.tier_inputs.is_some() {
        report.set_tiers(dangling_reclaimed, tier_outcomes);
    }
    if !dry_run {
        state::persist(settings, &mut report);
    }
    Ok(report)
}

/// The opt-in tiers after the dangling tier: their plans in a dry run, their removals in a
/// real run whose gates were open and whose dangling tier finished; `disk_after` is measured
/// again after they ran.
async fn run_tiers(
    engine: &DockerEngine,
    settings: &Settings,
    decided: &Decided,
    execution: Option<&Execution>,
    disk: Option<&DiskUsage>,
    disk_after: &mut Option<DiskUsage>,
    signals: &Signals,
) -> anyhow::Result<Vec<crate::tiers::TierOutcome>> {
    use crate::tiers::execute as tiers;
    let Some(inputs) = &decided.tier_inputs else {
        return Ok(Vec::new());
    };
    // Every filesystem the disk gate measured: the tiers follow the fullest (D11, D13).
    let disks: Vec<DiskUsage> = disk
        .into_iter()
        .chain(&decided.more_disks)
        .cloned()
        .collect();
    let disk_paths: Vec<std::path::PathBuf> = disks.iter().map(|disk| disk.path.clone()).collect();
    let context = tiers::Context {
        tiers: &settings.tiers,
        policy: &settings.policy,
        services: &inputs.services,
        record: inputs.record.as_ref(),
        disk_paths: &disk_paths,
        honours_noprune: inputs.honours_noprune,
    };
    let stopped = execution.and_then(|execution| execution.stopped.as_ref());
    Ok(if settings.dry_run {
        tiers::plan_only(
            &context,
            &inputs.images,
            &inputs.containers,
            &disks,
            inputs.now,
        )
    } else if disk.is_none() {
        tiers::not_run(&settings.tiers, "the disk could not be measured")
    } else if stopped.is_some() {
        tiers::not_run(
            &settings.tiers,
            "the dangling tier stopped early, so no later tier runs",
        )
    } else if matches!(decided.action, Action::Execute | Action::NothingToDo) {
        let outcomes = tiers::run(engine, &context, signals.interrupt(), |_| {
            snapshot::recheck_gates(engine, settings)
        })
        .await?;
        *disk_after = disk.and_then(|before| disk::usage(&before.path).ok());
        outcomes
    } else {
        tiers::not_run(&settings.tiers, "a gate is closed")
    })
}

/// Used bytes the filesystem lost between two measurements (0 when either is missing).
fn freed(before: Option<&DiskUsage>, after: Option<&DiskUsage>) -> u64 {
    before.zip(after).map_or(0, |(before, after)| {
        before.used_bytes.saturating_sub(after.used_bytes)
    })
}

/// Everything decided before acting.
struct Decided {
    verdicts: Vec<GateVerdict>,
    wait: Option<WaitSummary>,
    plan: Plan,
    action: Action,
    disk: Option<DiskUsage>,
    /// Problems with the observation record: the decision stands, the report says them.
    warnings: Vec<String>,
    /// The disk gate's other filesystems that could be measured.
    more_disks: Vec<DiskUsage>,
    image_store: Option<ImageStore>,
    /// What the opt-in tiers decide by; `None` when none is enabled.
    tier_inputs: Option<TierInputs>,
}

/// The look at the host the opt-in tiers plan from (a run lists images again after the
/// dangling tier).
struct TierInputs {
    images: Vec<crate::model::Image>,
    containers: Vec<crate::model::Container>,
    services: Vec<crate::model::Service>,
    record: Option<crate::observe::Record>,
    /// Docker keeps an image's untagged parents on delete; Podman does not (D10).
    honours_noprune: bool,
    now: chrono::DateTime<Utc>,
}

impl Decided {
    /// A run stopped by a signal before it had gathered anything.
    fn interrupted_early() -> Self {
        Self {
            verdicts: Vec::new(),
            wait: None,
            plan: Plan::default(),
            action: Action::Skip,
            disk: None,
            warnings: Vec::new(),
            more_disks: Vec::new(),
            image_store: None,
            tier_inputs: None,
        }
    }
}

/// Evaluates the gates (waiting for them if asked), lists the images, plans, and decides.
async fn decide(
    engine: &DockerEngine,
    settings: &Settings,
    wait: std::time::Duration,
    dry_run: bool,
    signals: &Signals,
) -> anyhow::Result<Decided> {
    let evaluated = wait::evaluate_gates(engine, settings, wait, signals).await?;
    let mut images = engine
        .images()
        .await
        .context("could not list images, so nothing can be planned")?;
    let containers = evaluated.snapshot.containers.as_ref().map_err(|error| {
        anyhow::anyhow!("could not list containers ({error}), so it cannot be known which images are in use; nothing was deleted")
    })?;
    // Services name images a deploy or a rollback still needs (`service_ref`); on a manager
    // whose services cannot be read, that is unknown, so nothing is planned.
    let services = match &evaluated.snapshot.swarm_cluster {
        None => &[][..],
        Some(Ok(cluster)) => &cluster.services[..],
        Some(Err(error)) => anyhow::bail!(
            "could not list the swarm services ({error}), so it cannot be known which images a service's current or previous spec still names; nothing was deleted"
        ),
    };
    let now = Utc::now();
    // The unused_tagged tier measures last use from the record too, whatever the age basis.
    let observing =
        settings.policy.age_basis == AgeBasis::UnusedFor || settings.tiers.unused_tagged.enabled;
    let (record, warnings) = if observing {
        let (record, warnings) =
            crate::record::observe(engine, settings, &images, containers, now).await?;
        (Some(record), warnings)
    } else {
        (None, Vec::new())
    };
    let rules = plan::Rules {
        min_age: settings.policy.min_age,
        age: match (&record, settings.policy.age_basis) {
            (Some(record), AgeBasis::UnusedFor) => plan::Age::UnusedFor(record),
            _ => plan::Age::Created,
        },
        services,
        // Podman deletes untagged parents with their child whatever `noprune` says (D10).
        honours_noprune: evaluated.snapshot.daemon.engine.honours_noprune(),
    };
    let mut plan = plan::plan_with(&images, containers, &rules, now);
    if evaluated.snapshot.daemon.image_store == ImageStore::Containerd
        && !plan.candidates.is_empty()
    {
        // Docker's own `until` counts from the last tag change on this store: read it for the
        // candidates only (a later reference only removes candidates), and plan again.
        let ids: Vec<String> = plan.candidates.iter().map(|c| c.id.clone()).collect();
        snapshot::read_last_tag_times(engine, &mut images, &ids, now).await?;
        plan = plan::plan_with(&images, containers, &rules, now);
    }
    for kept in &plan.kept_images {
        debug!(image = %short_id(&kept.id), reason = kept.reason.as_str(), "kept");
    }
    let action = Action::decide(dry_run, &evaluated.verdicts, &plan);
    // Moved, not copied: on a host of 10,000 images the listing and the record are most of a
    // plan's memory (issue 13's 30 MB with both tiers).
    let tier_inputs = settings.tiers.any_enabled().then(|| TierInputs {
        images,
        containers: containers.clone(),
        services: services.to_vec(),
        record,
        honours_noprune: evaluated.snapshot.daemon.engine.honours_noprune(),
        now,
    });
    Ok(Decided {
        tier_inputs,
        warnings,
        disk: evaluated.snapshot.disk.as_ref().ok().cloned(),
        more_disks: evaluated
            .snapshot
            .more_disks
            .iter()
            .filter_map(|other| other.usage.as_ref().ok().cloned())
            .collect(),
        image_store: Some(evaluated.snapshot.daemon.image_store),
        verdicts: evaluated.verdicts,
        wait: evaluated.wait,
        plan,
        action,
    })
}

/// `status`: a summary of the last run's report in the state directory.
fn status(args: &StatusArgs) -> anyhow::Result<Outcome> {
    let dir = Settings::resolve_state_dir(args)?;
    let last = LastRunFile::read(&dir)?;
    match args.output {
        OutputFormat::Json => print(last.text.as_bytes())?,
        OutputFormat::Text => print(last.run.to_text().as_bytes())?,
    }
    Ok(Outcome::Success)
}
