//! Unit tests of the testkit: archives are read back with the `tar` crate and checked against
//! what `docker load` relies on (IDs, diff IDs, tags, parents, created times).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::*;

/// Every regular file of a tar, by path.
fn tar_files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().expect("a readable tar") {
        let mut entry = entry.expect("a readable tar entry");
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().expect("a path").to_string_lossy().into_owned();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).expect("a readable member");
        files.insert(path, body);
    }
    files
}

struct Loaded {
    files: BTreeMap<String, Vec<u8>>,
    manifest: Vec<Value>,
}

impl Loaded {
    fn read(path: &Path) -> Loaded {
        let files = tar_files(&std::fs::read(path).expect("the archive exists"));
        let manifest = serde_json::from_slice(&files["manifest.json"]).expect("manifest is JSON");
        Loaded { files, manifest }
    }

    fn config(&self, entry: usize) -> Value {
        let path = self.manifest[entry]["Config"].as_str().expect("Config");
        serde_json::from_slice(&self.files[path]).expect("config is JSON")
    }
}

fn sha256_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn fixed_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 2, 3, 4, 5).unwrap()
}

fn out(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn ids_are_the_sha256_of_the_config_bytes_docker_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "a.tar");
    let ids = ImageSet::new()
        .tag("t/app:1")
        .count(3)
        .write(&path)
        .unwrap();
    let loaded = Loaded::read(&path);
    assert_eq!(loaded.manifest.len(), 3);
    for (entry, id) in loaded.manifest.iter().zip(&ids) {
        let config_path = entry["Config"].as_str().unwrap();
        let bytes = &loaded.files[config_path];
        assert_eq!(*id, format!("sha256:{}", sha256_of(bytes)));
        assert_eq!(*id, image_id(bytes));
        assert_eq!(config_path, format!("{}.json", &id[7..]));
    }
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 3, "every image has its own ID: {ids:?}");
}

#[test]
fn layers_parse_back_and_match_their_diff_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "a.tar");
    ImageSet::new()
        .count(2)
        .layer_bytes(100_000)
        .seed("layers")
        .write(&path)
        .unwrap();
    let loaded = Loaded::read(&path);
    let mut own_layers = Vec::new();
    for (index, entry) in loaded.manifest.iter().enumerate() {
        let config = loaded.config(index);
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        let layers = entry["Layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2, "base + own layer");
        assert_eq!(diff_ids.len(), layers.len());
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let body = &loaded.files[layer.as_str().unwrap()];
            assert_eq!(
                diff_id.as_str().unwrap(),
                format!("sha256:{}", sha256_of(body))
            );
        }
        let own = tar_files(&loaded.files[layers[1].as_str().unwrap()]);
        assert_eq!(own["pgsb-data.bin"].len(), 100_000);
        own_layers.push(own["pgsb-data.bin"].clone());
        let base = tar_files(&loaded.files[layers[0].as_str().unwrap()]);
        assert_eq!(base["pgsb"], b"pruneguard test image layer\n");
        assert_eq!(config["history"].as_array().unwrap().len(), 3);
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    }
    assert_ne!(
        own_layers[0], own_layers[1],
        "each image has its own random bytes"
    );
    // The shared base layer is stored once.
    let layer_files = loaded
        .files
        .keys()
        .filter(|p| p.ends_with("/layer.tar"))
        .count();
    assert_eq!(layer_files, 3);
}

