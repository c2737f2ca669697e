//! The shell of the opt-in tiers: measure the disk gate's filesystems, plan (pure), remove in
//! batches (tag by tag, never forced) while re-measuring between batches and re-checking the
//! deploy gates, and ask the engine's build-cache API. Runs after the dangling tier, only in
//! a real run whose gates were open; a dry run gets the plans only ([`plan_only`]).

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::decision::Recheck;
use crate::disk;
use crate::engine::{BuildCacheOutcome, Engine, UntagOutcome};
use crate::execute::Interrupt;
use crate::gates::{self, GateVerdict};
use crate::model::{Container, DiskUsage, Image, Service};
use crate::observe::Record;
use crate::policy::Policy;

use super::unused_tagged::{self, Inputs, TagCandidate};
use super::watermark::{self, Usage};
use super::{TagProblem, TierName, TierOutcome, TierSettings, TierStatus};

/// What the tiers decide by, beyond the engine.
pub struct Context<'a> {
    pub tiers: &'a TierSettings,
    pub policy: &'a Policy,
    pub services: &'a [Service],
    pub record: Option<&'a Record>,
    /// The disk gate's filesystems (the first one, then the others it could measure before
    /// the run); the watermarks follow the fullest of them ([`watermark::fullest`]).
    pub disk_paths: &'a [PathBuf],
    /// Whether the engine keeps an image's untagged parents on delete (D10).
    pub honours_noprune: bool,
}

fn usage_of(disk: &DiskUsage) -> Usage {
    Usage {
        used_bytes: disk.used_bytes,
        available_bytes: disk.available_bytes,
    }
}

/// One measurement of every filesystem, in `paths`' order: the first must be measurable (as
/// for the disk gate, unknown is no); another that cannot be measured now is `None` and
/// neither starts nor holds a tier.
fn measure(paths: &[PathBuf]) -> anyhow::Result<Vec<Option<Usage>>> {
    let mut usages = Vec::with_capacity(paths.len());
    for (index, path) in paths.iter().enumerate() {
        match disk::usage(path) {
            Ok(disk) => usages.push(Some(usage_of(&disk))),
            Err(error) if index == 0 => return Err(error),
            Err(error) => {
                warn!(path = %path.display(), %error, "a filesystem of the disk gate could not be measured");
                usages.push(None);
            }
        }
    }
    if usages.is_empty() {
        anyhow::bail!("no filesystem to measure (the disk gate measured none)");
    }
    Ok(usages)
}

/// The fullest of one measurement (see [`watermark::fullest`]).
fn fullest_of(usages: &[Option<Usage>], low: u8) -> Usage {
    let measured: Vec<Usage> = usages.iter().flatten().copied().collect();
    // `measure` always holds the first filesystem's usage, so `measured` is never empty.
    watermark::fullest(&measured, low).map_or(
        Usage {
            used_bytes: 0,
            available_bytes: 0,
        },
        |(_, usage)| usage,
    )
}

/// Bytes freed between two measurements of the same filesystems.
fn freed_between(before: &[Option<Usage>], after: &[Option<Usage>]) -> u64 {
    let (before, after): (Vec<Usage>, Vec<Usage>) = before
        .iter()
        .zip(after)
        .filter_map(|(before, after)| before.zip(*after))
        .unzip();
    watermark::freed(&before, &after)
}

