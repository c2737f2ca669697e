//! `pruneguard run` / `plan` end to end against a private Docker daemon (issue 2): what the
//! default policy removes and keeps, the disk and quiet gates, dry runs, the run lock, a
//! stopped daemon, bad configuration, metrics and the state file.

use crate::support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{
    ImageSpec, OPEN_GATES, Sandbox, gate, ids, json_command, json_run, pruneguard, run, spawn,
};

/// `pruneguard run` with the quiet gate opened and the disk gate closed (threshold 100 %).
fn closed_disk_run(sb: &Sandbox) -> Command {
    let mut command = pruneguard(sb);
    command.args([
        "run",
        "--no-config",
        "--quiet-period",
        "0s",
        "--disk-threshold",
        "100",
    ]);
    command
}

fn set(items: &[String]) -> BTreeSet<String> {
    items.iter().cloned().collect()
}

/// A sandbox with four old dangling images (one used by an exited container, one by a created
/// one, two free), a young dangling image, and two tagged images.
struct Fixture {
    sb: Sandbox,
    old_free: BTreeSet<String>,
    used_by_exited: String,
    used_by_created: String,
    young_dangling: String,
    tagged: BTreeSet<String>,
}

fn fixture() -> Fixture {
    let sb = Sandbox::start();
    // 5 builds of app:1 three days ago: the last keeps the tag, four are left dangling.
    let old = sb.load_images(&ImageSpec::tagged("fixture/app:1", 5).age_days(3).busybox());
    // 2 builds of app:2 an hour ago: one young dangling image.
    let young =
        sb.load_images(&ImageSpec::tagged("fixture/app:2", 2).age(Duration::from_secs(3600)));
    // A stopped container (ran and exited) and a merely created one pin one old image each.
    sb.docker_ok([
        "run",
        "--name",
        "exited-job",
        old[0].as_str(),
        "/bin/busybox",
        "true",
    ]);
    sb.docker_ok(["create", "--name", "created-job", old[1].as_str()]);
    Fixture {
        old_free: set(&old[2..4]),
        used_by_exited: old[0].clone(),
        used_by_created: old[1].clone(),
        young_dangling: young[0].clone(),
        tagged: BTreeSet::from([old[4].clone(), young[1].clone()]),
        sb,
    }
}

#[test]
fn run_removes_only_old_unused_dangling_images() {
    let f = fixture();
    let before = f.sb.image_ids();
    let result = json_run(&f.sb, "run", &[]);
    let report = &result.report;
    assert_eq!(report["decision"], "pruned", "{report:#}");
    assert_eq!(
        ids(report, "removed"),
        f.old_free,
        "exactly the old unused dangling images go"
    );
    assert_eq!(ids(report, "candidates"), f.old_free);
    let after = f.sb.image_ids();
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(
        gone, f.old_free,
        "the daemon lost exactly the planned images"
    );
    for kept in [&f.used_by_exited, &f.used_by_created, &f.young_dangling] {
        assert!(after.contains(kept), "{kept} must be kept");
    }
    assert!(
        f.tagged.is_subset(&after),
        "tagged images are never removed"
    );
    assert_eq!(report["kept"]["tagged"], 2);
    assert_eq!(report["kept"]["in_use"], 2);
    assert_eq!(report["kept"]["too_young"], 1);
    assert_eq!(report["kept"]["has_children"], 0);
    // The JSON document starts with its schema version.
    assert!(
        result
            .stdout
            .trim_start()
            .starts_with("{\n  \"schema_version\": 1"),
        "{}",
        result.stdout
    );

    // A second run finds nothing more to do.
    let again = json_run(&f.sb, "run", &[]);
    assert_eq!(again.report["decision"], "nothing_to_do");
    assert_eq!(f.sb.image_ids(), after);
}

