//! The observation record behind `policy.age_basis = "unused_for"` (issue 11), as pure data
//! and one pure update: for each image ID, since when pruneguard has seen it untagged *and*
//! unused by every container (in any state). Reading and writing the file is `state`'s job.
//!
//! The rules, each of which can only make an image look *younger*, never older:
//! - an image first seen untagged and unused gets `unused_since = now`;
//! - an image seen tagged or used again loses its entry (its clock starts over when it is next
//!   seen untagged and unused), as does an image no longer listed (the record is bounded by the
//!   images present);
//! - the store's `LastTagTime` and the daemon's container `destroy` events (the container that
//!   used the image was removed at T, so the image was in use until T) move `unused_since`
//!   forward to them when they are later;
//! - while any container's image cannot be resolved, no image can be shown unused: every
//!   entry is dropped; when the destroy events cannot be read, every entry moves to `now`;
//! - an observation older than the record's last update (a slower concurrent run) may drop
//!   or delay entries but adds none.
//!
//! For tagged images (the `unused_tagged` tier) the record keeps `last_used`: the last time
//! an image was seen used by a container, or first seen tagged here; the same refinements
//! (destroy events, `LastTagTime`, unknown destroys meaning now) only move it later.
//!
//! No record (a first run, a lost or corrupt file) means "nothing proven yet": no image is
//! old enough until it has been observed for `min_age`.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Container, ContainerDestroy, Image, Observed, is_image_id};
use crate::plan::{resolve_containers, resolve_image_ref};

/// The file's name in the state directory.
pub const RECORD_FILE: &str = "observations.json";
/// The record format this pruneguard reads and writes; another version reads as no record.
pub const RECORD_VERSION: u32 = 1;

/// The whole record, as `observations.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// The time of the newest observation folded in; `None` for an empty record.
    pub updated_at: Option<DateTime<Utc>>,
    /// By image ID (`sha256:…`).
    pub images: BTreeMap<String, Entry>,
    /// Tagged images by ID: when each was last seen in use (issue 13's `unused_tagged` tier).
    /// Added to version 1 without a version change: an older pruneguard ignores it and writes
    /// the record back without it, so the tagged images' clocks start over (they look younger,
    /// never older).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tagged: BTreeMap<String, TaggedEntry>,
}

/// What the record knows about one tagged image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggedEntry {
    /// The last time it was seen used by a container (in any state), or first seen tagged
    /// here (pulled, built, tagged), whichever is later; container `destroy` events and the
    /// store's `LastTagTime` only move it later.
    pub last_used: DateTime<Utc>,
}

/// What the record knows about one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Since when it has been untagged and unused by every container, as far as pruneguard
    /// has seen.
    pub unused_since: DateTime<Utc>,
}

impl Default for Record {
    fn default() -> Self {
        Self {
            version: RECORD_VERSION,
            updated_at: None,
            images: BTreeMap::new(),
            tagged: BTreeMap::new(),
        }
    }
}

impl Record {
    /// Parses the file's text. Any problem (not JSON, another version, a malformed entry) is
    /// an error sentence fragment; the caller starts from an empty record and warns.
    pub fn parse(text: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let versioned: Versioned = serde_json::from_str(text)
            .map_err(|error| format!("it is not an observation record ({error})"))?;
        if versioned.version != RECORD_VERSION {
            return Err(format!(
                "it has version {}, and this pruneguard reads version {RECORD_VERSION}",
                versioned.version
            ));
        }
        let mut record: Self = serde_json::from_str(text)
            .map_err(|error| format!("it is not an observation record ({error})"))?;
        // Keys that are no image ID could never match one; they are dropped, not trusted.
        record.images.retain(|id, _| is_image_id(id));
        record.tagged.retain(|id, _| is_image_id(id));
        Ok(record)
    }

    /// The file's text.
    pub fn to_json(&self) -> String {
        // Strings, dates and numbers only: serialising cannot fail.
        let text = serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
        format!("{text}\n")
    }

