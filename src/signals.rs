//! SIGTERM (systemd stopping the unit) and SIGINT (Ctrl-C) for a whole `run` or `plan`: the
//! first one ends a wait for gates, stops new deletions (the ones in flight are seen through),
//! and the run then writes its report and dies by that signal, as its default action would,
//! so that systemd records a stop, not a failure. `watch` uses the same signals and exits 0
//! instead (see `watch`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tracing::warn;

use crate::execute::Interrupt;

pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

/// Listens for SIGTERM and SIGINT from the moment it is installed.
#[derive(Clone)]
pub struct Signals {
    received: Arc<AtomicI32>,
    notify: Arc<Notify>,
    interrupt: Interrupt,
}

impl Signals {
    /// Takes over SIGTERM and SIGINT (their default action is gone from here on: the run ends
    /// by them itself, through [`die_by`]).
    pub fn install() -> anyhow::Result<Self> {
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let signals = Self {
            received: Arc::new(AtomicI32::new(0)),
            notify: Arc::new(Notify::new()),
            interrupt: Interrupt::default(),
        };
        let listener = signals.clone();
        tokio::spawn(async move {
            let number = tokio::select! {
                _ = term.recv() => SIGTERM,
                _ = int.recv() => SIGINT,
            };
            warn!(
                signal = name(number),
                "stopping: no new deletion starts; the ones in flight are seen through and the report is written"
            );
            listener.received.store(number, Ordering::SeqCst);
            listener.interrupt.set();
            listener.notify.notify_waiters();
        });
        Ok(signals)
    }

    /// The signal that arrived, if any.
    pub fn received(&self) -> Option<i32> {
        Some(self.received.load(Ordering::SeqCst)).filter(|number| *number != 0)
    }

    /// The flag `execute` watches.
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    /// Resolves once a signal has arrived (at once if one already has).
    pub async fn arrived(&self) {
        let notified = self.notify.notified();
        if self.received().is_some() {
            return;
        }
        notified.await;
    }
}

pub fn name(number: i32) -> &'static str {
    match number {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "a signal",
    }
}

/// Ends the process by `number` with its default action. Falls back to the shell's exit status
/// for it (128 + number) if the signal does not end the process.
pub fn die_by(number: i32) -> ! {
    // Output already written must not be lost in a buffer.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = signal_hook::low_level::emulate_default_handler(number);
    std::process::exit(128 + number)
}
