//! [`Engine`] on bollard, over a unix socket or TCP. The API version is negotiated with the
//! daemon (dockerd 20.10 speaks 1.41), every request has a timeout, and bollard's types are
//! turned into the snapshot's plain data here, so nothing above this file sees bollard.
//!
//! The same client speaks to Podman's Docker-compatible service. Which engine answers is
//! detected once, at connect (`flavor::detect`); from then on messages name it, IDs are
//! normalised (Podman sends `ParentId` as bare hex), events are read in Podman's
//! non-streaming mode with Podman's names and filtered by time here, and Podman's 500
//! "image not known" counts as gone.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListTasksOptionsBuilder,
    RemoveImageOptions, RemoveImageOptionsBuilder,
};
use chrono::{DateTime, TimeZone as _, Utc};

use super::flavor::{self, Speaker, VersionFacts};
use super::{
    BuildCacheOutcome, Engine, EngineError, EventWindow, LastTagTime, RemoveOutcome, TlsFiles,
    UntagOutcome, bounded, build_cache, tls,
};
use crate::config::HostUrl;
use crate::model::{
    Container, ContainerDestroy, DaemonInfo, EngineKind, EventSampler, Events, Image, ImageStore,
    SwarmCluster, SwarmNode, is_image_id, is_tag_reference, normalize_image_id,
};
use crate::worker_evidence::WorkerEvents;

mod errors;
mod events;
mod swarm;

use errors::{Place, map_error};
use events::{activity_of, event_of, worker_event_of};

/// The Docker Engine over bollard.
pub struct DockerEngine {
    docker: Docker,
    endpoint: String,
    /// The certificate directory of a TLS endpoint, for messages about its handshakes.
    tls: Option<TlsFiles>,
    timeout: Duration,
    /// Says when the events stream was cut at its size bound (see `bounded`).
    events_bound: bounded::EventsBound,
    /// Plain GETs for what bollard's types leave out.
    raw: bounded::Raw,
    /// Docker or Podman, detected at connect.
    kind: EngineKind,
    /// The engine's own version (`flavor::detect`).
    engine_version: String,
}

impl DockerEngine {
    /// Connects to `host` and negotiates the API version. `timeout` bounds every request;
    /// `config` guarantees it is at least `config::MIN_API_TIMEOUT`.
    /// `max_list_size` bounds each list answer (`engine.max_list_size`); see `bounded`.
    pub async fn connect(
        host: &HostUrl,
        tls: Option<&TlsFiles>,
        timeout: Duration,
        max_list_size: u64,
    ) -> Result<Self, EngineError> {
        let endpoint = host.to_string();
        // bollard counts whole seconds: round up, so its own timer never fires before ours
        // (`within` bounds each request to exactly `timeout`).
        let timeout_secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        let version = bollard::API_DEFAULT_VERSION;
        // Through `bounded`: every answer read has a size bound.
        let connected = match host {
            HostUrl::Unix(path) => {
                bounded::connect_unix(path, timeout_secs, version, max_list_size)
            }
            HostUrl::Tcp { host, port } => {
                bounded::connect_tcp(host, *port, None, timeout_secs, version, max_list_size)
            }
            HostUrl::Tls { host, port } => {
                let client = tls_client(&endpoint, host, tls)?;
                bounded::connect_tcp(
                    host,
                    *port,
                    Some(client),
                    timeout_secs,
                    version,
                    max_list_size,
                )
            }
        };
        // Until `/version` has answered, messages name both engines.
        let unknown = Speaker::Unknown;
        let place = Place {
            endpoint: &endpoint,
            tls,
            timeout,
        };
        let (docker, events_bound, raw, flavor) =
            connected.map_err(|error| map_error(&place, "connect", unknown, error))?;
        let docker = within(
            &endpoint,
            "GET /version",
            timeout,
            unknown,
            docker.negotiate_version(),
        )
        .await?
        .map_err(|error| map_error(&place, "GET /version", unknown, error))?;
        let version = within(
            &endpoint,
            "GET /version",
            timeout,
            unknown,
            docker.version(),
        )
        .await?
        .map_err(|error| map_error(&place, "GET /version", unknown, error))?;
        let (kind, engine_version) = flavor::detect(&VersionFacts {
            version: version.version.clone().unwrap_or_default(),
            platform_name: version.platform.map(|p| p.name).unwrap_or_default(),
            components: version
                .components
                .unwrap_or_default()
                .into_iter()
                .map(|component| (component.name, component.version))
                .collect(),
            libpod_header: flavor.libpod_header_seen(),
        });
        if kind == EngineKind::Podman {
            flavor.read_events_without_streaming();
        }
        Ok(Self {
            docker,
            endpoint,
            tls: tls.cloned(),
            timeout,
            events_bound,
            raw,
            kind,
            engine_version,
        })
    }

