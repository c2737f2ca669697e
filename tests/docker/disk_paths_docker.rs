//! `gates.disk.paths` against a real daemon (issue 10): the disk gate measures every path named
//! (`--disk-path`, repeatable), once per filesystem, and opens when any of them is full; its
//! evidence lists each, and `reclaimed_bytes` sums what each filesystem freed. The second
//! filesystem is a small tmpfs mounted inside the sandbox's directory (so the sandbox's stop
//! unmounts it even when the test fails), filled past the threshold while the data root is not.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{ImageSpec, Sandbox, gate, ids, pruneguard, run};

/// Mounts an 8 MiB tmpfs at `DIR/extra` and fills it to about 94 %.
fn full_second_filesystem(sb: &Sandbox) -> PathBuf {
    let mount = sb.dir().join("extra");
    std::fs::create_dir_all(&mount).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "pg-extra"])
        .arg(&mount)
        .status()
        .expect("mount runs");
    assert!(status.success(), "mount tmpfs at {}", mount.display());
    std::fs::write(mount.join("fill"), vec![7_u8; 7_700_000]).unwrap();
    mount
}

fn json_run(sb: &Sandbox, command: &str, paths: &[&Path]) -> Value {
    let mut cmd = pruneguard(sb);
    cmd.args([
        command,
        "--no-config",
        "--quiet-period",
        "0s",
        "--output",
        "json",
    ]);
    for path in paths {
        cmd.arg("--disk-path").arg(path);
    }
    let result = run(cmd);
    assert_eq!(result.code, 0, "{}", result.show());
    result.json().clone()
}

fn listed(disk: &Value) -> Vec<(String, bool)> {
    disk["evidence"]["filesystems"]
        .as_array()
        .unwrap_or_else(|| panic!("no filesystems in {disk:#}"))
        .iter()
        .map(|fs| {
            (
                fs["path"].as_str().unwrap().to_string(),
                fs["under_pressure"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_full_second_path_opens_the_disk_gate_and_both_are_listed() {
    let sb = Sandbox::start_with_disk_mb(160);
    let dangling = sb.load_images(&ImageSpec::untagged(2).age_days(3).layer_bytes(1 << 20));
    let data_root = sb.data_root();
    let extra = full_second_filesystem(&sb);

    // The data root alone (auto, classic store): not full, closed.
    let report = json_run(&sb, "plan", &[]);
    let disk = gate(&report, "disk");
    assert_eq!(disk["open"], false, "{disk:#}");
    assert_eq!(listed(disk), [(data_root.display().to_string(), false)]);

    // A path on the data root's filesystem is measured once; the full tmpfs opens the gate.
    let inside = data_root.join("image");
    let report = json_run(&sb, "plan", &[&data_root, &inside, &extra]);
    let disk = gate(&report, "disk");
    assert_eq!(disk["open"], true, "{disk:#}");
    assert_eq!(
        listed(disk),
        [
            (data_root.display().to_string(), false),
            (extra.display().to_string(), true)
        ],
        "each filesystem once, in order, the full one under pressure"
    );
    let detail = disk["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("{} (tmpfs) is 9", extra.display()))
            && detail.contains("under pressure"),
        "{detail}"
    );
    assert_eq!(
        disk["evidence"]["path"],
        data_root.to_str().unwrap(),
        "the first stays first"
    );

    // A run removes the old dangling images; both filesystems are measured again.
    let report = json_run(&sb, "run", &[&data_root, &extra]);
    assert_eq!(report["decision"], "pruned", "{report:#}");
    assert_eq!(ids(&report, "removed"), dangling.into_iter().collect());
    let filesystems = report["filesystems"].as_array().unwrap();
    assert_eq!(filesystems.len(), 2, "{report:#}");
    let sum: u64 = filesystems
        .iter()
        .map(|fs| fs["reclaimed_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(report["reclaimed_bytes"].as_u64(), Some(sum), "{report:#}");
    assert!(sum >= 1 << 20, "the data root freed the layers: {report:#}");
    assert_eq!(filesystems[1]["after"]["path"], extra.to_str().unwrap());
    // The tmpfs is still full: dangling images were not enough there.
    assert_eq!(report["disk_still_full"], true, "{report:#}");
}
