//! Exact plan and run on every engine: the old, unused, untagged images without children are
//! planned and removed, one by one, and nothing else is: tagged images, images in use by a
//! container in any state (created, running, exited, paused), young images, and untagged
//! parents of other images (a classic builder's chain under a tagged image). Everything the
//! plan did not name is still there afterwards, images and containers alike. And pruneguard
//! is never laxer than the engine's own `image prune --filter until=24h`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{ImageSpec, Sandbox, ids, json_run};

use super::{MIN_AGE, SETTLE, build, minus};

/// A sandbox holding every kind of image the policy keeps, and two it removes.
struct Fixture {
    sb: Sandbox,
    /// Old, untagged, unused: what a run removes.
    removable: BTreeSet<String>,
    /// Old untagged images used by a container: created, running, exited, paused.
    in_use: Vec<String>,
    young: String,
    tagged: BTreeSet<String>,
}

fn fixture() -> Fixture {
    let sb = Sandbox::start();
    // Seven builds of one tag three days ago: six are left untagged, the last keeps the tag.
    let old = sb.load_images(
        &ImageSpec::tagged("conformance/app:1", 7)
            .age_days(3)
            .busybox(),
    );
    sb.docker_ok(["create", "--name", "created", old[0].as_str()]);
    sb.docker_ok(["run", "-d", "--name", "running", old[1].as_str()]);
    sb.docker_ok([
        "run",
        "--name",
        "exited",
        old[2].as_str(),
        "/bin/busybox",
        "true",
    ]);
    sb.docker_ok(["run", "-d", "--name", "paused", old[3].as_str()]);
    sb.docker_ok(["pause", "paused"]);
    std::thread::sleep(SETTLE);
    // Built just now: young on every store.
    let young = sb.load_images(&ImageSpec::tagged("conformance/young:1", 2));
    Fixture {
        removable: old[4..6].iter().cloned().collect(),
        in_use: old[0..4].to_vec(),
        young: young[0].clone(),
        tagged: BTreeSet::from([old[6].clone(), young[1].clone()]),
        sb,
    }
}

#[test]
fn plan_and_run_are_exact_and_leave_everything_unplanned_in_place() {
    let f = fixture();
    let engine = f.sb.engine();
    let images = f.sb.image_ids();
    let containers = f.sb.container_ids();
    assert_eq!(containers.len(), 4, "four containers on {engine}");

    let plan = json_run(&f.sb, "plan", &["--min-age", MIN_AGE]);
    assert_eq!(
        ids(&plan.report, "candidates"),
        f.removable,
        "on {engine} the plan names exactly the old unused untagged images\n{:#}",
        plan.report
    );
    assert_eq!(f.sb.image_ids(), images, "plan deletes nothing on {engine}");
    assert_eq!(
        plan.report["kept"]["in_use"], 4,
        "{:#}",
        plan.report["kept"]
    );
    assert_eq!(
        plan.report["kept"]["too_young"], 1,
        "{:#}",
        plan.report["kept"]
    );

    let run = json_run(&f.sb, "run", &["--min-age", MIN_AGE]);
    let report = &run.report;
    assert_eq!(report["decision"], "pruned", "{report:#}");
    assert_eq!(
        ids(report, "removed"),
        f.removable,
        "on {engine} the run removes exactly what was planned\n{report:#}"
    );
    assert!(
        report["failed"].as_array().is_some_and(Vec::is_empty),
        "no deletion fails on {engine}: {report:#}"
    );
    let after = f.sb.image_ids();
    assert_eq!(
        minus(&images, &after),
        f.removable,
        "on {engine} the engine lost exactly the planned images"
    );
    assert!(minus(&after, &images).is_empty(), "no image appeared");
    for kept in f.in_use.iter().chain([&f.young]).chain(&f.tagged) {
        assert!(after.contains(kept), "{kept} must be kept on {engine}");
    }
    assert_eq!(
        f.sb.container_ids(),
        containers,
        "containers are never touched on {engine}"
    );
    assert_eq!(
        f.sb.docker_ok(["inspect", "--format", "{{.State.Status}}", "paused"]),
        "paused"
    );

    let again = json_run(&f.sb, "run", &["--min-age", MIN_AGE]);
    assert_eq!(
        again.report["decision"], "nothing_to_do",
        "{:#}",
        again.report
    );
    assert_eq!(f.sb.image_ids(), after);
}

