//! A multi-platform image as an OCI image-layout archive (what `docker save` writes on the
//! containerd image store, and `docker buildx build --platform a,b --attest …` pushes): an
//! image index holding a manifest for this machine's platform, one for a foreign platform and
//! an attestation manifest (platform `unknown/unknown`, annotated
//! `vnd.docker.reference.type: attestation-manifest`, pointing at the first manifest).
//!
//! ```text
//! oci-layout                  {"imageLayoutVersion": "1.0.0"}
//! index.json                  one descriptor: the image index (+ its name, when tagged)
//! blobs/sha256/<digest>       index, manifests, configs, layers, the in-toto statement
//! ```
//!
//! On the containerd store the image's ID is the index's digest ([`MultiPlatformImage::id`]).

use std::io::{BufWriter, Write as _};
use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tar::EntryType;

use crate::image_config::architecture;
use crate::layer::header;
use crate::{format_time, normalise_tag, sha256_hex};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// One multi-platform image to write: tagged or not, created when, distinct by seed.
#[derive(Clone, Debug)]
pub struct MultiPlatform {
    pub tag: Option<String>,
    pub created: DateTime<Utc>,
    pub seed: String,
}

/// What [`MultiPlatform::write`] wrote: digests (`sha256:…`) of its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiPlatformImage {
    /// The image index: the image's ID on the containerd store.
    pub index: String,
    /// This machine's platform manifest.
    pub native: String,
    /// The foreign platform's manifest (arm64 here, amd64 on an arm64 machine).
    pub foreign: String,
    /// The attestation manifest.
    pub attestation: String,
}

impl MultiPlatformImage {
    /// The ID the containerd store gives the image.
    pub fn id(&self) -> &str {
        &self.index
    }
}

/// The blobs of an archive being written, in order.
#[derive(Default)]
struct Blobs(Vec<(String, Vec<u8>)>);

impl Blobs {
    /// Adds a blob; returns its descriptor.
    fn add(&mut self, media_type: &str, bytes: Vec<u8>) -> Value {
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        let descriptor = json!({"mediaType": media_type, "digest": digest, "size": bytes.len()});
        if !self.0.iter().any(|(known, _)| *known == digest) {
            self.0.push((digest, bytes));
        }
        descriptor
    }

    fn add_json(&mut self, media_type: &str, value: &Value) -> Result<Value> {
        let bytes = serde_json::to_vec(value).context("cannot encode an OCI document")?;
        Ok(self.add(media_type, bytes))
    }
}

/// An uncompressed layer tar holding one file.
fn one_file_layer(name: &str, body: &[u8]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut head = header(EntryType::Regular, 0o644, body.len() as u64)?;
    builder
        .append_data(&mut head, name, body)
        .context("cannot write a layer tar")?;
    builder.into_inner().context("cannot finish a layer tar")
}

fn digest_of(descriptor: &Value) -> String {
    descriptor["digest"].as_str().unwrap_or_default().to_owned()
}

impl MultiPlatform {
    /// An untagged image created `created`, seeded `seed`.
    pub fn new(seed: &str, created: DateTime<Utc>) -> MultiPlatform {
        MultiPlatform {
            tag: None,
            created,
            seed: seed.to_owned(),
        }
    }

    #[must_use]
    pub fn tag(mut self, tag: &str) -> MultiPlatform {
        self.tag = Some(tag.to_owned());
        self
    }

    /// This machine's or a foreign platform's manifest (its layer and config added to
    /// `blobs`); returns its descriptor, with the platform, for the index.
    fn platform_manifest(&self, blobs: &mut Blobs, arch: &str, created: &str) -> Result<Value> {
        let body = format!("pruneguard multi-platform seed={} arch={arch}\n", self.seed);
        let layer = one_file_layer("platform", body.as_bytes())?;
        let diff_id = format!("sha256:{}", sha256_hex(&layer));
        let layer = blobs.add(LAYER, layer);
        let config = blobs.add_json(
            CONFIG,
            &json!({
                "architecture": arch,
                "os": "linux",
                "created": created,
                "config": {"Cmd": ["/platform"], "Labels": {"pruneguard.seed": self.seed}},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": created, "created_by": format!("seed {}", self.seed)}],
            }),
        )?;
        let mut entry = blobs.add_json(
            MANIFEST,
            &json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]}),
        )?;
        entry["platform"] = json!({"architecture": arch, "os": "linux"});
        Ok(entry)
    }

    /// The attestation manifest about `subject` (an in-toto statement as its one layer), as
    /// `BuildKit` attaches it: platform `unknown/unknown`, annotated with what it attests.
    fn attestation(&self, blobs: &mut Blobs, subject: &Value) -> Result<Value> {
        let statement = serde_json::to_vec(&json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{
                "name": "pruneguard",
                "digest": {"sha256": digest_of(subject).trim_start_matches("sha256:")},
            }],
            "predicate": {"seed": self.seed},
        }))
        .context("cannot encode the attestation")?;
        let statement_diff = format!("sha256:{}", sha256_hex(&statement));
        let mut statement = blobs.add(IN_TOTO, statement);
        statement["annotations"] =
            json!({"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"});
        let config = blobs.add_json(
            CONFIG,
            &json!({
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [statement_diff]},
            }),
        )?;
        let mut entry = blobs.add_json(
            MANIFEST,
            &json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [statement]}),
        )?;
        entry["platform"] = json!({"architecture": "unknown", "os": "unknown"});
        entry["annotations"] = json!({
            "vnd.docker.reference.digest": digest_of(subject),
            "vnd.docker.reference.type": "attestation-manifest",
        });
        Ok(entry)
    }

    /// Writes the OCI image-layout archive to `path` (`docker load -i` reads it).
    pub fn write(&self, path: &Path) -> Result<MultiPlatformImage> {
        let created = format_time(self.created);
        let native_arch = architecture();
        let foreign_arch = if native_arch == "arm64" {
            "amd64"
        } else {
            "arm64"
        };
        let mut blobs = Blobs::default();
        let native = self.platform_manifest(&mut blobs, native_arch, &created)?;
        let foreign = self.platform_manifest(&mut blobs, foreign_arch, &created)?;
        let attestation = self.attestation(&mut blobs, &native)?;
        let index = blobs.add_json(
            INDEX,
            &json!({
                "schemaVersion": 2,
                "mediaType": INDEX,
                "manifests": [native, foreign, attestation],
            }),
        )?;
        let mut entry = index.clone();
        if let Some(tag) = &self.tag {
            entry["annotations"] = name_annotations(tag)?;
        }
        let layout = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry]});
        write_layout(path, &layout, &blobs)?;
        Ok(MultiPlatformImage {
            index: digest_of(&index),
            native: digest_of(&native),
            foreign: digest_of(&foreign),
            attestation: digest_of(&attestation),
        })
    }
}

