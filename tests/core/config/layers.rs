//! The layers: flag beats environment beats file beats default for every key, environment
//! errors name the variable, the one host parser and the one `api_timeout` rule, a plan that
//! waits only when its own command line says so, and `status`'s state directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pruneguard::cli::{OutputFormat, RunArgs, StatusArgs};
use pruneguard::config::{ConfigError, Environment, HostUrl, Mode, Settings};

use super::{Config, no_config};

/// One key, set differently in each source. `file` is the TOML value, `env` a variable and
/// its text (`None`: the key has no variable), `flag` sets the flag; `expect` holds the value
/// `effective()` prints for the flag's, the variable's, the file's and the default value
/// (`None`: printed as not set).
struct Case {
    key: &'static str,
    file: &'static str,
    env: Option<(&'static str, &'static str)>,
    flag: fn(&mut RunArgs),
    expect: [Option<&'static str>; 4],
}

const fn case(
    key: &'static str,
    file: &'static str,
    env: Option<(&'static str, &'static str)>,
    flag: fn(&mut RunArgs),
    expect: [Option<&'static str>; 4],
) -> Case {
    Case {
        key,
        file,
        env,
        flag,
        expect,
    }
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        case("engine.host", "\"tcp://file:1\"", Some(("DOCKER_HOST", "tcp://env:2")),
             |a| a.host = Some("tcp://flag:3".into()),
             [Some("\"tcp://flag:3\""), Some("\"tcp://env:2\""), Some("\"tcp://file:1\""),
              Some("\"unix:///var/run/docker.sock\"")]),
        // A switch: the flag and Docker's variable can only turn TLS on.
        case("engine.tls_verify", "false", Some(("DOCKER_TLS_VERIFY", "1")),
             |a| a.tlsverify = true,
             [Some("true"), Some("true"), Some("false"), Some("false")]),
        case("engine.tls_cert_path", "\"/file/tls\"", Some(("DOCKER_CERT_PATH", "/env/tls")),
             |a| a.tls_cert_path = Some("/flag/tls".into()),
             [Some("\"/flag/tls\""), Some("\"/env/tls\""), Some("\"/file/tls\""), None]),
        case("engine.api_timeout", "\"5s\"", Some(("PRUNEGUARD_API_TIMEOUT", "6s")),
             |a| a.api_timeout = Some(secs(7)),
             [Some("\"7s\""), Some("\"6s\""), Some("\"5s\""), Some("\"30s\"")]),
        case("engine.max_list_size", "\"8MiB\"", Some(("PRUNEGUARD_MAX_LIST_SIZE", "16MiB")),
             |a| a.max_list_size = Some(32 << 20),
             [Some("\"32MiB\""), Some("\"16MiB\""), Some("\"8MiB\""), Some("\"4MiB\"")]),
        case("policy.min_age", "\"1h\"", Some(("PRUNEGUARD_MIN_AGE", "2h")),
             |a| a.min_age = Some(secs(3 * 3600)),
             [Some("\"3h\""), Some("\"2h\""), Some("\"1h\""), Some("\"24h\"")]),
        // Two values only: each source differs from the one below it.
        case("policy.age_basis", "\"created\"", Some(("PRUNEGUARD_AGE_BASIS", "unused_for")),
             |a| a.age_basis = Some(pruneguard::policy::AgeBasis::Created),
             [Some("\"created\""), Some("\"unused_for\""), Some("\"created\""),
              Some("\"unused_for\"")]),
        case("gates.wait", "\"1m\"", Some(("PRUNEGUARD_WAIT_FOR_GATES", "2m")),
             |a| a.wait_for_gates = Some(secs(180)),
             [Some("\"3m\""), Some("\"2m\""), Some("\"1m\""), Some("\"0s\"")]),
        case("gates.wait_interval", "\"4s\"", Some(("PRUNEGUARD_WAIT_INTERVAL", "5s")),
             |a| a.wait_interval = Some(secs(6)),
             [Some("\"6s\""), Some("\"5s\""), Some("\"4s\""), Some("\"30s\"")]),
        case("gates.disk.paths", "[\"/file\", \"auto\"]",
             Some(("PRUNEGUARD_DISK_PATHS", "/env:auto:/env2")),
             |a| a.disk_paths = vec!["/flag".into(), "/flag2".into()],
             [Some("[\"/flag\", \"/flag2\"]"), Some("[\"/env\", \"auto\", \"/env2\"]"),
              Some("[\"/file\", \"auto\"]"), Some("[\"auto\"]")]),
        case("gates.disk.threshold_percent", "10", Some(("PRUNEGUARD_DISK_THRESHOLD", "20")),
             |a| a.disk_threshold = Some(30),
             [Some("30"), Some("20"), Some("10"), Some("80")]),
        case("gates.disk.inode_threshold_percent", "11",
             Some(("PRUNEGUARD_DISK_INODE_THRESHOLD", "21")),
             |a| a.disk_inode_threshold = Some(31),
             [Some("31"), Some("21"), Some("11"), None]),
        case("gates.quiet.period", "\"1s\"", Some(("PRUNEGUARD_QUIET_PERIOD", "2s")),
             |a| a.quiet_period = Some(secs(3)),
             [Some("\"3s\""), Some("\"2s\""), Some("\"1s\""), Some("\"10m\"")]),
        case("gates.workload.stacks", "[\"file*\"]", None,
             |a| a.workload_stacks = vec!["flag*".into()],
             [Some("[\"flag*\"]"), None, Some("[\"file*\"]"), Some("[]")]),
        case("gates.workload.labels", "[\"file\"]", None,
             |a| a.workload_labels = vec!["flag=1".into()],
             [Some("[\"flag=1\"]"), None, Some("[\"file\"]"), Some("[]")]),
        case("gates.workload.containers", "[\"file-*\"]", None,
             |a| a.workload_containers = vec!["flag-*".into()],
             [Some("[\"flag-*\"]"), None, Some("[\"file-*\"]"), Some("[]")]),
        case("gates.workload.lock_files", "[\"/run/file.lock\"]", None,
             |a| a.workload_lock_files = vec!["/run/flag.lock".into()],
             [Some("[\"/run/flag.lock\"]"), None, Some("[\"/run/file.lock\"]"), Some("[]")]),
        case("gates.workload.stale_lock_after", "\"1h\"",
             Some(("PRUNEGUARD_WORKLOAD_STALE_LOCK_AFTER", "2h")),
             |a| a.workload_stale_lock_after = Some(secs(3 * 3600)),
             [Some("\"3h\""), Some("\"2h\""), Some("\"1h\""), Some("\"6h\"")]),
        // The flag and the variable say "no swarm gate": false in the variable enables it.
        case("gates.swarm.enabled", "false", Some(("PRUNEGUARD_NO_SWARM_GATE", "false")),
             |a| a.no_swarm_gate = true,
             [Some("false"), Some("true"), Some("false"), Some("true")]),
        case("gates.swarm.stuck_after", "\"1m\"", Some(("PRUNEGUARD_SWARM_STUCK_AFTER", "2m")),
             |a| a.swarm_stuck_after = Some(secs(180)),
             [Some("\"3m\""), Some("\"2m\""), Some("\"1m\""), Some("\"30m\"")]),
        case("gates.swarm.worker_evidence", "[\"pulls\"]", None,
             |a| a.swarm_worker_evidence = vec!["created_tasks".into()],
             [Some("[\"created_tasks\"]"), None, Some("[\"pulls\"]"),
              Some("[\"created_tasks\", \"exited_tasks\", \"task_events\", \"pulls\"]")]),
        case("gates.swarm.manager_host", "\"tcp://10.0.0.1:2375\"",
             Some(("PRUNEGUARD_SWARM_MANAGER_HOST", "unix:///run/env.sock")),
             |a| a.swarm_manager_host = Some("unix:///run/flag.sock".into()),
             [Some("\"unix:///run/flag.sock\""), Some("\"unix:///run/env.sock\""),
              Some("\"tcp://10.0.0.1:2375\""), None]),
        // Only with a manager to go with it (set by every source of this case).
        case("gates.swarm.manager_tls_cert_path",
             "\"/file/tls\"\nmanager_host = \"https://file:1\"",
             Some(("PRUNEGUARD_SWARM_MANAGER_TLS_CERT_PATH", "/env/tls")),
             |a| a.swarm_manager_tls_cert_path = Some("/flag/tls".into()),
             [Some("\"/flag/tls\""), Some("\"/env/tls\""), Some("\"/file/tls\""), None]),
        case("state.dir", "\"/file\"", Some(("PRUNEGUARD_STATE_DIR", "/env")),
             |a| a.state_dir = Some("/flag".into()),
             [Some("\"/flag\""), Some("\"/env\""), Some("\"/file\""),
              Some("\"/var/lib/pruneguard\"")]),
        case("output.format", "\"json\"", Some(("PRUNEGUARD_OUTPUT", "text")),
             |a| a.output = Some(OutputFormat::Json),
             [Some("\"json\""), Some("\"text\""), Some("\"json\""), Some("\"text\"")]),
        case("output.metrics_file", "\"/tmp/file.prom\"",
             Some(("PRUNEGUARD_METRICS_FILE", "/tmp/env.prom")),
             |a| a.metrics_file = Some("/tmp/flag.prom".into()),
             [Some("\"/tmp/flag.prom\""), Some("\"/tmp/env.prom\""),
              Some("\"/tmp/file.prom\""), None]),
    ]
    .into_iter()
    .chain(tier_cases())
    .collect()
}

#[rustfmt::skip]
fn tier_cases() -> Vec<Case> {
    vec![
        // The tiers' keys have no variable; only `enabled` has a flag (`--tier NAME`).
        case("tiers.unused_tagged.enabled", "false", None,
             |a| a.tiers = vec!["unused_tagged".into()],
             [Some("true"), None, Some("false"), Some("false")]),
        case("tiers.unused_tagged.high_percent", "90", None, |_| {},
             [Some("90"), None, Some("90"), Some("85")]),
        case("tiers.unused_tagged.low_percent", "70", None, |_| {},
             [Some("70"), None, Some("70"), Some("80")]),
        case("tiers.unused_tagged.unused_for", "\"48h\"", None, |_| {},
             [Some("\"48h\""), None, Some("\"48h\""), Some("\"7d\"")]),
        case("tiers.unused_tagged.include", "[\"app:*\"]", None, |_| {},
             [Some("[\"app:*\"]"), None, Some("[\"app:*\"]"), Some("[\"*\"]")]),
        case("tiers.unused_tagged.keep", "[\"*/base:*\"]", None, |_| {},
             [Some("[\"*/base:*\"]"), None, Some("[\"*/base:*\"]"), Some("[]")]),
        case("tiers.unused_tagged.keep_newest", "3", None, |_| {},
             [Some("3"), None, Some("3"), Some("1")]),
        case("tiers.build_cache.enabled", "false", None,
             |a| a.tiers = vec!["build_cache".into()],
             [Some("true"), None, Some("false"), Some("false")]),
        case("tiers.build_cache.keep_for", "\"24h\"", None, |_| {},
             [Some("\"24h\""), None, Some("\"24h\""), Some("\"7d\"")]),
        case("tiers.build_cache.keep_storage", "\"1GiB\"", None, |_| {},
             [Some("\"1GiB\""), None, Some("\"1GiB\""), Some("\"0B\"")]),
    ]
}

/// `effective()` as a map from dotted key to the value printed (`None`: printed as not set).
fn printed(settings: &Settings) -> BTreeMap<String, Option<String>> {
    let mut table = String::new();
    let mut keys = BTreeMap::new();
    for line in settings.effective().lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.to_string();
        } else if let Some((key, value)) = line.split_once(" = ") {
            keys.insert(format!("{table}.{key}"), Some(value.to_string()));
        } else if let Some((key, _)) = line
            .strip_prefix("# ")
            .and_then(|rest| rest.split_once(" is not set"))
        {
            keys.insert(format!("{table}.{key}"), None);
        }
    }
    keys
}