    /// The detected engine, for messages.
    fn speaker(&self) -> Speaker {
        Speaker::Known(self.kind)
    }

    fn fail(&self, operation: &'static str) -> impl FnOnce(BollardError) -> EngineError + '_ {
        move |error| {
            let place = Place {
                endpoint: &self.endpoint,
                tls: self.tls.as_ref(),
                timeout: self.timeout,
            };
            map_error(&place, operation, self.speaker(), error)
        }
    }

    /// One whole request (answer and body) within the timeout; see [`within`].
    async fn timed<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<Result<T, BollardError>, EngineError> {
        within(
            &self.endpoint,
            operation,
            self.timeout,
            self.speaker(),
            request,
        )
        .await
    }
}

/// The TLS client of a TLS host, from its certificate directory (read now: a file that cannot
/// be used stops the connect before anything is sent).
fn tls_client(
    endpoint: &str,
    host: &str,
    files: Option<&TlsFiles>,
) -> Result<tls::TlsClient, EngineError> {
    // The settings never make a TLS host without its files; say so rather than assume it.
    let Some(files) = files else {
        return Err(EngineError::TlsSetup {
            endpoint: endpoint.to_string(),
            reason: "no certificate directory is set for it".to_string(),
            setting: crate::config::ENGINE_TLS_SETTING,
        });
    };
    tls::TlsClient::new(files, host).map_err(|error| EngineError::TlsSetup {
        endpoint: endpoint.to_string(),
        reason: error.0,
        setting: files.setting,
    })
}

/// bollard's own timeout ends when the status line and headers have arrived; reading the body
/// is not bounded, so a daemon that starts an answer and then hangs would hang the run. Every
/// request is therefore bounded here as a whole.
async fn within<T>(
    endpoint: &str,
    operation: &'static str,
    timeout: Duration,
    engine: Speaker,
    request: impl Future<Output = Result<T, BollardError>>,
) -> Result<Result<T, BollardError>, EngineError> {
    tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| EngineError::Timeout {
            endpoint: endpoint.to_string(),
            operation,
            timeout_secs: timeout.as_secs(),
            engine,
        })
}

impl Engine for DockerEngine {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn info(&self) -> Result<DaemonInfo, EngineError> {
        let info = self
            .timed("GET /info", self.docker.info())
            .await?
            .map_err(self.fail("GET /info"))?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(DaemonInfo {
            engine: self.kind,
            engine_version: self.engine_version.clone(),
            server_version: info.server_version.unwrap_or_default(),
            api_version: self.docker.client_version().to_string(),
            docker_root_dir: info.docker_root_dir,
            storage_driver: info.driver,
            image_store: ImageStore::from_driver_status(&info.driver_status.unwrap_or_default()),
            containerd_address: info
                .containerd
                .and_then(|containerd| containerd.address)
                .filter(|address| !address.is_empty()),
            swarm: SwarmNode {
                local_node_state: swarm
                    .local_node_state
                    .map(|state| state.to_string())
                    .unwrap_or_default(),
                control_available: swarm.control_available.unwrap_or(false),
                error: swarm.error.filter(|error| !error.is_empty()),
                node_id: swarm.node_id.unwrap_or_default(),
            },
        })
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.timed("GET /_ping", self.docker.ping())
            .await?
            .map(drop)
            .map_err(self.fail("GET /_ping"))
    }

