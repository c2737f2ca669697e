//! Pure planning: images + containers + `min_age` + `now` → the exact list of images to remove,
//! each with its reason, and a count of everything kept and why. No engine, no filesystem, no
//! clock here.
//!
//! An image is *eligible* when it is dangling, used by no container in any state, and created
//! at least `min_age` ago. It is a *candidate* when it is eligible and every child image it has
//! is itself a candidate: a dangling chain left by a rebuild goes as a whole, children first,
//! and an image with a child that stays is kept (`has_children`).

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::human::{human_seconds, short_id};
use crate::model::{Container, Image};

/// Why an image stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptReason {
    /// It has at least one tag: only dangling images are candidates.
    Tagged,
    /// A container in any state (running, stopped, created, dead, ...) uses it.
    InUse,
    /// It has a child image that is not being removed.
    HasChildren,
    /// Created less than `min_age` ago, in the future (clock skew), or at an unknown time.
    TooYoung,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KeptCounts {
    pub tagged: u64,
    pub in_use: u64,
    pub too_young: u64,
    pub has_children: u64,
}

impl KeptReason {
    /// The name used in reports (`tagged`, `in_use`, `has_children`, `too_young`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tagged => "tagged",
            Self::InUse => "in_use",
            Self::HasChildren => "has_children",
            Self::TooYoung => "too_young",
        }
    }
}

impl KeptCounts {
    fn add(&mut self, reason: KeptReason) {
        match reason {
            KeptReason::Tagged => self.tagged += 1,
            KeptReason::InUse => self.in_use += 1,
            KeptReason::HasChildren => self.has_children += 1,
            KeptReason::TooYoung => self.too_young += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.tagged + self.in_use + self.too_young + self.has_children
    }
}

/// One image the plan removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub id: String,
    pub reason: KeptReason,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// In deletion order.
    pub candidates: Vec<Candidate>,
    pub kept: KeptCounts,
    /// Every kept image with its reason (for `plan`'s full reasoning and debug logs).
    #[serde(skip)]
    pub kept_images: Vec<Kept>,
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
pub fn plan(
    images: &[Image],
    containers: &[Container],
    min_age: Duration,
    now: DateTime<Utc>,
) -> Plan {
    let used: HashSet<&str> = containers
        .iter()
        .map(|container| container.image_id.as_str())
        .collect();
    let min_age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);

    // Reason an image cannot go on its own account; `None` means eligible.
    let own_reason = |image: &Image| -> Option<KeptReason> {
        if !image.is_dangling() {
            Some(KeptReason::Tagged)
        } else if used.contains(image.id.as_str()) {
            Some(KeptReason::InUse)
        } else {
            match image.created {
                Some(created) if created <= now && now - created >= min_age => None,
                _ => Some(KeptReason::TooYoung),
            }
        }
    };

    let by_id: HashMap<&str, &Image> = images
        .iter()
        .map(|image| (image.id.as_str(), image))
        .collect();
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

    let mut result = Plan::default();
    for image in images {
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
            result.kept.add(reason);
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
    let mut reason = format!("dangling, created {age} ago, used by no container");
    if wave > 0 {
        reason.push_str(", parent only of images removed before it");
    }
    if let Some(parent) = &image.parent_id {
        reason.push_str(&format!(" (parent {})", short_id(parent)));
    }
    reason
}
