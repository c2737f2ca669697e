//! The `policy` check: a summary of the effective policy, warning where a gate is defeated
//! (`threshold_percent` or `min_age` 0). It reads nothing from the host, so it has no probe:
//! its input is the resolved settings.

use std::fmt::Write as _;

use super::{Check, CheckName};
use crate::policy::Policy;

const NAME: CheckName = CheckName::Policy;

/// The `policy` check: a summary of the effective policy, warning where a gate is defeated.
pub fn check(policy: &Policy, config_valid: bool) -> Check {
    let gates = &policy.gates;
    let human = |duration| crate::human::format_duration(duration);
    let workload = &gates.workload;
    let selectors = workload.stacks.len()
        + workload.labels.len()
        + workload.containers.len()
        + workload.lock_files.len();
    let mut summary = format!(
        "min_age {}, disk threshold {} %",
        human(policy.min_age),
        gates.disk.threshold_percent
    );
    if let Some(inodes) = gates.disk.inode_threshold_percent {
        let _ = write!(summary, " (inodes {inodes} %)");
    }
    let _ = write!(
        summary,
        ", quiet period {}, {selectors} workload selector(s), swarm gate {}",
        if gates.quiet.period.is_zero() {
            "0s (disabled)".to_string()
        } else {
            human(gates.quiet.period)
        },
        if gates.swarm.enabled { "on" } else { "off" }
    );
    if !config_valid {
        summary.push_str(" (defaults and flags: the config file was not used)");
    }
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    if gates.disk.threshold_percent == 0 {
        problems.push("threshold_percent is 0, so the disk gate is always open");
        fixes.push("set `gates.disk.threshold_percent` (--disk-threshold), e.g. 80");
    }
    if policy.min_age.is_zero() {
        problems.push("min_age is 0, so an image is a candidate the moment it is left dangling");
        fixes.push("set `policy.min_age` (--min-age), e.g. 24h");
    }
    if problems.is_empty() {
        Check::ok(NAME, summary)
    } else {
        Check::warn(
            NAME,
            format!("{summary}; {}", problems.join("; ")),
            fixes.join("; "),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::doctor::Status;

    #[test]
    fn policy_verdicts() {
        let default = Policy::default();
        let verdict = check(&default, true);
        assert_eq!(verdict.status, Status::Ok);
        assert!(
            verdict.detail.contains(
                "min_age 24h, disk threshold 80 %, quiet period 10m, 0 workload selector(s)"
            ),
            "{verdict:?}"
        );

        let mut open_disk = Policy::default();
        open_disk.gates.disk.threshold_percent = 0;
        let verdict = check(&open_disk, true);
        assert_eq!(verdict.status, Status::Warn);
        assert!(verdict.detail.contains("always open") && verdict.fix.contains("--disk-threshold"));

        let no_age = Policy {
            min_age: Duration::ZERO,
            ..Policy::default()
        };
        let verdict = check(&no_age, false);
        assert_eq!(verdict.status, Status::Warn);
        assert!(
            verdict.fix.contains("--min-age")
                && verdict.detail.contains("config file was not used")
        );
    }
}