/// The annotations that name a tagged image in `index.json`: the full reference containerd
/// stores (`docker.io/library/…` for a bare name) and the OCI tag.
fn name_annotations(tag: &str) -> Result<Value> {
    let tag = normalise_tag(tag)?;
    let first = tag.split('/').next().unwrap_or_default();
    let full = if !tag.contains('/') {
        format!("docker.io/library/{tag}")
    } else if first.contains(['.', ':']) || first == "localhost" {
        tag.clone()
    } else {
        format!("docker.io/{tag}")
    };
    let short = tag.rsplit_once(':').map_or("latest", |(_, t)| t).to_owned();
    Ok(json!({
        "io.containerd.image.name": full,
        "org.opencontainers.image.ref.name": short,
    }))
}

/// Writes `oci-layout`, `index.json` and the blobs as a tar at `path`.
fn write_layout(path: &Path, layout: &Value, blobs: &Blobs) -> Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot create the archive {}", path.display()))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let mut add = |name: &str, body: &[u8]| -> Result<()> {
        let mut head = header(EntryType::Regular, 0o644, body.len() as u64)?;
        tar.append_data(&mut head, name, body)
            .with_context(|| format!("cannot add {name} to the archive"))
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add(
        "index.json",
        &serde_json::to_vec(layout).context("cannot encode index.json")?,
    )?;
    for (digest, bytes) in &blobs.0 {
        add(
            &format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")),
            bytes,
        )?;
    }
    let mut out = tar.into_inner().context("cannot finish the archive")?;
    out.flush().context("cannot write the archive")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read as _;

    use super::*;

    /// Every member of the archive at `path`, by name.
    fn members(path: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
        let mut out = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            out.insert(name, body);
        }
        out
    }

    fn blob(members: &BTreeMap<String, Vec<u8>>, digest: &str) -> Value {
        let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        let bytes = members.get(&name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(format!("sha256:{}", sha256_hex(bytes)), digest, "{name}");
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn an_index_of_two_platforms_and_an_attestation_with_every_blob() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multi.tar");
        let when = crate::parse_time("2020-01-02T03:04:05Z").unwrap();
        let image = MultiPlatform::new("s", when)
            .tag("demo/multi:1")
            .write(&path)
            .unwrap();
        let members = members(&path);
        let layout: Value = serde_json::from_slice(&members["index.json"]).unwrap();
        assert_eq!(layout["manifests"][0]["digest"], image.index.as_str());
        assert_eq!(
            layout["manifests"][0]["annotations"]["io.containerd.image.name"],
            "docker.io/demo/multi:1"
        );
        let index = blob(&members, &image.index);
        let manifests = index["manifests"].as_array().unwrap();
        let digests: Vec<&str> = manifests
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, [&image.native, &image.foreign, &image.attestation]);
        assert_eq!(manifests[0]["platform"]["architecture"], architecture());
        assert_ne!(manifests[1]["platform"]["architecture"], architecture());
        assert_eq!(manifests[2]["platform"]["os"], "unknown");
        assert_eq!(
            manifests[2]["annotations"]["vnd.docker.reference.type"],
            "attestation-manifest"
        );
        assert_eq!(
            manifests[2]["annotations"]["vnd.docker.reference.digest"],
            image.native.as_str()
        );
        for digest in digests {
            let manifest = blob(&members, digest);
            blob(&members, manifest["config"]["digest"].as_str().unwrap());
            let layer = manifest["layers"][0]["digest"].as_str().unwrap();
            assert!(members.contains_key(&format!("blobs/sha256/{}", &layer[7..])));
        }
        // Another seed, another image; the same seed and time, the same one.
        let again = MultiPlatform::new("s", when)
            .tag("demo/multi:1")
            .write(&path)
            .unwrap();
        assert_eq!(again, image);
        let other = MultiPlatform::new("t", when).write(&path).unwrap();
        assert_ne!(other.index, image.index);
    }
}
