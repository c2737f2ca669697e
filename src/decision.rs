//! Pure decisions shared by the shell and the report, made once: which command mode runs
//! ([`Mode`]), what a run does with its verdicts and plan ([`Action`]), why a wait for gates
//! ended ([`WaitEnd`]), and which gates a re-check during deletion still consults. No engine, no
//! filesystem, no clock.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gates::{self, GateName, GateVerdict};
use crate::plan::Plan;

/// The command that gathers and decides: `run` acts (unless `--dry-run`), `plan` never does
/// and shows its full reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Run,
    Plan,
}

/// What a run does once its gates are evaluated and its plan is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A gate is closed: nothing is deleted.
    Skip,
    /// Every gate is open, but the plan is empty.
    NothingToDo,
    /// Every gate is open and there are candidates, but this is a dry run.
    DryRun,
    /// Delete the plan's candidates.
    Execute,
}

impl Action {
    /// The one rule: act only when every gate is open, there is something to remove, and the
    /// run may delete.
    pub fn decide(dry_run: bool, verdicts: &[GateVerdict], plan: &Plan) -> Self {
        if !gates::all_open(verdicts) {
            Self::Skip
        } else if plan.candidates.is_empty() {
            Self::NothingToDo
        } else if dry_run {
            Self::DryRun
        } else {
            Self::Execute
        }
    }
}

/// Why a `--wait-for-gates` wait ended; reported as `wait.ended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitEnd {
    /// Every gate opened.
    GatesOpen,
    /// No disk pressure: there is nothing to wait for.
    DiskGateClosed,
    /// The wait's time ran out with a gate still closed.
    Timeout,
    /// SIGTERM or SIGINT arrived during the wait.
    Terminated,
}

impl WaitEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GatesOpen => "gates_open",
            Self::DiskGateClosed => "disk_gate_closed",
            Self::Timeout => "timeout",
            Self::Terminated => "terminated",
        }
    }

    /// Decides whether a wait ends after one evaluation; `None` means wait on.
    pub fn after_evaluation(verdicts: &[GateVerdict], time_left: bool) -> Option<Self> {
        let disk_open = verdicts
            .iter()
            .any(|verdict| verdict.name == GateName::Disk && verdict.open);
        if gates::all_open(verdicts) {
            Some(Self::GatesOpen)
        } else if !disk_open {
            Some(Self::DiskGateClosed)
        } else if !time_left {
            Some(Self::Timeout)
        } else {
            None
        }
    }
}

/// When a re-check of the gates happens during execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// Right before the first deletion: every gate.
    BeforeStart,
    /// While deleting: the deploy-safety gates only.
    MidRun,
}

impl Recheck {
    /// Whether a gate's verdict counts at this re-check. Mid-run the run's own deletions lower
    /// disk usage, so the disk gate closing then is the goal, not a reason to stop.
    pub fn consults(self, gate: GateName) -> bool {
        !(self == Self::MidRun && gate == GateName::Disk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::Evidence;
    use crate::plan::Candidate;

    fn verdicts(closed: &[GateName]) -> Vec<GateVerdict> {
        GateName::ALL
            .iter()
            .map(|name| GateVerdict {
                name: *name,
                open: !closed.contains(name),
                detail: String::new(),
                evidence: Evidence::None {},
            })
            .collect()
    }

    fn plan(candidates: usize) -> Plan {
        Plan {
            candidates: (0..candidates)
                .map(|n| Candidate {
                    id: format!("sha256:{n:064x}"),
                    size_bytes: 1,
                    created: chrono::DateTime::UNIX_EPOCH,
                    reason: String::new(),
                    wave: 0,
                })
                .collect(),
            ..Plan::default()
        }
    }

    #[test]
    fn action_table() {
        use GateName::{Disk, Quiet};
        let table: [(bool, &[GateName], usize, Action); 8] = [
            (false, &[], 2, Action::Execute),
            (false, &[], 0, Action::NothingToDo),
            (true, &[], 2, Action::DryRun),
            (true, &[], 0, Action::NothingToDo),
            (false, &[Disk], 2, Action::Skip),
            (false, &[Quiet], 0, Action::Skip),
            (true, &[Quiet], 2, Action::Skip),
            (false, &[Disk, Quiet], 2, Action::Skip),
        ];
        for (dry_run, closed, candidates, expected) in table {
            assert_eq!(
                Action::decide(dry_run, &verdicts(closed), &plan(candidates)),
                expected,
                "dry_run={dry_run} closed={closed:?} candidates={candidates}"
            );
        }
    }

    #[test]
    fn wait_end_table() {
        use GateName::{Disk, Swarm, Workload};
        let table: [(&[GateName], bool, Option<WaitEnd>); 6] = [
            (&[], true, Some(WaitEnd::GatesOpen)),
            (&[], false, Some(WaitEnd::GatesOpen)),
            (&[Disk], true, Some(WaitEnd::DiskGateClosed)),
            (&[Disk, Swarm], true, Some(WaitEnd::DiskGateClosed)),
            (&[Workload], true, None),
            (&[Workload, Swarm], false, Some(WaitEnd::Timeout)),
        ];
        for (closed, time_left, expected) in table {
            assert_eq!(
                WaitEnd::after_evaluation(&verdicts(closed), time_left),
                expected,
                "closed={closed:?} time_left={time_left}"
            );
        }
    }

    #[test]
    fn wait_end_serializes_as_its_name() {
        for end in [
            WaitEnd::GatesOpen,
            WaitEnd::DiskGateClosed,
            WaitEnd::Timeout,
            WaitEnd::Terminated,
        ] {
            assert_eq!(
                serde_json::to_value(end).unwrap(),
                serde_json::Value::from(end.as_str())
            );
        }
    }

    #[test]
    fn only_the_disk_gate_is_ignored_and_only_mid_run() {
        for gate in GateName::ALL {
            assert!(Recheck::BeforeStart.consults(gate));
            assert_eq!(Recheck::MidRun.consults(gate), gate != GateName::Disk);
        }
    }
}
