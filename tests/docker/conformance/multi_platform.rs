//! Multi-platform images with attestations on the containerd store: an image index with this
//! machine's manifest, a foreign platform's and an attestation manifest is one image (its ID
//! is the index's digest). Old untagged ones are planned and deleted exactly, whole; the
//! tagged one is kept with everything it holds. Only the containerd store keeps such images
//! whole (the classic store and Podman load one platform of them, or refuse the archive), so
//! on the other targets this test checks nothing and says so.

use std::collections::BTreeSet;

use chrono::Utc;
use testkit::oci::{MultiPlatform, MultiPlatformImage};

use crate::support::{Sandbox, Store, ids, json_run};

use super::{MIN_AGE, SETTLE, minus};

fn load(sb: &Sandbox, image: &MultiPlatform, name: &str) -> MultiPlatformImage {
    let path = sb.scratch().join(format!("{name}.oci.tar"));
    let written = image
        .write(&path)
        .unwrap_or_else(|err| panic!("cannot write the OCI archive {name}: {err:#}"));
    sb.docker_ok([
        "load".as_ref(),
        "-q".as_ref(),
        "-i".as_ref(),
        path.as_os_str(),
    ]);
    written
}

#[test]
fn multi_platform_images_with_attestations_are_planned_and_deleted_whole() {
    if Sandbox::target().store != Store::Containerd {
        eprintln!(
            "{}: not the containerd image store; multi-platform images are its alone",
            Sandbox::target()
        );
        return;
    }
    let sb = Sandbox::start();
    let engine = sb.engine();
    let three_days_ago = Utc::now() - chrono::Duration::days(3);
    let seed = format!("{:?}", std::time::SystemTime::now());
    let first = load(
        &sb,
        &MultiPlatform::new(&format!("{seed}-1"), three_days_ago).tag("conformance/multi:1"),
        "first",
    );
    // A rebuild of the same tag: the first index is left untagged.
    let second = load(
        &sb,
        &MultiPlatform::new(&format!("{seed}-2"), three_days_ago).tag("conformance/multi:1"),
        "second",
    );
    let untagged = load(
        &sb,
        &MultiPlatform::new(&format!("{seed}-3"), three_days_ago),
        "untagged",
    );

    let images = sb.image_ids();
    let expected: BTreeSet<String> = [&first, &second, &untagged]
        .iter()
        .map(|image| image.id().to_owned())
        .collect();
    assert_eq!(
        images, expected,
        "on {engine} each multi-platform image is one image, named by its index \
         (the platform and attestation manifests are not images of their own)"
    );
    assert_eq!(
        sb.image_id("conformance/multi:1").as_deref(),
        Some(second.id()),
        "the tag is on the second image"
    );

    std::thread::sleep(SETTLE);
    let removable: BTreeSet<String> = [first.id().to_owned(), untagged.id().to_owned()].into();
    let plan = json_run(&sb, "plan", &["--min-age", MIN_AGE]);
    assert_eq!(
        ids(&plan.report, "candidates"),
        removable,
        "on {engine} the old untagged multi-platform images are planned, the tagged one is not\n{:#}",
        plan.report
    );
    let run = json_run(&sb, "run", &["--min-age", MIN_AGE]);
    assert_eq!(ids(&run.report, "removed"), removable, "{:#}", run.report);
    assert!(
        run.report["failed"].as_array().is_some_and(Vec::is_empty),
        "{:#}",
        run.report
    );
    let after = sb.image_ids();
    assert_eq!(
        minus(&images, &after),
        removable,
        "exactly the planned images went"
    );
    assert_eq!(
        sb.docker_ok([
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "conformance/multi:1"
        ]),
        second.id(),
        "the tagged multi-platform image is intact"
    );
}
