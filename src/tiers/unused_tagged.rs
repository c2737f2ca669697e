//! Pure planning of the `unused_tagged` tier: images + containers + services + the
//! observation record + the tier's settings + `now` → the tags to remove, in the order they
//! go (least recently used image first, an image's tags together), each with its reason,
//! last use and expected bytes, and every tag kept with its reason. No engine, no clock.
//!
//! The rules, decided per image first (an image goes only when its last tag goes, so an image
//! with one tag that must stay keeps all its tags: removing the others would free nothing):
//! - never an image used by a container in any state, named by a service's current or
//!   previous spec, with child images, listed twice or with a malformed ID;
//! - never while some container's image cannot be resolved (it might be this one);
//! - never without a record of its last use (`Record::last_used`), nor within `unused_for`
//!   of it (a time in the future, clock skew, counts as recent);
//! - per tag: in `include` and not in `keep` (keep wins), and not on one of the newest
//!   `keep_newest` images of its repository by `Created` (unknown `Created` counts as newest).

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::human::{human_seconds, short_id};
use crate::model::{Container, Image, Service, is_image_id, is_tag_reference};
use crate::observe::Record;
use crate::plan::resolve_containers;
use crate::service_ref;

use super::UnusedTaggedSettings;

/// Why a tag stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TagKeptReason {
    /// A container in any state uses the image.
    InUse,
    /// A swarm service's current or previous spec names the image.
    ServiceRef,
    /// Another image's parent: its layers are the child's.
    HasChildren,
    /// The image ID is malformed or listed twice: odd data, so kept.
    OddImage,
    /// Some container's image could not be resolved, so no image can be shown unused.
    UnresolvedContainer,
    /// The observation record has no last use for it yet (a first run, a lost record).
    NotObserved,
    /// Used (or first seen tagged) less than `unused_for` ago.
    RecentlyUsed,
    /// Matched by no `include` glob.
    NotIncluded,
    /// Matched by a `keep` glob.
    Keep,
    /// On one of the newest `keep_newest` images of its repository.
    NewestOfRepository,
    /// The reference is outside the strict grammar sent in a request path.
    MalformedReference,
    /// Another tag of the same image stays, so removing this one would free nothing.
    OtherTagKept,
    /// The engine ignores `noprune` (Podman) and the image's parent is untagged: removing the
    /// last tag would delete that unplanned parent too (decisions D10).
    ParentNotPlanned,
}

impl TagKeptReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InUse => "in_use",
            Self::ServiceRef => "service_ref",
            Self::HasChildren => "has_children",
            Self::OddImage => "odd_image",
            Self::UnresolvedContainer => "unresolved_container",
            Self::NotObserved => "not_observed",
            Self::RecentlyUsed => "recently_used",
            Self::NotIncluded => "not_included",
            Self::Keep => "keep",
            Self::NewestOfRepository => "newest_of_repository",
            Self::MalformedReference => "malformed_reference",
            Self::OtherTagKept => "other_tag_kept",
            Self::ParentNotPlanned => "parent_not_planned",
        }
    }
}

/// One tag the tier removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TagCandidate {
    /// `repo:tag`, as listed.
    pub reference: String,
    pub image_id: String,
    /// From the observation record.
    pub last_used: DateTime<Utc>,
    /// The bytes removing this tag is expected to free: the image's unique bytes (size minus
    /// shared size) on its last tag, 0 on the others; `null` when the engine does not say
    /// how much is shared (unknown).
    pub expected_bytes: Option<u64>,
    /// Whether the image goes with this tag (its last one).
    pub removes_image: bool,
    pub reason: String,
}

/// One tag the tier keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TagKept {
    pub reference: String,
    pub image_id: String,
    pub reason: TagKeptReason,
    pub last_used: Option<DateTime<Utc>>,
}

/// The tier's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TagPlan {
    /// In removal order.
    pub candidates: Vec<TagCandidate>,
    pub kept: Vec<TagKept>,
}

