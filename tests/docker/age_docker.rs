//! The age basis and the swarm `service_ref` rule against real private daemons (issue 11).
//!
//! `unused_for` (the default): a first run after install deletes nothing, even images created
//! in 1970, and records when it saw each one untagged and unused; a run `min_age` later
//! deletes them; `--age-basis created` deletes them at once. On a single-node swarm manager, an
//! old dangling image that a service's spec names by image ID is kept as `service_ref`, naming
//! the service. (The support's commands set `PRUNEGUARD_AGE_BASIS=created`; these tests pass
//! `--age-basis` themselves.)

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::{ImageSpec, Sandbox, ids, json_run};

const UNUSED_FOR: [&str; 4] = ["--age-basis", "unused_for", "--min-age", "2s"];

/// The kept image `id` of a dry run's `kept_images`.
fn kept_image<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["kept_images"]
        .as_array()
        .unwrap_or_else(|| panic!("a dry run lists kept_images:\n{report:#}"))
        .iter()
        .find(|kept| kept["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in kept_images:\n{report:#}"))
}

fn observations(sb: &Sandbox) -> Value {
    let path = sb.state_dir().join("observations.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}\n{text}", path.display()))
}

#[test]
fn first_run_deletes_nothing_a_run_after_min_age_deletes_and_created_deletes_at_once() {
    let sb = Sandbox::start();
    // Nix's dockerTools images say 1970: by `created` they are ancient on arrival.
    let ids_1970 = sb.load_images(&ImageSpec::tagged("nix:1", 3).created("1970-01-01T00:00:01Z"));
    let dangling: BTreeSet<String> = ids_1970[..2].iter().cloned().collect();
    assert!(dangling.is_subset(&sb.dangling_ids()));

    // The first look: nothing proven, nothing deleted.
    let first = json_run(&sb, "run", &UNUSED_FOR).report;
    assert_eq!(first["decision"], "nothing_to_do", "{first:#}");
    assert!(ids(&first, "removed").is_empty(), "{first:#}");
    assert!(
        dangling.is_subset(&sb.dangling_ids()),
        "nothing may go on a first run"
    );
    // A plan after it says when they become eligible.
    let plan = json_run(&sb, "plan", &UNUSED_FOR).report;
    assert!(ids(&plan, "candidates").is_empty(), "{plan:#}");
    for id in &dangling {
        let kept = kept_image(&plan, id);
        assert_eq!(kept["reason"], "too_young", "{kept:#}");
        assert!(kept["eligible_at"].is_string(), "{kept:#}");
        assert!(kept["unused_since"].is_string(), "{kept:#}");
    }
    let record = observations(&sb);
    assert_eq!(record["version"], 1, "{record:#}");
    for id in &dangling {
        assert!(
            record["images"][id]["unused_since"].is_string(),
            "{record:#}"
        );
    }
    assert!(
        record["images"].get(&ids_1970[2]).is_none(),
        "the tagged image has no entry: {record:#}"
    );

    // min_age later: proven unused for long enough, so they go.
    std::thread::sleep(Duration::from_millis(2500));
    let second = json_run(&sb, "run", &UNUSED_FOR).report;
    assert_eq!(second["decision"], "pruned", "{second:#}");
    assert_eq!(ids(&second, "removed"), dangling, "{second:#}");
    assert!(sb.dangling_ids().is_disjoint(&dangling));
    // Gone images leave the record at the next look.
    let third = json_run(&sb, "run", &UNUSED_FOR).report;
    assert_eq!(third["decision"], "nothing_to_do", "{third:#}");
    let record = observations(&sb);
    for id in &dangling {
        assert!(record["images"].get(id).is_none(), "{record:#}");
    }

    // A corrupt record is a warning naming the file, and nothing counts as proven.
    let more = sb.load_images(&ImageSpec::tagged("nix:2", 2).created("1970-01-01T00:00:01Z"));
    json_run(&sb, "run", &UNUSED_FOR);
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(
        sb.state_dir().join("observations.json"),
        "{\"version\": 1, \"ima",
    )
    .unwrap();
    let corrupt = json_run(&sb, "run", &UNUSED_FOR).report;
    assert!(ids(&corrupt, "removed").is_empty(), "{corrupt:#}");
    let warnings = corrupt["warnings"].to_string();
    assert!(
        warnings.contains("observations.json")
            && warnings.contains("starting from an empty record"),
        "{corrupt:#}"
    );
    assert!(sb.dangling_ids().contains(&more[0]));

    // By `created`, the 1970 images are old at once.
    let created = json_run(&sb, "run", &["--age-basis", "created"]).report;
    assert_eq!(created["decision"], "pruned", "{created:#}");
    assert_eq!(ids(&created, "removed"), BTreeSet::from([more[0].clone()]));
}

#[test]
fn an_untagged_image_a_swarm_service_names_is_kept_as_service_ref() {
    let sb = Sandbox::start();
    sb.docker_ok(["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    // Two images under one tag: the first loaded is left dangling (as a redeploy leaves the
    // previous release on a worker).
    let service_image = sb
        .load_images(&ImageSpec::tagged("pg-svc:1", 2).busybox().age_days(3))
        .remove(0);
    let other = sb
        .load_images(&ImageSpec::untagged(1).age_days(3))
        .remove(0);
    // By image ID (a digest pin needs a registry): no task container, so not in use.
    sb.docker_ok([
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--endpoint-mode",
        "dnsrr",
        "--replicas",
        "0",
        "--name",
        "keeper",
        &service_image,
    ]);
    assert!(sb.dangling_ids().contains(&service_image), "untagged");

    let plan = json_run(&sb, "plan", &["--age-basis", "created"]).report;
    let kept = kept_image(&plan, &service_image);
    assert_eq!(kept["reason"], "service_ref", "{kept:#}");
    assert_eq!(kept["services"], serde_json::json!(["keeper"]), "{kept:#}");
    let text = support::run(
        support::pruneguard(&sb)
            .arg("plan")
            .args(support::OPEN_GATES)
            .args(["--age-basis", "created"]),
    );
    assert!(
        text.stdout.contains("service_ref (service keeper)"),
        "{}",
        text.show()
    );

    let report = json_run(&sb, "run", &["--age-basis", "created"]).report;
    assert_eq!(report["decision"], "pruned", "{report:#}");
    assert_eq!(
        ids(&report, "removed"),
        BTreeSet::from([other]),
        "{report:#}"
    );
    assert_eq!(report["kept"]["service_ref"], 1, "{report:#}");
    assert!(sb.image_ids().contains(&service_image));

    // An update to another image: the first stays as the previous spec's (a rollback's).
    let next = sb
        .load_images(&ImageSpec::tagged("pg-svc:2", 2).busybox().age_days(3))
        .remove(0);
    sb.docker_ok([
        "service",
        "update",
        "--detach",
        "--no-resolve-image",
        "--image",
        &next,
        "keeper",
    ]);
    let plan = json_run(&sb, "plan", &["--age-basis", "created"]).report;
    for id in [&service_image, &next] {
        let kept = kept_image(&plan, id);
        assert_eq!(kept["reason"], "service_ref", "{kept:#}");
        assert_eq!(kept["services"], serde_json::json!(["keeper"]), "{kept:#}");
    }

    // Gone from the spec (the service removed): ordinary old dangling images again.
    sb.docker_ok(["service", "rm", "keeper"]);
    let report = json_run(&sb, "run", &["--age-basis", "created"]).report;
    assert_eq!(
        ids(&report, "removed"),
        BTreeSet::from([service_image, next]),
        "{report:#}"
    );
}