    /// Since when `id` has been seen untagged and unused; `None` when not recorded.
    pub fn unused_since(&self, id: &str) -> Option<DateTime<Utc>> {
        self.images.get(id).map(|entry| entry.unused_since)
    }

    /// When the tagged image `id` was last seen used (or first seen tagged); `None` when not
    /// recorded (never eligible for the `unused_tagged` tier until it is).
    pub fn last_used(&self, id: &str) -> Option<DateTime<Utc>> {
        self.tagged.get(id).map(|entry| entry.last_used)
    }

    /// When `id` has been untagged and unused for `min_age`; `None` when not recorded (never
    /// eligible until it is).
    pub fn eligible_at(&self, id: &str, min_age: Duration) -> Option<DateTime<Utc>> {
        let min_age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
        self.unused_since(id).map(|since| {
            since
                .checked_add_signed(min_age)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        })
    }
}

/// What one look at the host shows, for [`update`].
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub images: &'a [Image],
    pub containers: &'a [Container],
    /// Container `destroy` events since the record's last update (or an error: unknown).
    pub destroyed: &'a Observed<Vec<ContainerDestroy>>,
}

/// The record after `observation`, made at `now`, is folded into `previous`.
pub fn update(previous: &Record, observation: &Observation<'_>, now: DateTime<Utc>) -> Record {
    let Observation {
        images,
        containers,
        destroyed,
    } = *observation;
    // Older than what the record already holds: it may drop or delay, never add.
    let stale = previous.updated_at.is_some_and(|updated| now < updated);
    let updated_at = Some(previous.updated_at.map_or(now, |updated| updated.max(now)));
    let (used, unresolved) = resolve_containers(containers, images);
    if !unresolved.is_empty() {
        return Record {
            version: RECORD_VERSION,
            updated_at,
            images: BTreeMap::new(),
            tagged: BTreeMap::new(),
        };
    }
    let tagged: HashSet<&str> = images
        .iter()
        .filter(|image| !image.is_dangling())
        .map(|image| image.id.as_str())
        .collect();
    let mut last_destroy: HashMap<String, DateTime<Utc>> = HashMap::new();
    let destroys_unknown = match destroyed {
        Ok(events) => {
            for event in events {
                for id in resolve_image_ref(&event.image, images) {
                    let latest = last_destroy.entry(id).or_insert(event.time);
                    *latest = (*latest).max(event.time);
                }
            }
            false
        }
        Err(_) => true,
    };
    let mut tagged_entries: BTreeMap<String, TaggedEntry> = BTreeMap::new();
    for image in images {
        let id = image.id.as_str();
        if !is_image_id(id) || !tagged.contains(id) {
            continue;
        }
        let last = match previous.last_used(id) {
            // Stale: may delay, adds none.
            None if stale => continue,
            // First seen tagged: as if pulled or built now.
            None => now,
            Some(last) if destroys_unknown || used.contains(id) => last.max(now),
            Some(last) => last,
        };
        let last = [image.last_tag_time, last_destroy.get(id).copied()]
            .into_iter()
            .flatten()
            .fold(last, DateTime::max);
        let entry = tagged_entries
            .entry(id.to_string())
            .or_insert(TaggedEntry { last_used: last });
        entry.last_used = entry.last_used.max(last);
    }
    let mut result = BTreeMap::new();
    for image in images {
        let id = image.id.as_str();
        if !is_image_id(id) || tagged.contains(id) || used.contains(id) {
            continue;
        }
        let since = match previous.unused_since(id) {
            Some(since) if destroys_unknown => since.max(now),
            Some(since) => since,
            None if stale => continue,
            None => now,
        };
        let since = [image.last_tag_time, last_destroy.get(id).copied()]
            .into_iter()
            .flatten()
            .fold(since, DateTime::max);
        let entry = result.entry(id.to_string()).or_insert(Entry {
            unused_since: since,
        });
        // An ID listed twice: the later time of the two copies.
        entry.unused_since = entry.unused_since.max(since);
    }
    Record {
        version: RECORD_VERSION,
        updated_at,
        images: result,
        tagged: tagged_entries,
    }
}
