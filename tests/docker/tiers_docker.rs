//! The opt-in reclaim tiers against a real dockerd (issue 13, item 5): a CI host whose builds
//! are tagged by commit (`ci/app:<sha>`, each `FROM` a shared `ci/base`, pushed to a local
//! registry v2 in the sandbox's network namespace, `scripts/registry.sh`) on a small
//! loop-mounted data root that crosses the high watermark.
//!
//! - With the default policy nothing a deploy can name goes: the disk stays full and the
//!   report says so (`disk_still_full`).
//! - With `--tier unused_tagged` (a short `unused_for`, after a first `plan` made the
//!   observation record see every tag) one run brings the filesystem to or under the low
//!   watermark: least recently used builds go tag by tag; the running app (in use, newest of
//!   its repository) and its base (keep glob, parent) stay; an image a container started to
//!   use after the plan answers 409 and is skipped; an image a short-lived container used
//!   since the record's last update (a container `destroy` event) counts as recently used.
//! - The next deploy of the current app and its base downloads 0 blobs from the registry.
//!
//! And `--tier build_cache` on Docker 20.10 (classic builder): whatever the engine's
//! build-cache API answers is reported, and no image, container or volume changes.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use support::proxy::Proxy;
use support::{ImageSpec, Run, Sandbox, pruneguard, run};

const MIB: u64 = 1024 * 1024;
/// The loop-mounted data root.
const DISK_MB: u64 = 192;
/// The base image's own random layer (plus busybox).
const BASE_LAYER: u64 = 8 * MIB;
/// Each CI build's own random layer (a `COPY` of this many bytes).
const APP_LAYER: u64 = 6 * MIB;
/// The builds fill the disk to at least this Use%, above the default high watermark 85 %.
const FILL_PERCENT: u8 = 88;
const REGISTRY: &str = "127.0.0.1:5000";
/// `unused_for` in the test's config: long enough that a container destroyed just before the
/// run keeps its image "recently used", short enough to wait for.
const UNUSED_FOR_S: u64 = 4;

