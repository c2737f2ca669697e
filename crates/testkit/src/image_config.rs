//! The JSON documents of a `docker save` archive: the image config (whose sha256 is the image
//! ID), `manifest.json` entries and the v1 compatibility `json` of a layer. Typed structs with
//! a fixed field order, so the bytes (and so the IDs) do not depend on `serde_json`'s features.

use std::collections::BTreeMap;

use serde::Serialize;

/// The image config. Fields in alphabetical order, as `json.dumps(sort_keys=True)` wrote them.
#[derive(Serialize)]
pub(crate) struct ImageConfig {
    pub(crate) architecture: &'static str,
    pub(crate) comment: String,
    pub(crate) config: RunConfig,
    pub(crate) created: String,
    pub(crate) history: Vec<History>,
    pub(crate) os: &'static str,
    pub(crate) rootfs: RootFs,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RunConfig {
    pub(crate) cmd: Vec<String>,
    pub(crate) env: Vec<String>,
    /// `null` when there are none, as Docker writes it.
    pub(crate) labels: Option<BTreeMap<String, String>>,
}

#[derive(Clone, PartialEq, Eq, Serialize)]
pub(crate) struct History {
    pub(crate) created: String,
    pub(crate) created_by: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) empty_layer: bool,
}

#[derive(Serialize)]
pub(crate) struct RootFs {
    /// `sha256:<hex>` of each uncompressed layer tar, bottom first.
    pub(crate) diff_ids: Vec<String>,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
}

/// One entry of `manifest.json`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ManifestEntry {
    /// The config file's path in the archive.
    pub(crate) config: String,
    /// `null` for no tags (all dangling), as `docker save` writes it.
    pub(crate) repo_tags: Option<Vec<String>>,
    /// Each layer tar's path in the archive, bottom first.
    pub(crate) layers: Vec<String>,
    /// The parent image's ID; `docker load` links it when both are in the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parent: Option<String>,
}

/// A layer's v1 `json` (only the legacy, manifest-less load path reads it).
#[derive(Serialize)]
pub(crate) struct V1Layer<'a> {
    pub(crate) id: &'a str,
    pub(crate) created: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parent: Option<&'a str>,
}

/// The architecture Docker calls this machine's (the images' containers run here).
pub(crate) fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => "amd64",
    }
}