/// `key = value` under the key's table.
fn file_text(key: &str, value: &str) -> String {
    let (table, name) = key.rsplit_once('.').unwrap();
    format!("[{table}]\n{name} = {value}\n")
}

#[test]
fn flag_beats_environment_beats_file_beats_default_for_every_key() {
    let cases = cases();
    let defaults = printed(&super::resolve(&no_config()).unwrap());
    let covered: Vec<&str> = cases.iter().map(|case| case.key).collect();
    // `watch.interval` has its flag on `watch`: its own test below.
    let printed_keys: Vec<&str> = defaults
        .keys()
        .map(String::as_str)
        .filter(|key| *key != "watch.interval")
        .collect();
    let mut sorted = covered.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted, printed_keys,
        "every printed key has a precedence case"
    );

    for case in &cases {
        let config = Config::new(&file_text(case.key, case.file));
        let mut with_flag = config.args();
        (case.flag)(&mut with_flag);
        let env = Environment::from_pairs(case.env);
        let none = Environment::default();
        let scenarios: [(&str, &RunArgs, &Environment); 4] = [
            ("flag + env + file", &with_flag, &env),
            ("env + file", &config.args(), &env),
            ("file", &config.args(), &none),
            ("default", &no_config(), &none),
        ];
        for (index, (scenario, args, env)) in scenarios.into_iter().enumerate() {
            // A key with no variable: "env + file" is the file's value.
            let expected = match (index, case.env) {
                (1, None) => case.expect[2],
                _ => case.expect[index],
            };
            let settings = Settings::resolve_with(args, Mode::Run, env)
                .unwrap_or_else(|error| panic!("{}: {scenario}: {error}", case.key));
            assert_eq!(
                printed(&settings)[case.key].as_deref(),
                expected,
                "{}: {scenario}",
                case.key
            );
        }
    }
}

