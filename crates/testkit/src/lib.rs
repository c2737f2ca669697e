//! pruneguard's testkit (dev-only, never published): generates `docker load` archives of
//! distinct images without any registry, and returns their image IDs in-process.
//!
//! An [`ImageSet`] describes `count` images (creation time, tags, layers, labels, a parent
//! chain, a seed); [`ImageSet::write`] puts them all in one archive, and
//! [`ImageSet::write_per_image`] writes one archive per image (Podman and containerd's image
//! store load only one image per tag from an archive). The IDs are what Docker computes: the
//! sha256 of the exact config JSON bytes in the archive ([`image_id`]).
//!
//! ```no_run
//! use std::time::Duration;
//! let ids = testkit::ImageSet::new()
//!     .tag("demo/app:1")
//!     .count(3)
//!     .age(Duration::from_secs(3 * 86_400))
//!     .write("/tmp/old.tar".as_ref())
//!     .expect("the archive can be written");
//! assert_eq!(ids.len(), 3); // after `docker load`, ids[2] holds the tag, 0 and 1 dangle
//! ```
//!
//! The archive layout is the one `docker save` wrote before OCI layouts, which every
//! `docker load` since dockerd 20.10 accepts (see `archive.rs`). Multi-platform images with
//! attestations, for the containerd image store, are OCI image-layout archives ([`oci`]).
//!
//! For the benches' shell scripts (so that they need no Python) it also reads fields of JSON
//! reports ([`report`]), summarises bench/cycle.sh's records ([`cycle_summary`]) and creates
//! containers through the Engine API ([`containers`]).

mod archive;
pub mod containers;
pub mod cycle_summary;
mod image_config;
mod layer;
pub mod oci;
pub mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, SubsecRound as _, Utc};
use sha2::{Digest as _, Sha256};

pub use layer::RandomBytes;

/// Where `--busybox` looks for a statically linked busybox (Debian's busybox-static).
pub const BUSYBOX_CANDIDATES: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// The placeholder that [`ImageSet::tag_each`] and per-image archive paths replace with the
/// image's index (0-based, in manifest order).
pub const INDEX_PLACEHOLDER: &str = "{i}";

/// Which tags the images are listed under in the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tags {
    /// No tags at all: after loading, every image is dangling.
    None,
    /// Every image lists this `NAME:TAG`; loading in order leaves it on the last one and the
    /// others dangling (what repeated rebuilds of one tag leave behind).
    Shared(String),
    /// Each image gets its own tag: this pattern with [`INDEX_PLACEHOLDER`] replaced by its
    /// index, e.g. `bench/tagged:{i}`.
    Each(String),
}

/// When the images were created (the config's `created`, which `docker images` shows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// The moment of writing (whole seconds).
    Now,
    /// That long before the moment of writing (whole seconds).
    Ago(Duration),
    /// Exactly this time.
    At(DateTime<Utc>),
}

/// What the base layer, shared by every image of the set, holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    /// One tiny file: fast to load by the thousand; containers cannot run from it.
    Tiny,
    /// `/bin/busybox` (copied from this static binary), a `/bin/sh` symlink and `/tmp`; the
    /// default command is `busybox sleep 3600`, so containers really run.
    Busybox(PathBuf),
}

/// A set of distinct images to write as `docker load` archives. Build it with the methods
/// below, starting from [`ImageSet::new`]: one untagged image created now, tiny base layer,
/// random seed.
#[derive(Clone, Debug)]
pub struct ImageSet {
    count: usize,
    tags: Tags,
    created: Created,
    base: Base,
    layer_bytes: u64,
    labels: BTreeMap<String, String>,
    seed: Option<String>,
    parent_chain: bool,
}

/// One archive written by [`ImageSet::write_per_image`] and the ID of the image in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenArchive {
    pub path: PathBuf,
    pub id: String,
}