#[test]
fn dry_run_removes_nothing_and_lists_exactly_what_a_run_removes() {
    let f = fixture();
    let before = f.sb.image_ids();
    let planned = json_run(&f.sb, "plan", &[]);
    assert_eq!(planned.report["dry_run"], true);
    assert_eq!(planned.report["decision"], "dry_run");
    assert_eq!(f.sb.image_ids(), before, "plan deletes nothing");
    let dry = json_run(&f.sb, "run", &["--dry-run"]);
    assert_eq!(dry.report["decision"], "dry_run");
    assert_eq!(f.sb.image_ids(), before, "run --dry-run deletes nothing");
    assert_eq!(
        ids(&dry.report, "candidates"),
        ids(&planned.report, "candidates")
    );

    let real = json_run(&f.sb, "run", &[]);
    assert_eq!(
        ids(&real.report, "removed"),
        ids(&planned.report, "candidates")
    );
}

#[test]
fn closed_disk_gate_removes_nothing_and_says_so() {
    let f = fixture();
    let before = f.sb.image_ids();
    let result = run(closed_disk_run(&f.sb).args(["--output", "json"]));
    assert_eq!(
        result.code, 0,
        "a skip is a normal outcome for a timer: {}",
        result.stderr
    );
    assert_eq!(result.report["decision"], "skipped");
    let disk = gate(&result.report, "disk");
    assert_eq!(disk["open"], false);
    assert!(
        disk["detail"].as_str().unwrap().contains("threshold 100 %"),
        "{disk:#}"
    );
    assert_eq!(
        disk["evidence"]["path"],
        f.sb.data_root().to_string_lossy().as_ref(),
        "auto measures the data root"
    );
    assert!(result.report["summary"].as_str().unwrap().contains("disk"));
    assert_eq!(f.sb.image_ids(), before);

    // The text report says the same to a person.
    let result = run(&mut closed_disk_run(&f.sb));
    assert_eq!(result.code, 0);
    assert!(result.stdout.contains("CLOSED disk"), "{}", result.stdout);
}

#[test]
fn quiet_gate_closes_right_after_a_load() {
    let sb = Sandbox::start();
    sb.load_images(&ImageSpec::tagged("quiet/app:1", 3).age_days(3));
    let before = sb.image_ids();
    let mut command = pruneguard(&sb);
    command.args([
        "run",
        "--no-config",
        "--disk-threshold",
        "0",
        "--output",
        "json",
    ]);
    let result = run(&mut command);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(result.report["decision"], "skipped");
    let quiet = gate(&result.report, "quiet");
    assert_eq!(quiet["open"], false, "{quiet:#}");
    assert!(
        quiet["detail"].as_str().unwrap().contains("image load"),
        "{quiet:#}"
    );
    assert!(!quiet["evidence"]["events"].as_array().unwrap().is_empty());
    assert_eq!(sb.image_ids(), before);
}

#[test]
fn scratch_build_chain_is_removed_whole_once_superseded() {
    let sb = Sandbox::start();
    let context = sb.scratch().join("build");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY payload /payload\nLABEL stage=one\nCOPY payload /again\n",
    )
    .unwrap();
    let build = |content: &str| {
        std::fs::write(context.join("payload"), content).unwrap();
        let mut command = sb.docker_command();
        command
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", "scratch/app:latest"])
            .arg(&context);
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    build("first");
    let first_generation = sb.image_ids();
    build("second");
    let superseded = sb.dangling_ids();
    assert!(
        !superseded.is_empty(),
        "the first build's image is dangling now"
    );
    let current = sb.image_id("scratch/app:latest").unwrap();

    // Built just now, so only a zero min_age makes them candidates.
    let result = json_run(&sb, "run", &["--min-age", "0s"]);
    let removed = ids(&result.report, "removed");
    assert!(!removed.is_empty());
    assert!(
        removed.is_subset(&first_generation),
        "only first-build images are removed"
    );
    let after = sb.image_ids();
    assert!(after.contains(&current));
    assert!(
        sb.dangling_ids()
            .iter()
            .all(|id| !first_generation.contains(id) || !superseded.contains(id)),
        "no superseded dangling image is left"
    );
    assert!(
        result.report["failed"].as_array().unwrap().is_empty(),
        "{:#}",
        result.report
    );
    // Exactly the planned images went; nothing else disappeared.
    let gone: BTreeSet<String> = first_generation
        .union(&after)
        .filter(|id| !after.contains(*id))
        .cloned()
        .collect();
    assert_eq!(gone, removed);
}

