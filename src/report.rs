//! Everything pruneguard tells the outside world about a run: the [`Report`] (text for people,
//! versioned JSON for machines) and the `node_exporter` textfile metrics. The report is the one
//! source of the run's [`Outcome`] (exit status and the metrics' success). Writing files is
//! `state`'s job.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::decision::{Action, WaitEnd};
use crate::exit::Outcome;

use crate::execute::{Execution, Failed, Removed, Skipped, Stop, TagsLost};
use crate::gates::{GateName, GateVerdict};
use crate::human::{human_bytes, human_seconds, short_id};
use crate::model::{DiskUsage, ImageStore};
use crate::plan::{Candidate, Kept, KeptCounts, KeptReason, Plan, UnresolvedContainer};

/// Bumped only when a field is removed or changes meaning; new fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Every planned image was attempted (409/404 skips allowed).
    Pruned,
    /// Gates open, but there was nothing to remove.
    NothingToDo,
    /// A gate was closed, so nothing was deleted.
    Skipped,
    /// A dry run with every gate open: the candidates are what a run would remove.
    DryRun,
    /// The run stopped part way (a gate closed mid-run, the daemon went away) or some
    /// deletions failed.
    Partial,
    /// SIGTERM or SIGINT stopped the run: no deletion started after it, the ones in flight
    /// were seen through and are recorded.
    Interrupted,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pruned => "pruned",
            Self::NothingToDo => "nothing_to_do",
            Self::Skipped => "skipped",
            Self::DryRun => "dry_run",
            Self::Partial => "partial",
            Self::Interrupted => "interrupted",
        }
    }
}

/// How long a run waited for closed gates (`--wait-for-gates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct WaitSummary {
    pub waited_ms: u64,
    pub evaluations: u32,
    /// Gates that were closed at some point of the wait.
    pub held_by: Vec<String>,
    pub ended: WaitEnd,
}

/// The report of one `run` or `plan`. Field names are a public contract
/// (docs/report-schema.md, pinned by a snapshot test).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    pub schema_version: u32,
    pub pruneguard_version: &'static str,
    pub started_at: DateTime<Utc>,
    pub dry_run: bool,
    pub decision: Decision,
    /// One sentence: what happened and why.
    pub summary: String,
    pub gates: Vec<GateVerdict>,
    pub candidates: Vec<Candidate>,
    pub removed: Vec<Removed>,
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Failed>,
    /// Removed images that Docker untagged on the way (tagged after the last look): these
    /// tags are gone and must be pulled or built again. Each image is also in `removed`.
    pub tags_lost: Vec<TagsLost>,
    /// Deletes whose answer was lost and whose result could not be checked.
    pub outcome_unknown: Vec<Failed>,
    pub not_attempted: Vec<String>,
    pub kept: KeptCounts,
    /// Docker's bytes of the kept images, by reason (sizes overlap where images share layers,
    /// so these are upper bounds of what each group holds).
    pub kept_bytes: KeptCounts,
    /// Containers whose image could not be resolved: while there is one, nothing is planned.
    pub unresolved_containers: Vec<UnresolvedContainer>,
    /// Filesystem bytes freed, measured before and after on each filesystem the disk gate
    /// measures, summed over them (see `filesystems`).
    pub reclaimed_bytes: u64,
    /// Sum of Docker's size of the removed images (overlaps where layers are shared).
    pub removed_image_bytes: u64,
    /// The disk gate's first filesystem (the data root's unless configured), before the run.
    pub disk: Option<DiskUsage>,
    pub disk_after: Option<DiskUsage>,
    /// Every filesystem the disk gate measured (`disk` first), before and after, with the
    /// bytes freed on each.
    pub filesystems: Vec<FilesystemReport>,
    /// The engine's image store, when known. Image sizes in this report are the engine's own
    /// figures: on the containerd store they count the stored content plus the unpacked
    /// snapshot (about twice the classic store's figure).
    pub image_store: Option<ImageStore>,
    /// After a run that attempted every candidate (or had none): is the disk still at or above
    /// the threshold, i.e. are removable dangling images not enough? `null` otherwise.
    pub disk_still_full: Option<bool>,
    pub wait: Option<WaitSummary>,
    pub stopped: Option<Stop>,
    /// One entry per tier (issue 13): `dangling` (what the fields above describe), then each
    /// enabled opt-in tier, with its own candidates, removed count and bytes. Absent from a
    /// report made before anything was gathered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<crate::tiers::TierOutcome>,
    /// Problems writing the state or metrics file; the decision stands.
    pub warnings: Vec<String>,
    pub duration_ms: u64,
    /// Dry runs (`plan`) only, absent otherwise: every kept image with its reason, when it
    /// becomes old enough (`eligible_at`) and the services that name it (`service_ref`). A
    /// real run's report stays small on a host with thousands of images.
    #[serde(rename = "kept_images", skip_serializing_if = "Option::is_none")]
    pub kept_images_listed: Option<Vec<Kept>>,
    #[serde(skip)]
    pub kept_images: Vec<Kept>,
}

