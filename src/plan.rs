//! Pure planning: images + containers + `min_age` + `now` → the exact list of images to remove,
//! each with its reason, and a count of everything kept and why. No engine, no filesystem, no
//! clock here.
//!
//! An image is *eligible* when it is dangling, used by no container in any state, named by no
//! swarm service's current or previous spec, and old enough: untagged and unused for at least
//! `min_age` by the observation record (`age_basis = "unused_for"`, see `observe`), or created
//! at least `min_age` ago (`age_basis = "created"`); where the engine records when the
//! image was last tagged or untagged, never before that either ([`Image::age_reference`]). It is a *candidate* when it is eligible and every child image it has
//! is itself a candidate: a dangling chain left by a rebuild goes as a whole, children first,
//! and an image with a child that stays is kept (`has_children`).
//!
//! On an engine that does not honour `noprune` (Podman: deleting a child also deletes its
//! untagged parents), a candidate whose untagged parent is not itself a candidate is kept
//! (`parent_not_planned`), and so, in turn, are the candidates under it: a delete can then
//! never take an image with it that was not planned (docs/decisions.md D10).

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::human::{human_seconds, short_id};
use crate::model::{Container, Image, Service, is_image_id};
use crate::observe::Record;
use crate::service_ref::{self, ServiceRefs};

/// Why an image stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeptReason {
    /// It has at least one tag: only dangling images are candidates.
    Tagged,
    /// A container in any state (running, stopped, created, dead, ...) uses it.
    InUse,
    /// It has a child image that is not being removed.
    HasChildren,
    /// Not old enough by the age basis: with `unused_for`, untagged and unused for less than
    /// `min_age` or not yet observed so (no record); with `created`, created (or, where
    /// recorded, last tagged or untagged) less than `min_age` ago, in the future (clock skew), or at an unknown time.
    TooYoung,
    /// Its ID is not `sha256:` + 64 lowercase hex digits: nothing is ever sent for it.
    MalformedId,
    /// The daemon listed its ID more than once (and no copy is tagged): odd data, so kept.
    Duplicated,
    /// Its parent link names an image that is not in the list (or is malformed).
    UnknownParent,
    /// Eligible, but some container's image could not be resolved to an image ID, so no
    /// image can be shown to be unused (see `Plan::unresolved_containers`).
    UnresolvedContainer,
    /// On a swarm manager: a service's current or previous spec references it (by digest,
    /// name or ID), so a deploy or a rollback can still name it.
    ServiceRef,
    /// Eligible, but the engine does not honour `noprune` (Podman), and its untagged parent
    /// is not planned: deleting it would delete that parent too.
    ParentNotPlanned,
}

/// Kept images by reason (counts, or Docker's bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KeptCounts {
    pub tagged: u64,
    pub in_use: u64,
    pub too_young: u64,
    pub has_children: u64,
    pub malformed_id: u64,
    pub duplicated: u64,
    pub unknown_parent: u64,
    pub unresolved_container: u64,
    pub service_ref: u64,
    pub parent_not_planned: u64,
}

impl KeptReason {
    pub const ALL: [Self; 10] = [
        Self::Tagged,
        Self::InUse,
        Self::TooYoung,
        Self::HasChildren,
        Self::MalformedId,
        Self::Duplicated,
        Self::UnknownParent,
        Self::UnresolvedContainer,
        Self::ServiceRef,
        Self::ParentNotPlanned,
    ];

    /// The name used in reports (`tagged`, `in_use`, `has_children`, `too_young`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tagged => "tagged",
            Self::InUse => "in_use",
            Self::HasChildren => "has_children",
            Self::TooYoung => "too_young",
            Self::MalformedId => "malformed_id",
            Self::Duplicated => "duplicated",
            Self::UnknownParent => "unknown_parent",
            Self::UnresolvedContainer => "unresolved_container",
            Self::ServiceRef => "service_ref",
            Self::ParentNotPlanned => "parent_not_planned",
        }
    }
}

impl KeptCounts {
    pub fn add(&mut self, reason: KeptReason, amount: u64) {
        *self.slot(reason) += amount;
    }

    pub fn get(&self, reason: KeptReason) -> u64 {
        let mut copy = *self;
        *copy.slot(reason)
    }

