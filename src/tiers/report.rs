//! How the tiers appear in a report: the text summary's line per tier (and, for `plan`, every
//! candidate tag in order with its reason, last use and expected bytes), the metrics per tier,
//! and the sentence the run's summary gains.

use std::fmt::Write as _;

use chrono::SecondsFormat;

use crate::human::{human_bytes, short_id};

use super::{TierName, TierOutcome, TierStatus};

/// One line per tier, with the plan's candidates under `unused_tagged` in a dry run.
pub fn text(tiers: &[TierOutcome], out: &mut String) {
    if tiers.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nTiers:");
    for tier in tiers {
        let _ = writeln!(out, "  {}", line(tier));
        if tier.name == TierName::UnusedTagged {
            for candidate in &tier.planned {
                let _ = writeln!(
                    out,
                    "    {:<40} {}  {:>10}  last use {}  {}",
                    candidate.reference,
                    short_id(&candidate.image_id),
                    candidate
                        .expected_bytes
                        .map_or_else(|| "unknown".to_string(), human_bytes),
                    candidate
                        .last_used
                        .to_rfc3339_opts(SecondsFormat::Secs, true),
                    candidate.reason
                );
            }
            for problem in tier.skipped.iter().chain(&tier.failed) {
                let _ = writeln!(
                    out,
                    "    {} not removed: {}",
                    problem.reference, problem.why
                );
            }
        }
    }
}

/// `unused_tagged  ran: 12 of 14 tag(s) removed (5 image(s)), 1.2 GiB freed; 91 % -> 79 % (...)`.
pub fn line(tier: &TierOutcome) -> String {
    let what = match tier.name {
        TierName::Dangling => "image(s)",
        TierName::UnusedTagged => "tag(s)",
        TierName::BuildCache => "cache record(s)",
    };
    let mut text = format!("{:<14} {}", tier.name.as_str(), tier.status.as_str());
    match tier.status {
        TierStatus::Planned => {
            let _ = write!(text, ": {} candidate {what}", tier.candidates);
        }
        TierStatus::Ran => {
            let _ = write!(
                text,
                ": {} of {} {what} removed",
                tier.removed, tier.candidates
            );
            if tier.name == TierName::UnusedTagged {
                let _ = write!(text, " ({} image(s))", tier.removed_images);
            }
            let _ = write!(text, ", {} freed", human_bytes(tier.reclaimed_bytes));
        }
        TierStatus::NotNeeded | TierStatus::Skipped | TierStatus::Unsupported => {}
    }
    if let (Some(before), Some(after)) = (tier.disk_percent_before, tier.disk_percent_after) {
        let _ = write!(text, "; disk {before} % -> {after} %");
    }
    if let (Some(high), Some(low)) = (tier.high_percent, tier.low_percent) {
        let _ = write!(text, " (watermarks {high}/{low} %)");
    }
    if let Some(reason) = &tier.reason {
        let _ = write!(text, "; {reason}");
    }
    text
}

/// The sentence the run's summary gains for the opt-in tiers.
pub fn summary(tiers: &[TierOutcome]) -> String {
    let mut text = String::new();
    for tier in tiers.iter().filter(|tier| tier.name != TierName::Dangling) {
        let _ = write!(
            text,
            " Tier {}.",
            line(tier).split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    text
}

/// Metric samples: (labels, value).
pub type Samples = Vec<(String, String)>;

/// `(labels, removed, reclaimed bytes)` per tier, for `pruneguard_tier_removed` and
/// `pruneguard_tier_reclaimed_bytes`.
pub fn metric_samples(tiers: &[TierOutcome]) -> (Samples, Samples) {
    let labels = |tier: &TierOutcome| format!("{{tier=\"{}\"}}", tier.name.as_str());
    (
        tiers
            .iter()
            .map(|tier| (labels(tier), tier.removed.to_string()))
            .collect(),
        tiers
            .iter()
            .map(|tier| (labels(tier), tier.reclaimed_bytes.to_string()))
            .collect(),
    )
}
