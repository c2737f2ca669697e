//! What pruneguard keeps on disk between runs, in the state directory: the run lock (one run
//! at a time: an exclusive, non-blocking `flock` on `pruneguard.lock`, released by the kernel
//! even if the process dies), `last-run.json` (the last report, read back typed for `status`),
//! and atomic writes (temporary file in the same directory, then rename) for it and the metrics;
//! and the observation record `observations.json` (`observe`), read and rewritten under a short
//! lock on the state directory itself, so that a `plan` beside a `run` cannot lose an update.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use rustix::fs::{FlockOperation, flock};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config::Settings;
use crate::gates::GateName;
use crate::human::human_bytes;
use crate::report::{Decision, Report};

pub const LOCK_FILE_NAME: &str = "pruneguard.lock";
pub const LAST_RUN_FILE: &str = "last-run.json";
/// `status` reads at most this much of `last-run.json`.
pub const MAX_LAST_RUN_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

impl RunLock {
    /// Takes the lock or fails at once, saying who to wait for.
    pub fn acquire(state_dir: &Path) -> anyhow::Result<Self> {
        prepare_state_dir(state_dir)?;
        let path = state_dir.join(LOCK_FILE_NAME);
        let file = open_regular(&path, true).with_context(|| {
            format!(
                "cannot open the lock file {}; check the state directory's permissions or use --state-dir",
                path.display()
            )
        })?;
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

/// Why a state directory is refused, from its `lstat`; `None` when it is fine. A symlink could
/// redirect the lock and the reports; a directory others may write but that neither this user
/// nor root owns could have its files swapped under pruneguard.
pub fn state_dir_problem(dir: &Path, meta: &std::fs::Metadata, euid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let shown = dir.display();
    if meta.file_type().is_symlink() {
        return Some(format!(
            "the state directory {shown} is a symbolic link; pruneguard refuses it so that its lock and reports cannot be redirected. Point --state-dir / state.dir at the real directory."
        ));
    }
    if !meta.is_dir() {
        return Some(format!(
            "the state directory {shown} exists but is not a directory; remove it or choose another with --state-dir / state.dir."
        ));
    }
    let writable_by_others = meta.mode() & 0o022 != 0;
    if writable_by_others && meta.uid() != euid && meta.uid() != 0 {
        return Some(format!(
            "the state directory {shown} is writable by group or others and owned by uid {} (neither this user nor root), so its files could be swapped; `chmod go-w {shown}` or `chown` it to the user that runs pruneguard.",
            meta.uid()
        ));
    }
    None
}

/// Creates the state directory if it is missing (0755), then refuses it if
/// [`state_dir_problem`] finds one.
pub fn prepare_state_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let meta = match std::fs::symlink_metadata(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .with_context(|| {
                    format!(
                        "cannot create the state directory {}; create it, run as root, or choose another with --state-dir",
                        dir.display()
                    )
                })?;
            std::fs::symlink_metadata(dir)
        }
        other => other,
    }
    .with_context(|| format!("cannot look at the state directory {}", dir.display()))?;
    match state_dir_problem(dir, &meta, rustix::process::geteuid().as_raw()) {
        Some(problem) => bail!("{problem}"),
        None => Ok(()),
    }
}

