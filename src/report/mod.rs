//! Everything pruneguard tells the outside world about a run: the [`Report`] (text for people,
//! versioned JSON for machines) and the `node_exporter` textfile metrics. The report is the one
//! source of the run's [`Outcome`] (exit status and the metrics' success). Writing files is
//! `state`'s job.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::decision::{Action, WaitEnd};
use crate::exit::Outcome;

use crate::execute::{Execution, Failed, Removed, Skipped, Stop, TagsLost};
use crate::gates::{GateName, GateVerdict};
use crate::human::human_bytes;
use crate::model::{DiskUsage, ImageStore};
use crate::plan::{Candidate, Kept, KeptCounts, KeptReason, Plan, UnresolvedContainer};

mod metrics;
mod text;

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
