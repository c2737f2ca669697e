//! Reading the engine's events: one query per engine (Podman answers only without `until`, in
//! non-streaming mode), one bounded, timed read of the stream, and the conversions of its
//! messages into what the quiet gate, the observation record and a worker's evidence read.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptionsBuilder;
use chrono::{DateTime, TimeZone as _, Utc};
use futures_util::StreamExt as _;

use super::{DockerEngine, unix_time};
use crate::engine::{EngineError, EventWindow, bounded, flavor};
use crate::model::{EngineKind, Event};
use crate::worker_evidence::WorkerEvent;

impl DockerEngine {
    /// The events query for `window`. Podman stops reading its event log when `until` passes,
    /// which for a window that ends now is at once: it answers part of the stored events, or
    /// none. Without `until`, in non-streaming mode (the transport adds `stream=false`), it
    /// answers every stored event since `since` and ends; callers apply the window's end.
    /// RFC 3339: every Podman version parses it (4.3 does not parse fractional seconds).
    pub(super) fn events_options(
        &self,
        window: EventWindow,
        filters: &HashMap<&str, Vec<&str>>,
    ) -> bollard::query_parameters::EventsOptions {
        if self.kind == EngineKind::Podman {
            EventsOptionsBuilder::new()
                .since(
                    &window
                        .since
                        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                )
                .filters(filters)
                .build()
        } else {
            EventsOptionsBuilder::new()
                .since(&docker_timestamp(window.since))
                .until(&docker_timestamp(window.until))
                .filters(filters)
                .build()
        }
    }

    /// Reads the events of `window` that `filters` select, handing each to `each`: bounded by
    /// the events answer's size bound, and by the timeout for a daemon that does not close the
    /// stream (`until` makes dockerd close it; Podman's non-streaming mode ends it).
    pub(super) async fn read_events(
        &self,
        window: EventWindow,
        filters: &HashMap<&str, Vec<&str>>,
        mut each: impl FnMut(bollard::models::EventMessage),
    ) -> Result<(), EngineError> {
        let mut stream = self
            .docker
            .events(Some(self.events_options(window, filters)));
        let read = async {
            while let Some(message) = stream.next().await {
                let message = message.map_err(|error| match self.events_bound.passed() {
                    Some(limit) => EngineError::Protocol {
                        operation: "GET /events",
                        message: bounded::too_large_message(limit, "GET /events"),
                        engine: self.speaker(),
                    },
                    None => self.fail("GET /events")(error),
                })?;
                each(message);
            }
            Ok::<(), EngineError>(())
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| EngineError::Timeout {
                endpoint: self.endpoint.clone(),
                operation: "GET /events",
                timeout_secs: self.timeout.as_secs(),
                engine: self.speaker(),
            })?
    }
}

/// One event of the stream as a swarm worker's evidence reads it.
pub(super) fn worker_event_of(
    message: bollard::models::EventMessage,
    window: EventWindow,
) -> WorkerEvent {
    let actor = message.actor.unwrap_or_default();
    let time = message
        .time_nano
        .and_then(unix_time_nanos)
        .or_else(|| message.time.and_then(unix_time))
        .unwrap_or(window.until);
    WorkerEvent {
        time,
        kind: message.typ.map(|kind| kind.to_string()).unwrap_or_default(),
        action: message.action.unwrap_or_default(),
        scope: message
            .scope
            .map(|scope| scope.to_string())
            .unwrap_or_default(),
        id: actor.id.unwrap_or_default(),
        attributes: actor.attributes.unwrap_or_default().into_iter().collect(),
    }
}

/// An event the quiet gate counts as activity, under its engine-neutral name; `None` for
/// other events and for those before the window.
pub(super) fn activity_of(
    message: bollard::models::EventMessage,
    window: EventWindow,
) -> Option<Event> {
    let event = event_of(message, window);
    let action = flavor::activity_action(&event.kind, &event.action)?;
    // Before the window: Podman's log may hold it (its `since` is strict only to the second).
    // After the window's end it stays: a daemon clock ahead of ours makes recent events look
    // future ones, and unknown means recent.
    (event.time >= window.since).then(|| Event {
        action: action.to_string(),
        ..event
    })
}

/// One event of the stream as the quiet gate reads it.
pub(super) fn event_of(message: bollard::models::EventMessage, window: EventWindow) -> Event {
    let actor = message.actor.unwrap_or_default();
    let attributes = actor.attributes.unwrap_or_default();
    let subject = attributes
        .get("name")
        .cloned()
        .or(actor.id)
        .unwrap_or_default();
    // An event without a usable time counts as happening now: unknown means recent.
    let time = message
        .time_nano
        .and_then(unix_time_nanos)
        .or_else(|| message.time.and_then(unix_time))
        .unwrap_or(window.until);
    Event {
        time,
        kind: message.typ.map(|kind| kind.to_string()).unwrap_or_default(),
        action: message.action.unwrap_or_default(),
        subject,
    }
}

/// `seconds.nanoseconds`, as the events endpoint accepts: whole seconds would cut off the
/// events of the current second, which are the most relevant ones.
fn docker_timestamp(time: DateTime<Utc>) -> String {
    format!("{}.{:09}", time.timestamp(), time.timestamp_subsec_nanos())
}

/// Nanoseconds since the epoch; zero or negative means unknown.
fn unix_time_nanos(nanos: i64) -> Option<DateTime<Utc>> {
    (nanos > 0).then(|| Utc.timestamp_nanos(nanos))
}