impl TagPlan {
    /// Expected bytes of all candidates; `None` when any is unknown.
    pub fn expected_bytes(&self) -> Option<u64> {
        self.candidates
            .iter()
            .map(|candidate| candidate.expected_bytes)
            .sum()
    }

    /// How many tags are kept for `reason`.
    pub fn kept_count(&self, reason: TagKeptReason) -> usize {
        self.kept
            .iter()
            .filter(|kept| kept.reason == reason)
            .count()
    }
}

/// What the tier decides by.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub images: &'a [Image],
    pub containers: &'a [Container],
    /// Empty where there are none or the node is not a manager.
    pub services: &'a [Service],
    /// The observation record, already updated with this look; `None` means no image has a
    /// known last use.
    pub record: Option<&'a Record>,
    pub settings: &'a UnusedTaggedSettings,
    /// Whether removing an image keeps its untagged parents (Docker; Podman does not: D10).
    pub honours_noprune: bool,
    pub now: DateTime<Utc>,
}

/// The repository of `repo:tag`: everything before the tag's `:`.
pub fn repository(reference: &str) -> &str {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => reference,
    }
}

/// Decides which tags go, in order. `now` is passed in.
#[expect(
    clippy::too_many_lines,
    reason = "the rules in the order the module header lists them, in one place"
)]
pub fn plan(inputs: &Inputs<'_>) -> TagPlan {
    let Inputs {
        images,
        containers,
        services,
        record,
        settings,
        honours_noprune,
        now,
    } = *inputs;
    let (used, unresolved) = resolve_containers(containers, images);
    let service_refs = service_ref::referenced(services, images);
    let mut listed: HashMap<&str, usize> = HashMap::new();
    for image in images {
        *listed.entry(image.id.as_str()).or_default() += 1;
    }
    let parents: HashSet<&str> = images
        .iter()
        .filter_map(|image| image.parent_id.as_deref())
        .collect();
    let untagged: HashSet<&str> = images
        .iter()
        .filter(|image| image.is_dangling())
        .map(|image| image.id.as_str())
        .collect();
    let newest = newest_per_repository(images, settings.keep_newest);
    let sizes: HashMap<&str, u64> = images
        .iter()
        .map(|image| (image.id.as_str(), image.size_bytes))
        .collect();
    let unused_for =
        chrono::Duration::from_std(settings.unused_for).unwrap_or(chrono::Duration::MAX);

    let mut eligible: Vec<(DateTime<Utc>, &Image)> = Vec::new();
    let mut result = TagPlan::default();
    let mut seen: HashSet<&str> = HashSet::new();
    for image in images.iter().filter(|image| !image.is_dangling()) {
        if !seen.insert(image.id.as_str()) {
            continue;
        }
        let id = image.id.as_str();
        let last_used = record.and_then(|record| record.last_used(id));
        let image_reason = if !is_image_id(id) || listed.get(id).copied().unwrap_or(0) > 1 {
            Some(TagKeptReason::OddImage)
        } else if used.contains(id) {
            Some(TagKeptReason::InUse)
        } else if service_refs.contains_key(id) {
            Some(TagKeptReason::ServiceRef)
        } else if parents.contains(id) {
            Some(TagKeptReason::HasChildren)
        } else if !honours_noprune
            && image
                .parent_id
                .as_deref()
                .is_some_and(|parent| untagged.contains(parent))
        {
            Some(TagKeptReason::ParentNotPlanned)
        } else if !unresolved.is_empty() {
            Some(TagKeptReason::UnresolvedContainer)
        } else {
            match last_used {
                None => Some(TagKeptReason::NotObserved),
                Some(last) if last > now || now - last < unused_for => {
                    Some(TagKeptReason::RecentlyUsed)
                }
                Some(_) => None,
            }
        };
        let tag_reasons: Vec<Option<TagKeptReason>> = image
            .repo_tags
            .iter()
            .map(|tag| {
                image_reason.or_else(|| {
                    if !is_tag_reference(tag) {
                        Some(TagKeptReason::MalformedReference)
                    } else if settings.keep.iter().any(|glob| glob.is_match(tag)) {
                        Some(TagKeptReason::Keep)
                    } else if !settings.include.iter().any(|glob| glob.is_match(tag)) {
                        Some(TagKeptReason::NotIncluded)
                    } else if newest.contains(&(repository(tag), id)) {
                        Some(TagKeptReason::NewestOfRepository)
                    } else {
                        None
                    }
                })
            })
            .collect();
        let any_kept = tag_reasons.iter().any(Option::is_some);
        match (any_kept, last_used) {
            (false, Some(last)) => eligible.push((last, image)),
            _ => {
                for (tag, reason) in image.repo_tags.iter().zip(tag_reasons) {
                    result.kept.push(TagKept {
                        reference: tag.clone(),
                        image_id: image.id.clone(),
                        reason: reason.unwrap_or(TagKeptReason::OtherTagKept),
                        last_used,
                    });
                }
            }
        }
    }
    // Least recently used first; then the oldest build; then the ID, for a stable order.
    eligible.sort_by(|(a_last, a), (b_last, b)| {
        (a_last, a.created.unwrap_or(DateTime::UNIX_EPOCH), &a.id).cmp(&(
            b_last,
            b.created.unwrap_or(DateTime::UNIX_EPOCH),
            &b.id,
        ))
    });
    for (last_used, image) in eligible {
        let mut tags: Vec<&String> = image.repo_tags.iter().collect();
        tags.sort();
        tags.dedup();
        let unique = unique_bytes(image, &sizes);
        let count = tags.len();
        for (index, tag) in tags.into_iter().enumerate() {
            let last = index + 1 == count;
            result.candidates.push(TagCandidate {
                reference: tag.clone(),
                image_id: image.id.clone(),
                last_used,
                expected_bytes: if last { unique } else { Some(0) },
                removes_image: last,
                reason: format!(
                    "tagged, used by no container for {} (last use {}), image {}{}",
                    human_seconds((now - last_used).num_seconds()),
                    last_used.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    short_id(&image.id),
                    if last {
                        " goes with its last tag"
                    } else {
                        " stays until its last tag goes"
                    }
                ),
            });
        }
    }
    result
        .kept
        .sort_by(|a, b| (a.reason, &a.reference).cmp(&(b.reason, &b.reference)));
    result
}

