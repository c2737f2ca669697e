//! The observation record (`observe`) and the age basis `unused_for` in the plan, and the
//! swarm `service_ref` rule (issue 11): table tests of each rule, and properties of the
//! record over random sequences of looks at a host.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use pruneguard::model::{Container, ContainerDestroy, Image, Observed, Service};
use pruneguard::observe::{self, Entry, Observation, Record};
use pruneguard::plan::{self as planner, Age, KeptReason, Plan, Rules};
use pruneguard::service_ref;

use crate::fixtures::{DAY, ago, candidate_ids, container, id, image, now, service};

const MIN_AGE: Duration = Duration::from_secs(24 * 3600);

/// Image `n`, untagged, created in 1970 (as Nix's dockerTools images are).
fn ancient(n: u32) -> Image {
    Image {
        created: Some(DateTime::<Utc>::from_timestamp(1, 0).unwrap()),
        ..image(n, &[], None, None)
    }
}

fn look(
    previous: &Record,
    images: &[Image],
    containers: &[Container],
    destroyed: &Observed<Vec<ContainerDestroy>>,
    at: DateTime<Utc>,
) -> Record {
    observe::update(
        previous,
        &Observation {
            images,
            containers,
            destroyed,
        },
        at,
    )
}

fn quiet(
    previous: &Record,
    images: &[Image],
    containers: &[Container],
    at: DateTime<Utc>,
) -> Record {
    look(previous, images, containers, &Ok(Vec::new()), at)
}

fn since(record: &Record, n: u32) -> Option<DateTime<Utc>> {
    record.unused_since(&id(n))
}

fn plan_unused(images: &[Image], containers: &[Container], record: &Record) -> Plan {
    planner::plan_with(
        images,
        containers,
        &Rules {
            min_age: MIN_AGE,
            age: Age::UnusedFor(record),
            services: &[],
            honours_noprune: true,
        },
        now(),
    )
}

fn kept(plan: &Plan, n: u32) -> Option<&pruneguard::plan::Kept> {
    plan.kept_images.iter().find(|kept| kept.id == id(n))
}

#[test]
fn each_rule_of_the_record_in_one_table() {
    let old = Record {
        updated_at: Some(ago(2 * DAY)),
        images: [1, 2, 3, 4, 5, 6]
            .into_iter()
            .map(|n| {
                (
                    id(n),
                    Entry {
                        unused_since: ago(3 * DAY),
                    },
                )
            })
            .collect(),
        ..Record::default()
    };
    let images = vec![
        image(1, &[], None, Some(9 * DAY)), // still untagged and unused: kept as it was
        image(2, &["app:1"], None, Some(9 * DAY)), // tagged again: reset
        image(3, &[], None, Some(9 * DAY)), // used by a stopped container: reset
        Image {
            last_tag_time: Some(ago(DAY)), // untagged a day ago, says the store
            ..image(4, &[], None, Some(9 * DAY))
        },
        image(5, &[], None, Some(9 * DAY)), // its container was destroyed an hour ago
        // 6 is gone: dropped
        image(7, &[], None, Some(9 * DAY)), // new: from now
        image(8, &["base:1"], None, Some(9 * DAY)), // tagged, never recorded
    ];
    let containers = vec![container("stopped", 3, "exited", &[])];
    let destroyed = Ok(vec![
        ContainerDestroy {
            time: ago(3600),
            image: id(5),
        },
        ContainerDestroy {
            time: ago(7200),
            image: id(5),
        },
    ]);
    let new = look(&old, &images, &containers, &destroyed, now());
    assert_eq!(new.version, observe::RECORD_VERSION);
    assert_eq!(new.updated_at, Some(now()));
    assert_eq!(since(&new, 1), Some(ago(3 * DAY)));
    assert_eq!(since(&new, 2), None);
    assert_eq!(since(&new, 3), None);
    assert_eq!(since(&new, 4), Some(ago(DAY)));
    assert_eq!(since(&new, 5), Some(ago(3600)));
    assert_eq!(since(&new, 6), None);
    assert_eq!(since(&new, 7), Some(now()));
    assert_eq!(since(&new, 8), None);
    assert_eq!(
        new.images.len(),
        4,
        "bounded by the images present: {new:#?}"
    );

    // Destroy events that cannot be read: nothing is proven across the gap.
    let blind = look(&old, &images, &[], &Err("events failed".into()), now());
    assert_eq!(since(&blind, 1), Some(now()));

    // A container whose image resolves to nothing: no image can be shown unused.
    let odd = Container {
        image_id: "gone:1".into(),
        ..container("odd", 1, "running", &[])
    };
    assert!(quiet(&old, &images, &[odd], now()).images.is_empty());

    // A look older than the record (a slower concurrent run) adds nothing, still resets.
    let stale = quiet(&old, &images, &containers, ago(3 * DAY));
    assert_eq!(stale.updated_at, old.updated_at);
    assert_eq!(since(&stale, 1), Some(ago(3 * DAY)));
    assert_eq!(since(&stale, 3), None);
    assert_eq!(since(&stale, 7), None);
}

