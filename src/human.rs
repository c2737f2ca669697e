//! Formatting for people: coarse durations, byte sizes and Docker's short IDs. Pure functions,
//! shared by the gates' details, the plan's reasons and the report.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

/// Docker's 12-character short ID, without the `sha256:` prefix.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// Coarse `2d 7h`, `3m 12s`, `45s`-style durations for details: the two largest units.
pub fn human_seconds(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let mut parts = Vec::new();
    let mut rest = seconds;
    for (name, size) in units {
        let count = rest / size;
        rest %= size;
        if count > 0 || !parts.is_empty() {
            parts.push(format!("{count}{name}"));
        }
        if parts.len() == 2 {
            break;
        }
    }
    match parts.as_slice() {
        [] => "0s".to_string(),
        [first, second] if second.starts_with('0') => first.clone(),
        _ => parts.join(" "),
    }
}

/// `12.3 MiB`-style sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    #[expect(clippy::cast_precision_loss)] // display only
    let mut value = bytes as f64;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration as the README writes it: the largest unit that divides it exactly (`24h`,
/// `10m`, `30s`, `7d`, `1500ms`). Days only from a week up, so `24h` and `48h` stay as written.
pub fn format_duration(duration: std::time::Duration) -> String {
    const DAY: u128 = 86_400 * NANOS_PER_SECOND;
    const NANOS_PER_SECOND: u128 = 1_000_000_000;
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos.is_multiple_of(DAY) && nanos >= 7 * DAY {
        return format!("{}d", nanos / DAY);
    }
    for (unit, size) in [
        ("h", 3600 * NANOS_PER_SECOND),
        ("m", 60 * NANOS_PER_SECOND),
        ("s", NANOS_PER_SECOND),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if nanos.is_multiple_of(size) {
            return format!("{}{unit}", nanos / size);
        }
    }
    format!("{nanos}ns")
}
