//! The `state_dir` check: could a run create and write its state directory (the lock and the
//! last run's record live there)? Doctor only looks: it creates nothing and writes nothing, and
//! says what a run would create.

use std::path::{Path, PathBuf};

use rustix::fs::{Access, AtFlags, CWD};

use super::{Check, CheckName};

const NAME: CheckName = CheckName::StateDir;

/// What looking at the state directory showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateDirProbe {
    /// It exists, and this user may create files in it.
    Writable,
    /// It does not exist; a run would create it (mode 0755, with any missing parents) below
    /// this existing directory, which this user may write.
    WouldCreate {
        below: PathBuf,
    },
    NotADirectory,
    /// A run would refuse it: a symlink, or writable by others it does not belong to.
    Refused(String),
    CannotCreate(String),
    NotWritable(String),
}

/// May this process create entries in `dir`? Asked of the kernel (`faccessat`), which also
/// answers for read-only mounts, so that nothing has to be written to find out.
fn may_write(dir: &Path) -> Result<(), String> {
    rustix::fs::accessat(
        CWD,
        dir,
        Access::WRITE_OK | Access::EXEC_OK,
        AtFlags::empty(),
    )
    .map_err(|error| std::io::Error::from(error).to_string())
}

/// Looks at the directory, or, when it is missing, at the nearest existing parent a run would
/// create it in. Changes nothing.
pub fn probe(dir: &Path) -> StateDirProbe {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() || meta.is_dir() => {
            let euid = rustix::process::geteuid().as_raw();
            if let Some(problem) = crate::state::state_dir_problem(dir, &meta, euid) {
                return StateDirProbe::Refused(problem);
            }
            match may_write(dir) {
                Ok(()) => StateDirProbe::Writable,
                Err(reason) => StateDirProbe::NotWritable(reason),
            }
        }
        Ok(_) => StateDirProbe::NotADirectory,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let Some(below) = dir.ancestors().skip(1).find(|parent| parent.exists()) else {
                return StateDirProbe::CannotCreate("no parent directory exists".into());
            };
            if !below.is_dir() {
                return StateDirProbe::CannotCreate(format!(
                    "{} is not a directory",
                    below.display()
                ));
            }
            match may_write(below) {
                Ok(()) => StateDirProbe::WouldCreate {
                    below: below.to_path_buf(),
                },
                Err(reason) => StateDirProbe::CannotCreate(format!(
                    "{} is not writable: {reason}",
                    below.display()
                )),
            }
        }
        // A parent is a file: no run could create the directory.
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {
            StateDirProbe::CannotCreate(error.to_string())
        }
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
        StateDirProbe::Writable => {
            Check::ok(NAME, format!("{} exists and is writable", dir.display()))
        }
        StateDirProbe::WouldCreate { below } => Check::ok(
            NAME,
            format!(
                "{} does not exist; the first run will create it (mode 0755) in {}, which is writable; doctor created nothing",
                dir.display(),
                below.display()
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
    fn state_dir_probe_creates_nothing_and_says_what_a_run_would_create() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a/b");
        assert_eq!(
            probe(&dir),
            StateDirProbe::WouldCreate {
                below: root.path().to_path_buf()
            }
        );
        assert!(
            !root.path().join("a").exists(),
            "the probe created a directory"
        );
        let said = check(&dir, &probe(&dir));
        assert_eq!(said.status, Status::Ok);
        assert!(
            said.detail.contains("the first run will create it"),
            "{}",
            said.detail
        );
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert_eq!(probe(&dir), StateDirProbe::Writable);
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0);
        let file = root.path().join("file");
        std::fs::write(&file, "").expect("write");
        assert_eq!(probe(&file), StateDirProbe::NotADirectory);
        let check = check(&file, &StateDirProbe::NotADirectory);
        assert_eq!(check.status, Status::Warn);
        assert!(check.fix.contains("--state-dir"));
        // Below a file, the directory cannot be created.
        let under_file = file.join("state");
        assert!(matches!(probe(&under_file), StateDirProbe::CannotCreate(_)));
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
