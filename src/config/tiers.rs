//! The `[tiers.*]` settings (issue 13): the file's tables, the `--tier` flag, their layer,
//! the rules between keys (low below high, ranges), and the effective file's tables. Kept in
//! one file so that the rest of `config` only gains a field and a call per source.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::policy::Pattern;
use crate::tiers::{
    BuildCacheSettings, DEFAULT_HIGH_PERCENT, DEFAULT_KEEP_FOR, DEFAULT_KEEP_NEWEST,
    DEFAULT_LOW_PERCENT, DEFAULT_UNUSED_FOR, KEEP_NEWEST_RANGE, TierName, TierSettings,
    UnusedTaggedSettings,
};

use super::ConfigError;
use super::layer::{Source, Sourced};
use super::ranges::DurationRange;
use super::values::{self, format_duration};

const DAY: u64 = 24 * 3600;

pub const UNUSED_FOR: DurationRange = DurationRange {
    key: "tiers.unused_tagged.unused_for",
    min: Duration::ZERO,
    max: Duration::from_secs(3650 * DAY),
    default: DEFAULT_UNUSED_FOR,
    why: "older than ten years means nothing would ever qualify",
};

pub const KEEP_FOR: DurationRange = DurationRange {
    key: "tiers.build_cache.keep_for",
    min: Duration::ZERO,
    max: Duration::from_secs(3650 * DAY),
    default: DEFAULT_KEEP_FOR,
    why: "older than ten years means nothing would ever qualify",
};