/// A dry run's view: every enabled tier's plan and whether it would start now.
pub fn plan_only(
    context: &Context<'_>,
    images: &[Image],
    containers: &[Container],
    disks: &[DiskUsage],
    now: DateTime<Utc>,
) -> Vec<TierOutcome> {
    let usages: Vec<Usage> = disks.iter().map(usage_of).collect();
    let mut outcomes = Vec::new();
    let tagged = &context.tiers.unused_tagged;
    if tagged.enabled {
        let plan = unused_tagged::plan(&Inputs {
            images,
            containers,
            services: context.services,
            record: context.record,
            settings: tagged,
            honours_noprune: context.honours_noprune,
            now,
        });
        let mut outcome = TierOutcome::new(TierName::UnusedTagged, TierStatus::Planned);
        outcome.high_percent = Some(tagged.high_percent);
        outcome.low_percent = Some(tagged.low_percent);
        outcome.candidates = count(plan.candidates.len());
        let fullest = watermark::fullest(&usages, tagged.low_percent);
        outcome.disk_percent_before = fullest.map(|(_, usage)| usage.percent());
        outcome.reason = Some(match fullest {
            Some((index, usage)) if watermark::starts(usage, tagged.high_percent) => format!(
                "a run would start: the disk ({}) is {} % full, at or above high_percent {} %, and remove tags in this order until it is at or below low_percent {} %",
                disks[index].path.display(),
                usage.percent(),
                tagged.high_percent,
                tagged.low_percent
            ),
            Some((index, usage)) => format!(
                "a run would not start: the fullest disk ({}) is {} % full, below high_percent {} %",
                disks[index].path.display(),
                usage.percent(),
                tagged.high_percent
            ),
            None => "the disk could not be measured, so a run would not start".into(),
        });
        outcome.planned = plan.candidates;
        outcomes.push(outcome);
    }
    let cache = &context.tiers.build_cache;
    if cache.enabled {
        let mut outcome = TierOutcome::new(TierName::BuildCache, TierStatus::Planned);
        outcome.reason = Some(format!(
            "a run would ask the engine's build-cache API for records unused for longer than {} (keeping {}), when the disk is at or above the disk threshold; the API lists only what it removes",
            crate::human::format_duration(cache.keep_for),
            crate::human::human_bytes(cache.keep_storage)
        ));
        outcomes.push(outcome);
    }
    outcomes
}

/// The reason each enabled tier did not run (gates closed, a stopped run).
pub fn not_run(tiers: &TierSettings, reason: &str) -> Vec<TierOutcome> {
    [
        (tiers.unused_tagged.enabled, TierName::UnusedTagged),
        (tiers.build_cache.enabled, TierName::BuildCache),
    ]
    .into_iter()
    .filter(|(enabled, _)| *enabled)
    .map(|(_, name)| {
        let mut outcome = TierOutcome::new(name, TierStatus::Skipped);
        outcome.reason = Some(reason.to_string());
        outcome
    })
    .collect()
}

/// Runs every enabled tier in order. `recheck` gathers the deploy gates again (as the
/// dangling tier's execution does); the disk gate is not consulted mid-run: the watermarks
/// decide.
pub async fn run<E, F, Fut>(
    engine: &E,
    context: &Context<'_>,
    interrupt: &Interrupt,
    mut recheck: F,
) -> anyhow::Result<Vec<TierOutcome>>
where
    E: Engine,
    F: FnMut(Recheck) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<GateVerdict>>>,
{
    let mut outcomes = Vec::new();
    if context.tiers.unused_tagged.enabled {
        outcomes.push(unused_tagged_tier(engine, context, interrupt, &mut recheck).await?);
    }
    if context.tiers.build_cache.enabled {
        outcomes.push(build_cache_tier(engine, context).await?);
    }
    Ok(outcomes)
}