#[test]
fn a_second_concurrent_run_exits_1_with_the_lock_message() {
    let sb = Sandbox::start();
    let lock_file = sb.scratch().join("deploy.lock");
    std::fs::write(&lock_file, "busy").unwrap();
    // The first run holds the lock while it waits for the workload gate.
    let mut first = json_command(&sb, "run");
    first.arg("--workload-lock-file").arg(&lock_file).args([
        "--wait-for-gates",
        "20s",
        "--wait-interval",
        "1s",
    ]);
    let first = spawn(first);
    let lock_path = sb.state_dir().join("pruneguard.lock");
    let mut second = None;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        if lock_path.exists() {
            std::thread::sleep(Duration::from_millis(300));
            second = Some(run(pruneguard(&sb).arg("run").args(OPEN_GATES)));
            break;
        }
    }
    let second = second.expect("the first run created its lock file");
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("another pruneguard run holds the lock"),
        "{}",
        second.stderr
    );
    // A dry run is not blocked by the lock.
    let plan = run(pruneguard(&sb).arg("plan").args(OPEN_GATES));
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    std::fs::remove_file(&lock_file).unwrap();
    let first = first.wait(Duration::from_secs(60));
    assert_eq!(first.code, 0, "{}", first.stderr);
}

#[test]
fn stopped_daemon_exits_1_naming_the_socket() {
    let sb = Sandbox::start();
    sb.stop_daemon();
    let result = run(pruneguard(&sb).arg("run").args(OPEN_GATES));
    assert_eq!(result.code, 1, "{}", result.stderr);
    let socket = sb.socket().to_string_lossy().into_owned();
    assert!(
        result.stderr.contains(&socket),
        "the message names the socket: {}",
        result.stderr
    );
    assert!(
        result.stderr.contains("-H/--host or DOCKER_HOST"),
        "the message names the fix: {}",
        result.stderr
    );
    assert!(
        result.stdout.is_empty(),
        "no report when nothing could be gathered"
    );
}

#[test]
fn bad_config_exits_2_and_removes_nothing() {
    let f = fixture();
    let before = f.sb.image_ids();
    let config = f.sb.scratch().join("bad.toml");
    for (text, must_name) in [
        ("[policy]\nmin_age = \"soon\"\n", "policy.min_age"),
        (
            "[gates.disk]\nthreshold_percent = 180\n",
            "gates.disk.threshold_percent",
        ),
        (
            "[gates.disk]\nthreshhold_percent = 80\n",
            "threshhold_percent",
        ),
        (
            "[gates.workload]\nstacks = [\"\"]\n",
            "gates.workload.stacks",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let result = run(pruneguard(&f.sb)
            .args([
                "run",
                "--disk-threshold",
                "0",
                "--quiet-period",
                "0s",
                "--config",
            ])
            .arg(&config));
        assert_eq!(result.code, 2, "{text}: {}", result.stderr);
        assert!(
            result.stderr.contains(must_name),
            "{text}: the error names {must_name}: {}",
            result.stderr
        );
        assert!(
            result.stderr.contains("bad.toml:"),
            "{text}: the error names the file and line: {}",
            result.stderr
        );
    }
    let missing = run(pruneguard(&f.sb).args(["run", "--config", "/nonexistent/pruneguard.toml"]));
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("/nonexistent/pruneguard.toml"));
    let bad_flag = run(pruneguard(&f.sb).args(["run", "--min-age", "yesterday"]));
    assert_eq!(bad_flag.code, 2, "{}", bad_flag.stderr);
    assert_eq!(
        f.sb.image_ids(),
        before,
        "nothing is deleted on a bad config"
    );
}

