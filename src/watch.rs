//! `pruneguard watch`: the one-shot pass of `run` ([`crate::app::pass`]) every `--interval`,
//! for long-running hosts and swarm global services. The shell around the pass: the run lock
//! for the whole watch, the signals, the jittered pause between ticks, one log line per tick,
//! and the metrics (the textfile as `run` writes it, and served over HTTP with
//! `--metrics-listen`, see [`crate::metrics_server`]).
//!
//! A tick that fails (no report: the daemon unreachable, a list refused) deleted nothing; it is
//! logged, counted, written to the metrics as a failed run, and the next tick comes as planned.
//! SIGTERM/SIGINT during a tick let the pass stop as a run stops (no new deletion, the ones in
//! flight seen through, the report written); between ticks they end the watch at once. Either
//! way the watch exits 0: a stop asked for is not a failure (systemd `Restart=on-failure` and
//! Docker's `on-failure` restart policy leave it stopped), and a process that is PID 1 in a
//! container cannot die by a signal it handles.

use std::time::{Duration, Instant};

use chrono::Utc;
use tracing::{info, warn};

use crate::cli::WatchArgs;
use crate::config::Settings;
use crate::decision::Mode;
use crate::exit::Outcome;
use crate::human::{format_duration, human_seconds};
use crate::metrics_server::MetricsServer;
use crate::signals::{self, Signals};
use crate::state::{self, RunLock};

/// Each pause is drawn from this fraction of the interval below to above it.
pub const JITTER: f64 = 0.10;

/// Runs ticks until a signal arrives.
pub async fn run(args: &WatchArgs) -> anyhow::Result<Outcome> {
    let settings = Settings::resolve_watch(args)?;
    let interval = settings.watch_interval;
    let signals = Signals::install()?;
    // One watch (or run) at a time, for as long as it watches.
    let _lock = if settings.dry_run {
        None
    } else {
        Some(RunLock::acquire(&settings.state_dir)?)
    };
    let server = match args.metrics_listen {
        Some(addr) => Some(MetricsServer::start(addr).await?),
        None => None,
    };
    let mut ticks = TickCounts::default();
    if let Some(server) = &server {
        server.publish(ticks.metrics(interval));
    }
    info!(
        interval = %format_duration(interval),
        metrics = server.as_ref().map(|server| server.url()).unwrap_or_default(),
        dry_run = settings.dry_run,
        "watching: one tick now, then one every interval (±10 %)"
    );
    loop {
        let started = Instant::now();
        let tick = ticks.ok + ticks.failed + 1;
        let result = crate::app::pass(&settings, Mode::Run, &signals).await;
        let pause = next_pause(interval, started.elapsed(), fastrand::f64());
        let next = if pause < Duration::from_secs(60) {
            format!("{:.1}s", pause.as_secs_f64())
        } else {
            human_seconds(i64::try_from(pause.as_secs()).unwrap_or(i64::MAX))
        };
        let metrics = match result {
            Ok(report) => {
                ticks.ok += 1;
                info!(
                    tick,
                    decision = report.decision.as_str(),
                    removed = report.removed.len(),
                    candidates = report.candidates.len(),
                    next_tick_in = %next,
                    "{}",
                    report.summary
                );
                report.to_metrics(Utc::now())
            }
            Err(error) => {
                ticks.failed += 1;
                warn!(
                    tick,
                    next_tick_in = %next,
                    "tick failed, nothing was deleted: {error:#}"
                );
                let text = failed_tick_metrics(Utc::now());
                if let Some(path) = &settings.metrics_file
                    && !settings.dry_run
                    && let Err(error) = state::write_atomically(path, &text)
                {
                    warn!(
                        "could not write the metrics file {}: {error:#}",
                        path.display()
                    );
                }
                text
            }
        };
        if let Some(server) = &server {
            server.publish(format!("{metrics}{}", ticks.metrics(interval)));
        }
        if let Some(signal) = signals.received() {
            info!(
                signal = signals::name(signal),
                "stopped after the tick's report; exiting 0"
            );
            return Ok(Outcome::Success);
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = signals.arrived() => {
                let signal = signals.received().map_or("a signal", signals::name);
                info!(signal, "stopped between ticks; exiting 0");
                return Ok(Outcome::Success);
            }
        }
    }
}

