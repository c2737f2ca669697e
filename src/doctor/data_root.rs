//! The `data_root` check: is Docker's data root (its image cache) on storage that survives a
//! reboot? A tmpfs, or an overlay whose upper dir is on one, loses every image at boot.

use std::path::Path;

use tracing::debug;

use super::daemon::DaemonProbe;
use super::mountinfo::{self, FsLocation, is_volatile};
use super::{Check, CheckName};
use crate::model::DaemonInfo;

const NAME: CheckName = CheckName::DataRoot;

/// What doctor could find out locally about the daemon's data root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootProbe {
    /// No daemon answered, so the data root is not known.
    DaemonUnreachable,
    /// The daemon did not say (`DockerRootDir` empty).
    NotReported,
    /// The daemon is on another machine: its path means nothing here.
    Remote { endpoint: String },
    /// The path does not exist here.
    Missing,
    /// The path exists but could not be examined.
    Inaccessible(String),
    /// Found in the mount table.
    Located(FsLocation),
    /// The mount table was unreadable; `statfs` names the type (overlay upper unknown).
    TypeOnly(String),
}

/// Gathers the [`RootProbe`]: canonical path, then `/proc/self/mountinfo`, else `statfs`.
pub fn probe(daemon: &DaemonProbe) -> RootProbe {
    let endpoint = daemon.endpoint.as_str();
    let Ok(info) = &daemon.info else {
        return RootProbe::DaemonUnreachable;
    };
    let Some(root) = info
        .docker_root_dir
        .as_deref()
        .filter(|dir| !dir.is_empty())
    else {
        return RootProbe::NotReported;
    };
    if is_remote(endpoint) {
        return RootProbe::Remote {
            endpoint: endpoint.to_string(),
        };
    }
    let path = match std::fs::canonicalize(root) {
        Ok(path) => path,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return RootProbe::Missing,
        Err(error) => return RootProbe::Inaccessible(error.to_string()),
    };
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => match mountinfo::locate(&text, &path) {
            Some(location) => RootProbe::Located(location),
            None => type_only(&path),
        },
        Err(error) => {
            debug!("cannot read /proc/self/mountinfo: {error}");
            type_only(&path)
        }
    }
}

fn type_only(path: &Path) -> RootProbe {
    match crate::disk::usage(path) {
        Ok(usage) => RootProbe::TypeOnly(usage.fs_type),
        Err(error) => RootProbe::Inaccessible(format!("{error:#}")),
    }
}

