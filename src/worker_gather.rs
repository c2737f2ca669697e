//! Gathering a swarm worker's own evidence for [`crate::worker_evidence`]: the relevant events
//! of the quiet period from the local daemon, and, when `gates.swarm.manager_host` is set, the
//! manager's list of the tasks assigned to this node (its ID from the local `/info`). Only
//! reads; the manager is asked through its own [`DockerEngine`] with the same timeout.

use chrono::{DateTime, Duration, Utc};

use crate::config::{HostUrl, Settings};
use crate::engine::{DockerEngine, Engine, EngineError, EventWindow};
use crate::model::{DaemonInfo, Observed, SwarmCluster};
use crate::worker_evidence::WorkerObservations;

/// The worker's observations. A local daemon that went away is a runtime failure (as for every
/// other observation); anything about the manager is evidence, so that it closes the gate.
pub async fn gather<E: Engine>(
    engine: &E,
    settings: &Settings,
    daemon: &DaemonInfo,
    now: DateTime<Utc>,
) -> Result<WorkerObservations, EngineError> {
    let swarm = &settings.policy.gates.swarm;
    let period = settings.policy.gates.quiet.period;
    let needs_events =
        !period.is_zero() && swarm.worker_evidence.iter().any(|kind| kind.reads_events());
    let events = if needs_events {
        let since = Duration::from_std(period)
            .ok()
            .and_then(|period| now.checked_sub_signed(period))
            .map_or(DateTime::UNIX_EPOCH, |since| {
                since.max(DateTime::UNIX_EPOCH)
            });
        match engine
            .swarm_worker_events(EventWindow { since, until: now })
            .await
        {
            Ok(events) => Some(Ok(events)),
            Err(error) if error.is_unreachable() => return Err(error),
            Err(error) => Some(Err(error.to_string())),
        }
    } else {
        None
    };
    let manager = match &settings.swarm_manager_host {
        Some(host) => Some((
            host.to_string(),
            node_tasks(host, settings, &daemon.swarm.node_id).await,
        )),
        None => None,
    };
    Ok(WorkerObservations { events, manager })
}

/// What the manager at `host` lists for this node, or why it could not be asked (as evidence).
async fn node_tasks(host: &HostUrl, settings: &Settings, node_id: &str) -> Observed<SwarmCluster> {
    ask_manager(host, settings, node_id)
        .await
        .map_err(|error| error.to_string())
}

/// Asks the manager at `host` (over TLS with `gates.swarm.manager_tls_cert_path` where that is
/// set) for the services and the tasks assigned to `node_id`: what every run on a worker does,
/// and what `doctor`'s `swarm_manager` check does once.
pub async fn ask_manager(
    host: &HostUrl,
    settings: &Settings,
    node_id: &str,
) -> Result<SwarmCluster, EngineError> {
    if node_id.is_empty() {
        return Err(EngineError::Protocol {
            operation: "GET /info",
            message: "this node's /info names no Swarm.NodeID, so its tasks cannot be asked for"
                .to_string(),
            engine: crate::engine::Speaker::Unknown,
        });
    }
    let manager = DockerEngine::connect(
        host,
        settings.swarm_manager_tls.as_ref(),
        settings.api_timeout,
        settings.max_list_size,
    )
    .await?;
    manager.swarm_node_tasks(node_id).await
}