    fn slot(&mut self, reason: KeptReason) -> &mut u64 {
        match reason {
            KeptReason::Tagged => &mut self.tagged,
            KeptReason::InUse => &mut self.in_use,
            KeptReason::HasChildren => &mut self.has_children,
            KeptReason::TooYoung => &mut self.too_young,
            KeptReason::MalformedId => &mut self.malformed_id,
            KeptReason::Duplicated => &mut self.duplicated,
            KeptReason::UnknownParent => &mut self.unknown_parent,
            KeptReason::UnresolvedContainer => &mut self.unresolved_container,
            KeptReason::ServiceRef => &mut self.service_ref,
            KeptReason::ParentNotPlanned => &mut self.parent_not_planned,
        }
    }

    pub fn total(&self) -> u64 {
        KeptReason::ALL.iter().map(|reason| self.get(*reason)).sum()
    }
}

/// One image the plan removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Candidate {
    pub id: String,
    pub size_bytes: u64,
    pub created: DateTime<Utc>,
    pub reason: String,
    /// Deletion order: every image of wave `n` is removed before any of wave `n + 1`
    /// (children before their parents).
    #[serde(skip)]
    pub wave: u32,
}

/// One image the plan keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Kept {
    pub id: String,
    pub reason: KeptReason,
    pub size_bytes: u64,
    /// For `too_young`: when it becomes old enough (`unused_since` or `created`, plus
    /// `min_age`); `null` when that is not known yet (not yet observed) and for other reasons.
    pub eligible_at: Option<DateTime<Utc>>,
    /// Since when the observation record has seen it untagged and unused (`age_basis =
    /// "unused_for"`); `null` when it has no record.
    pub unused_since: Option<DateTime<Utc>>,
    /// For `service_ref`: the services whose current or previous spec names it.
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Plan {
    /// In deletion order.
    pub candidates: Vec<Candidate>,
    pub kept: KeptCounts,
    /// Every kept image with its reason (for `plan`'s full reasoning and debug logs).
    #[serde(skip)]
    pub kept_images: Vec<Kept>,
    /// Containers whose image could not be resolved to an image ID: while there is one, no
    /// image is planned (it might be the one that container uses).
    pub unresolved_containers: Vec<UnresolvedContainer>,
}

/// A container whose image reference matches no image ID, tag or ID prefix in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct UnresolvedContainer {
    pub id: String,
    pub name: String,
    /// The image reference as the daemon listed it (may be empty).
    pub image: String,
}

impl Plan {
    pub fn candidate_bytes(&self) -> u64 {
        self.candidates
            .iter()
            .map(|candidate| candidate.size_bytes)
            .sum()
    }

    /// Bytes Docker reports for kept images of one reason (image sizes overlap where layers
    /// are shared, so this is an upper bound of what they hold).
    pub fn kept_bytes(&self, reason: KeptReason) -> u64 {
        self.kept_images
            .iter()
            .filter(|kept| kept.reason == reason)
            .map(|kept| kept.size_bytes)
            .sum()
    }
}

/// What an image's age is measured from, with what that needs.
#[derive(Debug, Clone, Copy)]
pub enum Age<'a> {
    /// From `Created` (`age_basis = "created"`).
    Created,
    /// From the observation record, already updated with this look at the host
    /// (`age_basis = "unused_for"`): no entry means not old enough.
    UnusedFor(&'a Record),
}

/// The rules beyond images and containers: the grace period, its basis, and (on a swarm
/// manager) the services whose specs name images.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub min_age: Duration,
    pub age: Age<'a>,
    /// Empty where there are none or the node is not a manager.
    pub services: &'a [Service],
    /// Whether deleting an image with `noprune=true` keeps its untagged parents (Docker does,
    /// Podman does not: D10).
    pub honours_noprune: bool,
}

/// Decides what to remove by `Created` age, with no services: [`plan_with`] and
/// [`Age::Created`].
pub fn plan(
    images: &[Image],
    containers: &[Container],
    min_age: Duration,
    now: DateTime<Utc>,
) -> Plan {
    plan_with(
        images,
        containers,
        &Rules {
            min_age,
            age: Age::Created,
            services: &[],
            honours_noprune: true,
        },
        now,
    )
}

