//! Writing one `docker load` archive, in the layout `docker save` used before OCI layouts:
//!
//! ```text
//! manifest.json          [{"Config": "<id>.json", "RepoTags": [...], "Layers": [...], "Parent": ...}]
//! <id>.json              the image config; the image ID is sha256 of these exact bytes
//! <diffid>/layer.tar     an uncompressed layer; its sha256 is the config's rootfs diff_id
//! <diffid>/VERSION, json v1 compatibility files
//! ```
//!
//! Layers shared by several images of the archive are stored once.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::{Context as _, Result};
use tar::EntryType;

use crate::image_config::{
    History, ImageConfig, ManifestEntry, RootFs, RunConfig, V1Layer, architecture,
};
use crate::layer::{self, Layer, header};
use crate::{Base, INDEX_PLACEHOLDER, Tags};

/// An [`crate::ImageSet`] with "now" and the seed fixed, ready to write.
pub(crate) struct Plan {
    pub(crate) tags: Tags,
    pub(crate) created: String,
    pub(crate) base: Base,
    pub(crate) layer_bytes: u64,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) seed: String,
    pub(crate) parent_chain: bool,
}

/// What an image is made of, which the next image of a parent chain starts from.
#[derive(Clone)]
struct Stack {
    layer_paths: Vec<String>,
    diff_ids: Vec<String>,
    history: Vec<History>,
}

/// Writes the images `indices` (ascending) of `plan` into one archive at `path`; returns
/// their IDs in that order.
pub(crate) fn write(plan: &Plan, indices: &[usize], path: &Path) -> Result<Vec<String>> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let out = tempfile::NamedTempFile::new_in(dir).with_context(|| {
        format!(
            "cannot create a file in {} for the archive; create the directory or pick another \
             path",
            dir.display()
        )
    })?;
    let ids = {
        let mut writer = ArchiveWriter {
            tar: tar::Builder::new(BufWriter::new(out.as_file())),
            written_layers: HashSet::new(),
            created: &plan.created,
            dir,
        };
        let ids = writer.images(plan, indices)?;
        let mut buffered = writer
            .tar
            .into_inner()
            .context("cannot finish the archive")?;
        buffered.flush().context("cannot write the archive")?;
        ids
    };
    out.persist(path)
        .with_context(|| format!("cannot write the archive to {}", path.display()))?;
    Ok(ids)
}

struct ArchiveWriter<'a, W: Write> {
    tar: tar::Builder<W>,
    /// Diff IDs of the layers already in the archive.
    written_layers: HashSet<String>,
    created: &'a str,
    /// Where temporary layer files go (beside the archive).
    dir: &'a Path,
}