impl Default for ImageSet {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageSet {
    pub fn new() -> ImageSet {
        ImageSet {
            count: 1,
            tags: Tags::None,
            created: Created::Now,
            base: Base::Tiny,
            layer_bytes: 0,
            labels: BTreeMap::new(),
            seed: None,
            parent_chain: false,
        }
    }

    /// How many distinct images (distinct IDs); at least 1.
    #[must_use]
    pub fn count(mut self, count: usize) -> ImageSet {
        self.count = count;
        self
    }

    /// List every image under `NAME:TAG` (`:latest` is added to a bare name, as Docker does).
    #[must_use]
    pub fn tag(mut self, tag: &str) -> ImageSet {
        self.tags = Tags::Shared(tag.to_owned());
        self
    }

    /// Give each image its own tag: `pattern` with `{i}` replaced by the image's index.
    #[must_use]
    pub fn tag_each(mut self, pattern: &str) -> ImageSet {
        self.tags = Tags::Each(pattern.to_owned());
        self
    }

    /// List no tags: every image is dangling once loaded (the default).
    #[must_use]
    pub fn no_tag(mut self) -> ImageSet {
        self.tags = Tags::None;
        self
    }

    #[must_use]
    pub fn tags(mut self, tags: Tags) -> ImageSet {
        self.tags = tags;
        self
    }

    /// Created exactly at `when` (see [`parse_time`] for RFC 3339 text).
    #[must_use]
    pub fn created(mut self, when: DateTime<Utc>) -> ImageSet {
        self.created = Created::At(when);
        self
    }

    /// Created `age` before the archive is written.
    #[must_use]
    pub fn age(mut self, age: Duration) -> ImageSet {
        self.created = Created::Ago(age);
        self
    }

    #[must_use]
    pub fn created_when(mut self, created: Created) -> ImageSet {
        self.created = created;
        self
    }

    /// Base every image on a busybox layer from the first of [`BUSYBOX_CANDIDATES`] that
    /// exists (checked when writing).
    #[must_use]
    pub fn busybox(self) -> ImageSet {
        let found = BUSYBOX_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
            .unwrap_or_else(|| PathBuf::from(BUSYBOX_CANDIDATES[0]));
        self.busybox_from(found)
    }

    /// Base every image on a busybox layer holding this static busybox binary.
    #[must_use]
    pub fn busybox_from(mut self, path: impl Into<PathBuf>) -> ImageSet {
        self.base = Base::Busybox(path.into());
        self
    }

    /// Give every image its own layer of `bytes` seeded random bytes (0: none, the default).
    #[must_use]
    pub fn layer_bytes(mut self, bytes: u64) -> ImageSet {
        self.layer_bytes = bytes;
        self
    }

