//! Measuring the filesystem that holds a path (`statvfs`/`statfs`); the usage it returns and
//! df's arithmetic are plain data in [`crate::model::DiskUsage`]. [`usage_of_each`] measures
//! several paths once per filesystem.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::model::{DiskObservation, DiskUsage, RawCounts};

/// Measures each path's filesystem, once per filesystem: a path on the same device
/// (`st_dev`) as an earlier one is left out. A path that cannot be examined is kept, with
/// its error.
pub fn usage_of_each(paths: &[PathBuf]) -> Vec<DiskObservation> {
    let mut devices = HashSet::new();
    let mut observed = Vec::new();
    for path in paths {
        if let Ok(stat) = rustix::fs::stat(path)
            && !devices.insert(stat.st_dev)
        {
            continue;
        }
        observed.push(DiskObservation {
            path: path.clone(),
            usage: usage(path).map_err(|error| format!("{error:#}")),
        });
    }
    observed
}

/// Measures the filesystem holding `path`.
pub fn usage(path: &Path) -> anyhow::Result<DiskUsage> {
    let vfs =
        rustix::fs::statvfs(path).with_context(|| format!("statvfs({}) failed", path.display()))?;
    let fs =
        rustix::fs::statfs(path).with_context(|| format!("statfs({}) failed", path.display()))?;
    let block = vfs.f_frsize;
    let counts = RawCounts {
        total_bytes: vfs.f_blocks.saturating_mul(block),
        free_bytes: vfs.f_bfree.saturating_mul(block),
        available_bytes: vfs.f_bavail.saturating_mul(block),
        inodes_total: vfs.f_files,
        inodes_free: vfs.f_ffree,
        inodes_available: vfs.f_favail,
    };
    #[expect(clippy::useless_conversion)] // f_type's width differs between targets
    let magic = i64::from(fs.f_type);
    Ok(DiskUsage::from_counts(
        path.to_path_buf(),
        fs_type_name(magic),
        counts,
    ))
}

/// Names the filesystem types an operator is likely to meet; others are shown as hex magic.
pub fn fs_type_name(magic: i64) -> String {
    let name = match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlay",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x8584_58F6 => "ramfs",
        0xF2F5_2010 => "f2fs",
        _ => return format!("0x{magic:x}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::df_percent;

    #[test]
    fn df_percent_rounds_up_like_df() {
        // (used, available, expected): the boundary cases df users see.
        let table = [
            (0, 100, 0),
            (1, 999, 1),
            (79, 21, 79),
            (791, 209, 80),
            (80, 20, 80),
            (800, 201, 80),
            (99, 1, 99),
            (999, 1, 100),
            (100, 0, 100),
        ];
        for (used, available, expected) in table {
            assert_eq!(
                df_percent(used, available),
                Some(expected),
                "{used}/{available}"
            );
        }
        assert_eq!(df_percent(0, 0), None);
        assert_eq!(df_percent(u64::MAX, u64::MAX), Some(50));
    }

    #[test]
    fn reserved_blocks_are_not_counted_as_available() {
        // 1000 blocks, 300 free of which 50 reserved for root: used 700, available 250.
        let usage = DiskUsage::from_counts(
            "/".into(),
            "ext4".into(),
            RawCounts {
                total_bytes: 1000,
                free_bytes: 300,
                available_bytes: 250,
                ..RawCounts::default()
            },
        );
        assert_eq!(usage.used_bytes, 700);
        assert_eq!(usage.used_percent, 74); // ceil(700 / 950 * 100)
        assert_eq!(usage.inodes_used_percent, None);
    }

    #[test]
    fn paths_on_one_filesystem_are_measured_once() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let missing = dir.path().join("missing");
        let paths = [
            dir.path().to_path_buf(),
            sub,
            missing.clone(),
            PathBuf::from("/proc"),
        ];
        let observed = usage_of_each(&paths);
        let measured: Vec<&Path> = observed.iter().map(|o| o.path.as_path()).collect();
        assert_eq!(
            measured,
            [dir.path(), missing.as_path(), Path::new("/proc")],
            "sub is on the temp dir's filesystem; the missing path is kept with its error"
        );
        assert!(observed[0].usage.is_ok());
        assert!(observed[1].usage.as_ref().unwrap_err().contains("missing"));
    }

    #[test]
    fn measures_a_real_filesystem() {
        let usage = usage(Path::new("/")).expect("statvfs of / works");
        assert!(usage.size_bytes > 0);
        assert!(usage.used_percent <= 100);
        assert!(!usage.fs_type.is_empty());
    }
}
