//! Applies a [`Plan`] through the engine: re-checks the gates right before the first deletion
//! and again while deleting, removes exactly the planned image IDs one by one (children before
//! parents), and records what happened to each. Nothing that is not in the plan is touched.
//!
//! Outcomes are classified truthfully: after a transport error the daemon is pinged, and only
//! a daemon that does not answer makes the run "daemon lost"; a delete whose answer was lost is
//! checked (is the image still there?) and recorded as removed, failed or outcome unknown. A
//! delete that Docker reports as having untagged a tag is recorded with the tags it lost.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use schemars::JsonSchema;
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
/// Deletes that may fail in transport (timeout, reset) on a daemon that still answers pings
/// before the run stops starting new ones: one hung delete is not a lost daemon, but waiting the
/// API timeout for every image of a large plan would hold the run for hours.
pub const TRANSPORT_FAILURES_BEFORE_STOP: usize = 3;

/// Set when SIGTERM or SIGINT arrives: no new deletion starts, the ones in flight are seen
/// through. Cloned handles share one flag.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A flag nothing ever sets (tests, and runs that cannot be interrupted).
    pub fn never() -> Self {
        Self::default()
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Removed {
    pub id: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Skipped {
    pub id: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Failed {
    pub id: String,
    pub error: String,
}

/// A removed image that Docker untagged on the way: it was tagged between the last look and
/// the delete, so these tags are gone and must be pulled or built again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TagsLost {
    pub id: String,
    pub tags: Vec<String>,
}

/// Why deleting stopped before the plan was done.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stop {
    /// A gate closed (before the first deletion or mid-run).
    GateClosed { gates: Vec<GateVerdict> },
    /// The daemon stopped answering: a runtime failure.
    DaemonLost { error: String },
    /// SIGTERM or SIGINT: no new deletion was started after it.
    Interrupted { signal: String },
    /// The daemon answers pings, but deletes keep timing out or being reset: a runtime
    /// problem, so no new deletion was started.
    DaemonUnresponsive { error: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Execution {
    pub removed: Vec<Removed>,
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Failed>,
    /// Removed images that lost tags on the way (each is also in `removed`).
    pub tags_lost: Vec<TagsLost>,
    /// Deletes whose answer was lost and whose result could not be checked afterwards.
    pub outcome_unknown: Vec<Failed>,
    /// Planned IDs never attempted because the run stopped.
    pub not_attempted: Vec<String>,
    pub stopped: Option<Stop>,
}

/// Deletes the plan's candidates. `recheck` gathers fresh evidence and evaluates the gates
/// (of which only those [`Recheck::consults`] count); an error from it (the daemon went away)
/// stops the run as `DaemonLost`. Once `interrupt` is set no new deletion starts.
pub async fn execute<E, F, Fut>(
    engine: &E,
    plan: &Plan,
    concurrency: usize,
    interrupt: &Interrupt,
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
    let mut transport_failures = 0_usize;
    // Planned parents an engine that ignores `noprune` deleted with their child: removed by
    // this run, without a request of their own (their wave comes after the child's).
    let mut taken_along: HashSet<String> = HashSet::new();
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
                if interrupt.is_set() {
                    execution.stopped = Some(Stop::Interrupted {
                        signal: "SIGTERM or SIGINT".into(),
                    });
                    break;
                }
                if last_check.elapsed() >= RECHECK_EVERY {
                    last_check = Instant::now();
                    if let Some(stop) = check(&mut recheck, Recheck::MidRun).await {
                        execution.stopped = Some(stop);
                        break;
                    }
                }
                let Some(candidate) = queue.next() else { break };
                if taken_along.contains(&candidate.id) {
                    debug!(image = %candidate.id, "deleted by the engine with its child");
                    record(
                        &mut execution,
                        candidate,
                        Deletion::Removed {
                            untagged_tags: Vec::new(),
                            also_deleted: Vec::new(),
                        },
                    );
                    continue;
                }
                in_flight.push(async move {
                    let outcome = delete_one(engine, &candidate.id).await;
                    (candidate, outcome)
                });
            }
            // Requests already sent are seen through and recorded, even after a stop.
            let Some((candidate, outcome)) = in_flight.next().await else {
                break;
            };
            if let Some(error) = &outcome.transport_error {
                transport_failures += 1;
                if transport_failures >= TRANSPORT_FAILURES_BEFORE_STOP
                    && execution.stopped.is_none()
                {
                    warn!(%error, "deletes keep failing in transport; stopping before deleting more");
                    execution.stopped = Some(Stop::DaemonUnresponsive {
                        error: format!(
                            "{transport_failures} deletes timed out or were cut off although the daemon answers pings; the last: {error}"
                        ),
                    });
                }
            }
            // Losing the daemon outranks a closed gate or a signal: it makes the run a failure.
            if let Deletion::Removed { also_deleted, .. } = &outcome.deletion {
                for other in also_deleted {
                    // The plan keeps every image such a delete could take (D10); say so if an
                    // engine took one anyway.
                    if !plan.candidates.iter().any(|planned| &planned.id == other) {
                        warn!(image = %candidate.id, also_deleted = %other, "the engine deleted an image that was not planned along with this one");
                    }
                }
                taken_along.extend(also_deleted.iter().cloned());
            }
            if let Some(error) = record(&mut execution, candidate, outcome.deletion)
                && !matches!(execution.stopped, Some(Stop::DaemonLost { .. }))
            {
                execution.stopped = Some(Stop::DaemonLost { error });
            }
        }
    }
    let attempted: HashSet<&str> = (execution.removed.iter().map(|done| done.id.as_str()))
        .chain(execution.skipped.iter().map(|done| done.id.as_str()))
        .chain(execution.failed.iter().map(|done| done.id.as_str()))
        .chain(
            execution
                .outcome_unknown
                .iter()
                .map(|done| done.id.as_str()),
        )
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

/// One planned image's deletion, and the transport error on the way if there was one.
#[derive(Debug)]
struct Attempt {
    deletion: Deletion,
    transport_error: Option<String>,
}

impl From<Deletion> for Attempt {
    fn from(deletion: Deletion) -> Self {
        Self {
            deletion,
            transport_error: None,
        }
    }
}

/// What became of one planned image, as far as the daemon lets pruneguard know.
#[derive(Debug)]
enum Deletion {
    Removed {
        untagged_tags: Vec<String>,
        /// Other images the engine deleted with it (Podman: untagged parents).
        also_deleted: Vec<String>,
    },
    Skipped(String),
    Failed(String),
    /// The delete was sent, its answer lost, and the image could not be looked up afterwards.
    Unknown(String),
    /// The daemon does not answer a ping either: nothing more can be done in this run.
    DaemonLost {
        error: String,
        delete_sent: bool,
    },
}

/// Looks at the image's tags, deletes it if it is still untagged, and classifies the result.
///
/// Deleting by ID an image that has exactly one tag makes Docker untag it and delete it, so an
/// image tagged since the plan was made (a rebuild that hit the cache, a `docker tag`) would be
/// lost. Looking right before deleting narrows that window to one round trip; what Docker
/// reports having untagged covers the rest (decisions D3).
async fn delete_one<E: Engine>(engine: &E, id: &str) -> Attempt {
    match engine.image_tags(id).await {
        Ok(None) => return Deletion::Skipped("already gone (404)".into()).into(),
        Ok(Some(tags)) if !tags.is_empty() => {
            return Deletion::Skipped(format!(
                "conflict, left in place (it changed since the plan was made): tagged since the plan was made ({})",
                tags.join(", ")
            ))
            .into();
        }
        Ok(Some(_)) => {}
        Err(error) if !error.is_unreachable() => return Deletion::Failed(error.to_string()).into(),
        Err(error) => {
            // Nothing was sent that could delete: a failure, or a lost daemon.
            return match classify_transport(engine, error).await {
                Ok(error) => Attempt {
                    deletion: Deletion::Failed(error.clone()),
                    transport_error: Some(error),
                },
                Err(error) => Deletion::DaemonLost {
                    error,
                    delete_sent: false,
                }
                .into(),
            };
        }
    }
    let error = match engine.remove_image(id).await {
        Ok(RemoveOutcome::Removed {
            untagged_tags,
            also_deleted,
        }) => {
            return Deletion::Removed {
                untagged_tags,
                also_deleted,
            }
            .into();
        }
        Ok(RemoveOutcome::Conflict(message)) => {
            return Deletion::Skipped(format!(
                "conflict, left in place (it changed since the plan was made): {message}"
            ))
            .into();
        }
        Ok(RemoveOutcome::NotFound) => {
            return Deletion::Skipped("already gone (404)".into()).into();
        }
        Err(error) if !error.is_unreachable() => return Deletion::Failed(error.to_string()).into(),
        Err(error) => error,
    };
    let error = match classify_transport(engine, error).await {
        Ok(error) => error,
        Err(error) => {
            return Deletion::DaemonLost {
                error,
                delete_sent: true,
            }
            .into();
        }
    };
    // The daemon is there, but this delete's answer was lost: look.
    let deletion = match engine.image_tags(id).await {
        Ok(None) => Deletion::Removed {
            untagged_tags: Vec::new(),
            also_deleted: Vec::new(),
        },
        Ok(Some(_)) => Deletion::Failed(format!("{error} The image is still there.")),
        Err(lookup) => Deletion::Unknown(format!(
            "{error} Whether the image is gone could not be checked: {lookup}"
        )),
    };
    Attempt {
        deletion,
        transport_error: Some(error),
    }
}

/// After one request failed in transport (timeout, reset), is the daemon still there? `Ok`
/// with the request's error when it answers a ping; `Err` when it does not.
async fn classify_transport<E: Engine>(engine: &E, error: EngineError) -> Result<String, String> {
    match engine.ping().await {
        Ok(()) => Ok(error.to_string()),
        Err(ping) => Err(format!("{error} (and GET /_ping failed too: {ping})")),
    }
}

/// Records one outcome; returns the error when it says the daemon is gone.
fn record(execution: &mut Execution, candidate: &Candidate, outcome: Deletion) -> Option<String> {
    let id = candidate.id.clone();
    match outcome {
        Deletion::Removed { untagged_tags, .. } => {
            debug!(image = %id, bytes = candidate.size_bytes, "removed");
            if !untagged_tags.is_empty() {
                warn!(image = %id, tags = ?untagged_tags, "removed, but Docker untagged it on the way: it was tagged after the last look; pull or rebuild these tags");
                execution.tags_lost.push(TagsLost {
                    id: id.clone(),
                    tags: untagged_tags,
                });
            }
            execution.removed.push(Removed {
                id,
                size_bytes: candidate.size_bytes,
            });
            None
        }
        Deletion::Skipped(why) => {
            info!(image = %id, %why, "skipped");
            execution.skipped.push(Skipped { id, why });
            None
        }
        Deletion::Failed(error) => {
            warn!(image = %id, %error, "delete failed");
            execution.failed.push(Failed { id, error });
            None
        }
        Deletion::Unknown(error) => {
            warn!(image = %id, %error, "delete outcome unknown");
            execution.outcome_unknown.push(Failed { id, error });
            None
        }
        Deletion::DaemonLost { error, delete_sent } => {
            warn!(image = %id, %error, "the daemon stopped answering");
            let entry = Failed {
                id,
                error: error.clone(),
            };
            if delete_sent {
                execution.outcome_unknown.push(entry);
            } else {
                execution.failed.push(entry);
            }
            Some(error)
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