fn env_error(pairs: &[(&str, &str)]) -> String {
    let env = Environment::from_pairs(pairs.iter().copied());
    match Settings::resolve_with(&no_config(), Mode::Run, &env) {
        Ok(settings) => panic!("expected a config error for {pairs:?}, got {settings:#?}"),
        Err(error) => {
            let message = error.to_string();
            assert_eq!(pruneguard::exit::code(&Err(error.into())), 2, "{message}");
            message
        }
    }
}

#[test]
fn bad_environment_values_name_the_variable_and_the_key() {
    for (name, value, key) in [
        ("PRUNEGUARD_MIN_AGE", "soon", "policy.min_age"),
        ("PRUNEGUARD_WAIT_INTERVAL", "0s", "gates.wait_interval"),
        (
            "PRUNEGUARD_SWARM_STUCK_AFTER",
            "x",
            "gates.swarm.stuck_after",
        ),
        (
            "PRUNEGUARD_DISK_THRESHOLD",
            "101",
            "gates.disk.threshold_percent",
        ),
        (
            "PRUNEGUARD_DISK_INODE_THRESHOLD",
            "-1",
            "gates.disk.inode_threshold_percent",
        ),
        ("PRUNEGUARD_NO_SWARM_GATE", "maybe", "gates.swarm.enabled"),
        ("PRUNEGUARD_OUTPUT", "yaml", "output.format"),
        ("PRUNEGUARD_API_TIMEOUT", "0s", "engine.api_timeout"),
        ("DOCKER_HOST", "https://docker.lan:2376", "engine.host"),
        (
            "PRUNEGUARD_METRICS_FILE",
            "/nonexistent-pruneguard-dir/m.prom",
            "output.metrics_file",
        ),
    ] {
        let error = env_error(&[(name, value)]);
        assert!(
            error.starts_with(&format!("environment variable {name} (`{key}`): ")),
            "{error}"
        );
    }
}

