//! The one mapping from a command's result to the process exit status.
//!
//! 0 finished (pruned, nothing to do, or skipped because a gate is closed; doctor healthy),
//! 1 runtime failure (daemon unreachable, lock held; doctor: a check failed),
//! 2 usage or configuration error (clap uses 2 for bad flags too),
//! 3 some planned deletions failed.

use crate::config::ConfigError;

/// How a command that ran to its end finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The report was made, but the run itself failed (the daemon went away mid-run).
    RuntimeFailure,
    /// `doctor` found a failing check.
    CheckFailed,
    DeletionsFailed,
    /// SIGTERM or SIGINT ended the run after its report was written: the process ends by that
    /// signal (`main`), as its default action would.
    Signalled(i32),
}

pub const SUCCESS: u8 = 0;
pub const RUNTIME_FAILURE: u8 = 1;
pub const USAGE_ERROR: u8 = 2;
pub const DELETIONS_FAILED: u8 = 3;

pub fn code(result: &anyhow::Result<Outcome>) -> u8 {
    let is_config_error =
        |error: &anyhow::Error| error.chain().any(|cause| cause.is::<ConfigError>());
    match result {
        Ok(Outcome::Success) => SUCCESS,
        Ok(Outcome::DeletionsFailed) => DELETIONS_FAILED,
        // What a shell reports for death by that signal, should the signal not end the process.
        Ok(Outcome::Signalled(signal)) => u8::try_from(128 + signal).unwrap_or(RUNTIME_FAILURE),
        Err(error) if is_config_error(error) => USAGE_ERROR,
        Ok(Outcome::RuntimeFailure | Outcome::CheckFailed) | Err(_) => RUNTIME_FAILURE,
    }
}
