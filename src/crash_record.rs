//! The crash-loop record in the state directory (`swarm-crash-loops.json`): when pruneguard
//! first saw each swarm service crash-looping (see `swarm_manager`). Read before the swarm gate
//! judges a manager's services, rewritten (atomically, only when it changed) after each
//! observation by a run that may delete. A missing, unreadable or corrupt record is an empty
//! one: every crash loop then counts as just started, never as stuck.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tracing::warn;

use crate::model::{CrashLoopRecord, SwarmCluster};
use crate::state::{open_regular, write_atomically};

pub const CRASH_LOOP_FILE: &str = "swarm-crash-loops.json";
/// A record is one line per crash-looping service; anything larger is not one.
const MAX_RECORD_BYTES: u64 = 4 * 1024 * 1024;

/// The record as the state directory holds it; empty (with a warning) when it cannot be read.
pub fn load(state_dir: &Path) -> CrashLoopRecord {
    let path = state_dir.join(CRASH_LOOP_FILE);
    if matches!(std::fs::symlink_metadata(&path), Err(error) if error.kind() == std::io::ErrorKind::NotFound)
    {
        return CrashLoopRecord::default();
    }
    let read = open_regular(&path, false).and_then(|file| {
        let mut text = String::new();
        file.take(MAX_RECORD_BYTES)
            .read_to_string(&mut text)
            .context("cannot read it")?;
        serde_json::from_str::<CrashLoopRecord>(&text).context("it is not a crash-loop record")
    });
    read.unwrap_or_else(|error| {
        warn!(
            "ignoring the crash-loop record {}: {error:#}; every crash loop counts as just started, and the next run that may delete rewrites it",
            path.display()
        );
        CrashLoopRecord::default()
    })
}

/// Brings the record up to date with `cluster` at `now`; writes it back when it changed and
/// `write` is set (a run that may delete holds the run lock; a dry run only reads). Returns the
/// record to judge with. A failed write is a warning: the record only ever makes a loop older.
pub fn observe(
    state_dir: &Path,
    cluster: &SwarmCluster,
    now: DateTime<Utc>,
    stuck_after: std::time::Duration,
    write: bool,
) -> CrashLoopRecord {
    let old = load(state_dir);
    let new = crate::swarm_manager::updated_record(cluster, &old, now, stuck_after);
    if write && new != old {
        let path = state_dir.join(CRASH_LOOP_FILE);
        let text = serde_json::to_string_pretty(&new)
            .map(|text| format!("{text}\n"))
            .context("cannot encode the crash-loop record");
        if let Err(error) = text.and_then(|text| write_atomically(&path, &text)) {
            warn!(
                "could not write the crash-loop record {}: {error:#}",
                path.display()
            );
        }
    }
    new
}
