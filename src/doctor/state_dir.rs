//! The `state_dir` check: can pruneguard create and write its state directory (the lock and
//! the last run's record live there)?

use std::path::Path;

use super::{Check, CheckName};

const NAME: CheckName = CheckName::StateDir;

/// What trying the state directory showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateDirProbe {
    Writable {
        created: bool,
    },
    NotADirectory,
    /// A run would refuse it: a symlink, or writable by others it does not belong to.
    Refused(String),
    CannotCreate(String),
    NotWritable(String),
}

/// Creates the directory if missing, then writes and removes a temp file in it.
pub fn probe(dir: &Path) -> StateDirProbe {
    let created = match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() || meta.is_dir() => {
            let euid = rustix::process::geteuid().as_raw();
            if let Some(problem) = crate::state::state_dir_problem(dir, &meta, euid) {
                return StateDirProbe::Refused(problem);
            }
            false
        }
        Ok(_) => return StateDirProbe::NotADirectory,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if let Err(error) = std::fs::create_dir_all(dir) {
                return StateDirProbe::CannotCreate(error.to_string());
            }
            true
        }
        Err(error) => return StateDirProbe::NotWritable(error.to_string()),
    };
    match tempfile::Builder::new()
        .prefix(".pruneguard-doctor-")
        .tempfile_in(dir)
    {
        // Dropping the temp file closes and deletes it.
        Ok(file) => match file.close() {
            Ok(()) => StateDirProbe::Writable { created },
            Err(error) => StateDirProbe::NotWritable(error.to_string()),
        },
        Err(error) => StateDirProbe::NotWritable(error.to_string()),
    }
}

/// The `state_dir` check for `dir` from what [`probe`] found.
pub fn check(dir: &Path, probe: &StateDirProbe) -> Check {
    let fix = format!(
        "create it writable for the user that runs pruneguard (`install -d -m 0750 {}`), or \
         choose another with --state-dir / `state.dir`",
        dir.display()
    );
    match probe {
        StateDirProbe::Writable { created: false } => {
            Check::ok(NAME, format!("{} exists and is writable", dir.display()))
        }
        StateDirProbe::Writable { created: true } => Check::ok(
            NAME,
            format!(
                "{} did not exist; created it, and it is writable",
                dir.display()
            ),
        ),
        StateDirProbe::NotADirectory => Check::warn(
            NAME,
            format!("{} exists but is not a directory", dir.display()),
            fix,
        ),
        StateDirProbe::Refused(problem) => Check::fail(NAME, problem.clone(), fix),
        StateDirProbe::CannotCreate(reason) => Check::warn(
            NAME,
            format!(
                "{} does not exist and cannot be created: {reason}",
                dir.display()
            ),
            fix,
        ),
        StateDirProbe::NotWritable(reason) => Check::warn(
            NAME,
            format!("{} is not writable: {reason}", dir.display()),
            fix,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn state_dir_probe_creates_and_leaves_nothing() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a/b");
        assert_eq!(probe(&dir), StateDirProbe::Writable { created: true });
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0);
        assert_eq!(probe(&dir), StateDirProbe::Writable { created: false });
        let file = root.path().join("file");
        std::fs::write(&file, "").expect("write");
        assert_eq!(probe(&file), StateDirProbe::NotADirectory);
        let check = check(&file, &StateDirProbe::NotADirectory);
        assert_eq!(check.status, Status::Warn);
        assert!(check.fix.contains("--state-dir"));
    }

    #[test]
    fn a_symlinked_state_dir_fails_the_check_as_a_run_would_refuse_it() {
        let root = tempfile::tempdir().expect("tempdir");
        let real = root.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let probed = probe(&link);
        assert!(matches!(probed, StateDirProbe::Refused(_)), "{probed:?}");
        assert_eq!(check(&link, &probed).status, Status::Fail);
        assert!(crate::state::RunLock::acquire(&link).is_err());
    }
}