/// The pause before the next tick: the interval, scaled by `unit` (uniform in `0..1`) to
/// between 90 % and 110 % of it, less the time the tick took (none when it took longer).
pub fn next_pause(interval: Duration, took: Duration, unit: f64) -> Duration {
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
    interval.mul_f64(factor).saturating_sub(took)
}

/// How the ticks of this watch ended.
#[derive(Debug, Default, Clone, Copy)]
struct TickCounts {
    ok: u64,
    failed: u64,
}

impl TickCounts {
    /// The watch's own metrics, served after the last tick's.
    fn metrics(self, interval: Duration) -> String {
        format!(
            "# HELP pruneguard_watch_ticks_total Ticks of this pruneguard watch, by result (failed: a runtime failure before any report; nothing was deleted).\n\
             # TYPE pruneguard_watch_ticks_total counter\n\
             pruneguard_watch_ticks_total{{result=\"ok\"}} {}\n\
             pruneguard_watch_ticks_total{{result=\"failed\"}} {}\n\
             # HELP pruneguard_watch_interval_seconds The interval between two ticks, before jitter.\n\
             # TYPE pruneguard_watch_interval_seconds gauge\n\
             pruneguard_watch_interval_seconds {}\n",
            self.ok,
            self.failed,
            interval.as_secs()
        )
    }
}

/// The metrics of a tick that made no report: it finished now and did not succeed.
pub fn failed_tick_metrics(finished_at: chrono::DateTime<Utc>) -> String {
    format!(
        "# HELP pruneguard_last_run_timestamp_seconds Unix time the last pruneguard run finished.\n\
         # TYPE pruneguard_last_run_timestamp_seconds gauge\n\
         pruneguard_last_run_timestamp_seconds {}\n\
         # HELP pruneguard_last_run_success 1 if the last run finished (not interrupted) without a failed deletion or runtime error, else 0.\n\
         # TYPE pruneguard_last_run_success gauge\n\
         pruneguard_last_run_success 0\n\
         # HELP pruneguard_build_info Always 1; the version of pruneguard that wrote these metrics is its label.\n\
         # TYPE pruneguard_build_info gauge\n\
         pruneguard_build_info{{version=\"{}\"}} 1\n",
        finished_at.timestamp(),
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_stay_within_ten_percent_and_subtract_the_tick() {
        let hour = Duration::from_secs(3600);
        assert_eq!(
            next_pause(hour, Duration::ZERO, 0.0),
            Duration::from_secs(3240)
        );
        assert_eq!(next_pause(hour, Duration::ZERO, 0.5), hour);
        assert_eq!(
            next_pause(hour, Duration::ZERO, 1.0),
            Duration::from_secs(3960)
        );
        // Out-of-range draws are clamped; a tick longer than the interval leaves no pause.
        assert_eq!(
            next_pause(hour, Duration::ZERO, 7.0),
            Duration::from_secs(3960)
        );
        assert_eq!(
            next_pause(hour, Duration::from_secs(600), 0.5),
            Duration::from_secs(3000)
        );
        assert_eq!(next_pause(hour, 2 * hour, 0.9), Duration::ZERO);
        for step in 0..=100 {
            let pause = next_pause(
                Duration::from_secs(10),
                Duration::ZERO,
                f64::from(step) / 100.0,
            );
            assert!(
                pause >= Duration::from_secs(9) && pause <= Duration::from_secs(11),
                "{pause:?}"
            );
        }
    }

    #[test]
    fn a_failed_tick_reports_no_success_and_the_watch_counts_it() {
        let text = failed_tick_metrics(chrono::DateTime::UNIX_EPOCH);
        assert!(text.contains("\npruneguard_last_run_success 0\n"), "{text}");
        assert!(
            text.contains("pruneguard_last_run_timestamp_seconds 0\n"),
            "{text}"
        );
        let counts = TickCounts { ok: 3, failed: 1 }.metrics(Duration::from_secs(60));
        assert!(
            counts.contains("pruneguard_watch_ticks_total{result=\"ok\"} 3\n"),
            "{counts}"
        );
        assert!(
            counts.contains("pruneguard_watch_ticks_total{result=\"failed\"} 1\n"),
            "{counts}"
        );
        assert!(
            counts.contains("pruneguard_watch_interval_seconds 60\n"),
            "{counts}"
        );
    }
}