#[test]
fn a_first_look_proves_nothing_and_a_second_after_min_age_does() {
    let images = vec![ancient(1), image(2, &[], None, Some(3 * DAY))];
    // By `created`, both are old at once.
    let by_created = planner::plan(&images, &[], MIN_AGE, now());
    assert_eq!(candidate_ids(&by_created), vec![id(1), id(2)]);

    // No record: nothing is old enough, and the plan says why and that it is not yet known.
    let empty = Record::default();
    let plan = plan_unused(&images, &[], &empty);
    assert!(plan.candidates.is_empty(), "{plan:#?}");
    let first = kept(&plan, 1).unwrap();
    assert_eq!(first.reason, KeptReason::TooYoung);
    assert_eq!((first.eligible_at, first.unused_since), (None, None));

    // Observed now: eligible a day later.
    let record = quiet(&empty, &images, &[], now());
    let plan = plan_unused(&images, &[], &record);
    assert!(plan.candidates.is_empty());
    let seen = kept(&plan, 1).unwrap();
    assert_eq!(seen.reason, KeptReason::TooYoung);
    assert_eq!(seen.unused_since, Some(now()));
    assert_eq!(seen.eligible_at, Some(now() + chrono::Duration::days(1)));

    // Observed a day ago (and again now): both go, created 1970 or not.
    let earlier = quiet(&empty, &images, &[], ago(DAY));
    let record = quiet(&earlier, &images, &[], now());
    let plan = plan_unused(&images, &[], &record);
    assert_eq!(candidate_ids(&plan), vec![id(1), id(2)]);
    assert!(
        plan.candidates[0]
            .reason
            .contains("used by no container for 1d"),
        "{:?}",
        plan.candidates[0].reason
    );

    // A reproducible image with no creation time at all is eligible by `unused_for` too.
    let timeless = vec![image(3, &[], None, None)];
    let record = quiet(
        &quiet(&empty, &timeless, &[], ago(DAY)),
        &timeless,
        &[],
        now(),
    );
    assert_eq!(
        candidate_ids(&plan_unused(&timeless, &[], &record)),
        vec![id(3)]
    );
}

#[test]
fn the_record_file_reads_back_and_anything_else_is_nothing_proven() {
    let images = vec![ancient(1)];
    let record = quiet(&Record::default(), &images, &[], ago(DAY));
    assert_eq!(Record::parse(&record.to_json()), Ok(record.clone()));
    for corrupt in [
        String::new(),
        "{".to_string(),
        "null".to_string(),
        record.to_json().replace("\"version\": 1", "\"version\": 2"),
        record.to_json().replace("unused_since", "unused"),
    ] {
        assert!(Record::parse(&corrupt).is_err(), "{corrupt:?}");
    }
    // Keys that are no image ID are dropped, not trusted.
    let odd = record.to_json().replace(&id(1), "sha256:../../x");
    assert!(Record::parse(&odd).unwrap().images.is_empty());
}