/// A TCP endpoint to anything but this machine.
pub fn is_remote(endpoint: &str) -> bool {
    let Some(rest) = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .or_else(|| endpoint.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    !matches!(host, "localhost" | "127.0.0.1" | "::1" | "") && !host.starts_with("127.")
}

/// The `data_root` check from the daemon's answer (for the path and storage driver) and
/// what [`probe`] found.
pub fn check(info: Option<&DaemonInfo>, probe: &RootProbe) -> Check {
    let root = info
        .and_then(|info| info.docker_root_dir.as_deref())
        .unwrap_or("?");
    let driver = format!(
        "storage driver {}",
        info.and_then(|info| info.storage_driver.as_deref())
            .filter(|driver| !driver.is_empty())
            .unwrap_or("?")
    );
    let move_it = "move Docker's data root to a persistent filesystem (`data-root` in \
                   /etc/docker/daemon.json; on NixOS `virtualisation.docker.daemon.settings.data-root`)";
    match probe {
        RootProbe::DaemonUnreachable => Check::warn(
            NAME,
            "daemon unreachable: the data root is not known, so it was not checked",
            "fix the daemon check, then run doctor again",
        ),
        RootProbe::NotReported => Check::warn(
            NAME,
            format!("the daemon did not report its data root (DockerRootDir); {driver}"),
            "check `docker info`; run doctor on the Docker host itself",
        ),
        RootProbe::Remote { endpoint } => Check::warn(
            NAME,
            format!(
                "the daemon at {endpoint} is on another machine, so its data root {root} was not \
                 checked; {driver}"
            ),
            "run pruneguard doctor on the Docker host itself",
        ),
        RootProbe::Missing => Check::warn(
            NAME,
            format!(
                "the data root {root} does not exist on this machine (a remote daemon, or another \
                 mount namespace?), so its filesystem was not checked; {driver}"
            ),
            "run pruneguard doctor on the Docker host itself, outside any container",
        ),
        RootProbe::Inaccessible(reason) => Check::warn(
            NAME,
            format!("cannot examine the data root {root}: {reason}; {driver}"),
            "run doctor as root (or as the user that runs pruneguard)",
        ),
        RootProbe::TypeOnly(fs_type) if is_volatile(fs_type) => Check::fail(
            NAME,
            format!(
                "{root} is on {fs_type}, which is emptied at every reboot: the image cache is lost \
                 and every deploy after a reboot pulls cold; {driver}"
            ),
            move_it,
        ),
        RootProbe::TypeOnly(fs_type) if fs_type == "overlay" => Check::warn(
            NAME,
            format!(
                "{root} is on overlay, and the mount table is unreadable, so whether its upper dir \
                 survives a reboot is unknown; {driver}"
            ),
            "run doctor where /proc/self/mountinfo is readable, or check the overlay's upperdir by hand",
        ),
        RootProbe::TypeOnly(fs_type) => {
            Check::ok(NAME, format!("{root} is on {fs_type}; {driver}"))
        }
        RootProbe::Located(location) if location.volatile() => Check::fail(
            NAME,
            format!(
                "{root} is on {}, which is emptied at every reboot: the image cache is lost and \
                 every deploy after a reboot pulls cold; {driver}",
                location.describe()
            ),
            move_it,
        ),
        RootProbe::Located(location) => Check::ok(
            NAME,
            format!("{root} is on {}; {driver}", location.describe()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;
    use crate::doctor::mountinfo::tests::MOUNTINFO;

    fn info(root: &str) -> DaemonInfo {
        DaemonInfo {
            server_version: "20.10.24".into(),
            api_version: "1.41".into(),
            docker_root_dir: Some(root.into()),
            storage_driver: Some("overlay2".into()),
            swarm: crate::model::SwarmNode::default(),
            image_store: crate::model::ImageStore::Classic,
            containerd_address: None,
        }
    }

    #[test]
    fn data_root_verdicts() {
        let located = |path: &str| {
            RootProbe::Located(mountinfo::locate(MOUNTINFO, Path::new(path)).expect(path))
        };
        let table = [
            (
                "/var/lib/docker",
                located("/var/lib/docker"),
                Status::Ok,
                "xfs (/dev/vdb at /var/lib/docker); storage driver overlay2",
            ),
            (
                "/dev/shm/docker",
                located("/dev/shm/docker"),
                Status::Fail,
                "tmpfs",
            ),
            (
                "/srv/live/docker",
                located("/srv/live/docker"),
                Status::Fail,
                "upper dir /run/live/upper on tmpfs",
            ),
            (
                "/srv/disk/docker",
                located("/srv/disk/docker"),
                Status::Ok,
                "upper dir /data/upper on btrfs",
            ),
            (
                "/var/lib/docker",
                RootProbe::Missing,
                Status::Warn,
                "does not exist on this machine",
            ),
            (
                "/var/lib/docker",
                RootProbe::Remote {
                    endpoint: "tcp://10.0.0.2:2375".into(),
                },
                Status::Warn,
                "another machine",
            ),
            (
                "/var/lib/docker",
                RootProbe::TypeOnly("tmpfs".into()),
                Status::Fail,
                "tmpfs",
            ),
            (
                "/var/lib/docker",
                RootProbe::TypeOnly("ext4".into()),
                Status::Ok,
                "ext4",
            ),
            (
                "/var/lib/docker",
                RootProbe::TypeOnly("overlay".into()),
                Status::Warn,
                "unknown",
            ),
            (
                "/var/lib/docker",
                RootProbe::Inaccessible("denied".into()),
                Status::Warn,
                "denied",
            ),
            ("", RootProbe::NotReported, Status::Warn, "did not report"),
        ];
        for (root, probe, status, expected) in table {
            let info = info(root);
            let check = check(Some(&info), &probe);
            assert_eq!(check.status, status, "{root}: {check:?}");
            assert!(check.detail.contains(expected), "{root}: {check:?}");
            assert!(check.detail.contains("overlay2"), "{check:?}");
            if status == Status::Fail {
                assert!(check.detail.contains("reboot") && check.fix.contains("data-root"));
            }
        }
        let unknown = check(None, &RootProbe::DaemonUnreachable);
        assert_eq!(unknown.status, Status::Warn);
        assert!(unknown.detail.contains("daemon unreachable"));
    }

    #[test]
    fn remote_endpoints() {
        for (endpoint, remote) in [
            ("unix:///var/run/docker.sock", false),
            ("tcp://127.0.0.1:2375", false),
            ("tcp://localhost:2375", false),
            ("tcp://[::1]:2375", false),
            ("tcp://10.0.0.2:2375", true),
            ("http://docker.example:2375/", true),
        ] {
            assert_eq!(is_remote(endpoint), remote, "{endpoint}");
        }
    }

    #[test]
    fn probe_without_a_daemon_knows_nothing() {
        let probe = DaemonProbe {
            endpoint: "unix:///nonexistent.sock".into(),
            info: Err(crate::engine::EngineError::PermissionDenied {
                endpoint: "unix:///nonexistent.sock".into(),
            }),
        };
        assert_eq!(super::probe(&probe), RootProbe::DaemonUnreachable);
    }
}
