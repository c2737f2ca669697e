//! What pruneguard keeps on disk between runs, in the state directory: the run lock (one run
//! at a time: an exclusive, non-blocking `flock` on `pruneguard.lock`, released by the kernel
//! even if the process dies), `last-run.json` (the last report, read back typed for `status`),
//! and atomic writes (temporary file in the same directory, then rename) for it and the metrics.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use rustix::fs::{FlockOperation, flock};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::gates::GateName;
use crate::human::human_bytes;
use crate::report::Decision;

pub const LOCK_FILE_NAME: &str = "pruneguard.lock";
pub const LAST_RUN_FILE: &str = "last-run.json";

#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

impl RunLock {
    /// Takes the lock or fails at once, saying who to wait for.
    pub fn acquire(state_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir).with_context(|| {
            format!(
                "cannot create the state directory {}; create it, run as root, or choose another with --state-dir",
                state_dir.display()
            )
        })?;
        let path = state_dir.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}; check the state directory's permissions or use --state-dir", path.display()))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(rustix::io::Errno::WOULDBLOCK) => bail!(
                "another pruneguard run holds the lock {}; wait for it to finish (a second run at the same time would race it)",
                path.display()
            ),
            Err(error) => Err(error).with_context(|| format!("cannot lock {}", path.display())),
        }
    }
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, flushed,
/// then renamed over the target, so readers never see half a file.
pub fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write a temporary file in {}", dir.display()))?;
    // Metrics and reports are for everyone on the host to read; they hold no secrets.
    set_readable(file.as_file())?;
    file.persist(path)
        .with_context(|| format!("cannot rename the temporary file over {}", path.display()))?;
    Ok(())
}

fn set_readable(file: &File) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .context("cannot make the file readable")
}

/// The part of `last-run.json` that `status` summarises. Unknown fields are ignored, so a
/// report from a newer pruneguard of the same schema still reads.
#[derive(Debug, Clone, Deserialize)]
pub struct LastRun {
    pub started_at: DateTime<Utc>,
    pub dry_run: bool,
    pub decision: Decision,
    pub summary: String,
    pub gates: Vec<LastGate>,
    pub removed: Vec<IgnoredAny>,
    pub reclaimed_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LastGate {
    pub name: GateName,
    pub open: bool,
    pub detail: String,
}

/// `last-run.json` as it was written, and what it says.
#[derive(Debug, Clone)]
pub struct LastRunFile {
    pub text: String,
    pub run: LastRun,
}

impl LastRunFile {
    /// Reads the last run's report from the state directory. Missing or unreadable is a
    /// runtime failure whose message says what to do.
    pub fn read(state_dir: &Path) -> anyhow::Result<Self> {
        let path = state_dir.join(LAST_RUN_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                "no run has been recorded yet: {} does not exist. Run `pruneguard run` (or check --state-dir / state.dir).",
                path.display()
            ),
            Err(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "cannot read {}; check the state directory's permissions, or run status as the user that runs pruneguard",
                        path.display()
                    )
                });
            }
        };
        let run = serde_json::from_str(&text).map_err(|error| {
            anyhow::anyhow!(
                "{} is not a readable pruneguard report ({error}). It may have been cut short or \
                 edited by hand; the next `pruneguard run` replaces it, or delete it to start afresh.",
                path.display()
            )
        })?;
        Ok(Self { text, run })
    }
}

impl LastRun {
    /// `status`'s summary for people.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Last run: {} ({}), decision {}.\n{}\n",
            self.started_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            if self.dry_run { "dry run" } else { "run" },
            self.decision.as_str(),
            self.summary
        );
        for gate in self.gates.iter().filter(|gate| !gate.open) {
            let _ = writeln!(out, "  closed {}: {}", gate.name.as_str(), gate.detail);
        }
        let _ = writeln!(
            out,
            "Removed {} image(s); {} reclaimed.",
            self.removed.len(),
            human_bytes(self.reclaimed_bytes)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cut-short or foreign `last-run.json` is a runtime failure (exit 1), not a usage
    /// error, and the message says what to do.
    #[test]
    fn a_corrupt_last_run_is_a_runtime_failure_that_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        for corrupt in ["", "{\"schema_version\": 1, \"decis", "[1, 2]", "not json"] {
            std::fs::write(dir.path().join(LAST_RUN_FILE), corrupt).unwrap();
            let error = LastRunFile::read(dir.path()).unwrap_err();
            let message = format!("{error:#}");
            assert!(
                message.contains("is not a readable pruneguard report"),
                "{message}"
            );
            assert!(
                message.contains("the next `pruneguard run` replaces it"),
                "{message}"
            );
            assert_eq!(
                crate::exit::code(&Err(error)),
                crate::exit::RUNTIME_FAILURE,
                "{corrupt:?}"
            );
        }
    }

    #[test]
    fn a_missing_last_run_says_no_run_was_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let message = format!("{:#}", LastRunFile::read(dir.path()).unwrap_err());
        assert!(
            message.contains("no run has been recorded yet"),
            "{message}"
        );
    }

    #[test]
    fn a_written_report_reads_back_typed() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"{"schema_version": 1, "started_at": "2026-11-25T16:27:51Z", "dry_run": false,
            "decision": "skipped", "summary": "Skipped: nothing deleted because the disk gate is closed.",
            "gates": [{"name": "disk", "open": false, "detail": "no pressure.", "evidence": {}}],
            "removed": [], "reclaimed_bytes": 0, "a_field_from_a_newer_version": true}"#;
        write_atomically(&dir.path().join(LAST_RUN_FILE), text).unwrap();
        let last = LastRunFile::read(dir.path()).unwrap();
        assert_eq!(last.text, text);
        assert_eq!(last.run.decision, Decision::Skipped);
        assert_eq!(
            last.run.to_text(),
            "Last run: 2026-11-25T16:27:51Z (run), decision skipped.\n\
             Skipped: nothing deleted because the disk gate is closed.\n\
             \x20 closed disk: no pressure.\n\
             Removed 0 image(s); 0 B reclaimed.\n"
        );
    }

    #[test]
    fn a_second_lock_in_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let error = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("another pruneguard run holds the lock"),
            "{error}"
        );
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }
}
