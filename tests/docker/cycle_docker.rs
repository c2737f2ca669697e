//! The deploy cycle (issue 5): between deploys, pruneguard must not cost the next deploy a
//! single layer download, while `docker system prune -af` (autoPrune with `--all`) makes every
//! redeploy pull cold.
//!
//! The scenario lives in one place, `bench/cycle.sh` (it also prints the README's table): two
//! private sandbox daemons, each with a real local registry v2 in its network namespace
//! (`scripts/registry.sh`), K cycles of teardown, old dangling images, clean, redeploy, with the
//! registry's access log counting what each redeploy downloads. This test runs it with the
//! binary under test and asserts on its JSON summary. It fails (never skips) when a daemon or
//! the registry cannot start: the script then exits non-zero and says why.

use crate::support;

use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

const CYCLES: u64 = 5;

fn int(value: &Value, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not an unsigned integer in {value:#}"))
}

fn cleaner<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["cleaners"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["cleaner"] == name))
        .unwrap_or_else(|| panic!("no {name} cleaner in {summary:#}"))
}

fn cycles(cleaner: &Value) -> &Vec<Value> {
    let cycles = cleaner["cycles"]
        .as_array()
        .unwrap_or_else(|| panic!("no cycles in {cleaner:#}"));
    assert_eq!(
        cycles.len() as u64,
        CYCLES,
        "one entry per cycle in {cleaner:#}"
    );
    cycles
}

#[test]
fn pruneguard_redeploys_download_nothing_where_prune_all_pulls_cold() {
    let started = Instant::now();
    let mut command = Command::new("bash");
    command
        .arg(support::repo_root().join("bench").join("cycle.sh"))
        .arg("--json")
        .arg(CYCLES.to_string())
        .env("PRUNEGUARD_BIN", env!("CARGO_BIN_EXE_pruneguard"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Progress, the markdown table and any failure's explanation.
        .stderr(Stdio::inherit());
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench/cycle.sh failed with {} (its stderr above says why; it needs root and Debian's \
         docker.io and docker-registry: run the suite with `scripts/test.sh` as root)\n{stdout}",
        output.status
    );
    eprintln!(
        "bench/cycle.sh --json {CYCLES} took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let summary: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("bench/cycle.sh printed no JSON ({err}):\n{stdout}"));
    assert_eq!(int(&summary, "k"), CYCLES);
    let layers = int(&summary, "distinct_layers");
    let junk_layer_bytes = int(&summary, "junk_layer_bytes");

    let prune = cleaner(&summary, "prune-af");
    let guard = cleaner(&summary, "pruneguard");

    // Both started cold: the first deploy downloaded every layer (and each config).
    for c in [prune, guard] {
        let cold = int(&c["cold_deploy"], "blob_gets");
        assert!(
            cold >= layers,
            "{}: the first deploy must pull cold ({cold} blob GETs < {layers} layers): {c:#}",
            c["cleaner"]
        );
    }

    for cycle in cycles(guard) {
        let n = int(cycle, "cycle");
        let redeploy = &cycle["redeploy"];
        assert_eq!(
            int(redeploy, "blob_gets"),
            0,
            "cycle {n}: a redeploy after pruneguard downloaded blobs: {cycle:#}"
        );
        assert_eq!(int(redeploy, "blob_bytes"), 0, "cycle {n}: {cycle:#}");
        let old_before = int(cycle, "old_dangling_before");
        assert!(
            old_before >= 2,
            "cycle {n}: the scenario must leave old dangling images to clean: {cycle:#}"
        );
        assert_eq!(
            int(cycle, "old_dangling_after"),
            0,
            "cycle {n}: dangling images older than min_age are left after pruneguard: {cycle:#}"
        );
        assert_eq!(cycle["decision"], "pruned", "cycle {n}: {cycle:#}");
        assert_eq!(
            int(cycle, "removed"),
            old_before,
            "cycle {n}: pruneguard removes exactly the old dangling images: {cycle:#}"
        );
        // Young dangling images (the previous local rebuild) stay: min_age is 24h.
        assert_eq!(
            int(cycle, "dangling_after"),
            int(cycle, "dangling_before") - old_before,
            "cycle {n}: young dangling images must be kept: {cycle:#}"
        );
        assert_eq!(
            int(cycle, "tagged_kept_after_clean"),
            3,
            "cycle {n}: the tagged base and app images must be intact after pruneguard: {cycle:#}"
        );
        // Removing the old images gave their layers back to the disk.
        let freed = int(cycle, "disk_before_clean").saturating_sub(int(cycle, "disk_after_clean"));
        assert!(
            freed >= old_before * junk_layer_bytes / 2,
            "cycle {n}: removing {old_before} old images of {junk_layer_bytes} bytes each freed \
             only {freed} bytes: {cycle:#}"
        );
    }

    for cycle in cycles(prune) {
        let n = int(cycle, "cycle");
        let blob_gets = int(&cycle["redeploy"], "blob_gets");
        assert!(
            blob_gets >= layers,
            "cycle {n}: after `docker system prune -af` the redeploy should re-download every \
             layer ({blob_gets} blob GETs < {layers} layers): {cycle:#}"
        );
        assert_eq!(
            int(cycle, "tagged_kept_after_clean"),
            0,
            "cycle {n}: `docker system prune -af` evicts the unused base and app images: {cycle:#}"
        );
    }
}