#[test]
fn service_references_match_by_digest_by_name_and_by_id() {
    let digest = format!("sha256:{}", "d1".repeat(32));
    let other = format!("sha256:{}", "e2".repeat(32));
    let images = vec![
        Image {
            repo_digests: vec![format!("registry.local/app@{digest}")],
            ..image(1, &[], None, Some(9 * DAY))
        },
        image(2, &["registry.local/app:2"], None, Some(9 * DAY)),
        image(3, &[], None, Some(9 * DAY)),
        image(4, &["busybox:latest"], None, Some(9 * DAY)),
        Image {
            repo_digests: vec![format!("registry.local/app@{other}")],
            ..image(5, &[], None, Some(9 * DAY))
        },
    ];
    let rows: Vec<(&str, String, Vec<u32>)> = vec![
        (
            "name:tag@digest",
            format!("registry.local/app:2@{digest}"),
            vec![1, 2],
        ),
        (
            "name@digest",
            format!("registry.local/app@{digest}"),
            vec![1],
        ),
        (
            "digest under another name",
            format!("mirror/app@{digest}"),
            vec![1],
        ),
        ("name:tag", "registry.local/app:2".into(), vec![2]),
        ("name without a tag is :latest", "busybox".into(), vec![4]),
        (
            "docker.io/library form",
            "docker.io/library/busybox:latest".into(),
            vec![4],
        ),
        ("image ID", id(3), vec![3]),
        (
            "bare hex ID",
            id(3).trim_start_matches("sha256:").into(),
            vec![3],
        ),
        ("nothing", "registry.local/app:9".into(), vec![]),
        ("empty", String::new(), vec![]),
    ];
    for (what, reference, expected) in rows {
        let got = service_ref::images_named_by(&reference, &images);
        let expected: BTreeSet<String> = expected.into_iter().map(id).collect();
        assert_eq!(got, expected, "{what}: {reference}");
    }
}

#[test]
fn images_a_service_names_now_or_before_are_kept_as_service_ref_naming_it() {
    let digest = format!("sha256:{}", "d1".repeat(32));
    let images = vec![
        Image {
            repo_digests: vec![format!("registry.local/app@{digest}")],
            ..image(1, &[], None, Some(9 * DAY))
        },
        image(2, &[], None, Some(9 * DAY)),
        image(3, &[], None, Some(9 * DAY)),
        image(4, &[], Some(2), Some(9 * DAY)),
    ];
    let services = vec![
        Service {
            image: Some(format!("registry.local/app:2@{digest}")),
            previous_image: Some(id(2)),
            ..service("svc1", "run-app-1_web", &[], None)
        },
        Service {
            image: Some(id(2)),
            ..service("svc2", "run-app-1_worker", &[], None)
        },
    ];
    let rules = Rules {
        min_age: MIN_AGE,
        age: Age::Created,
        services: &services,
        honours_noprune: true,
    };
    let plan = planner::plan_with(&images, &[], &rules, now());
    // 4 is a child of 2: the child may go, the parent a service names stays.
    assert_eq!(candidate_ids(&plan), vec![id(3), id(4)]);
    assert_eq!(plan.kept.service_ref, 2);
    let web = kept(&plan, 1).unwrap();
    assert_eq!(web.reason, KeptReason::ServiceRef);
    assert_eq!(web.services, vec!["run-app-1_web"]);
    let previous = kept(&plan, 2).unwrap();
    assert_eq!(
        previous.services,
        vec!["run-app-1_web", "run-app-1_worker"],
        "every service that names it"
    );
    // Not a manager (no services): they are ordinary old dangling images.
    let plan = planner::plan_with(
        &images,
        &[],
        &Rules {
            services: &[],
            ..rules
        },
        now(),
    );
    // Children first: 4 before its parent 2.
    assert_eq!(candidate_ids(&plan), vec![id(1), id(3), id(4), id(2)]);
}

