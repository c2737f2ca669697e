//! Reading `/proc/PID/mountinfo` (proc(5)): which filesystem holds a path, following overlay
//! upper directories. Pure text in, plain values out; the `data_root` check reads the file.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

use super::or_unknown;

/// How many overlay upper dirs [`locate`] follows (an overlay on an overlay on …).
const MAX_OVERLAY_DEPTH: usize = 4;

/// One line of mountinfo, the fields doctor needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

impl Mount {
    /// An overlay's upper directory (`upperdir=` in its super options), unescaped.
    pub fn upper_dir(&self) -> Option<PathBuf> {
        if self.fs_type != "overlay" {
            return None;
        }
        self.super_options
            .split(',')
            .find_map(|option| option.strip_prefix("upperdir="))
            .map(|dir| PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(dir))))
    }
}

/// Parses mountinfo: `ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE
/// SUPER-OPTIONS`. Malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let separator = fields.iter().skip(6).position(|field| *field == "-")? + 6;
            let mount_point = fields.get(4)?;
            let fs_type = fields.get(separator + 1)?;
            Some(Mount {
                mount_point: PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(
                    mount_point,
                ))),
                fs_type: (*fs_type).to_string(),
                source: fields
                    .get(separator + 2)
                    .map(|source| String::from_utf8_lossy(&unescape_octal(source)).into_owned())
                    .unwrap_or_default(),
                super_options: fields.get(separator + 3).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The kernel escapes space, tab, newline and backslash in mountinfo as `\ooo`.
fn unescape_octal(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).filter(|digits| {
            bytes[index] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        if let Some(digits) = octal {
            let value = digits
                .iter()
                .fold(0_u32, |value, digit| value * 8 + u32::from(digit - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            index += 4;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    out
}

/// The mount holding `path`: the longest mount point that is a prefix of it (whole
/// components); among equal ones the last, which is mounted over the others.
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let mut best: Option<(usize, &Mount)> = None;
    for mount in mounts {
        if path.starts_with(&mount.mount_point) {
            let depth = mount.mount_point.components().count();
            if best.is_none_or(|(best_depth, _)| depth >= best_depth) {
                best = Some((depth, mount));
            }
        }
    }
    best.map(|(_, mount)| mount)
}

/// Filesystems whose contents are gone after a reboot. `rootfs` is the initramfs's.
pub fn is_volatile(fs_type: &str) -> bool {
    matches!(fs_type, "tmpfs" | "ramfs" | "rootfs")
}

/// Where a path's data lives, as the mount table tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsLocation {
    pub fs_type: String,
    pub mount_point: PathBuf,
    pub source: String,
    /// For an overlay: its upper directory and where that lives (`None` when not found).
    pub upper: Option<(PathBuf, Option<Box<FsLocation>>)>,
}

impl FsLocation {
    /// The data is lost at reboot: a volatile filesystem, or an overlay whose writes go to one.
    pub fn volatile(&self) -> bool {
        is_volatile(&self.fs_type)
            || self
                .upper
                .as_ref()
                .and_then(|(_, location)| location.as_deref())
                .is_some_and(Self::volatile)
    }

    /// `TYPE (SOURCE at MOUNT-POINT)`, then the upper dir's location for an overlay.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} ({} at {})",
            self.fs_type,
            or_unknown(&self.source),
            self.mount_point.display()
        );
        if let Some((dir, location)) = &self.upper {
            let _ = write!(text, ", upper dir {} on ", dir.display());
            match location {
                Some(location) => text.push_str(&location.describe()),
                None => text.push_str("an unknown filesystem"),
            }
        }
        text
    }
}

/// Locates `path` (already canonical) in a mountinfo text, following overlay upper dirs.
pub fn locate(mountinfo: &str, path: &Path) -> Option<FsLocation> {
    locate_in(&parse(mountinfo), path, 0)
}

