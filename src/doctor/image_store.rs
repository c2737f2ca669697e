//! The `image_store` check: which image store the daemon uses (classic or containerd), and
//! where its image data lives: the filesystems the disk gate measures, each with its type and
//! Use%. On the containerd store it also names containerd's root and how it was found, and says
//! that image sizes are the engine's figures (content plus unpacked snapshot).

use std::path::PathBuf;

use super::daemon::DaemonProbe;
use super::{Check, CheckName};
use crate::config::Settings;
use crate::containerd::{self, ContainerdRoot};
use crate::model::{DaemonInfo, DiskObservation, ImageStore};
use crate::policy::DiskPath;

const NAME: CheckName = CheckName::ImageStore;

/// What doctor found out about the image store and its filesystems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreProbe {
    /// No daemon answered.
    DaemonUnreachable,
    Found {
        store: ImageStore,
        /// The paths the disk gate measures, once per filesystem.
        measured: Vec<DiskObservation>,
        /// On the containerd store (data root on this machine): containerd's root.
        containerd_root: Option<ContainerdRoot>,
        /// That root exists on this machine (else `auto` leaves it out).
        containerd_root_here: bool,
        /// `gates.disk.paths` includes `auto`.
        auto: bool,
    },
}

/// Resolves the disk gate's paths as a run would, and measures them.
pub fn probe(daemon: &DaemonProbe, settings: &Settings) -> StoreProbe {
    let Ok(info) = &daemon.info else {
        return StoreProbe::DaemonUnreachable;
    };
    let paths = crate::snapshot::disk_paths(settings, info);
    let containerd_root = containerd_root(info);
    let containerd_root_here = containerd_root
        .as_ref()
        .is_some_and(|root| !matches!(root.path.try_exists(), Ok(false)));
    StoreProbe::Found {
        store: info.image_store,
        measured: crate::disk::usage_of_each(&paths),
        containerd_root,
        containerd_root_here,
        auto: settings.policy.gates.disk.paths.contains(&DiskPath::Auto),
    }
}

fn containerd_root(info: &DaemonInfo) -> Option<ContainerdRoot> {
    if info.image_store != ImageStore::Containerd {
        return None;
    }
    let data_root = PathBuf::from(info.docker_root_dir.as_deref()?);
    if matches!(data_root.try_exists(), Ok(false)) {
        return None;
    }
    Some(containerd::discover(
        &data_root,
        info.containerd_address.as_deref(),
    ))
}

