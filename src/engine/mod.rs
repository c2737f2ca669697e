//! The only code that speaks to the Docker Engine. The [`Engine`] trait is deliberately narrow:
//! it can read (info, images, one image's tags, containers, events, swarm services and tasks)
//! and remove **one** image by ID. There is no method for any prune endpoint, volumes, networks or build cache, so
//! no code path above this module can reach them.

mod bounded;
mod build_cache;
mod docker;
pub mod flavor;
pub mod tls;

use chrono::{DateTime, Utc};

pub use bounded::LIST_ANSWER_LIMIT;
pub use docker::DockerEngine;
pub use flavor::Speaker;
pub use tls::{CA_FILE, CERT_FILE, KEY_FILE, TlsFiles};

use crate::model::{Container, ContainerDestroy, DaemonInfo, Events, Image, SwarmCluster};
use crate::worker_evidence::WorkerEvents;

/// A closed time window for the events endpoint (`since`..`until`, so the stream ends).
#[derive(Debug, Clone, Copy)]
pub struct EventWindow {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// What happened to one `DELETE /images/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// Deleted. `untagged_tags` lists the `name:tag` references Docker reported untagging on
    /// the way (digest references, `name@sha256:…`, are not tags and are left out): non-empty
    /// only when the image was tagged between the last look and the delete.
    ///
    /// `also_deleted` lists the other image IDs the engine reports deleting with it: never any
    /// on Docker (`noprune`), but Podman deletes untagged parents along with their child
    /// whatever `noprune` says, and the plan only lets that happen to parents it planned too.
    Removed {
        untagged_tags: Vec<String>,
        also_deleted: Vec<String>,
    },
    /// 409: the image is in use or referenced in a way that forbids a plain delete.
    Conflict(String),
    /// 404 (or Podman's 500 "image not known"): somebody else removed it first.
    NotFound,
}

/// What image inspect says about an image's last tag change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastTagTime {
    /// `Metadata.LastTagTime`; `None` when the engine records none (zero time).
    Known(Option<DateTime<Utc>>),
    /// 404: the image no longer exists.
    Gone,
}

/// What happened to one `DELETE /images/{name:tag}` (the `unused_tagged` tier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UntagOutcome {
    /// The tag is gone; `image_deleted` when the image went with it (it was its last tag).
    Untagged { image_deleted: bool },
    /// 409: a container uses the image (or another conflict): nothing changed, a skip.
    Conflict(String),
    /// 404: the tag no longer exists.
    NotFound,
}

/// What the engine's build-cache API did (the `build_cache` tier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildCacheOutcome {
    /// Cache records removed and the bytes the engine says it reclaimed.
    Reclaimed { records: u64, reclaimed_bytes: u64 },
    /// The engine has no build-cache API (it answered 404 or 501, or is not Docker): nothing
    /// was removed, and nothing else is tried instead.
    Unsupported(String),
}

