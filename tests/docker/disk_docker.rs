//! The disk is actually bounded (issue 5): on a sandbox whose data root is a small ext4 file
//! system filled past the default 80 % threshold, one `pruneguard run` with default settings
//! (only the quiet gate opened, since the test has just loaded images) brings `df` under the
//! threshold by removing the old dangling images, and touches nothing tagged or in use. When
//! dangling images cannot bring it under, the report says so and says what holds the space.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::{ImageSpec, Run, Sandbox, gate, ids, pruneguard, run};

const MIB: u64 = 1024 * 1024;
/// The loop-mounted data root.
const DISK_MB: u64 = 160;
/// Each generated image's own random layer.
const LAYER: u64 = 8 * MIB;

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

/// Loads one old image with its own `bytes`-byte layer, tagged `tag` or dangling.
fn load_one(sb: &Sandbox, tag: Option<&str>, bytes: u64) -> String {
    let spec = match tag {
        Some(tag) => ImageSpec::tagged(tag, 1),
        None => ImageSpec::untagged(1),
    };
    let ids = sb.load_images(&spec.age_days(3).layer_bytes(bytes));
    ids.into_iter().next().expect("one image")
}

/// One old dangling image (with busybox, so it runs) used by a stopped container.
fn load_in_use(sb: &Sandbox) -> String {
    let ids = sb.load_images(
        &ImageSpec::untagged(1)
            .busybox()
            .age_days(3)
            .layer_bytes(LAYER),
    );
    sb.docker_ok([
        "run",
        "--name",
        "stopped-user",
        ids[0].as_str(),
        "/bin/busybox",
        "true",
    ]);
    ids[0].clone()
}

/// Loads images (tagged `tag_prefix:N`, or dangling when None) until `df` shows at least
/// `percent`; returns their IDs.
fn fill_to(sb: &Sandbox, percent: u8, tag_prefix: Option<&str>) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for n in 0..64 {
        if df_percent(&sb.data_root()) >= percent {
            return ids;
        }
        let tag = tag_prefix.map(|prefix| format!("{prefix}:{n}"));
        ids.insert(load_one(sb, tag.as_deref(), LAYER));
    }
    panic!(
        "the data root did not reach {percent} % (at {} %)",
        df_percent(&sb.data_root())
    );
}

/// `pruneguard run` with the default policy; only the quiet gate is opened.
fn default_run(sb: &Sandbox, output: &str) -> Run {
    run(pruneguard(sb).args([
        "run",
        "--no-config",
        "--quiet-period",
        "0s",
        "--output",
        output,
    ]))
}

#[test]
fn dangling_images_bring_a_full_disk_under_the_default_threshold() {
    let sb = Sandbox::start_with_disk_mb(DISK_MB);
    let tagged = BTreeSet::from([
        load_one(&sb, Some("disk/keep:1"), LAYER),
        load_one(&sb, Some("disk/keep:2"), LAYER),
    ]);
    let in_use = load_in_use(&sb);
    let dangling = fill_to(&sb, 86, None);
    let before = sb.image_ids();
    let before_percent = df_percent(&sb.data_root());
    assert!(before_percent > 80, "filled past 80 %: {before_percent} %");

    let result = default_run(&sb, "json");
    assert_eq!(result.code, 0, "{}", result.show());
    let report = result.json();
    assert_eq!(report["decision"], "pruned", "{report:#}");
    let disk = gate(report, "disk");
    assert_eq!(disk["open"], true, "{disk:#}");
    assert_eq!(disk["evidence"]["threshold_percent"], 80, "the default");
    assert_eq!(
        disk["evidence"]["path"],
        sb.data_root().to_str().unwrap(),
        "the data root is measured"
    );
    assert_eq!(ids(report, "candidates"), dangling);
    assert_eq!(ids(report, "removed"), dangling);

    let after_percent = df_percent(&sb.data_root());
    assert!(
        after_percent < 80,
        "df shows the disk under the threshold: {after_percent} % (was {before_percent} %)"
    );
    let reported = report["disk_after"]["used_percent"].as_u64().unwrap();
    assert!(reported < 80, "{report:#}");
    assert_eq!(report["disk_still_full"], false, "{report:#}");
    assert_eq!(
        reported,
        u64::from(after_percent),
        "the report agrees with df"
    );
    assert!(
        report["reclaimed_bytes"].as_u64().unwrap() >= (dangling.len() as u64 - 1) * LAYER,
        "the freed bytes are measured on the filesystem: {report:#}"
    );

    let after = sb.image_ids();
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(gone, dangling, "only the old unused dangling images went");
    assert!(tagged.is_subset(&after), "tagged images stay");
    assert!(
        after.contains(&in_use),
        "the image a stopped container uses stays"
    );
    assert_eq!(sb.container_ids().len(), 1, "the container stays");
}

