//! Waiting for closed gates (`--wait-for-gates`): evaluate, and while the disk gate is open but
//! another is closed, re-evaluate every `wait_interval` until the gates open or the wait ends.
//! SIGTERM/SIGINT end a wait early with a skip ([`Signals`]). Whether a wait ends is decided
//! by the pure [`WaitEnd::after_evaluation`].

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use tracing::{debug, info, warn};

use crate::config::Settings;
use crate::decision::WaitEnd;
use crate::engine::{DockerEngine, Engine as _};
use crate::gates::{self, GateVerdict};
use crate::model::Snapshot;
use crate::report::WaitSummary;
use crate::signals::Signals;
use crate::snapshot::{self, Scope};

/// The last evaluation of a (possibly zero-length) wait.
pub struct Evaluated {
    /// Gathered with [`Scope::Plan`]: its containers feed the plan.
    pub snapshot: Snapshot,
    pub verdicts: Vec<GateVerdict>,
    /// `None` when the run was not asked to wait.
    pub wait: Option<WaitSummary>,
}

/// Evaluates the gates, waiting up to `wait` for closed ones to open.
pub async fn evaluate_gates(
    engine: &DockerEngine,
    settings: &Settings,
    wait: Duration,
    signals: &Signals,
) -> anyhow::Result<Evaluated> {
    let policy = &settings.policy.gates;
    let started = Instant::now();
    let mut evaluations = 0_u32;
    let mut held_by: Vec<String> = Vec::new();
    let summary = |ended: WaitEnd, evaluations: u32, held_by: &[String]| {
        (!wait.is_zero()).then(|| WaitSummary {
            waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            evaluations,
            held_by: held_by.to_vec(),
            ended,
        })
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
            // The report names every closed gate; a log line each is for watching a wait.
            if wait.is_zero() {
                debug!(gate = verdict.name.as_str(), "closed: {}", verdict.detail);
            } else {
                info!(gate = verdict.name.as_str(), "closed: {}", verdict.detail);
            }
            if !held_by.iter().any(|name| name == verdict.name.as_str()) {
                held_by.push(verdict.name.as_str().to_string());
            }
        }
        let remaining = wait.saturating_sub(started.elapsed());
        if let Some(ended) = WaitEnd::after_evaluation(&verdicts, !remaining.is_zero()) {
            let wait = summary(ended, evaluations, &held_by);
            return Ok(Evaluated {
                snapshot,
                verdicts,
                wait,
            });
        }
        let pause = policy.wait_interval.min(remaining);
        info!(closed = ?gates::closed_names(&verdicts), next_check_in = ?pause, "waiting for gates");
        let terminated = tokio::select! {
            () = tokio::time::sleep(pause) => false,
            () = signals.arrived() => true,
        };
        if terminated {
            warn!("terminated while waiting for gates; skipping this run");
            let wait = summary(WaitEnd::Terminated, evaluations, &held_by);
            return Ok(Evaluated {
                snapshot,
                verdicts,
                wait,
            });
        }
    }
}
