//! The report as text for people: the gates, the wait, the candidates, what was kept and why,
//! what the run did, and the disk.

use std::fmt::Write as _;

use chrono::SecondsFormat;

use super::{Decision, Report};
use crate::human::{human_bytes, human_seconds, short_id};
use crate::model::ImageStore;
use crate::plan::KeptReason;

impl Report {
    /// The human summary. `verbose` adds every kept image (for `plan`).
    pub fn to_text(&self, verbose: bool) -> String {
        let mut out = String::new();
        self.text_gates(&mut out);
        self.text_wait(&mut out);
        self.text_candidates(&mut out);
        self.text_kept(&mut out, verbose);
        self.text_execution(&mut out);
        self.text_disk(&mut out);
        crate::tiers::report::text(&self.tiers, &mut out);
        for warning in &self.warnings {
            let _ = writeln!(out, "\nWarning: {warning}");
        }
        out
    }

    pub(super) fn text_gates(&self, out: &mut String) {
        let mode = if self.dry_run { "dry run" } else { "run" };
        let _ = writeln!(
            out,
            "pruneguard {} ({mode}): {}",
            self.pruneguard_version,
            self.decision.as_str()
        );
        let _ = writeln!(out, "{}", self.summary);
        let _ = writeln!(out, "\nGates:");
        for gate in &self.gates {
            let state = if gate.open { "open  " } else { "CLOSED" };
            let _ = writeln!(out, "  {state} {:<9} {}", gate.name.as_str(), gate.detail);
        }
    }

    pub(super) fn text_wait(&self, out: &mut String) {
        let Some(wait) = &self.wait else { return };
        let _ = writeln!(
            out,
            "\nWaited {} over {} evaluation(s) (held by: {}); ended: {}.",
            human_seconds(i64::try_from(wait.waited_ms / 1000).unwrap_or(i64::MAX)),
            wait.evaluations,
            if wait.held_by.is_empty() {
                "nothing".to_string()
            } else {
                wait.held_by.join(", ")
            },
            wait.ended.as_str()
        );
    }

    pub(super) fn text_candidates(&self, out: &mut String) {
        let total: u64 = self
            .candidates
            .iter()
            .map(|candidate| candidate.size_bytes)
            .sum();
        let basis = match self.image_store {
            Some(ImageStore::Containerd) => {
                " (containerd image store: stored content plus the unpacked snapshot)"
            }
            _ => "",
        };
        let _ = writeln!(
            out,
            "\nCandidates: {} image(s), {} as Docker counts them{basis}",
            self.candidates.len(),
            human_bytes(total)
        );
        for candidate in &self.candidates {
            let _ = writeln!(
                out,
                "  {}  {:>10}  {}  {}",
                short_id(&candidate.id),
                human_bytes(candidate.size_bytes),
                candidate.created.to_rfc3339_opts(SecondsFormat::Secs, true),
                candidate.reason
            );
        }
    }