/// [`plan`] for an engine that does (`honours_noprune`: Docker) or does not (Podman) keep an
/// image's untagged parents when the image is deleted with `noprune=true`, by `Created` age.
pub fn plan_on(
    images: &[Image],
    containers: &[Container],
    min_age: Duration,
    now: DateTime<Utc>,
    honours_noprune: bool,
) -> Plan {
    plan_with(
        images,
        containers,
        &Rules {
            min_age,
            age: Age::Created,
            services: &[],
            honours_noprune,
        },
        now,
    )
}

/// Decides what to remove. `now` is passed in; nothing here reads a clock.
///
/// Doubt means keep: a malformed ID, an ID listed twice, a parent link that does not resolve,
/// or a container whose image cannot be resolved keeps images rather than risking one in use.
/// Where the engine does not honour `noprune` (`rules.honours_noprune`), no candidate has an
/// untagged parent that is not a candidate too.
pub fn plan_with(
    images: &[Image],
    containers: &[Container],
    rules: &Rules<'_>,
    now: DateTime<Utc>,
) -> Plan {
    let (used, unresolved_containers) = resolve_containers(containers, images);
    let service_refs = service_ref::referenced(rules.services, images);
    let facts = Facts::new(
        images,
        &used,
        !unresolved_containers.is_empty(),
        rules,
        &service_refs,
        now,
    );
    let own_reason = |image: &Image| facts.own_reason(image);
    let mut wave_of = peel_waves(images, &facts);
    let parent_not_planned = if rules.honours_noprune {
        HashSet::new()
    } else {
        keep_under_unplanned_parents(&mut wave_of, &facts)
    };

    let mut result = Plan {
        unresolved_containers,
        ..Plan::default()
    };
    let mut seen: HashSet<&str> = HashSet::new();
    for image in images {
        // An ID listed twice is one image: counted and listed once.
        if !seen.insert(image.id.as_str()) {
            continue;
        }
        if let Some(&wave) = wave_of.get(image.id.as_str()) {
            // By `created`, an eligible image's creation time is known; by `unused_for` it
            // may not be (reproducible builds report none): shown as the epoch, as Docker does.
            let created = image.created.unwrap_or(DateTime::UNIX_EPOCH);
            result.candidates.push(Candidate {
                id: image.id.clone(),
                size_bytes: image.size_bytes,
                created,
                reason: candidate_reason(image, facts.unused_since(image), created, now, wave),
                wave,
            });
        } else {
            let reason =
                own_reason(image).unwrap_or(if parent_not_planned.contains(image.id.as_str()) {
                    KeptReason::ParentNotPlanned
                } else {
                    KeptReason::HasChildren
                });
            result.kept.add(reason, 1);
            result.kept_images.push(Kept {
                id: image.id.clone(),
                reason,
                size_bytes: image.size_bytes,
                eligible_at: (reason == KeptReason::TooYoung)
                    .then(|| facts.eligible_at(image))
                    .flatten(),
                unused_since: facts.unused_since(image),
                services: service_refs
                    .get(image.id.as_str())
                    .filter(|_| reason == KeptReason::ServiceRef)
                    .map(|names| names.iter().cloned().collect())
                    .unwrap_or_default(),
            });
        }
    }
    result
        .candidates
        .sort_by(|a, b| (a.wave, a.created, &a.id).cmp(&(b.wave, b.created, &b.id)));
    result
}

/// Peels eligible images from the leaves up: an image becomes a candidate once all its
/// children are candidates. The value is its wave, its distance from the leaves.
fn peel_waves<'a>(images: &'a [Image], facts: &Facts<'a>) -> BTreeMap<&'a str, u32> {
    let own_reason = |image: &Image| facts.own_reason(image);
    let by_id = &facts.by_id;

    let mut child_count: HashMap<&str, usize> = HashMap::new();
    for image in images {
        if let Some(parent) = image
            .parent_id
            .as_deref()
            .filter(|parent| by_id.contains_key(parent))
        {
            *child_count.entry(parent).or_default() += 1;
        }
    }

    let mut wave_of: BTreeMap<&str, u32> = BTreeMap::new();
    let mut frontier: Vec<&Image> = images
        .iter()
        .filter(|image| {
            own_reason(image).is_none()
                && child_count.get(image.id.as_str()).copied().unwrap_or(0) == 0
        })
        .collect();
    let mut wave = 0;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for image in frontier {
            if wave_of.insert(image.id.as_str(), wave).is_some() {
                continue;
            }
            let Some(parent) = image
                .parent_id
                .as_deref()
                .and_then(|parent| by_id.get(parent))
            else {
                continue;
            };
            let remaining = child_count.entry(parent.id.as_str()).or_default();
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 && own_reason(parent).is_none() {
                next.push(*parent);
            }
        }
        frontier = next;
        wave += 1;
    }
    wave_of
}