/// Errors at the engine boundary. Messages are sentences that name the engine (once it is
/// known: [`Speaker`]) and the fix.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach {} at {endpoint}: {reason}. {}, or point pruneguard at it with -H/--host or DOCKER_HOST.",
        .engine.the_engine(),
        .engine.start_hint()
    )]
    Unreachable {
        endpoint: String,
        reason: String,
        engine: Speaker,
    },

    #[error("permission denied on the {} {endpoint}. {}.", .engine.socket(), .engine.permission_hint())]
    PermissionDenied { endpoint: String, engine: Speaker },

    #[error(
        "{} at {endpoint} did not answer {operation} within {timeout_secs}s. It may be overloaded or hung; check {}.",
        .engine.the_engine(),
        .engine.log_hint()
    )]
    Timeout {
        endpoint: String,
        operation: &'static str,
        timeout_secs: u64,
        engine: Speaker,
    },

    #[error("{} answered {operation} with HTTP {status}: {message}", .engine.the_engine())]
    Api {
        operation: &'static str,
        status: u16,
        message: String,
        engine: Speaker,
    },

    #[error("unexpected answer from {} to {operation}: {message}", .engine.the_engine())]
    Protocol {
        operation: &'static str,
        message: String,
        engine: Speaker,
    },

    #[error(
        "refusing to send a request for the image ID {id:?}: it is not sha256 and 64 hex digits, so it could change the request's path. Nothing was sent; the engine (or a proxy in front of it) listed a malformed ID."
    )]
    MalformedId { id: String },

    #[error(
        "refusing to send a request for the tag {reference:?}: it is not a plain repo:tag reference, so it could change the request's path. Nothing was sent; the daemon (or a proxy in front of it) listed a malformed tag."
    )]
    MalformedReference { reference: String },

    #[error(
        "unsupported engine host {host:?}: {reason}. Use unix:///path/to/docker.sock (or Podman's podman.sock), tcp://host:port or https://host:port."
    )]
    BadHost { host: String, reason: String },

    /// The certificate directory of a TLS host cannot be used (nothing was sent).
    #[error("cannot speak TLS to {endpoint}: {reason}. To fix it, {}.", tls::setup_fix(.setting))]
    TlsSetup {
        endpoint: String,
        reason: String,
        setting: &'static str,
    },

    /// The TLS handshake failed, or the daemon refused the connection with a TLS alert.
    #[error(
        "the TLS handshake with {} at {endpoint} failed: {reason}. To fix it, {}.",
        .engine.the_engine(),
        tls::handshake_fix(.dir, .setting)
    )]
    Tls {
        endpoint: String,
        reason: String,
        dir: String,
        setting: &'static str,
        engine: Speaker,
    },
}

impl EngineError {
    /// The daemon is not there (or we may not talk to it): a runtime failure of the whole run,
    /// as opposed to one request that failed.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::PermissionDenied { .. }
                | Self::Timeout { .. }
                | Self::BadHost { .. }
                | Self::TlsSetup { .. }
                | Self::Tls { .. }
        )
    }
}