#[test]
fn when_dangling_images_are_not_enough_the_report_says_so() {
    let sb = Sandbox::start_with_disk_mb(DISK_MB);
    let in_use = load_in_use(&sb);
    let tagged = fill_to(&sb, 83, Some("disk/keep"));
    let dangling = BTreeSet::from([load_one(&sb, None, 4 * MIB), load_one(&sb, None, 4 * MIB)]);
    let before_percent = df_percent(&sb.data_root());

    // For a person: the text report says the disk is still too full, and what holds it.
    let result = default_run(&sb, "text");
    assert_eq!(result.code, 0, "{}", result.show());
    let stdout = &result.stdout;
    assert!(stdout.contains("(run): pruned"), "{stdout}");
    let still = stdout
        .lines()
        .find(|line| line.starts_with("Still at or above the 80 % threshold"))
        .unwrap_or_else(|| panic!("the report says the disk is still too full:\n{stdout}"));
    assert!(
        still.contains("removable dangling images are not enough")
            && still.contains("Tagged images hold up to")
            && still.contains("in-use images up to"),
        "{still}"
    );
    let after_percent = df_percent(&sb.data_root());
    assert!(
        after_percent >= 80,
        "{after_percent} % (was {before_percent} %)"
    );
    assert!(
        stdout.contains(&format!("now {after_percent} % full")),
        "{stdout}"
    );
    let after = sb.image_ids();
    assert!(dangling.is_disjoint(&after), "the dangling images went");
    assert!(tagged.is_subset(&after) && after.contains(&in_use));

    // For a machine: the same in the JSON report of the next run.
    let more = BTreeSet::from([load_one(&sb, None, 4 * MIB), load_one(&sb, None, 4 * MIB)]);
    let result = default_run(&sb, "json");
    assert_eq!(result.code, 0, "{}", result.show());
    let report = result.json();
    assert_eq!(report["decision"], "pruned", "{report:#}");
    assert_eq!(ids(report, "removed"), more);
    assert!(
        report["disk_after"]["used_percent"].as_u64().unwrap() >= 80,
        "{report:#}"
    );
    assert_eq!(report["disk_still_full"], true, "{report:#}");
    assert!(
        report["summary"]
            .as_str()
            .unwrap()
            .contains("dangling images are not enough"),
        "{report:#}"
    );
    assert_eq!(report["kept"]["tagged"], tagged.len());
    assert_eq!(report["kept"]["in_use"], 1);
    assert!(
        report["kept_bytes"]["tagged"].as_u64().unwrap() >= tagged.len() as u64 * LAYER,
        "{report:#}"
    );
    assert!(
        report["kept_bytes"]["in_use"].as_u64().unwrap() >= LAYER,
        "{report:#}"
    );
    let after = sb.image_ids();
    assert!(more.is_disjoint(&after));
    assert!(tagged.is_subset(&after) && after.contains(&in_use));

    // With no dangling image left at all, the disk is still full: "nothing to do" must not
    // read as "all is well".
    let result = default_run(&sb, "text");
    assert_eq!(result.code, 0, "{}", result.show());
    let stdout = &result.stdout;
    assert!(stdout.contains("(run): nothing_to_do"), "{stdout}");
    assert!(
        stdout.lines().any(
            |line| line.starts_with("Still at or above the 80 % threshold")
                && line.contains("Tagged images hold up to")
        ),
        "the report says the disk is still too full:\n{stdout}"
    );
    assert_eq!(sb.image_ids(), after);
}