/// Takes out of `wave_of` every candidate whose parent is untagged and not (or no longer) a
/// candidate, and returns their IDs. Parents first: a parent's wave is above each of its
/// children's, so one pass from the highest wave down sees every parent's fate before its
/// children's.
fn keep_under_unplanned_parents<'a>(
    wave_of: &mut BTreeMap<&'a str, u32>,
    facts: &Facts<'a>,
) -> HashSet<&'a str> {
    let mut order: Vec<(&'a str, u32)> = wave_of.iter().map(|(id, wave)| (*id, *wave)).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut kept = HashSet::new();
    for (id, _) in order {
        let Some(image) = facts.by_id.get(id) else {
            continue;
        };
        // A candidate's parent link resolves (else it would be `unknown_parent`).
        let unplanned_untagged_parent = image
            .parent_id
            .as_deref()
            .is_some_and(|parent| !facts.tagged.contains(parent) && !wave_of.contains_key(parent));
        if unplanned_untagged_parent {
            wave_of.remove(id);
            kept.insert(id);
        }
    }
    kept
}

fn candidate_reason(
    image: &Image,
    unused_since: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
    wave: u32,
) -> String {
    let age = human_seconds((now - created).num_seconds());
    let mut reason = match unused_since {
        Some(since) => format!(
            "dangling and used by no container for {} (first seen so {}), created {age} ago",
            human_seconds((now - since).num_seconds()),
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => format!("dangling, created {age} ago, used by no container"),
    };
    if let Some(tagged) = image.last_tag_time.filter(|tagged| *tagged > created) {
        let since = human_seconds((now - tagged).num_seconds());
        reason.push_str(&format!(", last tag change {since} ago"));
    }
    if wave > 0 {
        reason.push_str(", parent only of images removed before it");
    }
    if let Some(parent) = &image.parent_id {
        reason.push_str(&format!(" (parent {})", short_id(parent)));
    }
    reason
}

/// What decides whether one image may go on its own account.
struct Facts<'a> {
    by_id: HashMap<&'a str, &'a Image>,
    /// How often the daemon listed each ID.
    listed: HashMap<&'a str, usize>,
    /// IDs of which any listed copy has a tag.
    tagged: HashSet<&'a str>,
    used: &'a HashSet<String>,
    any_unresolved: bool,
    min_age: chrono::Duration,
    age: Age<'a>,
    service_refs: &'a ServiceRefs,
    now: DateTime<Utc>,
}

impl<'a> Facts<'a> {
    fn new(
        images: &'a [Image],
        used: &'a HashSet<String>,
        any_unresolved: bool,
        rules: &Rules<'a>,
        service_refs: &'a ServiceRefs,
        now: DateTime<Utc>,
    ) -> Self {
        let mut listed: HashMap<&str, usize> = HashMap::new();
        let mut tagged: HashSet<&str> = HashSet::new();
        for image in images {
            *listed.entry(image.id.as_str()).or_default() += 1;
            if !image.is_dangling() {
                tagged.insert(image.id.as_str());
            }
        }
        Self {
            by_id: images
                .iter()
                .map(|image| (image.id.as_str(), image))
                .collect(),
            listed,
            tagged,
            used,
            any_unresolved,
            min_age: chrono::Duration::from_std(rules.min_age).unwrap_or(chrono::Duration::MAX),
            age: rules.age,
            service_refs,
            now,
        }
    }

    /// Since when the record has seen it untagged and unused (`unused_for` only).
    fn unused_since(&self, image: &Image) -> Option<DateTime<Utc>> {
        match self.age {
            Age::UnusedFor(record) => record.unused_since(&image.id),
            Age::Created => None,
        }
    }