#[test]
fn tags_shared_none_each_and_latest_default() {
    let dir = tempfile::tempdir().unwrap();
    let tags_of = |set: ImageSet| {
        let path = out(&dir, "t.tar");
        set.count(2).write(&path).unwrap();
        Loaded::read(&path)
            .manifest
            .iter()
            .map(|entry| entry["RepoTags"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        tags_of(ImageSet::new().tag("demo/app")),
        vec![serde_json::json!(["demo/app:latest"]); 2]
    );
    assert_eq!(
        tags_of(ImageSet::new().tag("reg:5000/x:2")),
        vec![serde_json::json!(["reg:5000/x:2"]); 2]
    );
    assert_eq!(tags_of(ImageSet::new().no_tag()), vec![Value::Null; 2]);
    assert_eq!(
        tags_of(ImageSet::new().tag_each("b/t:{i}")),
        vec![serde_json::json!(["b/t:0"]), serde_json::json!(["b/t:1"])]
    );
    let err = ImageSet::new()
        .tag("a b:1")
        .write(&out(&dir, "bad.tar"))
        .unwrap_err();
    assert!(err.to_string().contains("NAME:TAG"), "{err}");
    let err = ImageSet::new()
        .tag_each("x:1")
        .write(&out(&dir, "bad.tar"))
        .unwrap_err();
    assert!(err.to_string().contains("{i}"), "{err}");
}

#[test]
fn created_is_the_chosen_time_or_now_minus_the_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "c.tar");
    ImageSet::new().created(fixed_time()).write(&path).unwrap();
    let config = Loaded::read(&path).config(0);
    assert_eq!(config["created"], "2020-01-02T03:04:05Z");
    for entry in config["history"].as_array().unwrap() {
        assert_eq!(entry["created"], "2020-01-02T03:04:05Z");
    }

    let age = Duration::from_secs(3 * 86_400);
    ImageSet::new().age(age).write(&path).unwrap();
    let created = Loaded::read(&path).config(0)["created"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = parse_time(&created).unwrap();
    let expected = Utc::now() - chrono::Duration::from_std(age).unwrap();
    let off = (expected - created).num_seconds().abs();
    assert!(off <= 5, "created {created}, expected about {expected}");
}

#[test]
fn parse_time_accepts_rfc3339_and_naive_utc() {
    assert_eq!(parse_time("2020-01-02T03:04:05Z").unwrap(), fixed_time());
    assert_eq!(
        parse_time("2020-01-02T05:04:05+02:00").unwrap(),
        fixed_time()
    );
    assert_eq!(parse_time("2020-01-02T03:04:05").unwrap(), fixed_time());
    let err = parse_time("yesterday").unwrap_err();
    assert!(err.to_string().contains("RFC 3339"), "{err}");
    assert_eq!(
        format_time(parse_time("2020-01-02T03:04:05.250Z").unwrap()),
        "2020-01-02T03:04:05.250Z"
    );
}

#[test]
fn a_seed_fixes_the_ids_and_no_seed_makes_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "s.tar");
    let seeded = || {
        ImageSet::new()
            .count(2)
            .created(fixed_time())
            .layer_bytes(10)
            .seed("same")
    };
    let first = seeded().write(&path).unwrap();
    assert_eq!(seeded().write(&path).unwrap(), first);
    assert_ne!(seeded().seed("other").write(&path).unwrap(), first);
    let unseeded = || ImageSet::new().created(fixed_time());
    assert_ne!(
        unseeded().write(&path).unwrap(),
        unseeded().write(&path).unwrap()
    );
}

#[test]
fn a_parent_chain_links_each_image_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    for layer_bytes in [0, 64] {
        let path = out(&dir, "p.tar");
        let ids = ImageSet::new()
            .tag("chain:1")
            .count(3)
            .layer_bytes(layer_bytes)
            .parent_chain(true)
            .write(&path)
            .unwrap();
        let loaded = Loaded::read(&path);
        assert!(loaded.manifest[0].get("Parent").is_none());
        for child in 1..3 {
            assert_eq!(loaded.manifest[child]["Parent"], ids[child - 1].as_str());
            let parent = loaded.config(child - 1);
            let config = loaded.config(child);
            // What docker load checks before linking: one more history entry, same prefix.
            let history = config["history"].as_array().unwrap();
            let parent_history = parent["history"].as_array().unwrap();
            assert_eq!(history.len(), parent_history.len() + 1);
            assert_eq!(history[..parent_history.len()], parent_history[..]);
            let diffs = config["rootfs"]["diff_ids"].as_array().unwrap();
            let parent_diffs = parent["rootfs"]["diff_ids"].as_array().unwrap();
            assert_eq!(diffs[..parent_diffs.len()], parent_diffs[..]);
            let added = usize::from(layer_bytes > 0);
            assert_eq!(diffs.len(), parent_diffs.len() + added);
            assert_eq!(
                loaded.manifest[child]["Layers"].as_array().unwrap().len(),
                diffs.len()
            );
        }
    }
    let err = ImageSet::new()
        .count(2)
        .parent_chain(true)
        .write_per_image(|i| out(&dir, &format!("x-{i}.tar")))
        .unwrap_err();
    assert!(err.to_string().contains("ImageSet::write"), "{err}");
}

