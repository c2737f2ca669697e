//! How one setting's text becomes a typed value, shared by every source so that a rule lives
//! in one place. Errors are sentence fragments; the caller names the key and the source.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::OutputFormat;

use super::layer::DiskPath;

/// A duration such as `24h`, `90m`, `30s`, `7d` or `0s`.
pub fn duration(text: &str) -> Result<Duration, String> {
    crate::cli::parse_duration(text)
}

/// A whole percentage from 0 to 100.
pub fn percent(value: i64) -> Result<u8, String> {
    u8::try_from(value)
        .ok()
        .filter(|percent| *percent <= 100)
        .ok_or_else(|| format!("{value} is not a percentage; use a whole number from 0 to 100"))
}

/// A size as `4MiB`, `512KiB`, `1GiB` or plain bytes (binary units, as the README writes them).
pub fn size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "GiB" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "{text:?} is not a size; write it as 4MiB, 512KiB or 1GiB"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(multiplier))
        .ok_or_else(|| format!("{text:?} is not a size; write it as 4MiB, 512KiB or 1GiB"))
}

/// A size as [`size`] reads it back: the largest binary unit that divides it.
pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// [`percent`] from text (the environment).
pub fn percent_text(text: &str) -> Result<u8, String> {
    let value = text
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{text:?} is not a percentage; use a whole number from 0 to 100"))?;
    percent(value)
}

/// A path in the config file: absolute, because the file is read from wherever pruneguard runs.
pub fn absolute_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!(
            "{} is not an absolute path; write it from /",
            path.display()
        ))
    }
}

/// A path on the command line or in the environment: relative to where the command runs.
/// Resolving it here keeps `pruneguard config`'s output loadable as a file.
pub fn from_cwd(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The disk gate's path from the command line or the environment: `auto` or a path.
pub fn disk_path_from_cwd(path: &Path) -> DiskPath {
    if path == Path::new("auto") {
        DiskPath::Auto
    } else {
        DiskPath::Path(from_cwd(path))
    }
}

/// `gates.disk.paths` from the environment: `:`-separated, as `PATH` is (empty items are
/// skipped), each `auto` or a path.
pub fn disk_paths_from_cwd(text: &str) -> Result<Vec<DiskPath>, String> {
    let paths: Vec<DiskPath> = text
        .split(':')
        .filter(|item| !item.trim().is_empty())
        .map(|item| disk_path_from_cwd(Path::new(item)))
        .collect();
    non_empty_disk_paths(paths)
}

/// A disk path list must name something: an empty one would measure nothing.
pub fn non_empty_disk_paths(paths: Vec<DiskPath>) -> Result<Vec<DiskPath>, String> {
    if paths.is_empty() {
        Err("an empty list measures nothing; write [\"auto\"] for the filesystems of the engine's image data".to_string())
    } else {
        Ok(paths)
    }
}

/// One item of `gates.disk.paths` in the config file: `auto` or an absolute path.
pub fn disk_path(text: &str) -> Result<DiskPath, String> {
    if text == "auto" {
        Ok(DiskPath::Auto)
    } else {
        absolute_path(text).map(DiskPath::Path)
    }
}

/// A lock file in the config file: absolute, since a relative one would silently be looked
/// for wherever the command happens to run.
pub fn lock_file(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        Err("an empty path; remove it or name the lock file".to_string())
    } else {
        absolute_path(text)
    }
}

/// `text` or `json`.
pub fn output_format(text: &str) -> Result<OutputFormat, String> {
    match text.trim() {
        "text" => Ok(OutputFormat::Text),
        "json" => Ok(OutputFormat::Json),
        other => Err(format!(
            "{other:?} is not a report format; write text or json"
        )),
    }
}

/// A yes/no value in the environment.
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a yes/no value; write true or false"
        )),
    }
}

pub use crate::human::format_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units_and_print_back() {
        for (text, bytes) in [
            ("4MiB", 4 << 20),
            ("512KiB", 512 << 10),
            ("1GiB", 1 << 30),
            ("1000", 1000),
            ("7B", 7),
        ] {
            assert_eq!(size(text), Ok(bytes), "{text}");
            assert_eq!(size(&format_size(bytes)), Ok(bytes), "{text}");
        }
        for bad in ["", "4MB", "4 mb", "-1MiB", "MiB", "99999999999999999999GiB"] {
            assert!(size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_print_as_the_readme_writes_them_and_parse_back() {
        for (duration, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(24 * 3600), "24h"),
            (Duration::from_secs(36 * 3600), "36h"),
            (Duration::from_secs(7 * 86_400), "7d"),
            (Duration::from_secs(2 * 86_400), "48h"),
            (Duration::from_secs(30 * 86_400), "30d"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(90 * 60), "90m"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90 * 60 + 7), "5407s"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_micros(3), "3us"),
            (Duration::from_nanos(7), "7ns"),
        ] {
            assert_eq!(format_duration(duration), text);
            assert_eq!(self::duration(text), Ok(duration), "{text}");
        }
    }

    #[test]
    fn percentages_and_booleans() {
        assert_eq!(percent_text(" 100 "), Ok(100));
        assert!(percent_text("101").is_err());
        assert!(percent_text("-1").is_err());
        assert!(percent_text("8O").is_err());
        assert_eq!(boolean("Yes"), Ok(true));
        assert_eq!(boolean("0"), Ok(false));
        assert!(boolean("maybe").is_err());
    }
}