    async fn images(&self) -> Result<Vec<Image>, EngineError> {
        // `shared-size` for the unused_tagged tier's expected bytes; engines that do not
        // compute it send -1 (unknown).
        let options = ListImagesOptionsBuilder::default()
            .all(true)
            .shared_size(true)
            .build();
        let images = self
            .timed("GET /images/json", self.docker.list_images(Some(options)))
            .await?
            .map_err(self.fail("GET /images/json"))?;
        Ok(images
            .into_iter()
            .map(|image| Image {
                id: normalize_image_id(&image.id),
                repo_tags: image
                    .repo_tags
                    .into_iter()
                    .filter(|tag| tag != "<none>:<none>")
                    .collect(),
                parent_id: Some(image.parent_id)
                    .filter(|parent| !parent.is_empty())
                    .map(|parent| normalize_image_id(&parent)),
                created: unix_time(image.created),
                size_bytes: u64::try_from(image.size).unwrap_or(0),
                repo_digests: image
                    .repo_digests
                    .into_iter()
                    .filter(|digest| digest != "<none>@<none>")
                    .collect(),
                // The list has no LastTagTime; on the containerd store it is read per candidate.
                last_tag_time: None,
                shared_size_bytes: u64::try_from(image.shared_size).ok(),
            })
            .collect())
    }

