//! A swarm manager's judgement of a crash-looping service against a real single-node swarm
//! (issue 11, item 4): the loop holds the swarm gate closed while it is younger than
//! `stuck_after`, measured from pruneguard's own record in the state directory; once the record
//! says it has lasted longer, it is stuck and no longer blocks.

use std::time::Duration;

use serde_json::Value;

use crate::gates_docker::{
    BUSYBOX, assert_pruned, detail, run_closed_by, swarm_manager, task_states, wait_until,
};
use crate::support::{gate, json_run};

const RECORD: &str = "swarm-crash-loops.json";

/// The swarm gate's evidence entries in `list` (`converging` or `stuck`) for `service`.
fn entries<'a>(swarm: &'a Value, list: &str, service: &str) -> Vec<&'a Value> {
    swarm["evidence"][list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|item| item["name"] == service)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_crash_loop_holds_the_swarm_gate_until_the_record_says_it_is_stuck() {
    let (sb, dangling) = swarm_manager();
    sb.docker_ok([
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        "crashing",
        "--endpoint-mode",
        "dnsrr",
        "--restart-delay",
        "1s",
        BUSYBOX,
        "sh",
        "-c",
        "exit 1",
    ]);
    wait_until(
        "two failed tasks of crashing",
        Duration::from_secs(40),
        || {
            task_states(&sb, "crashing")
                .iter()
                .filter(|(_, current)| current.starts_with("Failed"))
                .count()
                >= 2
        },
    );

    // Young (the record is written now): converging, the gate closed, nothing deleted.
    let report = run_closed_by(
        &sb,
        &["--swarm-stuck-after", "5s"],
        "swarm",
        &dangling,
        &[
            "service crashing is crash-looping since",
            "attempts ended in a row",
        ],
    );
    let swarm = gate(&report, "swarm");
    let looping = entries(swarm, "converging", "crashing");
    assert_eq!(looping.len(), 1, "{swarm:#}");
    assert_eq!(looping[0]["state"], "crash_looping", "{swarm:#}");
    assert!(
        !detail(swarm).contains("Stuck") && !detail(swarm).contains("no service"),
        "{swarm:#}"
    );

    // The record names the service and when it was first seen.
    let path = sb.state_dir().join(RECORD);
    let text = std::fs::read_to_string(&path).expect("the crash-loop record is written");
    let mut record: Value = serde_json::from_str(&text).expect("the record is JSON");
    let services = record["services"].as_object_mut().expect("services");
    assert_eq!(services.len(), 1, "{text}");
    let (_, seen) = services.iter_mut().next().expect("one entry");
    assert_eq!(seen["name"], "crashing", "{text}");

    // Aged by an hour: longer than stuck_after, so stuck, reported, and no longer blocking.
    let first_seen: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(seen["first_seen"].clone()).expect("first_seen is a time");
    seen["first_seen"] = Value::from((first_seen - chrono::Duration::hours(1)).to_rfc3339());
    std::fs::write(&path, record.to_string()).expect("age the record");
    let report = json_run(&sb, "run", &["--swarm-stuck-after", "5s"]).report;
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["open"], true, "{swarm:#}");
    let stuck = entries(swarm, "stuck", "crashing");
    assert_eq!(stuck.len(), 1, "{swarm:#}");
    assert_eq!(stuck[0]["state"], "crash_looping", "{swarm:#}");
    assert!(
        stuck[0]["for_seconds"].as_i64().unwrap_or(0) >= 3600,
        "{swarm:#}"
    );
    assert!(
        detail(swarm).starts_with(
            "manager node: no service is converging but what is stuck longer than stuck_after (5s)"
        ) && detail(swarm).contains("service crashing is crash-looping since 1h"),
        "{swarm:#}"
    );
    assert_pruned(&sb, &report, &dangling);

    // A corrupt record means "just started" again, never "stuck".
    std::fs::write(&path, "{\"services\": {\"x\"").expect("corrupt the record");
    let dangling = crate::gates_docker::load_old_dangling(&sb);
    run_closed_by(
        &sb,
        &["--swarm-stuck-after", "5s"],
        "swarm",
        &dangling,
        &["service crashing is crash-looping since 0s ago"],
    );
}
