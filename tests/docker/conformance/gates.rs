//! The gates on every engine: the disk gate measures the filesystem that fills with image data
//! (the data root; on `docker-28-containerd-ext` containerd's own root, a filesystem of its
//! own, which `gates.disk.paths = ["auto"]` must find by itself: the sandbox's containerd runs
//! with `--config DIR/containerd.toml`, as a host's may) and `reclaimed_bytes` counts what a
//! run freed there; the quiet gate closes right after
//! each kind of activity (pull from a registry, load, import, tag, build, container create);
//! the swarm gate reads a swarm where the engine has one and is open, not an error, on Podman.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{ImageSpec, Sandbox, gate, ids, json_run, pruneguard, repo_root, run};

use super::{build, df_percent, df_used_bytes};

const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// disk

/// The loop-mounted data root (and, on containerd-ext, containerd's own filesystem).
const DISK_MB: u64 = 160;

/// Where image data lands on this sandbox's engine.
fn image_data_path(sb: &Sandbox) -> PathBuf {
    if sb.engine().containerd_ext {
        sb.containerd_root()
            .expect("containerd-ext has a containerd root")
    } else {
        sb.data_root()
    }
}

fn plan_with_threshold(sb: &Sandbox, percent: u8) -> Value {
    let mut command = pruneguard(sb);
    command.args([
        "plan",
        "--no-config",
        "--quiet-period",
        "0s",
        "--output",
        "json",
        "--disk-threshold",
        &percent.to_string(),
    ]);
    let result = run(&mut command);
    assert_eq!(result.code, 0, "{}", result.show());
    result.json().clone()
}

#[test]
fn disk_gate_measures_where_image_data_lives_and_reclaimed_bytes_count_it() {
    let sb = Sandbox::start_with_disk_mb(DISK_MB);
    let engine = sb.engine();
    let where_images_go = image_data_path(&sb);
    let empty = df_percent(&where_images_go);
    // Four builds of one tag with 8 MiB of their own each: three old untagged ones to remove.
    let images = sb.load_images(
        &ImageSpec::tagged("conformance/disk:1", 4)
            .age_days(3)
            .layer_bytes(8 * MIB),
    );
    let full = df_percent(&where_images_go);
    assert!(
        full >= empty + 10,
        "loading 32 MiB of images on {engine} fills {} ({empty} % -> {full} %)",
        where_images_go.display()
    );

    let open = plan_with_threshold(&sb, full);
    let disk = gate(&open, "disk");
    assert_eq!(
        disk["open"],
        true,
        "on {engine} the disk gate opens when {} is {full} % full, at a {full} % threshold\n{disk:#}",
        where_images_go.display()
    );
    let closed = plan_with_threshold(&sb, full + 1);
    let disk = gate(&closed, "disk");
    assert_eq!(
        disk["open"], false,
        "on {engine} the disk gate stays closed below the threshold\n{disk:#}"
    );

    let used_before = df_used_bytes(&where_images_go);
    let result = json_run(&sb, "run", &["--min-age", "0s"]);
    let removed = ids(&result.report, "removed");
    let untagged: std::collections::BTreeSet<String> = images[..3].iter().cloned().collect();
    assert_eq!(removed, untagged, "{:#}", result.report);
    let freed = used_before.saturating_sub(df_used_bytes(&where_images_go));
    assert!(
        freed >= 16 * MIB,
        "removing 3 x 8 MiB freed {freed} bytes on {engine}"
    );
    let reclaimed = result.report["reclaimed_bytes"].as_u64().unwrap_or(0);
    assert!(
        reclaimed >= freed / 2,
        "on {engine} reclaimed_bytes ({reclaimed}) counts the {freed} bytes freed on {}\n{:#}",
        where_images_go.display(),
        result.report
    );
}

// ---------------------------------------------------------------------------------------------
// quiet

/// The quiet period of these tests, and the wait that lets the set-up's own events age out.
const QUIET: &str = "3s";
const QUIET_WAIT: Duration = Duration::from_secs(4);

fn quiet_verdict(sb: &Sandbox) -> Value {
    let mut command = pruneguard(sb);
    command.args([
        "plan",
        "--no-config",
        "--disk-threshold",
        "0",
        "--output",
        "json",
        "--quiet-period",
        QUIET,
    ]);
    let result = run(&mut command);
    assert_eq!(result.code, 0, "{}", result.show());
    gate(result.json(), "quiet").clone()
}

