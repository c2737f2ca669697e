//! Applies a [`Plan`] through the engine: re-checks the gates right before the first deletion
//! and again while deleting, removes exactly the planned image IDs one by one (children before
//! parents), and records what happened to each. Nothing that is not in the plan is touched.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use tracing::{debug, info, warn};

pub use crate::decision::Recheck;
use crate::engine::{Engine, EngineError, RemoveOutcome};
use crate::gates::{self, GateVerdict};
use crate::plan::{Candidate, Plan};

/// How many deletions may be in flight at once. Each image costs two requests (its tags, then
/// the delete); measured against `docker image prune` on 1000 images (bench/), 16 in flight
/// hides the round trips where 4 left pruneguard 1.5x slower.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Mid-run gate re-checks happen at most this often.
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub id: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub id: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failed {
    pub id: String,
    pub error: String,
}

/// Why deleting stopped before the plan was done.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stop {
    /// A gate closed (before the first deletion or mid-run).
    GateClosed { gates: Vec<GateVerdict> },
    /// The daemon stopped answering: a runtime failure.
    DaemonLost { error: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Execution {
    pub removed: Vec<Removed>,
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Failed>,
    /// Planned IDs never attempted because the run stopped.
    pub not_attempted: Vec<String>,
    pub stopped: Option<Stop>,
}

/// Deletes the plan's candidates. `recheck` gathers fresh evidence and evaluates the gates
/// (of which only those [`Recheck::consults`] count); an error from it (the daemon went away)
/// stops the run as `DaemonLost`.
pub async fn execute<E, F, Fut>(
    engine: &E,
    plan: &Plan,
    concurrency: usize,
    mut recheck: F,
) -> Execution
where
    E: Engine,
    F: FnMut(Recheck) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<GateVerdict>>>,
{
    let mut execution = Execution {
        stopped: check(&mut recheck, Recheck::BeforeStart).await,
        ..Execution::default()
    };
    let mut last_check = Instant::now();
    let limit = concurrency.max(1);
    for wave in group_by_wave(&plan.candidates) {
        if execution.stopped.is_some() {
            break;
        }
        // A steady pipeline of `limit` deletions in flight: a new one starts as soon as one
        // finishes, so one slow delete does not hold up a whole batch.
        let mut queue = wave.into_iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while execution.stopped.is_none() && in_flight.len() < limit {
                if last_check.elapsed() >= RECHECK_EVERY {
                    last_check = Instant::now();
                    if let Some(stop) = check(&mut recheck, Recheck::MidRun).await {
                        execution.stopped = Some(stop);
                        break;
                    }
                }
                let Some(candidate) = queue.next() else { break };
                in_flight.push(async move {
                    let outcome = remove_if_still_untagged(engine, &candidate.id).await;
                    (candidate, outcome)
                });
            }
            // Requests already sent are seen through and recorded, even after a stop.
            let Some((candidate, outcome)) = in_flight.next().await else {
                break;
            };
            // Losing the daemon outranks a closed gate: it makes the run a failure.
            if let Some(error) = record(&mut execution, candidate, outcome)
                && !matches!(execution.stopped, Some(Stop::DaemonLost { .. }))
            {
                execution.stopped = Some(Stop::DaemonLost { error });
            }
        }
    }
    let attempted: HashSet<&str> = (execution.removed.iter().map(|done| done.id.as_str()))
        .chain(execution.skipped.iter().map(|done| done.id.as_str()))
        .chain(execution.failed.iter().map(|done| done.id.as_str()))
        .collect();
    let not_attempted = plan
        .candidates
        .iter()
        .filter(|candidate| !attempted.contains(candidate.id.as_str()))
        .map(|candidate| candidate.id.clone())
        .collect();
    execution.not_attempted = not_attempted;
    execution
}

/// Deleting by ID an image that has exactly one tag makes Docker untag it and delete it, so an
/// image tagged since the plan was made (a rebuild that hit the cache, a `docker tag`) would be
/// lost. Looking right before deleting narrows that window to one round trip.
async fn remove_if_still_untagged<E: Engine>(
    engine: &E,
    id: &str,
) -> Result<RemoveOutcome, EngineError> {
    match engine.image_tags(id).await? {
        None => Ok(RemoveOutcome::NotFound),
        Some(tags) if !tags.is_empty() => Ok(RemoveOutcome::Conflict(format!(
            "tagged since the plan was made ({})",
            tags.join(", ")
        ))),
        Some(_) => engine.remove_image(id).await,
    }
}

/// Records one outcome; returns the error when it says the daemon is gone.
fn record(
    execution: &mut Execution,
    candidate: &Candidate,
    outcome: Result<RemoveOutcome, EngineError>,
) -> Option<String> {
    let id = candidate.id.clone();
    match outcome {
        Ok(RemoveOutcome::Removed) => {
            debug!(image = %id, bytes = candidate.size_bytes, "removed");
            execution.removed.push(Removed {
                id,
                size_bytes: candidate.size_bytes,
            });
            None
        }
        Ok(RemoveOutcome::Conflict(message)) => {
            info!(image = %id, %message, "skipped: the daemon refused a plain delete (409)");
            execution.skipped.push(Skipped {
                id,
                why: format!(
                    "conflict, left in place (it changed since the plan was made): {message}"
                ),
            });
            None
        }
        Ok(RemoveOutcome::NotFound) => {
            debug!(image = %id, "already gone (404)");
            execution.skipped.push(Skipped {
                id,
                why: "already gone (404)".into(),
            });
            None
        }
        Err(error) => {
            warn!(image = %id, %error, "delete failed");
            let message = error.to_string();
            execution.failed.push(Failed {
                id,
                error: message.clone(),
            });
            error.is_unreachable().then_some(message)
        }
    }
}

async fn check<F, Fut>(recheck: &mut F, when: Recheck) -> Option<Stop>
where
    F: FnMut(Recheck) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<GateVerdict>>>,
{
    match recheck(when).await.map(|mut verdicts| {
        verdicts.retain(|verdict| when.consults(verdict.name));
        verdicts
    }) {
        Ok(verdicts) if gates::all_open(&verdicts) => None,
        Ok(verdicts) => {
            warn!(closed = ?gates::closed_names(&verdicts), ?when, "a gate closed; stopping before deleting more");
            Some(Stop::GateClosed {
                gates: verdicts
                    .into_iter()
                    .filter(|verdict| !verdict.open)
                    .collect(),
            })
        }
        Err(error) => Some(Stop::DaemonLost {
            error: format!("{error:#}"),
        }),
    }
}

fn group_by_wave(candidates: &[Candidate]) -> Vec<Vec<&Candidate>> {
    let mut waves: Vec<Vec<&Candidate>> = Vec::new();
    for candidate in candidates {
        let index = usize::try_from(candidate.wave).unwrap_or(usize::MAX);
        if waves.len() <= index {
            waves.resize_with(index + 1, Vec::new);
        }
        waves[index].push(candidate);
    }
    waves
}