type Text = Option<Spanned<String>>;
type List = Option<Spanned<Vec<Spanned<String>>>>;
type Int = Option<Spanned<i64>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileTiers {
    unused_tagged: FileUnusedTagged,
    build_cache: FileBuildCache,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileUnusedTagged {
    enabled: Option<Spanned<bool>>,
    high_percent: Int,
    low_percent: Int,
    unused_for: Text,
    include: List,
    keep: List,
    keep_newest: Int,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileBuildCache {
    enabled: Option<Spanned<bool>>,
    keep_for: Text,
    keep_storage: Text,
}

/// One source's `[tiers.*]` values.
#[derive(Debug, Clone, Default)]
pub struct TiersLayer {
    pub unused_tagged_enabled: Option<Sourced<bool>>,
    pub high_percent: Option<Sourced<u8>>,
    pub low_percent: Option<Sourced<u8>>,
    pub unused_for: Option<Sourced<Duration>>,
    pub include: Option<Sourced<Vec<Pattern>>>,
    pub keep: Option<Sourced<Vec<Pattern>>>,
    pub keep_newest: Option<Sourced<u32>>,
    pub build_cache_enabled: Option<Sourced<bool>>,
    pub keep_for: Option<Sourced<Duration>>,
    pub keep_storage: Option<Sourced<u64>>,
}

impl TiersLayer {
    /// This layer's values over `lower`'s, key by key.
    #[must_use]
    pub fn or(self, lower: Self) -> Self {
        Self {
            unused_tagged_enabled: self.unused_tagged_enabled.or(lower.unused_tagged_enabled),
            high_percent: self.high_percent.or(lower.high_percent),
            low_percent: self.low_percent.or(lower.low_percent),
            unused_for: self.unused_for.or(lower.unused_for),
            include: self.include.or(lower.include),
            keep: self.keep.or(lower.keep),
            keep_newest: self.keep_newest.or(lower.keep_newest),
            build_cache_enabled: self.build_cache_enabled.or(lower.build_cache_enabled),
            keep_for: self.keep_for.or(lower.keep_for),
            keep_storage: self.keep_storage.or(lower.keep_storage),
        }
    }
}

/// How the file layer parses one value or list (the file module's `Lines`), so that errors
/// name the file and line.
pub trait FileValues {
    fn value<R, T>(
        &self,
        key: &str,
        raw: Option<Spanned<R>>,
        parse: impl FnOnce(R) -> Result<T, String>,
    ) -> Result<Option<Sourced<T>>, ConfigError>;
    fn list<T>(
        &self,
        key: &str,
        raw: List,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Sourced<Vec<T>>>, ConfigError>;
}

/// The file's `[tiers.*]` tables as a layer.
pub fn file_layer(lines: &impl FileValues, raw: FileTiers) -> Result<TiersLayer, ConfigError> {
    let tagged = raw.unused_tagged;
    let cache = raw.build_cache;
    let duration = |text: String| values::duration(&text);
    Ok(TiersLayer {
        unused_tagged_enabled: lines.value("tiers.unused_tagged.enabled", tagged.enabled, Ok)?,
        high_percent: lines.value(
            "tiers.unused_tagged.high_percent",
            tagged.high_percent,
            values::percent,
        )?,
        low_percent: lines.value(
            "tiers.unused_tagged.low_percent",
            tagged.low_percent,
            values::percent,
        )?,
        unused_for: lines.value(
            "tiers.unused_tagged.unused_for",
            tagged.unused_for,
            duration,
        )?,
        include: lines.list("tiers.unused_tagged.include", tagged.include, Pattern::new)?,
        keep: lines.list("tiers.unused_tagged.keep", tagged.keep, Pattern::new)?,
        keep_newest: lines.value(
            "tiers.unused_tagged.keep_newest",
            tagged.keep_newest,
            keep_newest,
        )?,
        build_cache_enabled: lines.value("tiers.build_cache.enabled", cache.enabled, Ok)?,
        keep_for: lines.value("tiers.build_cache.keep_for", cache.keep_for, duration)?,
        keep_storage: lines.value(
            "tiers.build_cache.keep_storage",
            cache.keep_storage,
            |text| values::size(&text),
        )?,
    })
}

fn keep_newest(value: i64) -> Result<u32, String> {
    u32::try_from(value)
        .ok()
        .filter(|count| KEEP_NEWEST_RANGE.contains(count))
        .ok_or_else(|| {
            format!(
                "{value} is not a number of images to keep; use a whole number from {} to {} (the newest image of a repository is always kept)",
                KEEP_NEWEST_RANGE.start(),
                KEEP_NEWEST_RANGE.end()
            )
        })
}

/// The flags' layer: `--tier NAME` (repeatable) enables that tier for one run.
pub fn flag_layer(names: &[String]) -> Result<TiersLayer, ConfigError> {
    let mut layer = TiersLayer::default();
    let source = Source::Flag("--tier");
    for name in names {
        let tier = TierName::parse_opt_in(name)
            .map_err(|problem| ConfigError(format!("--tier: {problem}.")))?;
        let enabled = Some(Sourced::new(true, source.clone()));
        match tier {
            TierName::UnusedTagged => layer.unused_tagged_enabled = enabled,
            TierName::BuildCache => layer.build_cache_enabled = enabled,
            TierName::Dangling => {}
        }
    }
    Ok(layer)
}

/// The final tier settings, with the rules between keys checked.
pub fn combine(
    layer: TiersLayer,
    in_range: impl Fn(Option<Sourced<Duration>>, &DurationRange) -> Result<Duration, ConfigError>,
) -> Result<TierSettings, ConfigError> {
    let high = layer
        .high_percent
        .as_ref()
        .map_or(DEFAULT_HIGH_PERCENT, |percent| percent.value);
    let low = layer
        .low_percent
        .as_ref()
        .map_or(DEFAULT_LOW_PERCENT, |percent| percent.value);
    if low >= high {
        // Name the key that was set; when both were, the low one.
        let (source, key) = match (&layer.low_percent, &layer.high_percent) {
            (Some(low), _) => (low.source.clone(), "tiers.unused_tagged.low_percent"),
            (None, Some(high)) => (high.source.clone(), "tiers.unused_tagged.high_percent"),
            (None, None) => unreachable_defaults(),
        };
        return Err(ConfigError::at(
            &source,
            key,
            &format!(
                "low_percent ({low}) must be below high_percent ({high}): the tier starts at or above high_percent and stops at or below low_percent; lower low_percent or raise high_percent (defaults 80 and 85)"
            ),
        ));
    }
    let defaults = UnusedTaggedSettings::default();
    Ok(TierSettings {
        unused_tagged: UnusedTaggedSettings {
            enabled: layer
                .unused_tagged_enabled
                .is_some_and(|enabled| enabled.value),
            high_percent: high,
            low_percent: low,
            unused_for: in_range(layer.unused_for, &UNUSED_FOR)?,
            include: layer.include.map_or(defaults.include, |list| list.value),
            keep: layer.keep.map(|list| list.value).unwrap_or_default(),
            keep_newest: layer
                .keep_newest
                .map_or(DEFAULT_KEEP_NEWEST, |count| count.value),
        },
        build_cache: BuildCacheSettings {
            enabled: layer
                .build_cache_enabled
                .is_some_and(|enabled| enabled.value),
            keep_for: in_range(layer.keep_for, &KEEP_FOR)?,
            keep_storage: layer.keep_storage.map_or(0, |size| size.value),
        },
    })
}

/// The defaults (80 < 85) always satisfy the rule, so this is never reached; it returns a
/// harmless source rather than panicking.
fn unreachable_defaults() -> (Source, &'static str) {
    (
        Source::Flag("(defaults)"),
        "tiers.unused_tagged.low_percent",
    )
}

/// The effective file's `[tiers.*]` tables: (table, [(key, value)]).
pub fn render(tiers: &TierSettings) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let string = |text: &str| toml::Value::String(text.to_string()).to_string();
    let list = |patterns: &[Pattern]| {
        let items: Vec<String> = patterns.iter().map(|p| string(&p.text)).collect();
        format!("[{}]", items.join(", "))
    };
    let tagged = &tiers.unused_tagged;
    let cache = &tiers.build_cache;
    vec![
        (
            "tiers.unused_tagged",
            vec![
                ("enabled", tagged.enabled.to_string()),
                ("high_percent", tagged.high_percent.to_string()),
                ("low_percent", tagged.low_percent.to_string()),
                ("unused_for", string(&format_duration(tagged.unused_for))),
                ("include", list(&tagged.include)),
                ("keep", list(&tagged.keep)),
                ("keep_newest", tagged.keep_newest.to_string()),
            ],
        ),
        (
            "tiers.build_cache",
            vec![
                ("enabled", cache.enabled.to_string()),
                ("keep_for", string(&format_duration(cache.keep_for))),
                (
                    "keep_storage",
                    string(&values::format_size(cache.keep_storage)),
                ),
            ],
        ),
    ]
}