#[test]
fn empty_variables_count_as_unset() {
    let env = Environment::from_pairs([("DOCKER_HOST", ""), ("PRUNEGUARD_MIN_AGE", " ")]);
    let settings = Settings::resolve_with(&no_config(), Mode::Run, &env).unwrap();
    assert_eq!(settings.host, HostUrl::default());
    assert_eq!(settings.policy.min_age, Duration::from_secs(24 * 3600));
}

#[test]
fn the_config_file_comes_from_the_flag_then_the_environment() {
    let flag_file = Config::new("[policy]\nmin_age = \"1h\"\n");
    let env_file = Config::new("[policy]\nmin_age = \"2h\"\n");
    let env = Environment::from_pairs([("PRUNEGUARD_CONFIG", env_file.path.clone())]);
    let from_env = Settings::resolve_with(&RunArgs::default(), Mode::Run, &env).unwrap();
    assert_eq!(from_env.config_file.as_ref(), Some(&env_file.path));
    assert_eq!(from_env.policy.min_age, Duration::from_secs(7200));
    let from_flag = Settings::resolve_with(&flag_file.args(), Mode::Run, &env).unwrap();
    assert_eq!(from_flag.policy.min_age, Duration::from_secs(3600));
    let none = Settings::resolve_with(&no_config(), Mode::Run, &env).unwrap();
    assert_eq!(none.config_file, None);
}