#[test]
fn one_archive_per_image_holds_one_whole_image_with_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let set = ImageSet::new()
        .tag("per/image:1")
        .count(3)
        .created(fixed_time())
        .layer_bytes(1000)
        .label("k", "v")
        .seed("per-image");
    let together = set.write(&out(&dir, "all.tar")).unwrap();
    let written = set
        .write_per_image(|i| out(&dir, &format!("one-{i}.tar")))
        .unwrap();
    let ids: Vec<String> = written.iter().map(|w| w.id.clone()).collect();
    assert_eq!(ids, together);
    for (index, archive) in written.iter().enumerate() {
        assert_eq!(archive.path, out(&dir, &format!("one-{index}.tar")));
        let loaded = Loaded::read(&archive.path);
        assert_eq!(loaded.manifest.len(), 1);
        assert_eq!(
            loaded.manifest[0]["RepoTags"],
            serde_json::json!(["per/image:1"])
        );
        for layer in loaded.manifest[0]["Layers"].as_array().unwrap() {
            assert!(
                loaded.files.contains_key(layer.as_str().unwrap()),
                "{layer} missing"
            );
        }
        assert_eq!(
            loaded.config(0)["config"]["Labels"],
            serde_json::json!({"k": "v"})
        );
    }
}

#[test]
fn busybox_images_carry_busybox_and_a_shell_and_refuse_a_dynamic_one() {
    let dir = tempfile::tempdir().unwrap();
    let fake = out(&dir, "busybox");
    std::fs::write(&fake, b"\x7fELF static busybox stand-in").unwrap();
    let path = out(&dir, "b.tar");
    ImageSet::new().busybox_from(&fake).write(&path).unwrap();
    let loaded = Loaded::read(&path);
    let config = loaded.config(0);
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["/bin/busybox", "sleep", "3600"])
    );
    let layer = loaded.manifest[0]["Layers"][0].as_str().unwrap();
    let bytes = &loaded.files[layer];
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut seen = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        seen.insert(
            path,
            (
                entry.header().entry_type(),
                entry.header().mode().unwrap(),
                link,
            ),
        );
    }
    assert_eq!(seen["bin/busybox"].0, tar::EntryType::Regular);
    assert_eq!(seen["bin/busybox"].1, 0o755);
    assert_eq!(seen["bin/sh"].0, tar::EntryType::Symlink);
    assert_eq!(seen["bin/sh"].2.as_deref(), Some("busybox"));
    assert_eq!(seen["tmp"].1, 0o1777);

    std::fs::write(&fake, b"\x7fELF.../lib64/ld-linux-x86-64.so.2...").unwrap();
    let err = ImageSet::new()
        .busybox_from(&fake)
        .write(&path)
        .unwrap_err();
    assert!(err.to_string().contains("busybox-static"), "{err}");
}

#[test]
fn random_bytes_are_deterministic_per_seed_and_exactly_long() {
    let read = |seed: &str, len: u64| {
        let mut out = Vec::new();
        RandomBytes::new(seed, len).read_to_end(&mut out).unwrap();
        out
    };
    let a = read("a", 1000);
    assert_eq!(a.len(), 1000);
    assert_eq!(a, read("a", 1000));
    assert_eq!(a[..100], read("a", 100)[..]);
    assert_ne!(a, read("b", 1000));
    // Not a repeating pattern: every 32-byte block differs.
    let blocks: std::collections::BTreeSet<_> = a.chunks(32).collect();
    assert_eq!(blocks.len(), a.chunks(32).count());
}

#[test]
fn no_images_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = ImageSet::new()
        .count(0)
        .write(&out(&dir, "z.tar"))
        .unwrap_err();
    assert!(err.to_string().contains("at least one image"), "{err}");
}
