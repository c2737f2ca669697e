//! One run at a time: an exclusive, non-blocking `flock` on `<state dir>/pruneguard.lock`,
//! held for the life of the [`RunLock`] and released by the kernel even if the process dies.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rustix::fs::{FlockOperation, flock};

pub const LOCK_FILE_NAME: &str = "pruneguard.lock";

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

#[cfg(test)]
mod tests {
    use super::*;

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