/// One filesystem the disk gate measured, before and after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FilesystemReport {
    pub before: DiskUsage,
    /// Measured again after deleting; `null` when nothing ran.
    pub after: Option<DiskUsage>,
    pub reclaimed_bytes: u64,
}

impl FilesystemReport {
    fn new(before: DiskUsage, after: Option<DiskUsage>) -> Self {
        let reclaimed_bytes = after.as_ref().map_or(0, |after| {
            before.used_bytes.saturating_sub(after.used_bytes)
        });
        Self {
            before,
            after,
            reclaimed_bytes,
        }
    }

    /// The latest measurement.
    pub fn last(&self) -> &DiskUsage {
        self.after.as_ref().unwrap_or(&self.before)
    }
}

/// The JSON Schema (draft 2020-12) of the report as `--output json` writes it, derived from
/// the report's types: the committed `docs/report.schema.json` is this text, and a test fails
/// when the two differ.
pub fn json_schema() -> String {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        // The report is only ever written, so describe what serialising produces.
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<Report>();
    // A schema is a JSON object of strings, numbers and booleans: serialising cannot fail.
    let text = serde_json::to_string_pretty(&schema)
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
    format!("{text}\n")
}

/// Everything a report is made from.
pub struct ReportInput<'a> {
    pub started_at: DateTime<Utc>,
    pub dry_run: bool,
    /// What the shell decided to do with these verdicts and this plan ([`Action::decide`]).
    pub action: Action,
    /// The verdicts the action was decided on; a stop at a re-check overrides them.
    pub gates: Vec<GateVerdict>,
    pub plan: Plan,
    pub execution: Option<Execution>,
    pub disk: Option<DiskUsage>,
    pub disk_after: Option<DiskUsage>,
    /// The other filesystems the disk gate measured, before and after (after: when deleting
    /// ran).
    pub more_disks: Vec<(DiskUsage, Option<DiskUsage>)>,
    pub image_store: Option<ImageStore>,
    pub wait: Option<WaitSummary>,
    pub duration_ms: u64,
    pub min_age: &'a str,
}