    async fn containers(&self) -> Result<Vec<Container>, EngineError> {
        let options = ListContainersOptionsBuilder::default().all(true).build();
        let containers = self
            .timed(
                "GET /containers/json",
                self.docker.list_containers(Some(options)),
            )
            .await?
            .map_err(self.fail("GET /containers/json"))?;
        Ok(containers
            .into_iter()
            .map(|container| Container {
                id: container.id.unwrap_or_default(),
                name: container
                    .names
                    .and_then(|names| names.into_iter().next())
                    .map(|name| name.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                image_id: normalize_image_id(&container.image_id.unwrap_or_default()),
                state: container
                    .state
                    .map(|state| state.to_string())
                    .unwrap_or_default(),
                labels: sorted(container.labels),
                created: container.created.and_then(unix_time),
            })
            .collect())
    }

    async fn events(&self, window: EventWindow) -> Result<Events, EngineError> {
        let podman = self.kind == EngineKind::Podman;
        let names: &[&str] = if podman {
            &flavor::PODMAN_ACTIVITY
        } else {
            &flavor::DOCKER_ACTIVITY
        };
        let filters = HashMap::from([
            ("type", vec!["image", "container"]),
            ("event", names.to_vec()),
        ]);
        // Each event is counted and sampled as it arrives, so an endless stream grows only a
        // counter.
        let mut sampler = EventSampler::default();
        self.read_events(window, &filters, |message| {
            if let Some(event) = activity_of(message, window) {
                sampler.push(event);
            }
        })
        .await?;
        Ok(sampler.finish())
    }

    async fn swarm_cluster(&self) -> Result<SwarmCluster, EngineError> {
        self.services_and_tasks(None).await
    }

    async fn swarm_node_tasks(&self, node_id: &str) -> Result<SwarmCluster, EngineError> {
        let filters = HashMap::from([("node", vec![node_id])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        self.services_and_tasks(Some(options)).await
    }

    async fn swarm_worker_events(&self, window: EventWindow) -> Result<WorkerEvents, EngineError> {
        let filters = HashMap::from([
            ("type", vec!["container", "network", "image"]),
            ("event", vec!["die", "destroy", "create", "connect", "pull"]),
        ]);
        // Only the relevant events are kept, the newest few: an endless stream grows a counter.
        let mut events = WorkerEvents::default();
        self.read_events(window, &filters, |message| {
            events.push(worker_event_of(message, window));
        })
        .await?;
        Ok(events)
    }

    async fn container_destroys(
        &self,
        window: EventWindow,
    ) -> Result<Vec<ContainerDestroy>, EngineError> {
        let filters = HashMap::from([("type", vec!["container"]), ("event", vec!["destroy"])]);
        // Bounded by the events answer's size bound (some 30,000 events at most).
        let mut destroyed = Vec::new();
        self.read_events(window, &filters, |message| {
            let image = message
                .actor
                .as_ref()
                .and_then(|actor| actor.attributes.as_ref())
                .and_then(|attributes| attributes.get("image"))
                .cloned()
                .unwrap_or_default();
            let event = event_of(message, window);
            destroyed.push(ContainerDestroy {
                time: event.time,
                image,
            });
        })
        .await?;
        Ok(destroyed)
    }

    async fn image_tags(&self, id: &str) -> Result<Option<Vec<String>>, EngineError> {
        checked_id(id)?;
        match self
            .timed("GET /images/{id}/json", self.docker.inspect_image(id))
            .await?
        {
            Ok(image) => Ok(Some(
                image
                    .repo_tags
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|tag| tag != "<none>:<none>")
                    .collect(),
            )),
            Err(BollardError::DockerResponseServerError {
                status_code,
                message,
            }) if flavor::is_gone(status_code, &message) => Ok(None),
            Err(error) => Err(self.fail("GET /images/{id}/json")(error)),
        }
    }

    async fn last_tag_time(&self, id: &str) -> Result<LastTagTime, EngineError> {
        checked_id(id)?;
        match self
            .timed("GET /images/{id}/json", self.docker.inspect_image(id))
            .await?
        {
            Ok(image) => Ok(LastTagTime::Known(
                image
                    .metadata
                    .and_then(|metadata| metadata.last_tag_time)
                    .and_then(real_date),
            )),
            Err(BollardError::DockerResponseServerError {
                status_code,
                message,
            }) if flavor::is_gone(status_code, &message) => Ok(LastTagTime::Gone),
            Err(error) => Err(self.fail("GET /images/{id}/json")(error)),
        }
    }

    async fn remove_image(&self, id: &str) -> Result<RemoveOutcome, EngineError> {
        checked_id(id)?;
        match self
            .timed(
                "DELETE /images/{id}",
                self.docker.remove_image(id, Some(remove_options()), None),
            )
            .await?
        {
            Ok(items) => Ok(RemoveOutcome::Removed {
                also_deleted: items
                    .iter()
                    .filter_map(|item| item.deleted.as_deref())
                    .map(normalize_image_id)
                    .filter(|deleted| deleted != id)
                    .collect(),
                untagged_tags: items
                    .into_iter()
                    .filter_map(|item| item.untagged)
                    .filter(|reference| !reference.contains('@'))
                    .collect(),
            }),
            Err(BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            }) => Ok(RemoveOutcome::Conflict(message)),
            Err(BollardError::DockerResponseServerError {
                status_code,
                message,
            }) if flavor::is_gone(status_code, &message) => Ok(RemoveOutcome::NotFound),
            Err(error) => Err(self.fail("DELETE /images/{id}")(error)),
        }
    }

    async fn untag(&self, reference: &str) -> Result<UntagOutcome, EngineError> {
        checked_reference(reference)?;
        match self
            .timed(
                "DELETE /images/{name:tag}",
                self.docker
                    .remove_image(reference, Some(remove_options()), None),
            )
            .await?
        {
            Ok(items) => Ok(UntagOutcome::Untagged {
                image_deleted: items.iter().any(|item| item.deleted.is_some()),
            }),
            Err(BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            }) => Ok(UntagOutcome::Conflict(message)),
            Err(BollardError::DockerResponseServerError {
                status_code,
                message,
            }) if flavor::is_gone(status_code, &message) => Ok(UntagOutcome::NotFound),
            Err(error) => Err(self.fail("DELETE /images/{name:tag}")(error)),
        }
    }

    async fn reclaim_build_cache(
        &self,
        keep_for: Duration,
        keep_storage: u64,
    ) -> Result<BuildCacheOutcome, EngineError> {
        if self.kind == EngineKind::Podman {
            // Podman's compat service is not Docker's BuildKit cache; nothing is tried instead.
            return Ok(BuildCacheOutcome::Unsupported(
                "Podman has no Docker build-cache API through its compatible service, so pruneguard does not reclaim its build cache".into(),
            ));
        }
        let path = build_cache::path(
            &self.docker.client_version().to_string(),
            keep_for,
            keep_storage,
        );
        let (status, body) = self
            .timed(build_cache::OPERATION, self.raw.post(&path))
            .await?
            .map_err(self.fail(build_cache::OPERATION))?;
        build_cache::outcome(status, &body, self.speaker())
    }
}

