//! The documented range of every duration setting, in one table: a value outside it is a
//! configuration error naming the key (exit 2), so no window arithmetic ever sees an absurd
//! duration (a `1000y` quiet period once moved the events window before the epoch).

use std::time::Duration;

use super::DEFAULT_API_TIMEOUT;
use crate::policy::{
    DEFAULT_MIN_AGE, DEFAULT_QUIET_PERIOD, DEFAULT_STALE_LOCK_AFTER, DEFAULT_STUCK_AFTER,
    DEFAULT_WAIT_INTERVAL, DEFAULT_WATCH_INTERVAL,
};

/// One duration key's bounds (inclusive), default, and the reason for the bounds.
#[derive(Debug, Clone, Copy)]
pub struct DurationRange {
    pub key: &'static str,
    pub min: Duration,
    pub max: Duration,
    pub default: Duration,
    pub why: &'static str,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

pub const MIN_AGE: DurationRange = DurationRange {
    key: "policy.min_age",
    min: Duration::ZERO,
    max: Duration::from_secs(3650 * DAY),
    default: DEFAULT_MIN_AGE,
    why: "older than ten years means nothing would ever qualify",
};

pub const QUIET_PERIOD: DurationRange = DurationRange {
    key: "gates.quiet.period",
    min: Duration::ZERO,
    max: Duration::from_secs(7 * DAY),
    default: DEFAULT_QUIET_PERIOD,
    why: "0s disables the gate; the daemon keeps only recent events",
};

pub const WAIT: DurationRange = DurationRange {
    key: "gates.wait",
    min: Duration::ZERO,
    max: Duration::from_secs(DAY),
    default: Duration::ZERO,
    why: "a daily timer should not wait into its next run",
};

pub const WAIT_INTERVAL: DurationRange = DurationRange {
    key: "gates.wait_interval",
    min: Duration::from_millis(100),
    max: Duration::from_secs(HOUR),
    default: DEFAULT_WAIT_INTERVAL,
    why: "each re-check asks the daemon again",
};

pub const STALE_LOCK_AFTER: DurationRange = DurationRange {
    key: "gates.workload.stale_lock_after",
    min: Duration::from_secs(1),
    max: Duration::from_secs(365 * DAY),
    default: DEFAULT_STALE_LOCK_AFTER,
    why: "when a lock file is called out as possibly left over",
};

pub const STUCK_AFTER: DurationRange = DurationRange {
    key: "gates.swarm.stuck_after",
    min: Duration::from_secs(1),
    max: Duration::from_secs(30 * DAY),
    default: DEFAULT_STUCK_AFTER,
    why: "a service converging longer than this no longer blocks pruning",
};

pub const API_TIMEOUT: DurationRange = DurationRange {
    key: "engine.api_timeout",
    min: Duration::from_secs(1),
    max: Duration::from_secs(HOUR),
    default: DEFAULT_API_TIMEOUT,
    why: "a shorter timeout fails requests to a healthy, busy daemon",
};

pub const WATCH_INTERVAL: DurationRange = DurationRange {
    key: "watch.interval",
    min: Duration::from_secs(1),
    max: Duration::from_secs(7 * DAY),
    default: DEFAULT_WATCH_INTERVAL,
    why: "each tick asks the daemon for everything a run needs",
};

/// Every range, in the order the README's table lists them.
pub const ALL: [DurationRange; 8] = [
    MIN_AGE,
    QUIET_PERIOD,
    WAIT,
    WAIT_INTERVAL,
    STALE_LOCK_AFTER,
    STUCK_AFTER,
    API_TIMEOUT,
    WATCH_INTERVAL,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::RunArgs;
    use crate::config::{Environment, Mode, Settings};

    /// The environment variable of each duration key.
    fn variable(key: &str) -> &'static str {
        match key {
            "policy.min_age" => "PRUNEGUARD_MIN_AGE",
            "gates.quiet.period" => "PRUNEGUARD_QUIET_PERIOD",
            "gates.wait" => "PRUNEGUARD_WAIT_FOR_GATES",
            "gates.wait_interval" => "PRUNEGUARD_WAIT_INTERVAL",
            "gates.workload.stale_lock_after" => "PRUNEGUARD_WORKLOAD_STALE_LOCK_AFTER",
            "gates.swarm.stuck_after" => "PRUNEGUARD_SWARM_STUCK_AFTER",
            "engine.api_timeout" => "PRUNEGUARD_API_TIMEOUT",
            "watch.interval" => "PRUNEGUARD_WATCH_INTERVAL",
            other => panic!("no variable for {other}"),
        }
    }

    fn resolve(key: &str, value: &str) -> Result<Settings, String> {
        let args = RunArgs {
            no_config: true,
            ..RunArgs::default()
        };
        let env = Environment::from_pairs([(variable(key), value)]);
        Settings::resolve_with(&args, Mode::Run, &env).map_err(|error| error.0)
    }

    /// Each bound itself is accepted; one step outside it, or an absurd value such as `1000y`,
    /// is an error naming the key.
    #[test]
    fn every_duration_key_is_checked_against_its_range() {
        for range in ALL {
            let shown = |duration| crate::config::format_duration(duration);
            for inside in [range.min, range.max] {
                assert!(
                    resolve(range.key, &shown(inside)).is_ok(),
                    "{} = {}",
                    range.key,
                    shown(inside)
                );
            }
            let mut outside = vec![
                shown(range.max + Duration::from_millis(1)),
                "1000y".to_string(),
            ];
            if let Some(below) = range.min.checked_sub(Duration::from_millis(1)) {
                outside.push(shown(below));
            }
            for value in outside {
                let error = resolve(range.key, &value).expect_err(&value);
                assert!(error.contains(range.key), "{value}: {error}");
                assert!(error.contains("must be from"), "{value}: {error}");
            }
        }
    }

    #[test]
    fn every_default_lies_in_its_range() {
        for range in ALL {
            assert!(
                (range.min..=range.max).contains(&range.default),
                "{}",
                range.key
            );
        }
    }
}