impl Report {
    pub fn new(input: ReportInput<'_>) -> Self {
        let ReportInput {
            started_at,
            dry_run,
            action,
            gates,
            plan,
            execution,
            disk,
            disk_after,
            more_disks,
            image_store,
            wait,
            duration_ms,
            min_age,
        } = input;
        let execution = execution.unwrap_or_default();
        let decision = decide(action, &execution);
        let gates = latest_verdicts(gates, execution.stopped.as_ref());
        let filesystems: Vec<FilesystemReport> = disk
            .iter()
            .map(|before| FilesystemReport::new(before.clone(), disk_after.clone()))
            .chain(
                more_disks
                    .into_iter()
                    .map(|(before, after)| FilesystemReport::new(before, after)),
            )
            .collect();
        let reclaimed_bytes = filesystems.iter().map(|fs| fs.reclaimed_bytes).sum();
        let mut kept_bytes = KeptCounts::default();
        for reason in KeptReason::ALL {
            kept_bytes.add(reason, plan.kept_bytes(reason));
        }
        let mut report = Self {
            schema_version: SCHEMA_VERSION,
            pruneguard_version: env!("CARGO_PKG_VERSION"),
            started_at,
            dry_run,
            decision,
            summary: String::new(),
            gates,
            removed_image_bytes: execution
                .removed
                .iter()
                .map(|removed| removed.size_bytes)
                .sum(),
            candidates: plan.candidates,
            removed: execution.removed,
            skipped: execution.skipped,
            failed: execution.failed,
            tags_lost: execution.tags_lost,
            outcome_unknown: execution.outcome_unknown,
            not_attempted: execution.not_attempted,
            kept: plan.kept,
            kept_bytes,
            unresolved_containers: plan.unresolved_containers,
            reclaimed_bytes,
            disk,
            disk_after,
            filesystems,
            image_store,
            disk_still_full: None,
            wait,
            stopped: execution.stopped,
            tiers: Vec::new(),
            warnings: Vec::new(),
            duration_ms,
            kept_images_listed: dry_run.then(|| plan.kept_images.clone()),
            kept_images: plan.kept_images,
        };
        report.disk_still_full = report.still_full();
        report.summary = report.summarise(min_age);
        report
    }

    /// Adds the `tiers` section: the dangling tier from this report's own fields (with the
    /// bytes the filesystem gained over it, `dangling_reclaimed_bytes`), then `opt_in`; the
    /// summary gains a sentence per opt-in tier.
    pub fn set_tiers(
        &mut self,
        dangling_reclaimed_bytes: u64,
        opt_in: Vec<crate::tiers::TierOutcome>,
    ) {
        use crate::tiers::{TierName, TierOutcome, TierStatus};
        let status = match self.decision {
            _ if self.dry_run => TierStatus::Planned,
            Decision::Skipped => TierStatus::Skipped,
            _ => TierStatus::Ran,
        };
        let mut dangling = TierOutcome::new(TierName::Dangling, status);
        dangling.candidates = u64::try_from(self.candidates.len()).unwrap_or(u64::MAX);
        dangling.removed = u64::try_from(self.removed.len()).unwrap_or(u64::MAX);
        dangling.reclaimed_bytes = dangling_reclaimed_bytes;
        if status == TierStatus::Skipped {
            dangling.reason = Some("a gate is closed".into());
        }
        dangling.disk_percent_before = self.disk.as_ref().map(|disk| disk.used_percent);
        self.summary
            .push_str(&crate::tiers::report::summary(&opt_in));
        self.tiers = std::iter::once(dangling).chain(opt_in).collect();
    }

    /// Only a real run that attempted every candidate (or had none) can show that dangling
    /// images are not enough; one that stopped early has not removed them all. With nothing to
    /// delete, the disk was measured only before the run.
    fn still_full(&self) -> Option<bool> {
        if self.dry_run || !matches!(self.decision, Decision::Pruned | Decision::NothingToDo) {
            return None;
        }
        let threshold = self.disk_threshold().filter(|threshold| *threshold > 0)?;
        if self.filesystems.is_empty() {
            return None;
        }
        Some(
            self.filesystems
                .iter()
                .any(|fs| fs.last().used_percent >= threshold),
        )
    }

    /// The first filesystem still at or above the disk gate's threshold after the run.
    fn still_full_filesystem(&self) -> Option<&DiskUsage> {
        let threshold = self.disk_threshold()?;
        self.filesystems
            .iter()
            .map(FilesystemReport::last)
            .find(|last| last.used_percent >= threshold)
    }

    fn summarise(&self, min_age: &str) -> String {
        let mut summary = self.decision_summary(min_age);
        summary.push_str(&self.attention());
        if self.disk_still_full == Some(true)
            && let Some(last) = self.still_full_filesystem()
        {
            let which = if self.filesystems.len() > 1 {
                last.path.display().to_string()
            } else {
                "The disk".to_string()
            };
            summary.push_str(&format!(
                " {which} is still {} % full, at or above the {} % threshold: dangling images are not enough.",
                last.used_percent,
                self.disk_threshold().unwrap_or(0)
            ));
        }
        summary
    }