impl<W: Write> ArchiveWriter<'_, W> {
    fn images(&mut self, plan: &Plan, indices: &[usize]) -> Result<Vec<String>> {
        let base = match &plan.base {
            Base::Tiny => layer::tiny(self.dir)?,
            Base::Busybox(path) => layer::busybox(self.dir, path)?,
        };
        let base_diff = base.diff_id.clone();
        let base_path = self.add_layer(base, None)?;
        let base_stack = Stack {
            layer_paths: vec![base_path],
            diff_ids: vec![format!("sha256:{base_diff}")],
            history: vec![self.history("pruneguard-testkit base layer".to_owned(), false)],
        };
        let cmd: &[&str] = match plan.base {
            Base::Busybox(_) => &["/bin/busybox", "sleep", "3600"],
            Base::Tiny => &["/bin/sh"],
        };

        let mut manifest = Vec::with_capacity(indices.len());
        let mut ids = Vec::with_capacity(indices.len());
        // The previous image of a parent chain: its ID and what it is made of.
        let mut previous: Option<(String, Stack)> = None;
        for &index in indices {
            let (parent, mut stack) = match previous.take() {
                Some((id, stack)) if plan.parent_chain => (Some(id), stack),
                _ => (None, base_stack.clone()),
            };
            let marker = format!("pruneguard-testkit seed={} index={index}", plan.seed);
            if plan.layer_bytes > 0 {
                let own = layer::random(
                    self.dir,
                    &format!("{}:{index}", plan.seed),
                    plan.layer_bytes,
                )?;
                let diff = own.diff_id.clone();
                let below = stack
                    .diff_ids
                    .last()
                    .map(|d| d.trim_start_matches("sha256:"));
                let below = below.map(str::to_owned);
                stack
                    .layer_paths
                    .push(self.add_layer(own, below.as_deref())?);
                stack.diff_ids.push(format!("sha256:{diff}"));
                let what = format!("{marker}: random layer of {} bytes", plan.layer_bytes);
                stack.history.push(self.history(what, false));
            }
            // A chain's child adds exactly one history entry (docker load checks that before
            // linking a parent): its own layer if it has one, else an empty-layer step.
            if parent.is_none() || plan.layer_bytes == 0 {
                stack.history.push(self.history(marker, true));
            }

            let config = ImageConfig {
                architecture: architecture(),
                comment: format!("pruneguard test image seed={} index={index}", plan.seed),
                config: RunConfig {
                    cmd: cmd.iter().map(|part| (*part).to_owned()).collect(),
                    env: vec![
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                            .to_owned(),
                    ],
                    labels: (!plan.labels.is_empty()).then(|| plan.labels.clone()),
                },
                created: self.created.to_owned(),
                history: stack.history.clone(),
                os: "linux",
                rootfs: RootFs {
                    diff_ids: stack.diff_ids.clone(),
                    kind: "layers",
                },
            };
            let blob = serde_json::to_vec(&config).context("cannot encode an image config")?;
            let id = crate::image_id(&blob);
            let config_path = format!("{}.json", id.trim_start_matches("sha256:"));
            self.add_file(&config_path, &blob)?;
            manifest.push(ManifestEntry {
                config: config_path,
                repo_tags: repo_tags(&plan.tags, index)?,
                layers: stack.layer_paths.clone(),
                parent,
            });
            ids.push(id.clone());
            previous = Some((id, stack));
        }
        let manifest = serde_json::to_vec(&manifest).context("cannot encode manifest.json")?;
        self.add_file("manifest.json", &manifest)?;
        Ok(ids)
    }

    fn history(&self, created_by: String, empty_layer: bool) -> History {
        History {
            created: self.created.to_owned(),
            created_by,
            empty_layer,
        }
    }

    fn add_file(&mut self, path: &str, body: &[u8]) -> Result<()> {
        let mut header = header(EntryType::Regular, 0o644, body.len() as u64)?;
        self.tar
            .append_data(&mut header, path, body)
            .with_context(|| format!("cannot add {path} to the archive"))
    }

    /// Adds a layer (once per diff ID) and returns its path in the archive.
    fn add_layer(&mut self, layer: Layer, parent_diff: Option<&str>) -> Result<String> {
        let Layer {
            mut file,
            diff_id,
            size,
        } = layer;
        let layer_path = format!("{diff_id}/layer.tar");
        if self.written_layers.insert(diff_id.clone()) {
            let mut dir = header(EntryType::Directory, 0o755, 0)?;
            self.tar
                .append_data(&mut dir, &diff_id, io::empty())
                .context("cannot add a layer directory to the archive")?;
            self.add_file(&format!("{diff_id}/VERSION"), b"1.0")?;
            let v1 = V1Layer {
                id: &diff_id,
                created: self.created,
                parent: parent_diff,
            };
            let v1 = serde_json::to_vec(&v1).context("cannot encode a layer's v1 json")?;
            self.add_file(&format!("{diff_id}/json"), &v1)?;
            let mut header = header(EntryType::Regular, 0o644, size)?;
            self.tar
                .append_data(&mut header, &layer_path, &mut file)
                .context("cannot add a layer to the archive")?;
        }
        Ok(layer_path)
    }
}

fn repo_tags(tags: &Tags, index: usize) -> Result<Option<Vec<String>>> {
    Ok(match tags {
        Tags::None => None,
        Tags::Shared(tag) => Some(vec![tag.clone()]),
        Tags::Each(pattern) => Some(vec![crate::normalise_tag(
            &pattern.replace(INDEX_PLACEHOLDER, &index.to_string()),
        )?]),
    })
}