#[test]
fn builder_chain_parents_under_a_tagged_image_are_kept() {
    let sb = Sandbox::start();
    let engine = sb.engine();
    sb.load_images(
        &ImageSpec::tagged("conformance/base:1", 1)
            .age_days(3)
            .busybox(),
    );
    // Each RUN of the classic builder commits an untagged intermediate image, the parent of
    // the next: a chain of untagged images under the tagged result.
    let top = build(
        &sb,
        "conformance/chain:1",
        "FROM conformance/base:1\n\
         RUN [\"/bin/busybox\", \"touch\", \"/one\"]\n\
         RUN [\"/bin/busybox\", \"touch\", \"/two\"]\n\
         LABEL stage=three\n",
    );
    let images = sb.image_ids();
    let untagged = sb.dangling_ids();
    assert!(
        images.len() >= 4,
        "base, two intermediates and the result on {engine}: {images:?}"
    );
    let parent = sb.docker_ok(["image", "inspect", "--format", "{{.Parent}}", &top]);
    assert!(
        !parent.is_empty(),
        "the built image has a parent on {engine}"
    );

    // Every image is young, so only --min-age 0s makes the intermediates old enough: they are
    // still kept, as parents of the tagged image.
    let plan = json_run(&sb, "plan", &["--min-age", "0s"]);
    assert!(
        ids(&plan.report, "candidates").is_empty(),
        "on {engine} no image of a chain under a tagged image is planned\n{:#}",
        plan.report
    );
    let run = json_run(&sb, "run", &["--min-age", "0s"]);
    assert!(
        ids(&run.report, "removed").is_empty(),
        "on {engine} nothing of the chain is removed\n{:#}",
        run.report
    );
    assert!(
        run.report["failed"].as_array().is_some_and(Vec::is_empty),
        "{:#}",
        run.report
    );
    assert_eq!(
        sb.image_ids(),
        images,
        "on {engine} every image of the chain is still there (untagged before: {untagged:?})"
    );
    assert!(
        run.report["kept"]["has_children"].as_u64().unwrap_or(0) >= 1,
        "the intermediates are kept for their children: {:#}",
        run.report["kept"]
    );
}

#[test]
fn never_laxer_than_the_engines_own_prune() {
    let sb = Sandbox::start();
    let engine = sb.engine();
    // Old builds of one tag, and old images loaded untagged.
    sb.load_images(&ImageSpec::tagged("conformance/rebuilt:1", 3).age_days(3));
    sb.load_images(&ImageSpec::untagged(2).age_days(3));
    std::thread::sleep(Duration::from_secs(1));
    let before = sb.image_ids();

    // The default min_age (24h): what would pruneguard remove?
    let plan = json_run(&sb, "plan", &[]);
    let planned = ids(&plan.report, "candidates");

    // What the engine's own prune removes with the same age.
    sb.docker_ok(["image", "prune", "-f", "--filter", "until=24h"]);
    let pruned = minus(&before, &sb.image_ids());
    assert!(
        planned.is_subset(&pruned),
        "on {engine} pruneguard plans images that `docker image prune --filter until=24h` \
         keeps: {:?} (planned {planned:?}, the engine's prune removed {pruned:?})\n{:#}",
        minus(&planned, &pruned),
        plan.report
    );
}

#[test]
fn a_superseded_build_loses_only_what_was_planned() {
    let sb = Sandbox::start();
    let engine = sb.engine();
    sb.load_images(
        &ImageSpec::tagged("conformance/base:1", 1)
            .age_days(3)
            .busybox(),
    );
    let dockerfile = |generation: &str| {
        format!(
            "FROM conformance/base:1\n\
             RUN [\"/bin/busybox\", \"touch\", \"/{generation}-one\"]\n\
             RUN [\"/bin/busybox\", \"touch\", \"/{generation}-two\"]\n\
             LABEL generation={generation}\n"
        )
    };
    let first = build(&sb, "conformance/rebuilt:1", &dockerfile("first"));
    let second = build(&sb, "conformance/rebuilt:1", &dockerfile("second"));
    assert_ne!(first, second);
    let images = sb.image_ids();
    assert!(
        images.contains(&first),
        "the first build is still there, untagged"
    );

    // The first build's top image is untagged and childless; its intermediates have it as
    // their child. Whatever the plan names goes, and nothing else: an engine that ignores
    // `noprune` must not take the unplanned parents along.
    let plan = json_run(&sb, "plan", &["--min-age", "0s"]);
    let planned = ids(&plan.report, "candidates");
    let run = json_run(&sb, "run", &["--min-age", "0s"]);
    assert_eq!(ids(&run.report, "removed"), planned, "{:#}", run.report);
    assert!(
        run.report["failed"].as_array().is_some_and(Vec::is_empty),
        "no deletion fails on {engine}: {:#}",
        run.report
    );
    let after = sb.image_ids();
    assert_eq!(
        minus(&images, &after),
        planned,
        "on {engine} the run removed exactly the planned images (planned {planned:?})"
    );
    assert_eq!(
        sb.image_id("conformance/rebuilt:1").as_deref(),
        Some(second.as_str())
    );
}