    pub(super) fn text_kept(&self, out: &mut String, verbose: bool) {
        let kept = &self.kept;
        let _ = writeln!(
            out,
            "\nKept: {} tagged ({}), {} in use ({}), {} too young ({}), {} with children ({})",
            kept.tagged,
            human_bytes(self.kept_bytes.tagged),
            kept.in_use,
            human_bytes(self.kept_bytes.in_use),
            kept.too_young,
            human_bytes(self.kept_bytes.too_young),
            kept.has_children,
            human_bytes(self.kept_bytes.has_children)
        );
        if kept.service_ref > 0 {
            let _ = writeln!(
                out,
                "Kept for swarm services: {} referenced by a service's current or previous spec ({})",
                kept.service_ref,
                human_bytes(self.kept_bytes.service_ref)
            );
        }
        // Kept because the daemon's data was odd: shown only when there are any.
        let doubtful: Vec<String> = [
            KeptReason::MalformedId,
            KeptReason::Duplicated,
            KeptReason::UnknownParent,
            KeptReason::UnresolvedContainer,
        ]
        .into_iter()
        .filter(|reason| kept.get(*reason) > 0)
        .map(|reason| {
            format!(
                "{} {} ({})",
                kept.get(reason),
                reason.as_str().replace('_', " "),
                human_bytes(self.kept_bytes.get(reason))
            )
        })
        .collect();
        if !doubtful.is_empty() {
            let _ = writeln!(out, "Kept in doubt: {}", doubtful.join(", "));
        }
        let under_unplanned = kept.get(KeptReason::ParentNotPlanned);
        if under_unplanned > 0 {
            let _ = writeln!(
                out,
                "Kept because the engine deletes untagged parents with their child (it ignores noprune): {under_unplanned} whose untagged parent stays ({})",
                human_bytes(self.kept_bytes.get(KeptReason::ParentNotPlanned))
            );
        }
        if verbose {
            for image in &self.kept_images {
                let mut why = image.reason.as_str().to_string();
                if let Some(at) = image.eligible_at {
                    let _ = write!(
                        why,
                        ", eligible at {}",
                        at.to_rfc3339_opts(SecondsFormat::Secs, true)
                    );
                } else if image.reason == KeptReason::TooYoung && image.unused_since.is_none() {
                    why.push_str(
                        ", not yet seen untagged and unused: eligible min_age after it is",
                    );
                }
                if !image.services.is_empty() {
                    let _ = write!(why, " (service {})", image.services.join(", "));
                }
                let _ = writeln!(
                    out,
                    "  {}  {:>10}  {why}",
                    short_id(&image.id),
                    human_bytes(image.size_bytes),
                );
            }
        }
    }

    pub(super) fn text_execution(&self, out: &mut String) {
        if self.dry_run || self.candidates.is_empty() || self.decision == Decision::Skipped {
            return;
        }
        let _ = writeln!(
            out,
            "\nRemoved {} image(s); skipped {}; failed {}; not attempted {}.",
            self.removed.len(),
            self.skipped.len(),
            self.failed.len(),
            self.not_attempted.len()
        );
        for skipped in &self.skipped {
            let _ = writeln!(out, "  skipped {}: {}", short_id(&skipped.id), skipped.why);
        }
        for failed in &self.failed {
            let _ = writeln!(out, "  failed  {}: {}", short_id(&failed.id), failed.error);
        }
        for unknown in &self.outcome_unknown {
            let _ = writeln!(
                out,
                "  unknown {}: {}",
                short_id(&unknown.id),
                unknown.error
            );
        }
        for lost in &self.tags_lost {
            let _ = writeln!(
                out,
                "  removed {} but it lost tags (tagged after the last look): {}",
                short_id(&lost.id),
                lost.tags.join(", ")
            );
        }
    }

    pub(super) fn text_disk(&self, out: &mut String) {
        if self.disk_after.is_some() {
            let each: Vec<String> = self
                .filesystems
                .iter()
                .map(|fs| {
                    let last = fs.last();
                    format!("{} now {} % full", last.path.display(), last.used_percent)
                })
                .collect();
            let _ = writeln!(
                out,
                "\nDisk: {} ({} freed).",
                each.join(", "),
                human_bytes(self.reclaimed_bytes)
            );
        } else if self.decision == Decision::NothingToDo
            && !self.dry_run
            && let Some(disk) = &self.disk
        {
            // Nothing was deleted, so the disk was measured only before the run.
            let _ = writeln!(
                out,
                "\nDisk: {} is {} % full.",
                disk.path.display(),
                disk.used_percent
            );
        }
        if self.disk_still_full == Some(true)
            && let Some(threshold) = self.disk_threshold()
        {
            let _ = writeln!(
                out,
                "Still at or above the {threshold} % threshold: removable dangling images are not enough. Tagged images hold up to {}, in-use images up to {}; see docs/runbook.md, \"When the disk stays full\".",
                human_bytes(self.kept_bytes.tagged),
                human_bytes(self.kept_bytes.in_use)
            );
        }
    }

    pub(super) fn disk_threshold(&self) -> Option<u8> {
        self.gates.iter().find_map(|gate| match &gate.evidence {
            crate::gates::Evidence::Disk {
                threshold_percent, ..
            } => Some(*threshold_percent),
            _ => None,
        })
    }
}