/// `df`'s Use% of the filesystem holding `path`.
fn df_percent(path: &Path) -> u8 {
    let out = Command::new("df")
        .arg("--output=pcent")
        .arg(path)
        .output()
        .expect("df runs");
    assert!(out.status.success(), "df {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .and_then(|line| line.trim().trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("unexpected df output: {text:?}"))
}

/// The local registry of a sandbox, stopped on drop (before the sandbox, which is declared
/// first and so dropped after it).
struct Registry {
    dir: PathBuf,
}

impl Registry {
    fn start(sb: &Sandbox) -> Registry {
        let registry = Registry {
            dir: sb.dir().to_path_buf(),
        };
        let out = registry.script("start", &[]);
        assert_eq!(out.trim(), REGISTRY, "the registry's address");
        registry
    }

    fn script(&self, command: &str, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(support::repo_root().join("scripts").join("registry.sh"))
            .arg(command)
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("bash runs");
        support::expect_success(&format!("scripts/registry.sh {command}"), &out)
    }

    /// The access log's current offset.
    fn mark(&self) -> String {
        self.script("mark", &[])
    }

    /// The registry's counts since `mark` (`blob_gets`, `manifest_gets`, …).
    fn counts(&self, mark: &str) -> BTreeMap<String, u64> {
        let line = self.script("counts", &["--since", mark]);
        line.split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| {
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("not a count in {line:?}"));
                (key.to_owned(), value)
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(support::repo_root().join("scripts").join("registry.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// Incompressible bytes from a seed (xorshift64), so that every build's layer is its own.
fn random_bytes(seed: u64, len: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = usize::try_from(len).expect("fits");
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// The CI host: a base pushed to the registry, builds `ci/app:<sha>` FROM it, each pushed,
/// until the data root is at least [`FILL_PERCENT`] full; the newest one runs.
struct Host {
    base: String,
    /// In build order (oldest first).
    apps: Vec<String>,
    current: String,
}

fn build_ci_host(sb: &Sandbox) -> Host {
    let base = format!("{REGISTRY}/ci/base:1");
    sb.load_images(
        &ImageSpec::tagged(&base, 1)
            .busybox()
            .layer_bytes(BASE_LAYER)
            .age_days(30),
    );
    sb.docker_ok(["push", "-q", base.as_str()]);
    let context = sb.scratch().join("ctx");
    fs::create_dir_all(&context).expect("build context");
    fs::write(
        context.join("Dockerfile"),
        format!("FROM {base}\nCOPY build.bin /app/build.bin\n"),
    )
    .expect("Dockerfile");
    let build = |n: u64| {
        let sha = format!("{:012x}", 0x3f9c_0000_0000_u64 + n * 0x1_0001);
        let tag = format!("{REGISTRY}/ci/app:{sha}");
        fs::write(context.join("build.bin"), random_bytes(n + 1, APP_LAYER)).expect("layer");
        let out = sb
            .docker_command()
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", tag.as_str()])
            .arg(&context)
            .output()
            .expect("docker build runs");
        support::expect_success(&format!("docker build {tag}"), &out);
        sb.docker_ok(["push", "-q", tag.as_str()]);
        tag
    };
    let mut apps = Vec::new();
    for n in 0..40u64 {
        if df_percent(&sb.data_root()) >= FILL_PERCENT {
            break;
        }
        apps.push(build(n));
    }
    let percent = df_percent(&sb.data_root());
    assert!(
        percent >= FILL_PERCENT,
        "40 builds did not fill the data root to {FILL_PERCENT} % (at {percent} %)"
    );
    // The running build is the newest by `Created`, which has whole seconds: one more build
    // a second after the others, so that `keep_newest` (ties broken either way) keeps it and
    // no other.
    std::thread::sleep(Duration::from_millis(1100));
    apps.push(build(apps.len() as u64));
    let _ = fs::remove_dir_all(&context);
    let current = apps.last().expect("at least one build").clone();
    sb.docker_ok([
        "run",
        "-d",
        "--name",
        "app",
        current.as_str(),
        "/bin/busybox",
        "sleep",
        "3600",
    ]);
    Host {
        base,
        apps,
        current,
    }
}

/// The test's config: the tier's defaults (85/80 %, `keep_newest` 1) with a short `unused_for`
/// and the base kept by glob.
fn write_config(sb: &Sandbox) -> PathBuf {
    let path = sb.scratch().join("tiers.toml");
    fs::write(
        &path,
        format!(
            "[tiers.unused_tagged]\nunused_for = \"{UNUSED_FOR_S}s\"\nkeep = [\"*/ci/base:*\"]\n"
        ),
    )
    .expect("config");
    path
}

fn tier<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tiers"]
        .as_array()
        .and_then(|tiers| tiers.iter().find(|tier| tier["name"] == name))
        .unwrap_or_else(|| panic!("no {name} tier in {:#}", report["tiers"]))
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value:#}"))
        .iter()
        .map(|item| {
            item.as_str().map_or_else(
                || item["reference"].as_str().unwrap().to_owned(),
                str::to_owned,
            )
        })
        .collect()
}

fn tags(sb: &Sandbox) -> BTreeSet<String> {
    sb.docker_ok(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .filter(|line| !line.contains("<none>"))
        .map(str::to_owned)
        .collect()
}

fn volumes(sb: &Sandbox) -> BTreeSet<String> {
    sb.docker_ok(["volume", "ls", "-q"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn json(result: &Run) -> &Value {
    assert_eq!(result.code, 0, "{}", result.show());
    result.json()
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario: fill, default run, plan, tier run, redeploy"
)]
fn unused_tagged_brings_a_ci_host_under_the_low_watermark_and_the_next_deploy_pulls_nothing() {
    let sb = Arc::new(Sandbox::start_with_disk_mb(DISK_MB));
    let registry = Registry::start(&sb);
    let host = build_ci_host(&sb);
    let config = write_config(&sb);
    let full = df_percent(&sb.data_root());

    // (a) The default policy: no dangling image, nothing a deploy can name goes.
    let images_before = sb.image_ids();
    let default = run(pruneguard(&sb).args([
        "run",
        "--no-config",
        "--quiet-period",
        "0s",
        "--output",
        "json",
    ]));
    let report = json(&default);
    assert_eq!(report["disk_still_full"], true, "{report:#}");
    assert!(
        report["removed"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert_eq!(
        sb.image_ids(),
        images_before,
        "the default policy removes nothing here"
    );
    assert!(
        report["tiers"].as_array().is_none_or(Vec::is_empty),
        "no tier is enabled by default: {report:#}"
    );

    // A first plan makes the observation record see every tag (first seen tagged: now).
    let tier_args = |command: &str| {
        vec![
            command.to_owned(),
            "--config".into(),
            config.display().to_string(),
            "--tier".into(),
            "unused_tagged".into(),
            "--quiet-period".into(),
            "0s".into(),
            "--output".into(),
            "json".into(),
        ]
    };
    let first = run(pruneguard(&sb).args(tier_args("plan")));
    let planned = tier(json(&first), "unused_tagged");
    assert_eq!(planned["status"], "planned", "{planned:#}");
    assert_eq!(
        planned["candidates"], 0,
        "nothing is unused for 4s yet: {planned:#}"
    );
    std::thread::sleep(Duration::from_secs(UNUSED_FOR_S + 1));

    // A short-lived container uses the second-oldest build: its destroy event, after the
    // record's last update, makes that image recently used.
    let recent = host.apps[1].clone();
    sb.docker_ok(["run", "--rm", recent.as_str(), "/bin/busybox", "true"]);

    let second = run(pruneguard(&sb).args(tier_args("plan")));
    let planned = tier(json(&second), "unused_tagged");
    let order: Vec<String> = planned["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|candidate| candidate["reference"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = host
        .apps
        .iter()
        .filter(|app| **app != host.current && **app != recent)
        .cloned()
        .collect();
    assert_eq!(
        order.iter().collect::<BTreeSet<_>>(),
        expected.iter().collect::<BTreeSet<_>>(),
        "every build but the running one and the recently used one: {planned:#}"
    );
    // Least recently used first, then the oldest build (`Created` has whole seconds, so
    // builds of one second may come in any order).
    let created =
        |reference: &str| sb.docker_ok(["image", "inspect", "--format", "{{.Created}}", reference]);
    let keys: Vec<(String, String)> = planned["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let reference = c["reference"].as_str().unwrap();
            let mut created = created(reference);
            created.truncate(19);
            (c["last_used"].as_str().unwrap().to_owned(), created)
        })
        .collect();
    assert!(keys.is_sorted(), "oldest first: {keys:#?}");
    let expected = order;
    for candidate in planned["planned"].as_array().unwrap() {
        assert!(
            candidate["expected_bytes"]
                .as_u64()
                .is_some_and(|bytes| bytes >= APP_LAYER),
            "the unique bytes of one build (Size less its parent's: dockerd lists no SharedSize): {candidate:#}"
        );
    }

    // (b) The run, through a proxy: when the first tag goes, a container starts to use it
    // (after the plan), so dockerd answers 409 and that image is skipped.
    let blocked = Arc::new(std::sync::Mutex::new(None::<String>));
    let proxy = {
        let sb = Arc::clone(&sb);
        let blocked = Arc::clone(&blocked);
        let done = AtomicBool::new(false);
        Proxy::start(
            &sb.scratch().join("proxy.sock"),
            &sb.socket(),
            move |request| {
                if request.method == "DELETE" && !done.swap(true, Ordering::SeqCst) {
                    let reference = request
                        .endpoint()
                        .trim_start_matches("/images/")
                        .replace("%2F", "/")
                        .replace("%2f", "/")
                        .replace("%3A", ":")
                        .replace("%3a", ":");
                    sb.docker_ok(["create", "--name", "late", reference.as_str()]);
                    *blocked.lock().unwrap() = Some(reference);
                }
            },
        )
    };
    let tier_run = run(pruneguard(&sb)
        .args(tier_args("run"))
        .args(["-H", proxy.host().as_str()]));
    assert!(
        proxy.hook_failures().is_empty(),
        "{:#?}",
        proxy.hook_failures()
    );
    drop(proxy);
    let report = json(&tier_run);
    let blocked = blocked.lock().unwrap().clone().expect("the hook ran");
    let ran = tier(report, "unused_tagged");
    assert_eq!(ran["status"], "ran", "{ran:#}");
    let after = df_percent(&sb.data_root());
    assert!(
        after <= 80,
        "the filesystem is at or under the low watermark after one run: {after} % (was {full} %): {ran:#}"
    );
    assert_eq!(ran["disk_percent_after"], u64::from(after), "{ran:#}");
    assert_eq!(report["disk_still_full"], false, "{report:#}");
    let skipped = &ran["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s["reference"] == blocked.as_str()
                && s["why"].as_str().unwrap().contains("409")),
        "the image a container started to use is a 409 skip: {ran:#}"
    );
    let left = tags(&sb);
    let removed = strings(&ran["removed_tags"]);
    assert!(!removed.is_empty(), "{ran:#}");
    for tag in &removed {
        assert!(
            !left.contains(tag),
            "{tag} was reported removed but is still there"
        );
        assert!(expected.contains(tag), "{tag} was not a candidate");
    }
    for kept in [&host.current, &host.base, &recent, &blocked] {
        assert!(left.contains(kept), "{kept} must stay: {ran:#}");
    }
    assert_eq!(
        ran["removed_images"].as_u64().unwrap(),
        removed.len() as u64,
        "one tag per build: each removal frees its image"
    );
    assert!(
        report["reclaimed_bytes"].as_u64().unwrap() >= ran["reclaimed_bytes"].as_u64().unwrap(),
        "{report:#}"
    );
    assert!(
        ran["reclaimed_bytes"].as_u64().unwrap() >= (removed.len() as u64 - 1) * APP_LAYER,
        "measured on the filesystem: {ran:#}"
    );
    // Least recently used first, and only as many as the low watermark needs.
    let attempted: Vec<&str> = ran["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reference"].as_str().unwrap())
        .collect();
    assert_eq!(
        attempted,
        expected[..attempted.len()]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "{ran:#}"
    );
    assert!(
        attempted.len() < expected.len(),
        "it stopped at the watermark: {ran:#}"
    );
    assert!(sb.container_ids().len() == 2, "app and late stay");

    // (c) The next deploy of the current app and its base downloads nothing.
    sb.docker_ok(["rm", "-f", "app"]);
    let mark = registry.mark();
    for reference in [&host.base, &host.current] {
        sb.docker_ok(["pull", "-q", reference.as_str()]);
    }
    sb.docker_ok([
        "run",
        "-d",
        "--name",
        "app",
        host.current.as_str(),
        "/bin/busybox",
        "sleep",
        "3600",
    ]);
    let counts = registry.counts(&mark);
    assert_eq!(
        counts["blob_gets"], 0,
        "the next deploy pulled cold: {counts:?}"
    );
    assert_eq!(counts["errors"], 0, "{counts:?}");
    drop(registry);
}

#[test]
fn build_cache_on_docker_20_10_reports_what_the_api_says_and_removes_nothing_else() {
    let sb = Sandbox::start();
    sb.load_images(&ImageSpec::tagged("bc/keep:1", 1).busybox().age_days(30));
    sb.load_images(&ImageSpec::untagged(2).age_days(30));
    sb.docker_ok(["volume", "create", "bc-data"]);
    sb.docker_ok([
        "create",
        "--name",
        "bc-user",
        "-v",
        "bc-data:/data",
        "bc/keep:1",
    ]);
    // A classic build leaves the intermediate cache images (the 20.10 builder's cache).
    let context = sb.scratch().join("ctx");
    fs::create_dir_all(&context).unwrap();
    fs::write(
        context.join("Dockerfile"),
        "FROM bc/keep:1\nRUN echo one > /one\nRUN echo two > /two\n",
    )
    .unwrap();
    let out = sb
        .docker_command()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", "bc/built:1"])
        .arg(&context)
        .output()
        .unwrap();
    support::expect_success("docker build", &out);
    let images = sb.image_ids();
    let containers = sb.container_ids();
    let vols = volumes(&sb);

    let result = run(pruneguard(&sb).args([
        "run",
        "--no-config",
        "--disk-threshold",
        "0",
        "--quiet-period",
        "0s",
        "--min-age",
        "1000d",
        "--tier",
        "build_cache",
        "--output",
        "json",
    ]));
    let report = json(&result);
    let cache = tier(report, "build_cache");
    eprintln!("build_cache on this engine: {cache:#}");
    match cache["status"].as_str() {
        Some("ran") => {
            assert_eq!(cache["removed"], 0, "no BuildKit cache exists: {cache:#}");
            assert_eq!(cache["reclaimed_bytes"], 0, "{cache:#}");
        }
        Some("unsupported") => assert!(cache["reason"].as_str().is_some(), "{cache:#}"),
        other => panic!("unexpected build_cache status {other:?}: {cache:#}"),
    }
    assert_eq!(
        sb.image_ids(),
        images,
        "no image went (min_age 1000d keeps the dangling)"
    );
    assert_eq!(sb.container_ids(), containers);
    assert_eq!(volumes(&sb), vols);
}

/// Mounts an 8 MiB tmpfs at `DIR/extra` (inside the sandbox, so its stop unmounts it) and
/// fills it to about 94 %: a second filesystem of the disk gate that images do not fill.
fn full_second_filesystem(sb: &Sandbox) -> PathBuf {
    let mount = sb.dir().join("extra");
    fs::create_dir_all(&mount).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "pg-extra"])
        .arg(&mount)
        .status()
        .expect("mount runs");
    assert!(status.success(), "mount tmpfs at {}", mount.display());
    fs::write(mount.join("fill"), vec![7_u8; 7_700_000]).unwrap();
    mount
}

/// The watermarks follow the fullest filesystem of the disk gate (D11, D13): with the data
/// root nearly empty and a second `--disk-path` at 94 %, the tier starts, and, since removing
/// tags cannot free that filesystem, it removes every candidate and says the kept tags hold the
/// rest; with only the data root measured it is not needed.
#[test]
fn the_tier_follows_the_fullest_filesystem_of_the_disk_gate() {
    let sb = Sandbox::start();
    for n in 1..=3 {
        sb.load_images(&ImageSpec::tagged(&format!("fs/app:{n}"), 1).age_days(40 - n));
    }
    let extra = full_second_filesystem(&sb);
    let config = write_config(&sb);
    let args = |command: &str, paths: &[&Path]| {
        let mut cmd = pruneguard(&sb);
        cmd.arg(command)
            .arg("--config")
            .arg(&config)
            .args(["--tier", "unused_tagged", "--quiet-period", "0s"])
            .args(["--output", "json"]);
        for path in paths {
            cmd.arg("--disk-path").arg(path);
        }
        cmd
    };
    let data_root = sb.data_root();
    let both = [data_root.as_path(), extra.as_path()];
    let first = run(args("plan", &both));
    let planned = tier(json(&first), "unused_tagged");
    assert!(
        planned["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("would start") && reason.contains("extra")),
        "the fullest filesystem is named: {planned:#}"
    );
    std::thread::sleep(Duration::from_secs(UNUSED_FOR_S + 1));

    let only_root = run(args("run", &[data_root.as_path()]));
    let report = json(&only_root);
    assert_eq!(
        report["decision"], "skipped",
        "the data root alone keeps the disk gate closed: {report:#}"
    );

    let result = run(args("run", &both));
    let report = json(&result);
    let ran = tier(report, "unused_tagged");
    assert_eq!(ran["status"], "ran", "{ran:#}");
    let extra_percent = u64::from(df_percent(&extra));
    assert!(extra_percent >= 90, "{extra_percent}");
    assert_eq!(ran["disk_percent_before"], extra_percent, "{ran:#}");
    assert_eq!(
        strings(&ran["removed_tags"]),
        BTreeSet::from(["fs/app:1".to_owned(), "fs/app:2".to_owned()]),
        "the two older builds; the newest stays: {ran:#}"
    );
    assert!(
        ran["reason"]
            .as_str()
            .unwrap()
            .contains("no candidate is left"),
        "{ran:#}"
    );
    assert_eq!(tags(&sb), BTreeSet::from(["fs/app:3".to_owned()]));
}