/// One look at a random host: which of images 1..=6 exist, are tagged, are used.
#[derive(Debug, Clone)]
struct Look {
    present: [bool; 6],
    tagged: [bool; 6],
    used: [bool; 6],
    advance_secs: i64,
}

fn looks() -> impl Strategy<Value = Vec<Look>> {
    prop::collection::vec(
        (
            prop::array::uniform6(prop::bool::weighted(0.8)),
            prop::array::uniform6(prop::bool::weighted(0.2)),
            prop::array::uniform6(prop::bool::weighted(0.2)),
            // Mostly forward, sometimes a step back (a clock step, a slow concurrent run).
            -3600_i64..3 * DAY,
        )
            .prop_map(|(present, tagged, used, advance_secs)| Look {
                present,
                tagged,
                used,
                advance_secs,
            }),
        1..12,
    )
}

fn host(look: &Look) -> (Vec<Image>, Vec<Container>) {
    let mut images = Vec::new();
    let mut containers = Vec::new();
    for n in 0..6 {
        if !look.present[n] {
            continue;
        }
        let number = u32::try_from(n).unwrap() + 1;
        let tags: &[&str] = if look.tagged[n] { &["t:1"] } else { &[] };
        images.push(ancient(number).clone());
        images.last_mut().unwrap().repo_tags = tags.iter().map(ToString::to_string).collect();
        if look.used[n] {
            containers.push(container(&format!("c{number}"), number, "created", &[]));
        }
    }
    (images, containers)
}

proptest! {
    /// Over any sequence of looks: an image's unused-since never moves earlier while it stays
    /// untagged and unused; seen tagged, used or gone, it has no entry; every entry is of an
    /// image present; a plan never removes an image without an entry at least min_age old.
    #[test]
    fn unused_since_only_moves_later_and_resets_on_use(sequence in looks()) {
        let mut record = Record::default();
        let mut at = ago(30 * DAY);
        for look in &sequence {
            at += chrono::Duration::seconds(look.advance_secs);
            let (images, containers) = host(look);
            let new = quiet(&record, &images, &containers, at);
            for n in 1..=6_u32 {
                let index = usize::try_from(n - 1).unwrap();
                let idle = look.present[index] && !look.tagged[index] && !look.used[index];
                match (since(&record, n), since(&new, n)) {
                    (Some(before), Some(after)) => prop_assert!(after >= before, "image {n} moved earlier"),
                    (_, Some(_)) => prop_assert!(idle),
                    (_, None) => {}
                }
                if !idle {
                    prop_assert_eq!(since(&new, n), None, "image {} must have no entry", n);
                }
                if idle && record.updated_at.is_none_or(|updated| at >= updated) {
                    prop_assert!(since(&new, n).is_some(), "image {} seen idle must be recorded", n);
                }
            }
            prop_assert!(new.updated_at >= record.updated_at);
            record = new;
            let plan = planner::plan_with(
                &images,
                &containers,
                &Rules { min_age: MIN_AGE, age: Age::UnusedFor(&record), services: &[], honours_noprune: true },
                at,
            );
            for candidate in &plan.candidates {
                let since = record.unused_since(&candidate.id);
                prop_assert!(since.is_some_and(|since| at - since >= chrono::Duration::days(1)));
            }
        }
    }

    /// No record (a first run, a lost or corrupt file): nothing is ever eligible, however old.
    #[test]
    fn no_record_means_never_eligible(sequence in looks()) {
        for look in &sequence {
            let (images, containers) = host(look);
            let plan = plan_unused(&images, &containers, &Record::default());
            prop_assert!(plan.candidates.is_empty());
        }
    }

    /// Any text that is not a record reads as an error (the shell starts empty), never as a
    /// record with entries it did not hold.
    #[test]
    fn garbage_never_parses_into_entries(text in ".{0,200}") {
        if let Ok(record) = Record::parse(&text) {
            prop_assert!(record.images.is_empty());
        }
    }
}