/// Opens `path` without following a symlink and without blocking (a FIFO would otherwise
/// hang the run), and only if it is a regular file. `create` makes it (0644) when missing.
pub fn open_regular(path: &Path, create: bool) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .truncate(false)
        .mode(0o644)
        // The flag bits fit in an i32 (they are the kernel's open(2) flags).
        .custom_flags(i32::try_from(flags.bits()).unwrap_or(0))
        .open(path)
        .map_err(|error| {
            if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                anyhow::anyhow!(
                    "{} is a symbolic link, which pruneguard does not follow",
                    path.display()
                )
            } else {
                anyhow::Error::new(error)
            }
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    Ok(file)
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

/// Writes the state file and the metrics; failures become warnings in the report, because the
/// decision already stands and the operator must still see it.
pub fn persist(settings: &Settings, report: &mut Report) {
    let state_file = settings.state_dir.join(LAST_RUN_FILE);
    let mut targets = vec![(state_file, format!("{}\n", report.to_json()), "state")];
    if let Some(path) = &settings.metrics_file {
        targets.push((path.clone(), report.to_metrics(Utc::now()), "metrics"));
    }
    for (path, contents, what) in targets {
        if let Err(error) = write_atomically(&path, &contents) {
            let warning = format!(
                "could not write the {what} file {}: {error:#}",
                path.display()
            );
            tracing::warn!("{warning}");
            report.warnings.push(warning);
        }
    }
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
        if matches!(std::fs::symlink_metadata(&path), Err(error) if error.kind() == std::io::ErrorKind::NotFound)
        {
            bail!(
                "no run has been recorded yet: {} does not exist. Run `pruneguard run` (or check --state-dir / state.dir).",
                path.display()
            );
        }
        let mut text = String::new();
        open_regular(&path, false)
            .and_then(|file| {
                // A report is a few hundred KiB at most; a larger file is not one.
                std::io::Read::take(file, MAX_LAST_RUN_BYTES)
                    .read_to_string(&mut text)
                    .map_err(anyhow::Error::new)
            })
            .with_context(|| {
                format!(
                    "cannot read {}; check the state directory's permissions, or run status as the user that runs pruneguard",
                    path.display()
                )
            })?;
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

/// The observation record's path in `state_dir`.
pub fn observations_path(state_dir: &Path) -> PathBuf {
    state_dir.join(crate::observe::RECORD_FILE)
}

/// Reads the observation record. Missing is an empty record and no warning (a first run);
/// unreadable or corrupt is an empty record and a warning naming the file and the fix:
/// "nothing proven yet", never "everything old".
pub fn read_observations(state_dir: &Path) -> (crate::observe::Record, Option<String>) {
    use crate::observe::Record;
    let path = observations_path(state_dir);
    if matches!(std::fs::symlink_metadata(&path), Err(error) if error.kind() == std::io::ErrorKind::NotFound)
    {
        return (Record::default(), None);
    }
    let mut text = String::new();
    let read = open_regular(&path, false).and_then(|file| {
        std::io::Read::take(file, MAX_LAST_RUN_BYTES)
            .read_to_string(&mut text)
            .map_err(anyhow::Error::new)
    });
    let problem = match read {
        Err(error) => format!("cannot be read ({error:#})"),
        Ok(_) => match Record::parse(&text) {
            Ok(record) => return (record, None),
            Err(problem) => format!("is not usable: {problem}"),
        },
    };
    (
        Record::default(),
        Some(format!(
            "the observation record {} {problem}; starting from an empty record, so no image counts as unused until it has been seen so for min_age (nothing is deleted early). This run rewrites it; if the warning comes back, check the state directory's permissions and free space, or delete the file.",
            path.display()
        )),
    )
}

/// An exclusive `flock` on the state directory, held while the observation record is read,
/// updated and rewritten (milliseconds); released when dropped or when the process dies.
#[derive(Debug)]
pub struct ObservationLock {
    _dir: rustix::fd::OwnedFd,
}

impl ObservationLock {
    /// Takes the lock, waiting at most `patience` for another process to finish its update.
    pub fn acquire(state_dir: &Path, patience: std::time::Duration) -> anyhow::Result<Self> {
        use rustix::fs::{Mode, OFlags};
        let dir = rustix::fs::open(
            state_dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open the state directory {}", state_dir.display()))?;
        let started = std::time::Instant::now();
        loop {
            match flock(&dir, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Self { _dir: dir }),
                Err(rustix::io::Errno::WOULDBLOCK) if started.elapsed() < patience => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(error) => {
                    return Err(error).with_context(|| {
                        format!(
                            "cannot lock the state directory {} to update the observation record (another pruneguard holds it)",
                            state_dir.display()
                        )
                    });
                }
            }
        }
    }
}

/// Writes the observation record atomically. When that fails, the old record is removed if
/// it can be: a record that missed this look could hold an entry this look reset, and no
/// record means "nothing proven yet", which is safe.
pub fn write_observations(state_dir: &Path, record: &crate::observe::Record) -> anyhow::Result<()> {
    let path = observations_path(state_dir);
    write_atomically(&path, &record.to_json()).map_err(|error| {
        let removed = match std::fs::remove_file(&path) {
            Ok(()) => "it was removed, so nothing counts as proven".to_string(),
            Err(remove) if remove.kind() == std::io::ErrorKind::NotFound => {
                "there was none".to_string()
            }
            Err(remove) => format!(
                "and it could not be removed either ({remove}): delete {} by hand before the next run",
                path.display()
            ),
        };
        anyhow::anyhow!(
            "could not write the observation record {} ({error:#}); {removed}. Check the state directory's permissions and free space.",
            path.display()
        )
    })
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
    fn the_state_dir_is_refused_when_it_could_be_redirected_or_swapped() {
        use std::os::unix::fs::MetadataExt as _;
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let error = format!("{:#}", RunLock::acquire(&link).unwrap_err());
        assert!(error.contains("is a symbolic link"), "{error}");
        assert!(
            !real.join(LOCK_FILE_NAME).exists(),
            "nothing written through the link"
        );

        // Writable by others and owned by someone else (uid 65534): refused; by us: fine.
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let meta = std::fs::symlink_metadata(&shared).unwrap();
        let me = rustix::process::geteuid().as_raw();
        assert_eq!(state_dir_problem(&shared, &meta, meta.uid()), None);
        if meta.uid() == 0 {
            // Root-owned: allowed, as /tmp-like directories owned by root are.
            assert_eq!(state_dir_problem(&shared, &meta, 1234), None);
        }
        std::os::unix::fs::chown(&shared, Some(65534), None).ok();
        let meta = std::fs::symlink_metadata(&shared).unwrap();
        if meta.uid() == 65534 && me != 65534 {
            let problem = state_dir_problem(&shared, &meta, me).unwrap();
            assert!(problem.contains("chmod go-w"), "{problem}");
        }
    }

    #[test]
    fn lock_and_report_files_are_regular_files_never_followed_or_blocked_on() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(LOCK_FILE_NAME)).unwrap();
        let error = format!("{:#}", RunLock::acquire(dir.path()).unwrap_err());
        assert!(error.contains("symbolic link"), "{error}");

        let fifo_dir = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fifo_dir.path().join(LAST_RUN_FILE),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // Would block forever if opened blocking; refused at once instead.
        let error = format!("{:#}", LastRunFile::read(fifo_dir.path()).unwrap_err());
        assert!(error.contains("not a regular file"), "{error}");
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
    fn the_observation_record_round_trips_and_a_corrupt_one_reads_as_empty_with_a_warning() {
        use crate::observe::{Entry, Record};
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_observations(dir.path()), (Record::default(), None));
        let mut record = Record::default();
        let since = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        record.updated_at = Some(since);
        record.images.insert(
            format!("sha256:{}", "ab".repeat(32)),
            Entry {
                unused_since: since,
            },
        );
        let lock = ObservationLock::acquire(dir.path(), std::time::Duration::ZERO).unwrap();
        // A second holder waits, then gives up with a sentence naming the directory.
        let error =
            ObservationLock::acquire(dir.path(), std::time::Duration::from_millis(50)).unwrap_err();
        assert!(
            format!("{error:#}").contains("observation record"),
            "{error:#}"
        );
        write_observations(dir.path(), &record).unwrap();
        drop(lock);
        assert_eq!(read_observations(dir.path()), (record, None));
        for corrupt in [
            "",
            "{\"version\": 1, \"ima",
            "[]",
            "{\"version\": 99, \"images\": {}}",
        ] {
            std::fs::write(observations_path(dir.path()), corrupt).unwrap();
            let (read, warning) = read_observations(dir.path());
            assert_eq!(read, Record::default(), "{corrupt:?}");
            let warning = warning.unwrap();
            assert!(
                warning.contains(observations_path(dir.path()).to_str().unwrap())
                    && warning.contains("starting from an empty record"),
                "{warning}"
            );
        }
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