/// Sets up with `prepare`, waits for its events to age out (and checks that the gate is open
/// then), does `activity`, and asserts that the quiet gate closes right after it.
fn assert_quiet_closes_after(
    what: &str,
    prepare: impl FnOnce(&Sandbox),
    activity: impl FnOnce(&Sandbox),
) {
    let sb = Sandbox::start();
    let engine = sb.engine();
    prepare(&sb);
    std::thread::sleep(QUIET_WAIT);
    let before = quiet_verdict(&sb);
    assert_eq!(
        before["open"], true,
        "on {engine} the quiet gate is open {QUIET_WAIT:?} after the set-up for {what}\n{before:#}"
    );
    activity(&sb);
    let after = quiet_verdict(&sb);
    assert_eq!(
        after["open"], false,
        "on {engine} the quiet gate closes right after {what}\n{after:#}"
    );
    assert!(
        after["evidence"]["events"]
            .as_array()
            .is_some_and(|events| !events.is_empty()),
        "on {engine} the evidence lists the events of {what}\n{after:#}"
    );
}

fn load_base(sb: &Sandbox) {
    sb.load_images(&ImageSpec::tagged("conformance/base:1", 1).busybox());
}

#[test]
fn quiet_gate_closes_after_a_load() {
    assert_quiet_closes_after(
        "a load",
        |_| {},
        |sb| {
            sb.load_images(&ImageSpec::tagged("conformance/loaded:1", 1));
        },
    );
}

#[test]
fn quiet_gate_closes_after_an_import() {
    assert_quiet_closes_after(
        "an import",
        |sb| {
            let tar = sb.scratch().join("rootfs.tar");
            let dir = sb.scratch().join("rootfs");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("hello"), "imported").unwrap();
            let status = Command::new("tar")
                .arg("-C")
                .arg(&dir)
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .status()
                .unwrap();
            assert!(status.success(), "tar of the import rootfs");
        },
        |sb| {
            let tar = sb.scratch().join("rootfs.tar");
            sb.docker_ok([
                "import".as_ref(),
                tar.as_os_str(),
                "conformance/imported:1".as_ref(),
            ]);
        },
    );
}

#[test]
fn quiet_gate_closes_after_a_tag() {
    assert_quiet_closes_after("a tag", load_base, |sb| {
        sb.docker_ok(["tag", "conformance/base:1", "conformance/retagged:1"]);
    });
}

#[test]
fn quiet_gate_closes_after_a_build() {
    assert_quiet_closes_after("a build", load_base, |sb| {
        build(
            sb,
            "conformance/built:1",
            "FROM conformance/base:1\nRUN [\"/bin/busybox\", \"touch\", \"/built\"]\n",
        );
    });
}

#[test]
fn quiet_gate_closes_after_a_container_create() {
    assert_quiet_closes_after("a container create", load_base, |sb| {
        sb.docker_ok(["create", "--name", "fresh", "conformance/base:1"]);
    });
}

/// The sandbox's local registry (scripts/registry.sh, 127.0.0.1:5000 in its namespace).
fn registry(sb: &Sandbox, command: &str) -> String {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/registry.sh"))
        .arg(command)
        .arg(sb.dir())
        .output()
        .expect("scripts/registry.sh runs");
    assert!(
        out.status.success(),
        "registry.sh {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn quiet_gate_closes_after_a_pull() {
    const REMOTE: &str = "127.0.0.1:5000/conformance/pulled:1";
    assert_quiet_closes_after(
        "a pull from a registry",
        |sb| {
            registry(sb, "start");
            load_base(sb);
            sb.docker_ok(["tag", "conformance/base:1", REMOTE]);
            sb.docker_ok(["push", REMOTE]);
            sb.docker_ok(["rmi", REMOTE]);
            sb.docker_ok(["rmi", "conformance/base:1"]);
        },
        |sb| {
            sb.docker_ok(["pull", REMOTE]);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// swarm

#[test]
fn swarm_gate_reads_the_swarm_where_the_engine_has_one() {
    let sb = Sandbox::start();
    let engine = sb.engine();
    let report = json_run(&sb, "plan", &[]).report;
    let swarm = gate(&report, "swarm");
    assert_eq!(
        swarm["open"], true,
        "on {engine} a host outside any swarm leaves the swarm gate open\n{swarm:#}"
    );
    let detail = swarm["detail"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        !detail.contains("error") && !detail.contains("cannot"),
        "on {engine} no swarm is not an error: {swarm:#}"
    );
    if !engine.has_swarm {
        return;
    }
    // A single-node manager whose only service cannot be placed: converging, so closed.
    load_base(&sb);
    sb.docker_ok(["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    sb.docker_ok([
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        "never-placed",
        "--constraint",
        "node.labels.nope==1",
        "conformance/base:1",
    ]);
    let mut closed = Value::Null;
    for _ in 0..100 {
        let report = json_run(&sb, "plan", &[]).report;
        closed = gate(&report, "swarm").clone();
        if closed["open"] == false {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        closed["open"], false,
        "on {engine} a pending service closes the swarm gate\n{closed:#}"
    );
    assert_eq!(closed["evidence"]["role"], "manager", "{closed:#}");
    assert!(
        closed["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("never-placed"),
        "{closed:#}"
    );
}
