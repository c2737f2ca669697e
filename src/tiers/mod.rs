//! Reclaim tiers (issue 13): what runs after the dangling tier when removing dangling images
//! is not enough. Each tier is off by default and opted into (`[tiers.*] enabled = true`, or
//! `--tier NAME` for one run). The order is fixed: `dangling` (today's policy, always first),
//! then `unused_tagged` (tags of images no container has used for `unused_for`, least recently
//! used first, between filesystem watermarks), then `build_cache` (the engine's build cache
//! older than `keep_for`, through the engine's build-cache API only).
//!
//! This module holds the tiers' settings and names; `unused_tagged` and `watermark` are the
//! pure core (no clock, filesystem or engine), `execute` the shell that applies them.

pub mod execute;
pub mod report;
pub mod unused_tagged;
pub mod watermark;

use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

use crate::policy::Pattern;

/// A tier's name, as the config file, `--tier` and the report write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TierName {
    /// Untagged images unused for `policy.min_age`: today's policy, always on, always first.
    Dangling,
    /// Tags of images unused by every container for `tiers.unused_tagged.unused_for`.
    UnusedTagged,
    /// The engine's build cache older than `tiers.build_cache.keep_for`.
    BuildCache,
}

impl TierName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dangling => "dangling",
            Self::UnusedTagged => "unused_tagged",
            Self::BuildCache => "build_cache",
        }
    }

    /// `--tier`'s value: `unused_tagged` or `build_cache`. `dangling` is refused with a
    /// sentence saying it always runs (a flag that changes nothing would mislead).
    pub fn parse_opt_in(text: &str) -> Result<Self, String> {
        match text.trim() {
            "unused_tagged" => Ok(Self::UnusedTagged),
            "build_cache" => Ok(Self::BuildCache),
            "dangling" => Err(
                "the dangling tier always runs first and cannot be enabled or disabled; --tier takes unused_tagged or build_cache".into(),
            ),
            other => Err(format!(
                "{other:?} is not a tier; --tier takes unused_tagged or build_cache"
            )),
        }
    }
}

pub const DEFAULT_HIGH_PERCENT: u8 = 85;
pub const DEFAULT_LOW_PERCENT: u8 = 80;
pub const DEFAULT_UNUSED_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_KEEP_NEWEST: u32 = 1;
pub const KEEP_NEWEST_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;
pub const DEFAULT_KEEP_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// `[tiers.unused_tagged]`.
#[derive(Debug, Clone)]
pub struct UnusedTaggedSettings {
    pub enabled: bool,
    /// Runs only while the disk gate's filesystem is at or above this Use%.
    pub high_percent: u8,
    /// Stops once it is at or below this Use% (below `high_percent`).
    pub low_percent: u8,
    /// Unused by every container for at least this long, by the observation record.
    pub unused_for: Duration,
    /// `repo:tag` globs in scope.
    pub include: Vec<Pattern>,
    /// `repo:tag` globs never removed; keep wins over include.
    pub keep: Vec<Pattern>,
    /// The newest images (by `Created`) of each repository that are kept; at least 1.
    pub keep_newest: u32,
}

impl Default for UnusedTaggedSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            high_percent: DEFAULT_HIGH_PERCENT,
            low_percent: DEFAULT_LOW_PERCENT,
            unused_for: DEFAULT_UNUSED_FOR,
            // "*" is a valid glob.
            include: Pattern::new("*").into_iter().collect(),
            keep: Vec::new(),
            keep_newest: DEFAULT_KEEP_NEWEST,
        }
    }
}

/// `[tiers.build_cache]`.
#[derive(Debug, Clone)]
pub struct BuildCacheSettings {
    pub enabled: bool,
    /// Only cache unused for longer than this goes (the API's `until` filter).
    pub keep_for: Duration,
    /// Build cache bytes kept in any case (the API's `keep-storage`); 0 keeps no budget, so
    /// `keep_for` alone decides.
    pub keep_storage: u64,
}

impl Default for BuildCacheSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            keep_for: DEFAULT_KEEP_FOR,
            keep_storage: 0,
        }
    }
}

/// Every opt-in tier's settings.
#[derive(Debug, Clone, Default)]
pub struct TierSettings {
    pub unused_tagged: UnusedTaggedSettings,
    pub build_cache: BuildCacheSettings,
}

impl TierSettings {
    /// Any opt-in tier enabled?
    pub fn any_enabled(&self) -> bool {
        self.unused_tagged.enabled || self.build_cache.enabled
    }
}

/// What one tier did (or, in a dry run, would do), for the report's `tiers` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TierOutcome {
    pub name: TierName,
    pub status: TierStatus,
    /// Candidates it planned: images for `dangling`, tags for `unused_tagged`; for
    /// `build_cache` the cache records the engine removed (it lists none beforehand).
    pub candidates: u64,
    /// Removed: images for `dangling` and `build_cache` records; tags for `unused_tagged`.
    pub removed: u64,
    /// Images that went with their last tag (`unused_tagged` only; else 0).
    pub removed_images: u64,
    /// Bytes freed: measured on the filesystem for the image tiers, the engine's
    /// `SpaceReclaimed` for `build_cache`.
    pub reclaimed_bytes: u64,
    /// Why it did not run, stopped, or is unsupported; `null` when it simply ran.
    pub reason: Option<String>,
    /// The watermarks it ran between (`unused_tagged`), else `null`.
    pub high_percent: Option<u8>,
    pub low_percent: Option<u8>,
    /// Use% of the disk gate's filesystem when the tier began and ended.
    pub disk_percent_before: Option<u8>,
    pub disk_percent_after: Option<u8>,
    /// `unused_tagged` only: the tags in the order they go (all of them in a dry run, the
    /// attempted ones in a run), with reason, last use and expected bytes.
    pub planned: Vec<unused_tagged::TagCandidate>,
    /// `unused_tagged` only: tags removed, skipped (409, changed since the plan) or failed.
    pub removed_tags: Vec<String>,
    pub skipped: Vec<TagProblem>,
    pub failed: Vec<TagProblem>,
}

/// A tag that was skipped or failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TagProblem {
    pub reference: String,
    pub why: String,
}

/// Whether a tier ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TierStatus {
    /// It ran (it may have removed nothing: see `reason`).
    Ran,
    /// A dry run: what a run would do.
    Planned,
    /// Not needed: the filesystem is below the tier's high watermark (or the disk threshold).
    NotNeeded,
    /// Not run: a gate is closed, the run stopped, or the disk could not be measured.
    Skipped,
    /// The engine has no such interface (build cache on an engine without the API).
    Unsupported,
}

impl TierStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ran => "ran",
            Self::Planned => "planned",
            Self::NotNeeded => "not_needed",
            Self::Skipped => "skipped",
            Self::Unsupported => "unsupported",
        }
    }
}

impl TierOutcome {
    /// An outcome with nothing done yet.
    pub fn new(name: TierName, status: TierStatus) -> Self {
        Self {
            name,
            status,
            candidates: 0,
            removed: 0,
            removed_images: 0,
            reclaimed_bytes: 0,
            reason: None,
            high_percent: None,
            low_percent: None,
            disk_percent_before: None,
            disk_percent_after: None,
            planned: Vec::new(),
            removed_tags: Vec::new(),
            skipped: Vec::new(),
            failed: Vec::new(),
        }
    }
}