// ---------------------------------------------------------------------------------------------
// One rule for api_timeout, one parser for the host (both silently different before).

fn resolve_error(args: &RunArgs) -> ConfigError {
    super::resolve(args).expect_err("expected a config error")
}

#[test]
fn api_timeout_below_one_second_is_an_error_naming_the_key() {
    for timeout in [Duration::ZERO, Duration::from_millis(500)] {
        let error = resolve_error(&RunArgs {
            api_timeout: Some(timeout),
            ..no_config()
        });
        assert!(
            error
                .0
                .starts_with("--api-timeout (`engine.api_timeout`): must be from 1s to 1h"),
            "{error}"
        );
    }
    let config = Config::new("# engine\n[engine]\napi_timeout = \"999ms\"\n");
    assert!(
        config.error().starts_with(&format!(
            "{}:3: `engine.api_timeout`",
            config.path.display()
        )),
        "{}",
        config.error()
    );
    let ok = super::resolve(&RunArgs {
        api_timeout: Some(Duration::from_secs(1)),
        ..no_config()
    })
    .unwrap();
    assert_eq!(ok.api_timeout, Duration::from_secs(1));
}

#[test]
fn api_timeout_has_a_file_key() {
    let config = Config::new("[engine]\napi_timeout = \"2m\"\nhost = \"tcp://10.0.0.2\"\n");
    let settings = config.resolve().unwrap();
    assert_eq!(settings.api_timeout, Duration::from_secs(120));
    assert_eq!(
        settings.host,
        HostUrl::Tcp {
            host: "10.0.0.2".into(),
            port: 2375
        }
    );
}