    /// What the age rule measures from: the record's unused-since time or the creation time,
    /// and never before the image's last tag change where the engine records one.
    fn age_from(&self, image: &Image) -> Option<DateTime<Utc>> {
        match self.age {
            Age::UnusedFor(_) => self.unused_since(image).map(|since| {
                image
                    .last_tag_time
                    .map_or(since, |tagged| since.max(tagged))
            }),
            Age::Created => image.age_reference(),
        }
    }

    /// When the age rule is met: the time it is measured from, plus `min_age`.
    fn eligible_at(&self, image: &Image) -> Option<DateTime<Utc>> {
        let from = self.age_from(image)?;
        Some(
            from.checked_add_signed(self.min_age)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// Why an image cannot go on its own account; `None` means eligible. The first reason that
    /// applies wins (docs/report-schema.md lists them in this order).
    fn own_reason(&self, image: &Image) -> Option<KeptReason> {
        let parent_resolves = image
            .parent_id
            .as_deref()
            .is_none_or(|parent| is_image_id(parent) && self.by_id.contains_key(parent));
        // No record, or a time in the future (clock skew): not old enough. Counted from the
        // later of that and the last tag change (the containerd store's `LastTagTime`), so
        // never laxer than Docker's own `until` filter on either store.
        let old_enough = self
            .age_from(image)
            .is_some_and(|from| from <= self.now && self.now - from >= self.min_age);
        if !is_image_id(&image.id) {
            Some(KeptReason::MalformedId)
        } else if self.tagged.contains(image.id.as_str()) {
            Some(KeptReason::Tagged)
        } else if self.listed.get(image.id.as_str()).copied().unwrap_or(0) > 1 {
            Some(KeptReason::Duplicated)
        } else if self.used.contains(image.id.as_str()) {
            Some(KeptReason::InUse)
        } else if self.service_refs.contains_key(image.id.as_str()) {
            Some(KeptReason::ServiceRef)
        } else if !parent_resolves {
            Some(KeptReason::UnknownParent)
        } else if !old_enough {
            Some(KeptReason::TooYoung)
        } else if self.any_unresolved {
            Some(KeptReason::UnresolvedContainer)
        } else {
            None
        }
    }
}

/// The image IDs containers use, and the containers whose image matches nothing.
pub(crate) fn resolve_containers(
    containers: &[Container],
    images: &[Image],
) -> (HashSet<String>, Vec<UnresolvedContainer>) {
    let mut used = HashSet::new();
    let mut unresolved = Vec::new();
    for container in containers {
        let matches = resolve_image_ref(&container.image_id, images);
        if matches.is_empty() {
            unresolved.push(UnresolvedContainer {
                id: short_id(&container.id).to_string(),
                name: container.name.clone(),
                image: container.image_id.clone(),
            });
        }
        used.extend(matches);
    }
    (used, unresolved)
}

/// Every image a container's image reference may mean: a full ID in any case, with or without
/// `sha256:` (used even when not listed); else each image whose ID starts with it or that
/// carries it as a tag. Ambiguity protects every match; no match is unresolved.
pub(crate) fn resolve_image_ref(reference: &str, images: &[Image]) -> Vec<String> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Vec::new();
    }
    let lower = reference.to_ascii_lowercase();
    let hex = lower.strip_prefix("sha256:").unwrap_or(&lower);
    let full = format!("sha256:{hex}");
    if is_image_id(&full) {
        return vec![full];
    }
    let is_hex_prefix = !hex.is_empty() && hex.bytes().all(|byte| byte.is_ascii_hexdigit());
    let name = normal_reference(reference);
    let mut matches: Vec<String> = images
        .iter()
        .filter(|image| {
            (is_hex_prefix && image.id.to_ascii_lowercase().starts_with(&full))
                || image
                    .repo_tags
                    .iter()
                    .any(|tag| normal_reference(tag) == name)
        })
        .map(|image| image.id.clone())
        .collect();
    matches.sort();
    matches.dedup();
    matches
}

/// `busybox`, `busybox:latest`, `library/busybox` and `docker.io/library/busybox:latest` all
/// name one image.
fn normal_reference(reference: &str) -> String {
    let name = reference.strip_prefix("docker.io/").unwrap_or(reference);
    let name = name.strip_prefix("library/").unwrap_or(name);
    let has_tag = name
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':') || last.contains('@'));
    if has_tag {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}
