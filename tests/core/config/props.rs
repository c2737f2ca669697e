//! Property tests: no config text panics, and a bad entry is always an error naming its key
//! at its line.

use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------------------------
// No input panics.

fn tomlish() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "min_age",
        "wait",
        "wait_interval",
        "path",
        "threshold_percent",
        "inode_threshold_percent",
        "period",
        "stacks",
        "labels",
        "containers",
        "lock_files",
        "stale_lock_after",
        "enabled",
        "stuck_after",
        "dir",
        "metrics_file",
        "bogus",
    ]);
    let table = prop::sample::select(vec![
        "[policy]",
        "[gates]",
        "[gates.disk]",
        "[gates.quiet]",
        "[gates.workload]",
        "[gates.swarm]",
        "[state]",
        "[output]",
        "[nope]",
    ]);
    let value = prop_oneof![
        "-?[0-9]{1,25}".prop_map(|v| v),
        "\"[a-z0-9 ./*\\[=é-]{0,12}\"".prop_map(|v| v),
        Just("true".to_string()),
        Just("[\"a*\", \"\"]".to_string()),
        Just("[\"=x\"]".to_string()),
        Just("\"99999999999years\"".to_string()),
        Just("\"1y\"".to_string()),
        Just("\"/tmp\"".to_string()),
    ];
    prop::collection::vec(
        prop_oneof![
            table.prop_map(str::to_string),
            (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        ],
        0..10,
    )
    .prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_config_text_never_panics(text in prop_oneof![any::<String>(), tomlish()]) {
        let config = Config::new(&text);
        match config.resolve() {
            Ok(settings) => {
                prop_assert_eq!(settings.config_file.as_deref(), Some(config.path.as_path()));
                prop_assert!(settings.policy.gates.disk.threshold_percent <= 100);
                prop_assert!(!settings.policy.gates.wait_interval.is_zero());
            }
            Err(error) => {
                prop_assert!(!error.0.is_empty());
                prop_assert_eq!(pruneguard::exit::code(&Err(error.into())), 2);
            }
        }
    }
}

#[test]
fn errors_other_than_config_are_not_exit_2() {
    // Guards the exit-code assertions above: they would pass for anything if every error
    // mapped to 2.
    let other = anyhow::anyhow!("daemon unreachable");
    assert_eq!(pruneguard::exit::code(&Err(other)), 1);
    assert_exit_2("x");
}

/// Valid entries, `(table, key, value)`, to surround the bad one with.
const VALID: &[(&str, &str, &str)] = &[
    ("engine", "host", "\"unix:///run/docker.sock\""),
    ("engine", "api_timeout", "\"10s\""),
    ("policy", "min_age", "\"36h\""),
    ("gates", "wait", "\"5m\""),
    ("gates", "wait_interval", "\"10s\""),
    ("gates.disk", "path", "\"auto\""),
    ("gates.disk", "threshold_percent", "70"),
    ("gates.disk", "inode_threshold_percent", "90"),
    ("gates.quiet", "period", "\"0s\""),
    ("gates.workload", "stacks", "[\"run-app*\"]"),
    ("gates.workload", "labels", "[\"ci.role=run-app\"]"),
    ("gates.workload", "containers", "[]"),
    ("gates.workload", "lock_files", "[\"/run/deploy.lock\"]"),
    ("gates.workload", "stale_lock_after", "\"2h\""),
    ("gates.swarm", "enabled", "false"),
    ("gates.swarm", "stuck_after", "\"1h\""),
    ("state", "dir", "\"/var/lib/pg\""),
    ("output", "format", "\"json\""),
    ("output", "metrics_file", "\"/tmp/pruneguard.prom\""),
];

const TABLES: &[&str] = &[
    "engine",
    "policy",
    "gates",
    "gates.disk",
    "gates.quiet",
    "gates.workload",
    "gates.swarm",
    "state",
    "output",
];

const BAD_DURATIONS: &[&str] = &[
    "\"soon\"", "\"\"", "\"-1h\"", "\"10\"", "24", "true", "[\"1h\"]",
];
const BAD_PERCENTS: &[&str] = &["101", "-1", "1000", "\"80\"", "true", "80.5"];
const BAD_GLOBS: &[&str] = &["\"a*\"", "[\"\"]", "[\"a[\"]", "[1]", "[\"  \"]"];
const BAD_PATHS: &[&str] = &["\"relative/dir\"", "1", "true", "[\"/x\"]"];

