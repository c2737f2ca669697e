//! Pure planning: images + containers + `min_age` + `now` → the exact list of images to remove,
//! each with its reason, and a count of everything kept and why. No engine, no filesystem, no
//! clock here.
//!
//! An image is *eligible* when it is dangling, used by no container in any state, and created
//! at least `min_age` ago (and, where the engine records it, last tagged or untagged at least
//! `min_age` ago: [`Image::age_reference`]). It is a *candidate* when it is eligible and every child image it has
//! is itself a candidate: a dangling chain left by a rebuild goes as a whole, children first,
//! and an image with a child that stays is kept (`has_children`).

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::human::{human_seconds, short_id};
use crate::model::{Container, Image, is_image_id};

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
    /// Created (or, where recorded, last tagged or untagged) less than `min_age` ago, in the
    /// future (clock skew), or at an unknown time.
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
}

impl KeptReason {
    pub const ALL: [Self; 8] = [
        Self::Tagged,
        Self::InUse,
        Self::TooYoung,
        Self::HasChildren,
        Self::MalformedId,
        Self::Duplicated,
        Self::UnknownParent,
        Self::UnresolvedContainer,
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

/// Decides what to remove. `now` is passed in; nothing here reads a clock.
///
/// Doubt means keep: a malformed ID, an ID listed twice, a parent link that does not resolve,
/// or a container whose image cannot be resolved keeps images rather than risking one in use.
pub fn plan(
    images: &[Image],
    containers: &[Container],
    min_age: Duration,
    now: DateTime<Utc>,
) -> Plan {
    let (used, unresolved_containers) = resolve_containers(containers, images);
    let facts = Facts::new(
        images,
        &used,
        !unresolved_containers.is_empty(),
        min_age,
        now,
    );
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

    // Peel eligible images from the leaves up: an image becomes a candidate once all its
    // children are candidates. `wave` is its distance from the leaves.
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
            // Candidates are eligible, so their creation time is known.
            let Some(created) = image.created else {
                continue;
            };
            result.candidates.push(Candidate {
                id: image.id.clone(),
                size_bytes: image.size_bytes,
                created,
                reason: candidate_reason(image, created, now, wave),
                wave,
            });
        } else {
            let reason = own_reason(image).unwrap_or(KeptReason::HasChildren);
            result.kept.add(reason, 1);
            result.kept_images.push(Kept {
                id: image.id.clone(),
                reason,
                size_bytes: image.size_bytes,
            });
        }
    }
    result
        .candidates
        .sort_by(|a, b| (a.wave, a.created, &a.id).cmp(&(b.wave, b.created, &b.id)));
    result
}

fn candidate_reason(
    image: &Image,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
    wave: u32,
) -> String {
    let age = human_seconds((now - created).num_seconds());
    let mut reason = format!("dangling, created {age} ago");
    if let Some(tagged) = image.last_tag_time.filter(|tagged| *tagged > created) {
        let since = human_seconds((now - tagged).num_seconds());
        reason.push_str(&format!(", last tag change {since} ago"));
    }
    reason.push_str(", used by no container");
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
    now: DateTime<Utc>,
}

impl<'a> Facts<'a> {
    fn new(
        images: &'a [Image],
        used: &'a HashSet<String>,
        any_unresolved: bool,
        min_age: Duration,
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
            min_age: chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX),
            now,
        }
    }

    /// Why an image cannot go on its own account; `None` means eligible. The first reason that
    /// applies wins (docs/report-schema.md lists them in this order).
    fn own_reason(&self, image: &Image) -> Option<KeptReason> {
        let parent_resolves = image
            .parent_id
            .as_deref()
            .is_none_or(|parent| is_image_id(parent) && self.by_id.contains_key(parent));
        // Counted from the later of creation and the last tag change (the containerd store's
        // `LastTagTime`), so never laxer than Docker's own `until` filter on either store.
        let old_enough = image
            .age_reference()
            .is_some_and(|since| since <= self.now && self.now - since >= self.min_age);
        if !is_image_id(&image.id) {
            Some(KeptReason::MalformedId)
        } else if self.tagged.contains(image.id.as_str()) {
            Some(KeptReason::Tagged)
        } else if self.listed.get(image.id.as_str()).copied().unwrap_or(0) > 1 {
            Some(KeptReason::Duplicated)
        } else if self.used.contains(image.id.as_str()) {
            Some(KeptReason::InUse)
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
fn resolve_containers(
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
fn resolve_image_ref(reference: &str, images: &[Image]) -> Vec<String> {
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