/// The bytes removing `image` is expected to free: `Size - SharedSize` when the engine
/// accounts for shared layers; else, for an image built here on a listed parent (the classic
/// store's `ParentId`, whose `Size` counts the parent's layers too), `Size - parent's Size`;
/// else unknown. Docker's image list leaves `SharedSize` at -1 (only `/system/df` computes
/// it), so on a CI host the parent is what tells a build's own layers from its base's.
fn unique_bytes(image: &Image, sizes: &HashMap<&str, u64>) -> Option<u64> {
    image
        .shared_size_bytes
        .map(|shared| image.size_bytes.saturating_sub(shared))
        .or_else(|| {
            let parent = sizes.get(image.parent_id.as_deref()?)?;
            Some(image.size_bytes.saturating_sub(*parent))
        })
}

/// (repository, image ID) of the newest `keep` images of each repository, by `Created`
/// (unknown counts as newest: doubt keeps).
fn newest_per_repository(images: &[Image], keep: u32) -> HashSet<(&str, &str)> {
    let mut by_repo: BTreeMap<&str, Vec<&Image>> = BTreeMap::new();
    for image in images {
        for tag in &image.repo_tags {
            let list = by_repo.entry(repository(tag)).or_default();
            if !list.iter().any(|other| other.id == image.id) {
                list.push(image);
            }
        }
    }
    let keep = usize::try_from(keep.max(1)).unwrap_or(usize::MAX);
    let mut result = HashSet::new();
    for (repo, mut list) in by_repo {
        list.sort_by(|a, b| {
            let key = |image: &Image| image.created.unwrap_or(DateTime::<Utc>::MAX_UTC);
            key(b).cmp(&key(a)).then_with(|| b.id.cmp(&a.id))
        });
        for image in list.into_iter().take(keep) {
            result.insert((repo, image.id.as_str()));
        }
    }
    result
}