/// Values that are wrong for the key (by type, format or rule).
fn bad_values(key: &str) -> &'static [&'static str] {
    match key {
        "api_timeout" => &["\"0s\"", "\"999ms\"", "\"x\"", "30"],
        "wait_interval" => &["\"0s\"", "\"x\"", "30"],
        "min_age" | "wait" | "period" | "stale_lock_after" | "stuck_after" => BAD_DURATIONS,
        "threshold_percent" | "inode_threshold_percent" => BAD_PERCENTS,
        "stacks" | "containers" => BAD_GLOBS,
        "labels" => &["[\"=x\"]", "[\"a b\"]", "\"k\"", "[\"\"]"],
        "lock_files" => &["[\"\"]", "\"/x\"", "[2]"],
        "enabled" => &["\"no\"", "1", "[true]"],
        "host" => &[
            "\"https://x\"",
            "\"ssh://x\"",
            "\"\"",
            "\"tcp://\"",
            "3",
            "\"x:1\"",
        ],
        "format" => &["\"yaml\"", "\"\"", "1"],
        "metrics_file" => &["\"/nonexistent-pruneguard-dir/m.prom\"", "\"m.prom\"", "2"],
        "path" | "dir" => BAD_PATHS,
        other => panic!("no bad values for {other}"),
    }
}

/// One bad entry: `(table, key, value, name)`, where `name` must appear in the error.
fn bad_entry() -> impl Strategy<Value = (String, String, String, String)> {
    let wrong_value = prop::sample::select(VALID).prop_flat_map(|(table, key, _)| {
        prop::sample::select(bad_values(key)).prop_map(move |value| {
            (
                table.to_string(),
                key.to_string(),
                value.to_string(),
                key.to_string(),
            )
        })
    });
    let unknown_key = (
        prop::sample::select(TABLES),
        prop::sample::select(vec!["max_age", "volumes", "bogus", "stack", "threshold"]),
    )
        .prop_map(|(table, key)| {
            (
                table.to_string(),
                key.to_string(),
                "true".to_string(),
                key.to_string(),
            )
        });
    let unknown_table =
        prop::sample::select(vec!["nope", "gates.dsik", "engines"]).prop_map(|table| {
            let name = table.rsplit('.').next().unwrap_or(table).to_string();
            (
                table.to_string(),
                "enabled".to_string(),
                "true".to_string(),
                name,
            )
        });
    prop_oneof![3 => wrong_value, 1 => unknown_key, 1 => unknown_table]
}

/// The config text, and the line the bad entry is on (where an unknown table is, its header).
fn config_with_one_bad_entry(
    valid: &[bool],
    (table, key, value, _): &(String, String, String, String),
) -> (String, usize) {
    let mut text = String::from("# generated\n");
    let mut bad_line = 0;
    let mut tables: Vec<&str> = TABLES.to_vec();
    if !tables.contains(&table.as_str()) {
        tables.push(table);
    }
    for current in tables {
        let header_line = text.lines().count() + 1;
        text.push_str(&format!("[{current}]\n"));
        for ((entry_table, entry_key, entry_value), keep) in VALID.iter().zip(valid) {
            if *keep && *entry_table == current && !(current == table && entry_key == key) {
                text.push_str(&format!("{entry_key} = {entry_value}\n"));
            }
        }
        if current == table {
            bad_line = if TABLES.contains(&current) {
                text.lines().count() + 1
            } else {
                header_line
            };
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    (text, bad_line)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_bad_entry_is_an_error_naming_its_key_at_its_line(
        valid in prop::collection::vec(any::<bool>(), VALID.len()),
        bad in bad_entry(),
    ) {
        let (text, line) = config_with_one_bad_entry(&valid, &bad);
        let config = Config::new(&text);
        let error = match config.resolve() {
            Ok(_) => panic!("accepted a bad entry {bad:?}:\n{text}"),
            Err(error) => error.0,
        };
        let name = &bad.3;
        prop_assert!(error.contains(name.as_str()), "{name} not named: {error}\n{text}");
        let place = format!("{}:{line}:", config.path.display());
        prop_assert!(error.starts_with(&place), "not at {place}: {error}\n{text}");
    }
}
