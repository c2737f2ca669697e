//! The report as `node_exporter` textfile metrics (also served by `watch --metrics-listen`).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{Decision, Report};
use crate::exit::Outcome;
use crate::gates::GateName;

impl Report {
    /// `node_exporter` textfile format.
    pub fn to_metrics(&self, finished_at: DateTime<Utc>) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, help: &str, kind: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        // A run stopped by a signal did not finish its job: not a success, though nothing failed.
        let success = self.outcome() == Outcome::Success && self.decision != Decision::Interrupted;
        let plain = |value: String| vec![(String::new(), value)];
        metric(
            "pruneguard_last_run_timestamp_seconds",
            "Unix time the last pruneguard run finished.",
            "gauge",
            &plain(finished_at.timestamp().to_string()),
        );
        metric(
            "pruneguard_last_run_success",
            "1 if the last run finished (not interrupted) without a failed deletion or runtime error, else 0.",
            "gauge",
            &plain(u8::from(success).to_string()),
        );
        let gates: Vec<(String, String)> = GateName::ALL
            .iter()
            .filter_map(|name| {
                self.gate_open(*name).map(|open| {
                    (
                        format!("{{gate=\"{}\"}}", name.as_str()),
                        u8::from(open).to_string(),
                    )
                })
            })
            .collect();
        metric(
            "pruneguard_gate_open",
            "1 if the gate was open in the last run, 0 if closed.",
            "gauge",
            &gates,
        );
        metric(
            "pruneguard_images_removed",
            "Images removed by the last run.",
            "gauge",
            &plain(self.removed.len().to_string()),
        );
        metric(
            "pruneguard_bytes_reclaimed",
            "Filesystem bytes freed by the last run.",
            "gauge",
            &plain(self.reclaimed_bytes.to_string()),
        );
        metric(
            "pruneguard_tags_lost",
            "Tags the last run's deletions untagged (images tagged after the last look); pull or rebuild them.",
            "gauge",
            &plain(
                self.tags_lost
                    .iter()
                    .map(|lost| lost.tags.len())
                    .sum::<usize>()
                    .to_string(),
            ),
        );
        metric(
            "pruneguard_candidates",
            "Images the last run planned to remove.",
            "gauge",
            &plain(self.candidates.len().to_string()),
        );
        self.disk_metrics(&mut metric);
        self.tier_metrics(&mut metric);
        #[expect(clippy::cast_precision_loss)] // milliseconds to seconds for a gauge
        let seconds = self.duration_ms as f64 / 1000.0;
        metric(
            "pruneguard_run_duration_seconds",
            "Wall time of the last run.",
            "gauge",
            &plain(format!("{seconds:.3}")),
        );
        metric(
            "pruneguard_build_info",
            "Always 1; the version of pruneguard that wrote these metrics is its label.",
            "gauge",
            &[(
                format!("{{version=\"{}\"}}", self.pruneguard_version),
                "1".to_string(),
            )],
        );
        out
    }

    /// The disk's gauges, each absent when the report does not know its value.
    pub(super) fn tier_metrics(
        &self,
        metric: &mut impl FnMut(&str, &str, &str, &[(String, String)]),
    ) {
        if self.tiers.is_empty() {
            return;
        }
        let (removed, reclaimed) = crate::tiers::report::metric_samples(&self.tiers);
        metric(
            "pruneguard_tier_removed",
            "What each tier of the last run removed: images (dangling), tags (unused_tagged), cache records (build_cache).",
            "gauge",
            &removed,
        );
        metric(
            "pruneguard_tier_reclaimed_bytes",
            "Bytes each tier of the last run freed (filesystem for the image tiers, the engine's count for build_cache).",
            "gauge",
            &reclaimed,
        );
    }

    pub(super) fn disk_metrics(
        &self,
        metric: &mut impl FnMut(&str, &str, &str, &[(String, String)]),
    ) {
        if let Some(disk) = self.disk_after.as_ref().or(self.disk.as_ref()) {
            metric(
                "pruneguard_disk_used_ratio",
                "Used fraction of the data root's filesystem after the last run (df basis).",
                "gauge",
                &[(String::new(), format!("{:.6}", disk.used_ratio()))],
            );
        }
        // One sample per filesystem the disk gate measured, labelled by its path.
        if !self.filesystems.is_empty() {
            let samples: Vec<(String, String)> = self
                .filesystems
                .iter()
                .map(|fs| {
                    let last = fs.last();
                    (
                        format!(
                            "{{path=\"{}\"}}",
                            label_value(&last.path.display().to_string())
                        ),
                        format!("{:.6}", last.used_ratio()),
                    )
                })
                .collect();
            metric(
                "pruneguard_disk_path_used_ratio",
                "Used fraction of each filesystem the disk gate measured after the last run (df basis), by path.",
                "gauge",
                &samples,
            );
        }
        // Known only after a real run that attempted every candidate (or had none): absent
        // otherwise, so that an alert on it never fires on a run that proved nothing.
        if let Some(still_full) = self.disk_still_full {
            metric(
                "pruneguard_disk_still_full",
                "1 if the disk was still at or above the disk gate's threshold after a run that attempted every candidate: dangling images are not enough.",
                "gauge",
                &[(String::new(), u8::from(still_full).to_string())],
            );
        }
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