async fn gates_closed<F, Fut>(recheck: &mut F) -> Option<String>
where
    F: FnMut(Recheck) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<GateVerdict>>>,
{
    match recheck(Recheck::MidRun).await {
        Ok(mut verdicts) => {
            verdicts.retain(|verdict| Recheck::MidRun.consults(verdict.name));
            (!gates::all_open(&verdicts)).then(|| {
                format!(
                    "stopped because a gate closed: {}",
                    gates::closed_names(&verdicts).join(", ")
                )
            })
        }
        Err(error) => Some(format!(
            "stopped because the gates could not be re-checked: {error:#}"
        )),
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[expect(
    clippy::too_many_lines,
    reason = "one loop: measure, batch, re-check, remove, measure again"
)]
async fn unused_tagged_tier<E, F, Fut>(
    engine: &E,
    context: &Context<'_>,
    interrupt: &Interrupt,
    recheck: &mut F,
) -> anyhow::Result<TierOutcome>
where
    E: Engine,
    F: FnMut(Recheck) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<GateVerdict>>>,
{
    let settings = &context.tiers.unused_tagged;
    let mut outcome = TierOutcome::new(TierName::UnusedTagged, TierStatus::Ran);
    outcome.high_percent = Some(settings.high_percent);
    outcome.low_percent = Some(settings.low_percent);
    let low = settings.low_percent;
    let before = match measure(context.disk_paths) {
        Ok(before) => before,
        Err(error) => {
            outcome.status = TierStatus::Skipped;
            outcome.reason = Some(format!("the disk could not be measured: {error:#}"));
            return Ok(outcome);
        }
    };
    let mut usage = fullest_of(&before, low);
    let mut after_all = before.clone();
    outcome.disk_percent_before = Some(usage.percent());
    outcome.disk_percent_after = Some(usage.percent());
    if !watermark::starts(usage, settings.high_percent) {
        outcome.status = TierStatus::NotNeeded;
        outcome.reason = Some(format!(
            "the disk is {} % full, below high_percent {} %",
            usage.percent(),
            settings.high_percent
        ));
        return Ok(outcome);
    }
    // A fresh look: the dangling tier has just removed images.
    let images = engine.images().await?;
    let containers = engine.containers().await?;
    let plan = unused_tagged::plan(&Inputs {
        images: &images,
        containers: &containers,
        services: context.services,
        record: context.record,
        settings,
        honours_noprune: context.honours_noprune,
        now: Utc::now(),
    });
    outcome.candidates = count(plan.candidates.len());
    let mut remaining: &[TagCandidate] = &plan.candidates;
    let mut skipped_images: HashSet<String> = HashSet::new();
    loop {
        if watermark::done(usage, settings.low_percent) {
            outcome.reason = Some(format!(
                "the disk is {} % full, at or below low_percent {} %",
                usage.percent(),
                settings.low_percent
            ));
            break;
        }
        let batch = watermark::next_batch(usage, settings.low_percent, remaining);
        if batch == 0 {
            outcome.reason = Some(format!(
                "no candidate is left and the disk is still {} % full, above low_percent {} %: the kept tags (in use, kept, newest of their repository, recently used) hold the rest",
                usage.percent(),
                settings.low_percent
            ));
            break;
        }
        if interrupt.is_set() {
            outcome.reason = Some("stopped by SIGTERM or SIGINT".into());
            break;
        }
        if let Some(reason) = gates_closed(recheck).await {
            outcome.reason = Some(reason);
            break;
        }
        let (now, rest) = remaining.split_at(batch);
        remaining = rest;
        for candidate in now {
            let image_tags: HashSet<&str> = plan
                .candidates
                .iter()
                .filter(|planned| planned.image_id == candidate.image_id)
                .map(|planned| planned.reference.as_str())
                .collect();
            let first_of_image = !outcome
                .planned
                .iter()
                .any(|planned| planned.image_id == candidate.image_id);
            outcome.planned.push(candidate.clone());
            untag_one(
                engine,
                candidate,
                &image_tags,
                first_of_image,
                &mut outcome,
                &mut skipped_images,
            )
            .await?;
        }
        match measure(context.disk_paths) {
            Ok(after) => {
                usage = fullest_of(&after, low);
                after_all = after;
                outcome.disk_percent_after = Some(usage.percent());
            }
            Err(error) => {
                outcome.reason = Some(format!(
                    "stopped because the disk could not be measured again: {error:#}"
                ));
                break;
            }
        }
    }
    outcome.reclaimed_bytes = freed_between(&before, &after_all);
    info!(
        removed = outcome.removed,
        images = outcome.removed_images,
        "unused_tagged tier done"
    );
    Ok(outcome)
}

/// One tag: the image's tags are looked at before its first tag goes (a tag added since the
/// plan skips the image), then `DELETE /images/{name:tag}`; 409 and 404 are skips.
async fn untag_one<E: Engine>(
    engine: &E,
    candidate: &TagCandidate,
    image_tags: &HashSet<&str>,
    first_of_image: bool,
    outcome: &mut TierOutcome,
    skipped_images: &mut HashSet<String>,
) -> anyhow::Result<()> {
    let skip = |outcome: &mut TierOutcome, why: String| {
        info!(tag = %candidate.reference, %why, "tag skipped");
        outcome.skipped.push(TagProblem {
            reference: candidate.reference.clone(),
            why,
        });
    };
    if skipped_images.contains(&candidate.image_id) {
        skip(
            outcome,
            "another tag of this image was skipped, so it stays".into(),
        );
        return Ok(());
    }
    if first_of_image {
        match engine.image_tags(&candidate.image_id).await {
            Ok(None) => {
                skipped_images.insert(candidate.image_id.clone());
                skip(outcome, "the image is already gone (404)".into());
                return Ok(());
            }
            Ok(Some(tags)) => {
                if let Some(new) = tags.iter().find(|tag| !image_tags.contains(tag.as_str())) {
                    skipped_images.insert(candidate.image_id.clone());
                    skip(
                        outcome,
                        format!("the image was tagged {new} since the plan was made, so it stays"),
                    );
                    return Ok(());
                }
            }
            Err(error) if error.is_unreachable() => return Err(error.into()),
            Err(error) => {
                skipped_images.insert(candidate.image_id.clone());
                outcome.failed.push(TagProblem {
                    reference: candidate.reference.clone(),
                    why: error.to_string(),
                });
                return Ok(());
            }
        }
    }
    match engine.untag(&candidate.reference).await {
        Ok(UntagOutcome::Untagged { image_deleted }) => {
            outcome.removed += 1;
            outcome.removed_images += u64::from(image_deleted);
            outcome.removed_tags.push(candidate.reference.clone());
        }
        Ok(UntagOutcome::Conflict(message)) => {
            skipped_images.insert(candidate.image_id.clone());
            skip(outcome, format!("conflict (409), left in place: {message}"));
        }
        Ok(UntagOutcome::NotFound) => skip(outcome, "the tag is already gone (404)".into()),
        Err(error) if error.is_unreachable() => return Err(error.into()),
        Err(error) => {
            warn!(tag = %candidate.reference, %error, "untag failed");
            skipped_images.insert(candidate.image_id.clone());
            outcome.failed.push(TagProblem {
                reference: candidate.reference.clone(),
                why: error.to_string(),
            });
        }
    }
    Ok(())
}

async fn build_cache_tier<E: Engine>(
    engine: &E,
    context: &Context<'_>,
) -> anyhow::Result<TierOutcome> {
    let settings = &context.tiers.build_cache;
    let threshold = context.policy.gates.disk.threshold_percent;
    let mut outcome = TierOutcome::new(TierName::BuildCache, TierStatus::Ran);
    match measure(context.disk_paths).map(|usages| fullest_of(&usages, threshold)) {
        Ok(usage) if usage.percent() < threshold => {
            outcome.disk_percent_before = Some(usage.percent());
            outcome.status = TierStatus::NotNeeded;
            outcome.reason = Some(format!(
                "the fullest disk is {} % full, below the disk threshold {threshold} %",
                usage.percent()
            ));
            return Ok(outcome);
        }
        Ok(usage) => outcome.disk_percent_before = Some(usage.percent()),
        Err(error) => {
            outcome.status = TierStatus::Skipped;
            outcome.reason = Some(format!("the disk could not be measured: {error:#}"));
            return Ok(outcome);
        }
    }
    match engine
        .reclaim_build_cache(settings.keep_for, settings.keep_storage)
        .await
    {
        Ok(BuildCacheOutcome::Reclaimed {
            records,
            reclaimed_bytes,
        }) => {
            outcome.candidates = records;
            outcome.removed = records;
            outcome.reclaimed_bytes = reclaimed_bytes;
        }
        Ok(BuildCacheOutcome::Unsupported(why)) => {
            outcome.status = TierStatus::Unsupported;
            outcome.reason = Some(format!("{why}; nothing was removed"));
        }
        Err(error) if error.is_unreachable() => return Err(error.into()),
        Err(error) => {
            outcome.status = TierStatus::Skipped;
            outcome.reason = Some(format!("the build-cache API failed: {error}"));
        }
    }
    outcome.disk_percent_after = measure(context.disk_paths)
        .ok()
        .map(|usages| fullest_of(&usages, threshold).percent());
    Ok(outcome)
}