/// Only a well-formed image ID goes into a request path: `sha256:` and hex digits cannot
/// change the path (no `/`, `..`, `?` or `%`), whatever the daemon or a proxy listed.
fn checked_id(id: &str) -> Result<(), EngineError> {
    if is_image_id(id) {
        Ok(())
    } else {
        Err(EngineError::MalformedId {
            id: id.escape_debug().to_string(),
        })
    }
}

/// Only a strict `repo:tag` goes into a tag delete's path (see `model::is_tag_reference`).
fn checked_reference(reference: &str) -> Result<(), EngineError> {
    if is_tag_reference(reference) {
        Ok(())
    } else {
        Err(EngineError::MalformedReference {
            reference: reference.escape_debug().to_string(),
        })
    }
}

/// The only options a delete is ever sent with. Never forced (an image in use or tagged
/// elsewhere answers 409 and stays); `noprune`, because Docker would otherwise also delete
/// untagged parents that were not planned: the plan lists eligible parents itself and removes
/// them after their children. Podman ignores `noprune`, so safety never rests on it there:
/// the plan keeps an image whose untagged parent is not planned (`parent_not_planned`).
fn remove_options() -> RemoveImageOptions {
    RemoveImageOptionsBuilder::default()
        .force(false)
        .noprune(true)
        .build()
}

fn sorted(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels.unwrap_or_default().into_iter().collect()
}

/// Swarm and image metadata report Go's zero time (`0001-01-01T00:00:00Z`) or the Unix epoch
/// for "never"; treat anything before 1971 as absent.
fn real_date(date: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (date.timestamp() > 365 * 24 * 3600).then_some(date)
}

/// Converts Docker's unix-seconds timestamps; zero or negative means "unknown" (Docker reports
/// the zero time for images without a creation date).
pub fn unix_time(seconds: i64) -> Option<DateTime<Utc>> {
    if seconds <= 0 {
        return None;
    }
    Utc.timestamp_opt(seconds, 0).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No listed value can change a request's path: only `sha256:` + 64 lowercase hex passes.
    #[test]
    fn only_well_formed_ids_reach_a_request_path() {
        let good = format!("sha256:{}", "a1".repeat(32));
        assert!(checked_id(&good).is_ok());
        for bad in [
            format!("sha256:{}/../../containers/abc", "a".repeat(64)),
            "sha256:x/../../../containers/deadbeef".to_string(),
            "a".repeat(64),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}?force=1", "a".repeat(64)),
            format!("sha256:{}%2F", "a".repeat(62)),
            String::new(),
            "busybox:latest".to_string(),
        ] {
            let error = checked_id(&bad).unwrap_err();
            assert!(matches!(error, EngineError::MalformedId { .. }), "{bad}");
        }
    }

    #[test]
    fn bare_hex_ids_get_their_prefix_and_nothing_else_changes() {
        let hex = "0f".repeat(32);
        assert_eq!(normalize_image_id(&hex), format!("sha256:{hex}"));
        assert_eq!(
            normalize_image_id(&format!("sha256:{hex}")),
            format!("sha256:{hex}")
        );
        for odd in ["", "abc", "sha256:x/../y", &"F".repeat(64)] {
            assert_eq!(normalize_image_id(odd), odd);
        }
    }

    /// The query a delete sends, as a value: never `force`, always `noprune`, nothing else.
    #[test]
    fn deletes_are_never_forced_and_never_prune_parents() {
        let query = serde_json::to_value(remove_options()).unwrap();
        assert_eq!(
            query,
            serde_json::json!({ "force": false, "noprune": true }),
            "DELETE /images/{{id}} must be sent with exactly these options"
        );
    }
}