    fn decision_summary(&self, min_age: &str) -> String {
        let closed = crate::gates::closed_names(&self.gates);
        let closed_text = match closed.as_slice() {
            [one] => format!("the {one} gate is closed"),
            [init @ .., last] => format!("the {} and {last} gates are closed", init.join(", ")),
            [] => "a gate closed".to_string(),
        };
        match self.decision {
            Decision::Skipped if self.dry_run => format!(
                "Dry run: a run now would delete nothing because {closed_text}; {} image(s) are candidates for when every gate is open.",
                self.candidates.len()
            ),
            Decision::Skipped => format!("Skipped: nothing deleted because {closed_text}."),
            Decision::NothingToDo => format!(
                "Nothing to do: every gate is open but no dangling image is older than {min_age} and unused."
            ),
            Decision::DryRun => format!(
                "Dry run: every gate is open; a run would remove {} image(s), {}.",
                self.candidates.len(),
                human_bytes(
                    self.candidates
                        .iter()
                        .map(|candidate| candidate.size_bytes)
                        .sum()
                )
            ),
            Decision::Pruned => format!(
                "Pruned {} image(s); {} freed on the filesystem.",
                self.removed.len(),
                human_bytes(self.reclaimed_bytes)
            ),
            Decision::Partial => {
                let why = match &self.stopped {
                    Some(Stop::GateClosed { gates }) => format!(
                        "stopped because a gate closed mid-run: {}",
                        gates
                            .iter()
                            .map(|gate| format!(
                                "{} ({})",
                                gate.name.as_str(),
                                gate.detail.trim_end_matches('.')
                            ))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    Some(Stop::DaemonLost { error }) => {
                        format!(
                            "stopped because the daemon stopped answering: {}",
                            error.trim_end_matches('.')
                        )
                    }
                    Some(Stop::DaemonUnresponsive { error }) => {
                        format!(
                            "stopped because deletes keep failing: {}",
                            error.trim_end_matches('.')
                        )
                    }
                    Some(Stop::Interrupted { .. }) | None => format!(
                        "{} deletion(s) failed",
                        self.failed.len() + self.outcome_unknown.len()
                    ),
                };
                format!(
                    "Partial: removed {} of {} planned image(s), {} not attempted; {why}.",
                    self.removed.len(),
                    self.candidates.len(),
                    self.not_attempted.len()
                )
            }
            Decision::Interrupted => {
                let signal = match &self.stopped {
                    Some(Stop::Interrupted { signal }) => signal.as_str(),
                    _ => "a signal",
                };
                format!(
                    "Interrupted by {signal}: removed {} of {} planned image(s), {} not attempted; no deletion was started after the signal.",
                    self.removed.len(),
                    self.candidates.len(),
                    self.not_attempted.len()
                )
            }
        }
    }

    /// Sentences that follow the decision's: tags lost and deletes of unknown outcome are
    /// things an operator must act on.
    fn attention(&self) -> String {
        let mut text = String::new();
        if !self.unresolved_containers.is_empty() {
            let containers: Vec<String> = self
                .unresolved_containers
                .iter()
                .map(|container| format!("{} ({:?})", container.name, container.image))
                .collect();
            text.push_str(&format!(
                " No image was planned: the image of container(s) {} matches no image ID, tag or ID prefix, so no image can be shown unused; inspect or remove those containers.",
                containers.join(", ")
            ));
        }
        if !self.tags_lost.is_empty() {
            let tags: Vec<&str> = self
                .tags_lost
                .iter()
                .flat_map(|lost| lost.tags.iter().map(String::as_str))
                .collect();
            text.push_str(&format!(
                " {} image(s) were tagged after the last look and lost these tags when deleted; pull or rebuild them: {}.",
                self.tags_lost.len(),
                tags.join(", ")
            ));
        }
        if !self.outcome_unknown.is_empty() {
            text.push_str(&format!(
                " {} delete(s) have an unknown outcome (the answer was lost and the image could not be looked up); `docker image inspect` them.",
                self.outcome_unknown.len()
            ));
        }
        text
    }

    /// The run hit a runtime failure (exit status 1): the daemon went away, or it answers
    /// pings but not deletes.
    pub fn runtime_failed(&self) -> bool {
        matches!(
            self.stopped,
            Some(Stop::DaemonLost { .. } | Stop::DaemonUnresponsive { .. })
        )
    }

    /// How the run finished: the one source of the exit status and of the metrics' success.
    /// Losing the daemon outranks failed deletions (some of which it caused); a lost tag or a
    /// delete of unknown outcome is a deletion that did not go as planned.
    pub fn outcome(&self) -> Outcome {
        if self.runtime_failed() {
            Outcome::RuntimeFailure
        } else if !self.failed.is_empty()
            || !self.tags_lost.is_empty()
            || !self.outcome_unknown.is_empty()
        {
            Outcome::DeletionsFailed
        } else {
            Outcome::Success
        }
    }

    pub fn gate_open(&self, name: GateName) -> Option<bool> {
        self.gates
            .iter()
            .find(|gate| gate.name == name)
            .map(|gate| gate.open)
    }

    /// The JSON report and a newline, written as it is serialised (a plan of thousands of
    /// candidates would otherwise be held twice in memory as text).
    pub fn write_json(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self).map_err(std::io::Error::from)?;
        out.write_all(b"\n")
    }