#[test]
fn metrics_and_state_file_describe_the_run() {
    let f = fixture();
    let metrics = f.sb.scratch().join("pruneguard.prom");
    json_run(&f.sb, "run", &["--metrics-file", metrics.to_str().unwrap()]);
    let text = std::fs::read_to_string(&metrics).expect("the metrics file was written");
    for line in [
        "pruneguard_last_run_success 1",
        "pruneguard_gate_open{gate=\"disk\"} 1",
        "pruneguard_gate_open{gate=\"workload\"} 1",
        "pruneguard_gate_open{gate=\"swarm\"} 1",
        "pruneguard_gate_open{gate=\"quiet\"} 1",
        "pruneguard_images_removed 2",
        "pruneguard_candidates 2",
        "# TYPE pruneguard_bytes_reclaimed gauge",
        "# TYPE pruneguard_disk_used_ratio gauge",
        "# TYPE pruneguard_run_duration_seconds gauge",
        "# TYPE pruneguard_last_run_timestamp_seconds gauge",
    ] {
        assert!(
            text.lines().any(|have| have == line),
            "missing {line:?} in\n{text}"
        );
    }
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&metrics).unwrap())
        .output();
    let promtool = promtool
        .expect("promtool is installed (Debian's prometheus package; scripts/test.sh installs it)");
    assert!(
        promtool.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
    let leftovers: Vec<_> = std::fs::read_dir(f.sb.scratch())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the atomic write leaves no temporary file"
    );

    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(f.sb.state_dir().join("last-run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["decision"], "pruned");
    assert_eq!(ids(&state, "removed"), f.old_free);

    let status = run(pruneguard(&f.sb).arg("status"));
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("decision pruned"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("Removed 2 image(s)"),
        "{}",
        status.stdout
    );

    // A skipped run records which gate closed.
    let skipped = run(closed_disk_run(&f.sb).arg("--metrics-file").arg(&metrics));
    assert_eq!(skipped.code, 0);
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.lines()
            .any(|line| line == "pruneguard_gate_open{gate=\"disk\"} 0"),
        "{text}"
    );
    let status = run(pruneguard(&f.sb).arg("status"));
    assert!(status.stdout.contains("closed disk"), "{}", status.stdout);
}

#[test]
fn config_prints_the_effective_settings_with_precedence() {
    let sb = Sandbox::start();
    let config = sb.scratch().join("config.toml");
    std::fs::write(
        &config,
        "[policy]\nmin_age = \"48h\"\n[gates.disk]\nthreshold_percent = 70\n",
    )
    .unwrap();
    let result = run(pruneguard(&sb)
        .args(["config", "--disk-threshold", "90", "--config"])
        .arg(&config)
        .env("PRUNEGUARD_QUIET_PERIOD", "5m"));
    assert_eq!(result.code, 0, "{}", result.stderr);
    let effective: toml::Table = toml::from_str(&result.stdout).expect("config prints TOML");
    assert_eq!(
        effective["policy"]["min_age"].as_str(),
        Some("48h"),
        "file over default"
    );
    assert_eq!(
        effective["gates"]["disk"]["threshold_percent"].as_integer(),
        Some(90),
        "flag over file"
    );
    assert_eq!(
        effective["gates"]["quiet"]["period"].as_str(),
        Some("5m"),
        "environment over default"
    );
    // Printing the config contacts no daemon: it works with the daemon stopped too.
    sb.stop_daemon();
    let again = run(pruneguard(&sb).args(["config", "--no-config"]));
    assert_eq!(again.code, 0);
}

#[test]
fn logs_go_to_stderr_without_timestamps_under_journald() {
    let sb = Sandbox::start();
    let timestamped = |line: &str| line.len() > 4 && line[..4].chars().all(|c| c.is_ascii_digit());
    let plain = run(pruneguard(&sb).args(["plan", "--no-config"]));
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let first = plain.stderr.lines().next().unwrap_or_default();
    assert!(
        timestamped(first),
        "a terminal/file log line starts with a timestamp: {first:?}"
    );
    assert!(
        plain.stdout.starts_with("pruneguard "),
        "the report goes to stdout"
    );

    let journald = run(pruneguard(&sb)
        .args(["plan", "--no-config"])
        .env("JOURNAL_STREAM", "8:1234"));
    assert_eq!(journald.code, 0);
    assert!(!journald.stderr.is_empty());
    for line in journald.stderr.lines() {
        assert!(
            !timestamped(line),
            "journald adds its own timestamps: {line:?}"
        );
        assert!(
            !line.contains('\u{1b}'),
            "no colours under journald: {line:?}"
        );
    }
    assert!(journald.stderr.contains("INFO"), "{}", journald.stderr);
}