fn locate_in(mounts: &[Mount], path: &Path, depth: usize) -> Option<FsLocation> {
    let mount = mount_of(mounts, path)?;
    let upper = if depth < MAX_OVERLAY_DEPTH {
        mount.upper_dir().map(|dir| {
            let location = locate_in(mounts, &dir, depth + 1).map(Box::new);
            (dir, location)
        })
    } else {
        None
    };
    Some(FsLocation {
        fs_type: mount.fs_type.clone(),
        mount_point: mount.mount_point.clone(),
        source: mount.source.clone(),
        upper,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A mount table with every case the data root check cares about; also used by its tests.
    pub(in crate::doctor) const MOUNTINFO: &str = "\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw,size=24684096k
25 22 0:23 / /run rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,mode=755
26 22 252:16 / /var/lib/docker rw,relatime shared:5 - xfs /dev/vdb rw,attr2
27 22 0:24 / /mnt/ram rw,relatime shared:6 - ramfs ramfs rw
28 22 0:25 / /srv/live rw,relatime shared:7 - overlay overlay rw,lowerdir=/ro,upperdir=/run/live/upper,workdir=/run/live/work
29 22 0:26 / /srv/disk rw,relatime shared:8 - overlay overlay rw,lowerdir=/ro,upperdir=/data/upper,workdir=/data/work
30 22 0:27 / /data/my\\040docker rw,relatime shared:9 - tmpfs tmpfs rw
31 22 0:28 / /data rw,relatime shared:10 - btrfs /dev/vdc rw
32 22 0:29 / /stacked rw,relatime - ext4 /dev/vdd rw
33 32 0:30 / /stacked rw,relatime - tmpfs tmpfs rw
34 22 0:31 / /nested rw - overlay overlay rw,lowerdir=/ro,upperdir=/srv/live/u,workdir=/srv/live/w
35 22 0:32 / /weird\\054dir rw - overlay overlay rw,lowerdir=/ro,upperdir=/dev/shm/a\\054b,workdir=/dev/shm/w
";

    #[test]
    fn parses_mountinfo_lines() {
        let mounts = parse(MOUNTINFO);
        assert_eq!(mounts.len(), 14);
        assert_eq!(mounts[0].mount_point, Path::new("/"));
        assert_eq!(mounts[0].fs_type, "ext4");
        assert_eq!(mounts[0].source, "/dev/vda");
        assert_eq!(mounts[8].mount_point, Path::new("/data/my docker"));
        assert_eq!(
            mounts[6].upper_dir(),
            Some(PathBuf::from("/run/live/upper"))
        );
        assert_eq!(mounts[13].upper_dir(), Some(PathBuf::from("/dev/shm/a,b")));
        assert_eq!(mounts[0].upper_dir(), None);
        // Optional fields may be absent, and garbage is skipped.
        assert_eq!(parse("garbage\n1 2 3\n").len(), 0);
    }

    #[test]
    fn locates_the_filesystem_of_a_path() {
        // (path, fs type, mount point, volatile)
        let table = [
            ("/var/lib/docker", "xfs", "/var/lib/docker", false),
            ("/var/lib/docker/overlay2", "xfs", "/var/lib/docker", false),
            ("/var/lib/dockerd", "ext4", "/", false),
            ("/home/docker", "ext4", "/", false),
            ("/dev/shm/docker", "tmpfs", "/dev/shm", true),
            ("/mnt/ram/docker", "ramfs", "/mnt/ram", true),
            ("/srv/live/docker", "overlay", "/srv/live", true),
            ("/srv/disk/docker", "overlay", "/srv/disk", false),
            ("/data/my docker/x", "tmpfs", "/data/my docker", true),
            ("/data/my", "btrfs", "/data", false),
            ("/stacked/docker", "tmpfs", "/stacked", true),
            ("/nested/docker", "overlay", "/nested", true),
            ("/weird,dir/docker", "overlay", "/weird,dir", true),
        ];
        for (path, fs_type, mount_point, volatile) in table {
            let location = locate(MOUNTINFO, Path::new(path)).expect(path);
            assert_eq!(location.fs_type, fs_type, "{path}");
            assert_eq!(location.mount_point, Path::new(mount_point), "{path}");
            assert_eq!(location.volatile(), volatile, "{path}: {location:?}");
        }
        let disk = locate(MOUNTINFO, Path::new("/srv/disk/docker")).expect("found");
        let (upper, on) = disk.upper.expect("overlay has an upper dir");
        assert_eq!(upper, Path::new("/data/upper"));
        assert_eq!(on.expect("upper located").fs_type, "btrfs");
        assert_eq!(locate("", Path::new("/var/lib/docker")), None);
    }
}
