//! The swarm gate: on a manager, `swarm_manager`'s judgement of each service; on a worker, its
//! own evidence (`worker_evidence`); and one detail sentence that never contradicts the verdict.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use chrono::{DateTime, Utc};

use super::{Converging, Evidence, GateName, GateVerdict, SwarmRole, error_verdict};
use crate::human::format_duration;
use crate::model::Snapshot;
use crate::policy::GatePolicy;
use crate::worker_evidence::{self, WorkerPolicy, WorkerReport};

pub fn swarm_gate(snapshot: &Snapshot, policy: &GatePolicy, now: DateTime<Utc>) -> GateVerdict {
    let swarm = &snapshot.daemon.swarm;
    let closed = |role: SwarmRole, detail: String| GateVerdict {
        name: GateName::Swarm,
        open: false,
        detail,
        evidence: Evidence::Swarm {
            node_state: swarm.local_node_state.clone(),
            role,
            converging: Vec::new(),
            stuck: Vec::new(),
            worker: None,
        },
    };
    if !policy.swarm.enabled {
        return GateVerdict {
            name: GateName::Swarm,
            open: true,
            detail: "disabled by configuration.".into(),
            evidence: Evidence::None {},
        };
    }
    match swarm.local_node_state.as_str() {
        "" | "inactive" => {
            return GateVerdict {
                name: GateName::Swarm,
                open: true,
                detail: "not a swarm node.".into(),
                evidence: Evidence::Swarm {
                    node_state: swarm.local_node_state.clone(),
                    role: SwarmRole::None,
                    converging: Vec::new(),
                    stuck: Vec::new(),
                    worker: None,
                },
            };
        }
        "active" => {}
        state => {
            let reason = swarm.error.as_deref().unwrap_or("no error reported");
            return closed(
                SwarmRole::Unknown,
                format!(
                    "the node's swarm state is {state} ({reason}); cluster convergence cannot be judged."
                ),
            );
        }
    }
    let (role, found, worker) = match converging_in_swarm(snapshot, policy, now) {
        Ok(found) => found,
        Err(verdict) => return *verdict,
    };
    let stuck_after = i64::try_from(policy.swarm.stuck_after.as_secs()).unwrap_or(i64::MAX);
    let (stuck, converging): (Vec<Converging>, Vec<Converging>) =
        found.into_iter().partition(|item| {
            item.for_seconds
                .is_some_and(|seconds| seconds > stuck_after)
        });
    GateVerdict {
        name: GateName::Swarm,
        open: converging.is_empty(),
        detail: swarm_detail(
            role,
            &converging,
            &stuck,
            policy.swarm.stuck_after,
            worker.as_ref(),
        ),
        evidence: Evidence::Swarm {
            node_state: swarm.local_node_state.clone(),
            role,
            converging,
            stuck,
            worker,
        },
    }
}

/// What is converging on an active swarm node: the cluster's view on a manager, local evidence
/// on a worker. An observation that failed is a closed verdict.
type SwarmFindings = (SwarmRole, Vec<Converging>, Option<WorkerReport>);

fn converging_in_swarm(
    snapshot: &Snapshot,
    policy: &GatePolicy,
    now: DateTime<Utc>,
) -> Result<SwarmFindings, Box<GateVerdict>> {
    if snapshot.daemon.swarm.control_available {
        match &snapshot.swarm_cluster {
            Some(Ok(cluster)) => Ok((
                SwarmRole::Manager,
                crate::swarm_manager::converging(cluster, &snapshot.crash_loops, now),
                None,
            )),
            Some(Err(error)) => Err(Box::new(error_verdict(
                GateName::Swarm,
                "the swarm services and tasks (manager node)",
                error,
            ))),
            None => Err(Box::new(GateVerdict {
                name: GateName::Swarm,
                open: false,
                detail: "closed because the swarm services and tasks were not gathered.".into(),
                evidence: Evidence::Swarm {
                    node_state: snapshot.daemon.swarm.local_node_state.clone(),
                    role: SwarmRole::Manager,
                    converging: Vec::new(),
                    stuck: Vec::new(),
                    worker: None,
                },
            })),
        }
    } else {
        let containers = match &snapshot.containers {
            Ok(containers) => containers,
            Err(error) => {
                return Err(Box::new(error_verdict(
                    GateName::Swarm,
                    "the container list (worker node, local evidence)",
                    error,
                )));
            }
        };
        let worker_policy = WorkerPolicy {
            evidence: &policy.swarm.worker_evidence,
            window: policy.quiet.period,
        };
        let (found, report, judged) = worker_evidence::judge(
            containers,
            snapshot.swarm_worker.as_ref(),
            &worker_policy,
            now,
        );
        match judged {
            Ok(()) => Ok((SwarmRole::Worker, found, Some(report))),
            // Unknown means no: what could not be read closes the gate, with what was found.
            Err(problem) => Err(Box::new(GateVerdict {
                name: GateName::Swarm,
                open: false,
                detail: format!(
                    "{}: closed because {problem}; an unknown state counts as closed.",
                    worker_evidence::detail_head(&report)
                ),
                evidence: Evidence::Swarm {
                    node_state: snapshot.daemon.swarm.local_node_state.clone(),
                    role: SwarmRole::Worker,
                    converging: found,
                    stuck: Vec::new(),
                    worker: Some(report),
                },
            })),
        }
    }
}

fn swarm_detail(
    role: SwarmRole,
    converging: &[Converging],
    stuck: &[Converging],
    stuck_after: std::time::Duration,
    worker: Option<&WorkerReport>,
) -> String {
    let describe = |items: &[Converging]| {
        items
            .iter()
            .map(Converging::describe)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let stuck_after = format_duration(stuck_after);
    let worker_head = worker.map_or_else(
        || "worker node, judged from local evidence".to_string(),
        worker_evidence::detail_head,
    );
    match (role, converging.is_empty(), stuck.is_empty()) {
        (SwarmRole::Worker, true, true) => match worker {
            Some(report) => format!("{worker_head}: {}.", worker_evidence::nothing_found(report)),
            None => format!("{worker_head}: no swarm task container is still being created."),
        },
        (SwarmRole::Worker, true, false) => format!(
            "{worker_head}: nothing is converging but what is stuck longer than stuck_after ({stuck_after}), which no longer blocks: {}.",
            describe(stuck)
        ),
        (SwarmRole::Worker, false, _) => format!(
            "{worker_head}: {}.{}",
            describe(converging),
            stuck_sentence(&stuck_after, stuck)
        ),
        (_, true, true) => {
            "manager node: no service is updating, paused, crash-looping or starting a task."
                .to_string()
        }
        (_, true, false) => format!(
            "manager node: no service is converging but what is stuck longer than stuck_after ({stuck_after}), which no longer blocks: {}.",
            describe(stuck)
        ),
        (_, false, _) => format!(
            "manager node: {}.{}",
            describe(converging),
            stuck_sentence(&stuck_after, stuck)
        ),
    }
}

/// The sentence that follows what is converging, naming what is stuck (empty when nothing is).
fn stuck_sentence(stuck_after: &str, stuck: &[Converging]) -> String {
    if stuck.is_empty() {
        return String::new();
    }
    format!(
        " Stuck longer than stuck_after ({stuck_after}), so not blocking: {}.",
        stuck
            .iter()
            .map(Converging::describe)
            .collect::<Vec<_>>()
            .join("; ")
    )
}