    /// Add a config label (a later value for the same key wins).
    #[must_use]
    pub fn label(mut self, key: &str, value: &str) -> ImageSet {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Same seed and same set = same IDs. Without one, every write makes new IDs.
    #[must_use]
    pub fn seed(mut self, seed: &str) -> ImageSet {
        self.seed = Some(seed.to_owned());
        self
    }

    /// Make each image the parent of the next (as the classic builder's intermediate images
    /// are): image `i + 1` has image `i`'s history and layers plus one entry (its own random
    /// layer with [`ImageSet::layer_bytes`], else an empty-layer step), and the manifest names
    /// image `i` as its `Parent`. Parents are only linked within one archive, so this needs
    /// [`ImageSet::write`].
    #[must_use]
    pub fn parent_chain(mut self, on: bool) -> ImageSet {
        self.parent_chain = on;
        self
    }

    /// Writes every image into one archive at `path` (replaced if it exists) and returns the
    /// image IDs (`sha256:<64 hex>`) in manifest order, which is `docker load`'s order: with a
    /// shared tag, the last one keeps it.
    pub fn write(&self, path: &Path) -> Result<Vec<String>> {
        let plan = self.resolve()?;
        let images: Vec<usize> = (0..self.count).collect();
        archive::write(&plan, &images, path)
    }

    /// Writes one archive per image, at `path_for(index)`, and returns them with their IDs in
    /// order. The IDs equal what [`ImageSet::write`] returns for the same seed and time.
    pub fn write_per_image(
        &self,
        path_for: impl Fn(usize) -> PathBuf,
    ) -> Result<Vec<WrittenArchive>> {
        if self.parent_chain && self.count > 1 {
            bail!(
                "a parent chain cannot be split into one archive per image: docker load links \
                 parents only within one archive; write the chain with ImageSet::write"
            );
        }
        let plan = self.resolve()?;
        let mut written = Vec::with_capacity(self.count);
        for index in 0..self.count {
            let path = path_for(index);
            let ids = archive::write(&plan, &[index], &path)?;
            let id = ids
                .into_iter()
                .next()
                .context("the archive writer returned no ID for a one-image archive")?;
            written.push(WrittenArchive { path, id });
        }
        Ok(written)
    }

    /// Validates the set and fixes what "now" and "random" mean for one write.
    fn resolve(&self) -> Result<archive::Plan> {
        if self.count < 1 {
            bail!("an image set needs at least one image; set count to 1 or more");
        }
        let tags = match &self.tags {
            Tags::None => Tags::None,
            Tags::Shared(tag) => Tags::Shared(normalise_tag(tag)?),
            Tags::Each(pattern) => {
                if !pattern.contains(INDEX_PLACEHOLDER) {
                    bail!(
                        "the per-image tag pattern {pattern:?} has no {INDEX_PLACEHOLDER} \
                         placeholder; add one (e.g. name:{INDEX_PLACEHOLDER}) or use a shared tag"
                    );
                }
                normalise_tag(&pattern.replace(INDEX_PLACEHOLDER, "0"))?;
                Tags::Each(pattern.clone())
            }
        };
        // Whole seconds, as images built by hand show.
        let now = || Utc::now().trunc_subsecs(0);
        let created = match self.created {
            Created::Now => now(),
            Created::Ago(age) => now()
                .checked_sub_signed(chrono::Duration::from_std(age)?)
                .with_context(|| format!("an age of {age:?} reaches before the year -262143"))?,
            Created::At(when) => when,
        };
        let seed = self.seed.clone().unwrap_or_else(random_seed);
        Ok(archive::Plan {
            tags,
            created: format_time(created),
            base: self.base.clone(),
            layer_bytes: self.layer_bytes,
            labels: self.labels.clone(),
            seed,
            parent_chain: self.parent_chain,
        })
    }
}

/// The image ID Docker gives a config: `sha256:` and the hex sha256 of its exact bytes.
pub fn image_id(config_json: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(config_json))
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// Parses an RFC 3339 time (`2020-01-02T03:04:05Z`, an offset, or none, which means UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(when) = DateTime::parse_from_rfc3339(text) {
        return Ok(when.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|naive| naive.and_utc())
        .map_err(|_| {
            anyhow::anyhow!("{text:?} is not an RFC 3339 time; write it like 2020-01-02T03:04:05Z")
        })
}

/// The form Docker writes: UTC, a trailing `Z`, a fraction only when there is one.
pub(crate) fn format_time(when: DateTime<Utc>) -> String {
    when.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Checks a `NAME:TAG` and adds `:latest` to a bare name (what Docker assumes).
pub(crate) fn normalise_tag(tag: &str) -> Result<String> {
    if tag.is_empty() || tag.contains('@') || tag.chars().any(char::is_whitespace) {
        bail!("a tag must be NAME:TAG without spaces or a digest, e.g. demo/app:1; got {tag:?}");
    }
    let last_component = tag.rsplit('/').next().unwrap_or(tag);
    if last_component.contains(':') {
        Ok(tag.to_owned())
    } else {
        Ok(format!("{tag}:latest"))
    }
}

fn random_seed() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    // RandomState is seeded from the OS's randomness per process and varies per instance.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos()),
    );
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests;
