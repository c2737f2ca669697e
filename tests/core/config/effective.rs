//! `Settings::effective`: every key, README-style durations, and print → load → print is
//! the same.

use std::time::Duration;

use pruneguard::cli::OutputFormat;

use pruneguard::cli::RunArgs;

use super::files::full_file;
use super::*;

fn effective(settings: &Settings) -> String {
    // The first line names the source file; the rest is the configuration.
    let toml = settings.effective();
    toml.split_once('\n').unwrap().1.to_string()
}

fn assert_round_trip(settings: &Settings) {
    let toml = settings.effective();
    assert!(toml.starts_with("# Effective configuration"), "{toml}");
    let config = Config::new(&toml);
    let again = config
        .resolve()
        .unwrap_or_else(|error| panic!("effective() output does not resolve: {error}\n{toml}"));
    // Print, load, print again: the same configuration (the header names the file read).
    assert_eq!(effective(&again), effective(settings), "\n{toml}");
    assert_eq!(
        format!("{:?}", again.policy),
        format!("{:?}", settings.policy),
        "\n{toml}"
    );
    assert_eq!(again.state_dir, settings.state_dir);
    assert_eq!(again.metrics_file, settings.metrics_file);
    assert_eq!(again.host, settings.host);
    assert_eq!(again.api_timeout, settings.api_timeout);
    assert_eq!(again.output, settings.output);
    drop(config.dir);
}

#[test]
fn effective_round_trips_defaults() {
    let settings = resolve(&no_config()).unwrap();
    let toml = settings.effective();
    assert!(toml.contains("no config file read"), "{toml}");
    assert!(toml.contains("threshold_percent = 80"), "{toml}");
    assert!(toml.contains("paths = [\"auto\"]"), "{toml}");
    assert_round_trip(&settings);
}

#[test]
fn effective_round_trips_every_key() {
    let metrics_dir = tempfile::tempdir().unwrap();
    let config = Config::new(&full_file(metrics_dir.path()));
    let settings = config.resolve().unwrap();
    let toml = settings.effective();
    assert!(toml.contains(&config.path.display().to_string()), "{toml}");
    assert!(toml.contains("inode_threshold_percent = 95"), "{toml}");
    assert!(toml.contains("enabled = false"), "{toml}");
    assert_round_trip(&settings);
}

#[test]
fn effective_round_trips_flag_values() {
    let metrics_dir = tempfile::tempdir().unwrap();
    let args = RunArgs {
        min_age: Some(Duration::from_secs(90 * 60 + 7)),
        age_basis: Some(pruneguard::policy::AgeBasis::Created),
        quiet_period: Some(Duration::ZERO),
        disk_threshold: Some(0),
        disk_paths: vec!["/srv".into(), "auto".into()],
        workload_labels: vec!["k".into(), "a=b=c".into()],
        workload_stacks: vec!["x{a,b}*".into()],
        wait_for_gates: Some(Duration::from_millis(1500)),
        metrics_file: Some(metrics_dir.path().join("m.prom")),
        ..no_config()
    };
    let settings = resolve(&args).unwrap();
    assert_round_trip(&settings);
}

#[test]
fn defaults_print_every_key_as_the_readme_writes_it() {
    let settings = resolve(&no_config()).unwrap();
    assert_eq!(
        effective(&settings),
        r#"
[engine]
host = "unix:///var/run/docker.sock"
tls_verify = false
# tls_cert_path is not set: no TLS files (a TLS host needs them)
api_timeout = "30s"
max_list_size = "4MiB"

[policy]
min_age = "24h"
age_basis = "unused_for"

[gates]
wait = "0s"
wait_interval = "30s"

[gates.disk]
paths = ["auto"]
threshold_percent = 80
# inode_threshold_percent is not set: inode usage does not open the disk gate

[gates.quiet]
period = "10m"

[gates.workload]
stacks = []
labels = []
containers = []
lock_files = []
stale_lock_after = "6h"

[gates.swarm]
enabled = true
stuck_after = "30m"
worker_evidence = ["created_tasks", "exited_tasks", "task_events", "pulls"]
# manager_host is not set: a worker judges itself from local evidence only
# manager_tls_cert_path is not set: the manager is not spoken to over TLS

[state]
dir = "/var/lib/pruneguard"

[output]
format = "text"
# metrics_file is not set: no metrics are written

[watch]
interval = "1h"

[tiers.unused_tagged]
enabled = false
high_percent = 85
low_percent = 80
unused_for = "7d"
include = ["*"]
keep = []
keep_newest = 1

[tiers.build_cache]
enabled = false
keep_for = "7d"
keep_storage = "0B"
"#
    );
}

#[test]
fn effective_round_trips_every_source_and_awkward_text() {
    let metrics_dir = tempfile::tempdir().unwrap();
    let config = Config::new(
        "[engine]\nhost = \"tcp://[::1]:2376\"\n[gates.workload]\nlock_files = [\"/run/a b/é.lock\"]\n",
    );
    let env = Environment::from_pairs([
        ("PRUNEGUARD_MIN_AGE", "7d"),
        ("PRUNEGUARD_WORKLOAD_STALE_LOCK_AFTER", "14d"),
        ("PRUNEGUARD_OUTPUT", "json"),
    ]);
    let args = RunArgs {
        api_timeout: Some(Duration::from_secs(90)),
        workload_labels: vec!["say=\"hi\" 'there'".into(), "back\\slash".into()],
        workload_containers: vec!["tab\there*".into()],
        state_dir: Some("/srv/state with space".into()),
        metrics_file: Some(metrics_dir.path().join("m.prom")),
        ..config.args()
    };
    let settings = Settings::resolve_with(&args, Mode::Run, &env).unwrap();
    let toml = settings.effective();
    for line in [
        "host = \"tcp://[::1]:2376\"",
        "api_timeout = \"90s\"",
        "min_age = \"7d\"",
        "stale_lock_after = \"14d\"",
        "format = \"json\"",
    ] {
        assert!(toml.contains(line), "{line} in\n{toml}");
    }
    assert_eq!(settings.output, OutputFormat::Json);
    assert_round_trip(&settings);
}