/// The `image_store` check from the daemon's answer and what [`probe`] found.
pub fn check(info: Option<&DaemonInfo>, probe: &StoreProbe) -> Check {
    let StoreProbe::Found {
        store,
        measured,
        containerd_root,
        containerd_root_here,
        auto,
    } = probe
    else {
        return Check::warn(
            NAME,
            "daemon unreachable: the image store and where image data lives are not known",
            "fix the daemon check, then run doctor again",
        );
    };
    let driver = info
        .and_then(|info| info.storage_driver.as_deref())
        .filter(|driver| !driver.is_empty())
        .unwrap_or("?");
    let mut detail = match store {
        ImageStore::Classic => format!("classic image store (storage driver {driver})"),
        ImageStore::Containerd => format!("containerd image store (snapshotter {driver})"),
    };
    let places: Vec<String> = measured
        .iter()
        .map(|observed| match &observed.usage {
            Ok(usage) => format!(
                "{} ({}, {} % full)",
                usage.path.display(),
                usage.fs_type,
                usage.used_percent
            ),
            Err(error) => format!("{} (cannot be measured: {error})", observed.path.display()),
        })
        .collect();
    detail.push_str(&format!(
        "; the disk gate measures {}",
        match places.as_slice() {
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
            [] => "nothing".to_string(),
        }
    ));
    if let Some(root) = containerd_root {
        detail.push_str(&format!(
            "\ncontainerd's root: {} ({})",
            root.path.display(),
            root.source.describe()
        ));
    }
    detail.push_str(match store {
        ImageStore::Classic => "\nimage sizes are the engine's figures",
        ImageStore::Containerd => {
            "\nimage sizes are the engine's figures: on this store they count the stored \
             content plus the unpacked snapshot (about twice the classic store's figure)"
        }
    });
    if measured.iter().any(|observed| observed.usage.is_err()) {
        return Check::warn(
            NAME,
            detail,
            "run doctor as the user that runs pruneguard (root or the docker group), or fix \
             gates.disk.paths",
        );
    }
    if let Some(root) = containerd_root
        && *auto
        && !containerd_root_here
    {
        return Check::warn(
            NAME,
            format!(
                "{detail}\ncontainerd's root {} does not exist on this machine, so the disk gate \
                 measures only the data root",
                root.path.display()
            ),
            "name the filesystem of containerd's root in gates.disk.paths (--disk-path), \
             e.g. paths = [\"auto\", \"/srv/containerd\"]",
        );
    }
    Check::ok(NAME, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containerd::RootSource;
    use crate::doctor::Status;
    use crate::model::{DiskUsage, RawCounts};

    fn usage(path: &str, percent: u64) -> DiskObservation {
        DiskObservation {
            path: path.into(),
            usage: Ok(DiskUsage::from_counts(
                path.into(),
                "ext4".into(),
                RawCounts {
                    total_bytes: 100,
                    free_bytes: 100 - percent,
                    available_bytes: 100 - percent,
                    ..RawCounts::default()
                },
            )),
        }
    }

    fn info(store: ImageStore, driver: &str) -> DaemonInfo {
        DaemonInfo {
            docker_root_dir: Some("/var/lib/docker".into()),
            storage_driver: Some(driver.into()),
            image_store: store,
            ..DaemonInfo::default()
        }
    }

    #[test]
    fn image_store_verdicts() {
        let root = |path: &str, source| ContainerdRoot {
            path: path.into(),
            source,
        };
        // (store, measured, containerd root, root here, auto, status, phrases)
        let table = [
            (
                ImageStore::Classic,
                vec![usage("/var/lib/docker", 17)],
                None,
                false,
                true,
                Status::Ok,
                vec![
                    "classic image store (storage driver overlay2)",
                    "measures /var/lib/docker (ext4, 17 % full)",
                    "engine's figures",
                ],
            ),
            (
                ImageStore::Containerd,
                vec![
                    usage("/var/lib/docker", 17),
                    usage("/var/lib/containerd", 91),
                ],
                Some(root("/var/lib/containerd", RootSource::Default)),
                true,
                true,
                Status::Ok,
                vec![
                    "containerd image store (snapshotter overlayfs)",
                    "/var/lib/docker (ext4, 17 % full) and /var/lib/containerd (ext4, 91 % full)",
                    "containerd's root: /var/lib/containerd (containerd's default",
                    "unpacked snapshot",
                ],
            ),
            (
                ImageStore::Containerd,
                vec![usage("/var/lib/docker", 17)],
                Some(root(
                    "/var/lib/docker/containerd",
                    RootSource::ManagedByDockerd,
                )),
                true,
                true,
                Status::Ok,
                vec!["started by dockerd, under the data root"],
            ),
            (
                ImageStore::Containerd,
                vec![usage("/var/lib/docker", 17)],
                Some(root("/srv/ctr", RootSource::Config("/etc/c.toml".into()))),
                false,
                true,
                Status::Warn,
                vec!["/srv/ctr does not exist on this machine"],
            ),
            (
                ImageStore::Classic,
                vec![DiskObservation {
                    path: "/mnt/x".into(),
                    usage: Err("statvfs(/mnt/x) failed: denied".into()),
                }],
                None,
                false,
                false,
                Status::Warn,
                vec!["/mnt/x (cannot be measured: statvfs(/mnt/x) failed: denied)"],
            ),
        ];
        for (store, measured, containerd_root, here, auto, status, phrases) in table {
            let driver = if store == ImageStore::Classic {
                "overlay2"
            } else {
                "overlayfs"
            };
            let info = info(store, driver);
            let probe = StoreProbe::Found {
                store,
                measured,
                containerd_root,
                containerd_root_here: here,
                auto,
            };
            let check = check(Some(&info), &probe);
            assert_eq!(check.status, status, "{check:?}");
            for phrase in phrases {
                assert!(check.detail.contains(phrase), "{phrase:?} in {check:?}");
            }
        }
        let unknown = check(None, &StoreProbe::DaemonUnreachable);
        assert_eq!(unknown.status, Status::Warn);
    }
}