/// The narrow engine interface pruneguard needs.
#[expect(async_fn_in_trait)] // used with concrete types only; no Send bound is needed
pub trait Engine {
    /// Where the engine is, for messages.
    fn endpoint(&self) -> &str;
    async fn info(&self) -> Result<DaemonInfo, EngineError>;
    /// `GET /_ping`: is the daemon there at all? Used after one request failed in transport,
    /// to tell a lost daemon from one bad request.
    async fn ping(&self) -> Result<(), EngineError>;
    /// Every image, including intermediate ones (`all=true`), so parents and children are known.
    async fn images(&self) -> Result<Vec<Image>, EngineError>;
    /// Every container in every state (`all=true`).
    async fn containers(&self) -> Result<Vec<Container>, EngineError>;
    /// Image pull/load/import/tag and container create events in the window.
    /// Counted in full, kept as a bounded sample ([`Events`]): an endless stream cannot grow
    /// memory, only the count.
    async fn events(&self, window: EventWindow) -> Result<Events, EngineError>;
    /// Container `destroy` events in the window, with the image each container was created
    /// with: the observation record's evidence that an image was in use until then. An engine
    /// without an events stream sees none (the default); the Docker engine reads them.
    async fn container_destroys(
        &self,
        window: EventWindow,
    ) -> Result<Vec<ContainerDestroy>, EngineError> {
        let _ = window;
        Ok(Vec::new())
    }
    /// Services (with update status and the images of their current and previous specs) and
    /// tasks; only valid on a swarm manager.
    async fn swarm_cluster(&self) -> Result<SwarmCluster, EngineError>;
    /// Services and the tasks assigned to one node (`GET /tasks?filters={"node":[ID]}`); only
    /// valid on a swarm manager. A worker asks its manager (`gates.swarm.manager_host`).
    async fn swarm_node_tasks(&self, node_id: &str) -> Result<SwarmCluster, EngineError>;
    /// Container `die`/`destroy`, network `create`/`connect` and image `pull` events in the
    /// window that are a swarm worker's evidence ([`crate::worker_evidence::classify`]):
    /// counted, and only the newest relevant ones kept.
    async fn swarm_worker_events(&self, window: EventWindow) -> Result<WorkerEvents, EngineError>;
    /// The image's current tags (`GET /images/{id}/json`); `None` when it no longer exists.
    async fn image_tags(&self, id: &str) -> Result<Option<Vec<String>>, EngineError>;
    /// `Metadata.LastTagTime` of `GET /images/{id}/json`: on the containerd store, when the
    /// image lost or changed its tag (what Docker's own `until` filter counts from).
    /// Engines that do not record it answer `Known(None)`.
    async fn last_tag_time(&self, id: &str) -> Result<LastTagTime, EngineError> {
        let _ = id;
        Ok(LastTagTime::Known(None))
    }
    /// `DELETE /images/{id}?force=false&noprune=true`: one image, never forced, and (on an
    /// engine that honours `noprune`) never its parents: the plan removes eligible parents
    /// itself, and on one that does not, it plans no image whose untagged parent stays.
    async fn remove_image(&self, id: &str) -> Result<RemoveOutcome, EngineError>;
    /// `DELETE /images/{name:tag}?force=false&noprune=true`: one tag (`model::is_tag_reference`
    /// only), never forced; the image goes only with its last tag. An engine that cannot do
    /// this says so (the default), and the tier records a failure, never a fallback.
    async fn untag(&self, reference: &str) -> Result<UntagOutcome, EngineError> {
        let _ = reference;
        Err(EngineError::Protocol {
            engine: Speaker::Unknown,
            operation: "DELETE /images/{name:tag}",
            message: "this engine does not remove tags".into(),
        })
    }
    /// The engine's build-cache API, its only interface to build cache: records unused for
    /// longer than `keep_for`, keeping `keep_storage` bytes (0: no budget). Engines without it
    /// report [`BuildCacheOutcome::Unsupported`] (the default).
    async fn reclaim_build_cache(
        &self,
        keep_for: std::time::Duration,
        keep_storage: u64,
    ) -> Result<BuildCacheOutcome, EngineError> {
        let _ = (keep_for, keep_storage);
        Ok(BuildCacheOutcome::Unsupported(
            "this engine has no build-cache API".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    /// The engine layer holds no call to any bulk prune, volume, network or container removal
    /// endpoint. This reads the source so that adding one breaks the build's tests.
    #[test]
    fn engine_source_has_no_bulk_or_volume_endpoints() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("docker/mod.rs"),
            include_str!("docker/errors.rs"),
            include_str!("docker/events.rs"),
            include_str!("docker/swarm.rs"),
            include_str!("bounded.rs"),
            include_str!("flavor.rs"),
            include_str!("tls.rs"),
        ];
        let forbidden = [
            concat!("prune", "_images"),
            concat!("prune", "_containers"),
            concat!("prune", "_volumes"),
            concat!("prune", "_networks"),
            concat!("prune", "_build"),
            concat!("prune", "_system"),
            concat!("remove", "_volume"),
            concat!("remove", "_container"),
            concat!("remove", "_network"),
            concat!("/pru", "ne"),
            concat!("force: ", "true"),
        ];
        for source in sources {
            for needle in forbidden {
                assert!(!source.contains(needle), "engine source mentions {needle}");
            }
        }
        // The build-cache API is the one exception, in its own file: exactly that endpoint,
        // and no other prune endpoint, volume, network or container removal.
        let build_cache = include_str!("build_cache.rs");
        let allowed = build_cache.replace(concat!("/build/pru", "ne"), "");
        for needle in forbidden {
            assert!(
                !allowed.contains(needle),
                "build_cache.rs mentions {needle} beyond the build-cache endpoint"
            );
        }
        assert!(build_cache.contains(concat!("/build/pru", "ne")));
    }
}