    pub fn to_json(&self) -> String {
        // The report holds only strings, numbers, booleans and dates: serialising cannot fail.
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    }

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

    fn text_gates(&self, out: &mut String) {
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

    fn text_wait(&self, out: &mut String) {
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

    fn text_candidates(&self, out: &mut String) {
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

    fn text_kept(&self, out: &mut String, verbose: bool) {
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

    fn text_execution(&self, out: &mut String) {
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

    fn text_disk(&self, out: &mut String) {
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

    fn disk_threshold(&self) -> Option<u8> {
        self.gates.iter().find_map(|gate| match &gate.evidence {
            crate::gates::Evidence::Disk {
                threshold_percent, ..
            } => Some(*threshold_percent),
            _ => None,
        })
    }

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
    fn tier_metrics(&self, metric: &mut impl FnMut(&str, &str, &str, &[(String, String)])) {
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

    fn disk_metrics(&self, metric: &mut impl FnMut(&str, &str, &str, &[(String, String)])) {
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

/// The decision follows the action; only an execution can turn it into a partial run, or back
/// into a skip when a gate closed before the first deletion.
fn decide(action: Action, execution: &Execution) -> Decision {
    if matches!(execution.stopped, Some(Stop::Interrupted { .. })) {
        return Decision::Interrupted;
    }
    match action {
        Action::Skip => return Decision::Skipped,
        Action::NothingToDo => return Decision::NothingToDo,
        Action::DryRun => return Decision::DryRun,
        Action::Execute => {}
    }
    let nothing_attempted =
        execution.removed.is_empty() && execution.skipped.is_empty() && execution.failed.is_empty();
    match &execution.stopped {
        Some(Stop::GateClosed { .. }) if nothing_attempted => Decision::Skipped,
        Some(_) => Decision::Partial,
        None if !execution.failed.is_empty() || !execution.outcome_unknown.is_empty() => {
            Decision::Partial
        }
        None => Decision::Pruned,
    }
}

/// The verdicts a report shows: those the run started with, with each gate that closed at a
/// re-check replaced by its closing verdict, so that the summary, `gates`, the metrics and
/// `status` all say what stopped the run.
fn latest_verdicts(mut gates: Vec<GateVerdict>, stopped: Option<&Stop>) -> Vec<GateVerdict> {
    if let Some(Stop::GateClosed { gates: closed }) = stopped {
        for verdict in closed {
            match gates.iter_mut().find(|gate| gate.name == verdict.name) {
                Some(gate) => *gate = verdict.clone(),
                None => gates.push(verdict.clone()),
            }
        }
    }
    gates
}
