//! The shell around the observation record (`observe` is its pure core): read it, ask the
//! daemon for the container `destroy` events since its last update, fold this look at the host
//! in, and write it back, under the state directory's short lock. Used by `run` and `plan`
//! alike when `policy.age_basis = "unused_for"`: observing is not deleting, and an operator's
//! first `plan` after install would otherwise never show anything becoming eligible.
//!
//! Every problem here is a warning for the report, never a reason to treat images as old: the
//! record that results is at worst emptier than it could be.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::engine::{Engine, EventWindow};
use crate::model::{Container, Image};
use crate::observe::{self, Observation, Record};
use crate::state;

/// How long an update waits for another process's update of the record (they take
/// milliseconds).
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// The record after this look (`now`) at `images` and `containers`, and the warnings to
/// report. Fails only when the daemon went away (a runtime failure, as elsewhere).
pub async fn observe<E: Engine>(
    engine: &E,
    settings: &Settings,
    images: &[Image],
    containers: &[Container],
    now: DateTime<Utc>,
) -> anyhow::Result<(Record, Vec<String>)> {
    let dir = &settings.state_dir;
    let mut warnings = Vec::new();
    let warn = |warnings: &mut Vec<String>, warning: String| {
        tracing::warn!("{warning}");
        warnings.push(warning);
    };
    // A first read only for the window of destroy events: since the record's last update.
    let (hint, _) = state::read_observations(dir);
    // Tagged entries (the unused_tagged tier) need the window as much as untagged ones: a
    // container that used a tagged image and was removed since the last look is known only
    // by its destroy event.
    let recorded = !hint.images.is_empty() || !hint.tagged.is_empty();
    let destroyed = match hint.updated_at.filter(|_| recorded) {
        // Nothing recorded: every entry starts now, and no earlier destroy can move it.
        None => Ok(Vec::new()),
        Some(since) => {
            let window = EventWindow {
                since: since.clamp(DateTime::UNIX_EPOCH, now),
                until: now,
            };
            match engine.container_destroys(window).await {
                Ok(events) => Ok(events),
                Err(error) if error.is_unreachable() => return Err(error.into()),
                Err(error) => {
                    let text = error.to_string();
                    warn(
                        &mut warnings,
                        format!(
                            "could not read the daemon's container destroy events ({text}); every image's unused time starts again now, since it cannot be shown that no container used it in between."
                        ),
                    );
                    Err(text)
                }
            }
        }
    };
    let observation = Observation {
        images,
        containers,
        destroyed: &destroyed,
    };
    let lock = state::prepare_state_dir(dir)
        .and_then(|()| state::ObservationLock::acquire(dir, LOCK_PATIENCE));
    let lock = match lock {
        Ok(lock) => lock,
        Err(error) => {
            // Not recorded, so this look proves nothing for later runs; this run decides on
            // what it can read plus this look.
            let (previous, problem) = state::read_observations(dir);
            warn(
                &mut warnings,
                format!(
                    "{error:#}; the observation record {} was not updated, so images first seen unused now are not remembered. Run as the user that runs pruneguard, or fix --state-dir.",
                    state::observations_path(dir).display()
                ),
            );
            warnings.extend(problem);
            return Ok((observe::update(&previous, &observation, now), warnings));
        }
    };
    let (previous, problem) = state::read_observations(dir);
    if let Some(problem) = problem {
        warn(&mut warnings, problem);
    }
    let record = observe::update(&previous, &observation, now);
    if let Err(error) = state::write_observations(dir, &record) {
        warn(&mut warnings, format!("{error:#}"));
    }
    drop(lock);
    Ok((record, warnings))
}