#[test]
fn unsupported_hosts_are_config_errors_from_every_source() {
    for host in [
        "https://docker.lan:2376",
        "ssh://me@docker.lan",
        "docker.lan:2375",
    ] {
        let error = resolve_error(&RunArgs {
            host: Some(host.into()),
            ..no_config()
        });
        assert!(
            error.0.starts_with("-H/--host (`engine.host`): "),
            "{error}"
        );
        assert_eq!(pruneguard::exit::code(&Err(error.into())), 2);

        let config = Config::new(&format!("[engine]\nhost = \"{host}\"\n"));
        let error = config.error();
        assert!(error.contains(":2: `engine.host`"), "{error}");
    }
    let error = resolve_error(&RunArgs {
        host: Some("https://docker.lan".into()),
        ..no_config()
    });
    assert!(error.0.contains("TLS"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// A plan waits only when its own command line says so.

#[test]
fn plan_ignores_the_wait_from_the_file_and_the_environment() {
    let config = Config::new("[gates]\nwait = \"1h\"\n");
    let env = Environment::from_pairs([("PRUNEGUARD_WAIT_FOR_GATES", "2h")]);
    let none = Environment::default();
    let wait = |args: &RunArgs, mode, env| {
        Settings::resolve_with(args, mode, env)
            .unwrap()
            .policy
            .gates
            .wait
    };
    assert_eq!(
        wait(&config.args(), Mode::Run, &none),
        Duration::from_secs(3600)
    );
    assert_eq!(
        wait(&config.args(), Mode::Run, &env),
        Duration::from_secs(7200)
    );
    assert_eq!(wait(&config.args(), Mode::Plan, &none), Duration::ZERO);
    assert_eq!(wait(&config.args(), Mode::Plan, &env), Duration::ZERO);
    let flag = RunArgs {
        wait_for_gates: Some(Duration::from_secs(300)),
        ..config.args()
    };
    assert_eq!(wait(&flag, Mode::Plan, &env), Duration::from_secs(300));
}

#[test]
fn a_plan_is_always_a_dry_run() {
    let plan = Settings::resolve_with(&no_config(), Mode::Plan, &Environment::default()).unwrap();
    assert!(plan.dry_run);
    let run = super::resolve(&no_config()).unwrap();
    assert!(!run.dry_run);
}

// ---------------------------------------------------------------------------------------------
// status reads its state directory through the same layers.

#[test]
fn status_state_dir_comes_from_flag_env_file_default() {
    let config = Config::new("[state]\ndir = \"/srv/pruneguard-state\"\n");
    let file_args = StatusArgs {
        config: Some(config.path.clone()),
        ..StatusArgs::default()
    };
    let none = Environment::default();
    let env = Environment::from_pairs([("PRUNEGUARD_STATE_DIR", "/env-state")]);
    let dir = |args: &StatusArgs, env| Settings::resolve_state_dir_with(args, env).unwrap();
    assert_eq!(
        dir(&file_args, &none),
        PathBuf::from("/srv/pruneguard-state")
    );
    assert_eq!(dir(&file_args, &env), PathBuf::from("/env-state"));
    let flag_args = StatusArgs {
        state_dir: Some("/flag-state".into()),
        ..file_args.clone()
    };
    assert_eq!(dir(&flag_args, &env), PathBuf::from("/flag-state"));
    let no_config = StatusArgs {
        no_config: true,
        ..file_args.clone()
    };
    assert_eq!(dir(&no_config, &none), PathBuf::from("/var/lib/pruneguard"));
    // PRUNEGUARD_CONFIG names the file, as for a run.
    let env_config = Environment::from_pairs([("PRUNEGUARD_CONFIG", config.path.clone())]);
    assert_eq!(
        dir(&StatusArgs::default(), &env_config),
        PathBuf::from("/srv/pruneguard-state")
    );
}

#[test]
fn status_with_a_broken_config_file_is_a_config_error() {
    let config = Config::new("[state]\ndir = \"relative\"\n");
    let args = StatusArgs {
        config: Some(config.path.clone()),
        ..StatusArgs::default()
    };
    let error = Settings::resolve_state_dir_with(&args, &Environment::default()).unwrap_err();
    assert!(error.0.contains(":2: `state.dir`"), "{error}");
}

/// `engine.max_list_size` takes sizes from 1MiB to 1GiB, from any source.
#[test]
fn max_list_size_outside_its_range_is_an_error_naming_the_key() {
    for size in [0, (1 << 20) - 1, (1 << 30) + 1] {
        let error = resolve_error(&RunArgs {
            max_list_size: Some(size),
            ..no_config()
        });
        assert!(
            error.0.contains("engine.max_list_size") && error.0.contains("from 1MiB to 1GiB"),
            "{error}"
        );
    }
    let settings = super::resolve(&RunArgs {
        max_list_size: Some(64 << 20),
        ..no_config()
    })
    .unwrap();
    assert_eq!(settings.max_list_size, 64 << 20);
}

/// `watch.interval`: `watch --interval` beats `PRUNEGUARD_WATCH_INTERVAL` beats the file beats
/// the default (1h); out of range (below 1s, above 7d) is an error naming the key.
#[test]
fn watch_interval_flag_beats_environment_beats_file_beats_default() {
    use pruneguard::cli::WatchArgs;
    let config = Config::new("[watch]\ninterval = \"5m\"\n");
    let env = |value: Option<&'static str>| {
        Environment::from_pairs(value.map(|value| ("PRUNEGUARD_WATCH_INTERVAL", value)))
    };
    let watch = |interval: Option<Duration>, run: RunArgs| WatchArgs {
        interval,
        metrics_listen: None,
        run,
    };
    let resolve = |args: &WatchArgs, value| Settings::resolve_watch_with(args, &env(value));
    let file = config.args();
    let cases = [
        (
            watch(Some(Duration::from_secs(7)), file.clone()),
            Some("6m"),
            7,
        ),
        (watch(None, file.clone()), Some("6m"), 360),
        (watch(None, file), None, 300),
        (watch(None, no_config()), None, 3600),
    ];
    for (args, value, seconds) in &cases {
        let settings = resolve(args, *value).unwrap();
        assert_eq!(
            settings.watch_interval,
            Duration::from_secs(*seconds),
            "{value:?}"
        );
    }
    let error = resolve(&watch(Some(Duration::from_millis(500)), no_config()), None)
        .unwrap_err()
        .0;
    assert!(error.contains("--interval (`watch.interval`)"), "{error}");
    let error = resolve(&watch(None, no_config()), Some("8d"))
        .unwrap_err()
        .0;
    assert!(error.contains("PRUNEGUARD_WATCH_INTERVAL"), "{error}");
}
