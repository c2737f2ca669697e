//! Disk and inode usage of the filesystem that holds a path, computed the way `df` does.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

/// Usage of one filesystem, in bytes and inodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    pub path: PathBuf,
    pub fs_type: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub used_percent: u8,
    pub inodes_total: u64,
    pub inodes_used: u64,
    pub inodes_used_percent: Option<u8>,
}

impl DiskUsage {
    /// Builds usage from raw `statvfs` counts (block counts already multiplied out to bytes).
    pub fn from_counts(path: PathBuf, fs_type: String, counts: RawCounts) -> Self {
        let used_bytes = counts.total_bytes.saturating_sub(counts.free_bytes);
        let inodes_used = counts.inodes_total.saturating_sub(counts.inodes_free);
        Self {
            path,
            fs_type,
            size_bytes: counts.total_bytes,
            used_bytes,
            available_bytes: counts.available_bytes,
            used_percent: df_percent(used_bytes, counts.available_bytes).unwrap_or(0),
            inodes_total: counts.inodes_total,
            inodes_used,
            // Some filesystems (btrfs) report no inode counts at all.
            inodes_used_percent: df_percent(inodes_used, counts.inodes_available),
        }
    }

    /// Used fraction (0.0–1.0) on the same basis as `used_percent`, for metrics.
    #[allow(clippy::cast_precision_loss)] // a ratio for a gauge; sub-byte precision is irrelevant
    pub fn used_ratio(&self) -> f64 {
        let basis = self.used_bytes + self.available_bytes;
        if basis == 0 {
            0.0
        } else {
            self.used_bytes as f64 / basis as f64
        }
    }
}

/// Raw counts from `statvfs`, in bytes and inodes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCounts {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub available_bytes: u64,
    pub inodes_total: u64,
    pub inodes_free: u64,
    pub inodes_available: u64,
}

/// `df`'s Use%: used / (used + available), rounded up; reserved blocks count as neither.
/// `None` when there is nothing to measure (both zero).
pub fn df_percent(used: u64, available: u64) -> Option<u8> {
    let basis = u128::from(used) + u128::from(available);
    if basis == 0 {
        return None;
    }
    let percent = (u128::from(used) * 100).div_ceil(basis);
    // used <= basis, so the quotient is at most 100.
    Some(u8::try_from(percent).unwrap_or(100))
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
    #[allow(clippy::useless_conversion)] // f_type's width differs between targets
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
    fn measures_a_real_filesystem() {
        let usage = usage(Path::new("/")).expect("statvfs of / works");
        assert!(usage.size_bytes > 0);
        assert!(usage.used_percent <= 100);
        assert!(!usage.fs_type.is_empty());
    }
}
