//! Pure watermark arithmetic (kubelet's image GC semantics): a tier starts only while the
//! filesystem is at or above its high watermark, and stops once it is at or below its low
//! one. The shell measures the filesystem, asks [`next_batch`] how many of the remaining
//! candidates to remove, removes them, and measures again; this module never measures.
//!
//! The disk gate measures several filesystems (`gates.disk.paths`: the data root and, on the
//! containerd image store, containerd's root; D11). Issue 13's watermarks hold for "a data
//! filesystem": the tiers follow the fullest of them ([`fullest`]), measured again between
//! batches, so a tier starts when any is at or above `high_percent` and stops only once every
//! one is at or below `low_percent`.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use schemars::JsonSchema;
use serde::Serialize;

use crate::model::df_percent;

use super::unused_tagged::TagCandidate;

/// One measurement of the filesystem, as `df` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Usage {
    pub used_bytes: u64,
    pub available_bytes: u64,
}

impl Usage {
    /// `df`'s Use% (rounded up); 0 for an empty filesystem.
    pub fn percent(self) -> u8 {
        df_percent(self.used_bytes, self.available_bytes).unwrap_or(0)
    }

    /// Bytes to free before Use% is at or below `low` (freed bytes become available).
    pub fn bytes_above(self, low: u8) -> u64 {
        let basis = u128::from(self.used_bytes) + u128::from(self.available_bytes);
        // The most used bytes with used * 100 <= basis * low, i.e. Use% (rounded up) <= low.
        let target = basis * u128::from(low.min(100)) / 100;
        let excess = u128::from(self.used_bytes).saturating_sub(target);
        u64::try_from(excess).unwrap_or(u64::MAX)
    }
}

/// The fullest of `usages` (by Use%, then by the bytes above `low`, then the first listed):
/// what the watermarks are compared with. `None` when nothing was measured.
pub fn fullest(usages: &[Usage], low: u8) -> Option<(usize, Usage)> {
    usages
        .iter()
        .copied()
        .enumerate()
        // `max_by_key` keeps the last of equals: compare the negated index to keep the first.
        .max_by_key(|(index, usage)| {
            (
                usage.percent(),
                usage.bytes_above(low),
                std::cmp::Reverse(*index),
            )
        })
}

/// Bytes freed over several filesystems: the sum of each one's used bytes lost between
/// `before` and `after` (same order, one entry per filesystem; one that grew counts 0).
pub fn freed(before: &[Usage], after: &[Usage]) -> u64 {
    before
        .iter()
        .zip(after)
        .map(|(before, after)| before.used_bytes.saturating_sub(after.used_bytes))
        .fold(0, u64::saturating_add)
}

/// Whether a tier starts at `usage` with watermark `high`.
pub fn starts(usage: Usage, high: u8) -> bool {
    usage.percent() >= high
}

/// Whether a running tier may stop at `usage` with watermark `low`.
pub fn done(usage: Usage, low: u8) -> bool {
    usage.percent() <= low
}

/// How many of `remaining` (in order) to remove before measuring again: none when `usage` is
/// at or below `low`; else the shortest prefix whose expected bytes reach the excess, ending
/// at a candidate of unknown size (measure after it), extended to the end of the last image's
/// tags (an image goes only with its last tag, so a batch never stops between them), and at
/// least one image.
pub fn next_batch(usage: Usage, low: u8, remaining: &[TagCandidate]) -> usize {
    if done(usage, low) || remaining.is_empty() {
        return 0;
    }
    let needed = usage.bytes_above(low);
    let mut expected: u64 = 0;
    let mut count = 0;
    for candidate in remaining {
        count += 1;
        if !candidate.removes_image {
            continue;
        }
        match candidate.expected_bytes {
            None => break,
            Some(bytes) => {
                expected = expected.saturating_add(bytes);
                if expected >= needed {
                    break;
                }
            }
        }
    }
    count
}
