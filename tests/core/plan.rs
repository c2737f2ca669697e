//! The pure planner: every kept reason, dangling chains, ordering, counts, and the invariants
//! over random image sets.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use pruneguard::model::{Container, Image};
use pruneguard::plan::{self as planner, KeptCounts, KeptReason, Plan};

use crate::fixtures::{DAY, candidate_ids, container, id, image, now};

const MIN_AGE: Duration = Duration::from_secs(24 * 3600);

fn dangling(n: u32, parent: Option<u32>, age_seconds: i64) -> Image {
    image(n, &[], parent, Some(age_seconds))
}

fn run(images: &[Image], containers: &[Container]) -> Plan {
    planner::plan(images, containers, MIN_AGE, now())
}

fn kept_reason(plan: &Plan, n: u32) -> Option<KeptReason> {
    plan.kept_images
        .iter()
        .find(|kept| kept.id == id(n))
        .map(|kept| kept.reason)
}

fn wave_of(plan: &Plan, n: u32) -> u32 {
    plan.candidates
        .iter()
        .find(|c| c.id == id(n))
        .unwrap_or_else(|| panic!("image {n} is not a candidate: {plan:#?}"))
        .wave
}

// ---------------------------------------------------------------------------------------------
// Single images: one table row per reason.

struct Row {
    what: &'static str,
    image: Image,
    containers: Vec<Container>,
    expect: Option<KeptReason>,
}

#[test]
fn kept_reason_table() {
    let old = 2 * DAY;
    let mut rows = vec![
        Row {
            what: "old dangling unused image",
            image: dangling(1, None, old),
            containers: vec![],
            expect: None,
        },
        Row {
            what: "tagged, old, unused",
            image: image(1, &["app:latest"], None, Some(old)),
            containers: vec![],
            expect: Some(KeptReason::Tagged),
        },
        Row {
            what: "tagged and in use: tagged wins",
            image: image(1, &["app:1", "app:2"], None, Some(old)),
            containers: vec![container("c1", 1, "running", &[])],
            expect: Some(KeptReason::Tagged),
        },
        Row {
            what: "exactly min_age old",
            image: dangling(1, None, DAY),
            containers: vec![],
            expect: None,
        },
        Row {
            what: "one second younger than min_age",
            image: dangling(1, None, DAY - 1),
            containers: vec![],
            expect: Some(KeptReason::TooYoung),
        },
        Row {
            what: "created just now",
            image: dangling(1, None, 0),
            containers: vec![],
            expect: Some(KeptReason::TooYoung),
        },
        Row {
            what: "created in the future (clock skew)",
            image: dangling(1, None, -3600),
            containers: vec![],
            expect: Some(KeptReason::TooYoung),
        },
        Row {
            what: "created far in the future (clock skew of years)",
            image: dangling(1, None, -400 * DAY),
            containers: vec![],
            expect: Some(KeptReason::TooYoung),
        },
        Row {
            what: "unknown creation time",
            image: image(1, &[], None, None),
            containers: vec![],
            expect: Some(KeptReason::TooYoung),
        },
        Row {
            what: "in use and too young: in use wins",
            image: dangling(1, None, 10),
            containers: vec![container("c1", 1, "exited", &[])],
            expect: Some(KeptReason::InUse),
        },
        Row {
            what: "a container of another image does not matter",
            image: dangling(1, None, old),
            containers: vec![container("c1", 2, "running", &[])],
            expect: None,
        },
    ];
    for state in STATES.into_iter().chain(["some-future-state"]) {
        rows.push(Row {
            what: "in use by a container",
            image: dangling(1, None, old),
            containers: vec![container("c7", 1, state, &[])],
            expect: Some(KeptReason::InUse),
        });
    }
    for row in rows {
        check_kept_reason(&row);
    }
}

/// One row: either the image is the only candidate, or it is kept for exactly that reason.
fn check_kept_reason(row: &Row) {
    let images = [row.image.clone()];
    let plan = run(&images, &row.containers);
    let states: Vec<&str> = row.containers.iter().map(|c| c.state.as_str()).collect();
    match row.expect {
        None => {
            assert_eq!(
                candidate_ids(&plan),
                vec![id(1)],
                "{} (containers {states:?}): expected a candidate",
                row.what
            );
            assert_eq!(plan.kept, KeptCounts::default(), "{}", row.what);
            assert!(plan.kept_images.is_empty(), "{}", row.what);
        }
        Some(reason) => {
            assert!(
                plan.candidates.is_empty(),
                "{} (containers {states:?}): expected kept as {reason:?}, got {plan:#?}",
                row.what
            );
            assert_eq!(
                kept_reason(&plan, 1),
                Some(reason),
                "{} (containers {states:?})",
                row.what
            );
            assert_eq!(plan.kept.total(), 1, "{}", row.what);
        }
    }
}

#[test]
fn min_age_boundary_follows_the_configured_min_age() {
    let images = [dangling(1, None, 3600), dangling(2, None, 3599)];
    let plan = planner::plan(&images, &[], Duration::from_secs(3600), now());
    assert_eq!(candidate_ids(&plan), vec![id(1)]);
    assert_eq!(kept_reason(&plan, 2), Some(KeptReason::TooYoung));

    // min_age 0: anything not in the future goes, the future still does not.
    let images = [dangling(1, None, 0), dangling(2, None, -1)];
    let plan = planner::plan(&images, &[], Duration::ZERO, now());
    assert_eq!(candidate_ids(&plan), vec![id(1)]);
    assert_eq!(kept_reason(&plan, 2), Some(KeptReason::TooYoung));
}

#[test]
fn huge_min_age_keeps_everything_without_overflow() {
    let images = [dangling(1, None, 100 * 365 * DAY)];
    let plan = planner::plan(&images, &[], Duration::from_secs(u64::MAX), now());
    assert!(plan.candidates.is_empty());
    assert_eq!(kept_reason(&plan, 1), Some(KeptReason::TooYoung));
}

#[test]
fn candidate_carries_size_created_and_a_reason() {
    let images = [dangling(5, None, 3 * DAY)];
    let plan = run(&images, &[]);
    let candidate = &plan.candidates[0];
    assert_eq!(candidate.size_bytes, 5000);
    assert_eq!(
        candidate.created,
        now() - chrono::Duration::seconds(3 * DAY)
    );
    assert_eq!(candidate.wave, 0);
    assert!(
        candidate.reason.contains("dangling") && candidate.reason.contains("created 3d ago"),
        "reason: {}",
        candidate.reason
    );
    assert_eq!(plan.candidate_bytes(), 5000);
}

// ---------------------------------------------------------------------------------------------
// Chains.

#[test]
fn dangling_chain_goes_whole_children_first() {
    // 1 <- 2 <- 3 (3 is the leaf), all dangling and old.
    let images = [
        dangling(1, None, 5 * DAY),
        dangling(2, Some(1), 4 * DAY),
        dangling(3, Some(2), 3 * DAY),
    ];
    let plan = run(&images, &[]);
    assert_eq!(candidate_ids(&plan), vec![id(3), id(2), id(1)]);
    assert_eq!(wave_of(&plan, 3), 0);
    assert_eq!(wave_of(&plan, 2), 1);
    assert_eq!(wave_of(&plan, 1), 2);
    assert_eq!(plan.kept, KeptCounts::default());
    assert!(
        plan.candidates[1]
            .reason
            .contains("parent only of images removed before it")
    );
    assert!(!plan.candidates[0].reason.contains("parent only of"));
}

#[test]
fn chain_order_does_not_depend_on_input_order() {
    let mut images = vec![
        dangling(3, Some(2), 3 * DAY),
        dangling(1, None, 5 * DAY),
        dangling(2, Some(1), 4 * DAY),
    ];
    let expected = vec![id(3), id(2), id(1)];
    assert_eq!(candidate_ids(&run(&images, &[])), expected);
    images.reverse();
    assert_eq!(candidate_ids(&run(&images, &[])), expected);
}

#[test]
fn parent_wave_is_after_its_deepest_child() {
    // 1 has children 2 (leaf) and 3; 3 has child 4 (leaf). 1 must wait for 3, which waits for 4.
    let images = [
        dangling(1, None, 9 * DAY),
        dangling(2, Some(1), 8 * DAY),
        dangling(3, Some(1), 8 * DAY),
        dangling(4, Some(3), 7 * DAY),
    ];
    let plan = run(&images, &[]);
    assert_eq!(plan.candidates.len(), 4);
    assert_eq!(wave_of(&plan, 2), 0);
    assert_eq!(wave_of(&plan, 4), 0);
    assert_eq!(wave_of(&plan, 3), 1);
    assert_eq!(wave_of(&plan, 1), 2);
}

#[test]
fn parent_with_a_staying_child_is_kept_as_has_children() {
    let cases: Vec<(&str, Image, Vec<Container>, KeptReason)> = vec![
        (
            "tagged child",
            image(2, &["app:latest"], Some(1), Some(2 * DAY)),
            vec![],
            KeptReason::Tagged,
        ),
        (
            "child used by an exited container",
            dangling(2, Some(1), 2 * DAY),
            vec![container("c1", 2, "exited", &[])],
            KeptReason::InUse,
        ),
        (
            "too young child",
            dangling(2, Some(1), 60),
            vec![],
            KeptReason::TooYoung,
        ),
        (
            "child with unknown creation time",
            image(2, &[], Some(1), None),
            vec![],
            KeptReason::TooYoung,
        ),
    ];
    for (what, child, containers, child_reason) in cases {
        let images = [dangling(1, None, 10 * DAY), child];
        let plan = run(&images, &containers);
        assert!(plan.candidates.is_empty(), "{what}: {plan:#?}");
        assert_eq!(
            kept_reason(&plan, 1),
            Some(KeptReason::HasChildren),
            "{what}"
        );
        assert_eq!(kept_reason(&plan, 2), Some(child_reason), "{what}");
        assert_eq!(plan.kept.has_children, 1, "{what}");
        assert_eq!(plan.kept.total(), 2, "{what}");
    }
}

#[test]
fn grandparent_of_a_staying_image_is_kept_too() {
    // 1 <- 2 <- 3(tagged). 2 and 1 both have a child that stays.
    let images = [
        dangling(1, None, 10 * DAY),
        dangling(2, Some(1), 9 * DAY),
        image(3, &["app:1"], Some(2), Some(8 * DAY)),
    ];
    let plan = run(&images, &[]);
    assert!(plan.candidates.is_empty());
    assert_eq!(kept_reason(&plan, 1), Some(KeptReason::HasChildren));
    assert_eq!(kept_reason(&plan, 2), Some(KeptReason::HasChildren));
    assert_eq!(
        plan.kept,
        KeptCounts {
            tagged: 1,
            in_use: 0,
            too_young: 0,
            has_children: 2,
            ..KeptCounts::default()
        }
    );
}

#[test]
fn one_staying_child_among_several_keeps_the_parent_but_not_its_siblings() {
    let images = [
        dangling(1, None, 10 * DAY),
        dangling(2, Some(1), 9 * DAY),
        dangling(3, Some(1), 9 * DAY),
        image(4, &["keep:me"], Some(1), Some(9 * DAY)),
    ];
    let plan = run(&images, &[]);
    let mut ids = candidate_ids(&plan);
    ids.sort();
    assert_eq!(ids, vec![id(2), id(3)]);
    assert_eq!(kept_reason(&plan, 1), Some(KeptReason::HasChildren));
}

#[test]
fn young_parent_stays_while_its_old_child_goes() {
    // Odd but possible (clock changes, imported images): the parent is younger than the child.
    let images = [dangling(1, None, 60), dangling(2, Some(1), 3 * DAY)];
    let plan = run(&images, &[]);
    assert_eq!(candidate_ids(&plan), vec![id(2)]);
    assert_eq!(wave_of(&plan, 2), 0);
    assert_eq!(kept_reason(&plan, 1), Some(KeptReason::TooYoung));
}

#[test]
fn tagged_or_in_use_parent_stays_while_its_dangling_child_goes() {
    let images = [
        image(1, &["base:1"], None, Some(10 * DAY)),
        dangling(2, Some(1), 3 * DAY),
        dangling(3, None, 10 * DAY),
        dangling(4, Some(3), 3 * DAY),
    ];
    let plan = run(&images, &[container("c1", 3, "running", &[])]);
    let mut ids = candidate_ids(&plan);
    ids.sort();
    assert_eq!(ids, vec![id(2), id(4)]);
    assert_eq!(kept_reason(&plan, 1), Some(KeptReason::Tagged));
    assert_eq!(kept_reason(&plan, 3), Some(KeptReason::InUse));
}

#[test]
fn parent_not_in_the_image_list_keeps_the_child() {
    // A parent link that resolves to nothing is odd data (Podman's unprefixed ParentId made
    // every link look like this): doubt means keep.
    let images = [dangling(2, Some(99), 3 * DAY)];
    let plan = run(&images, &[]);
    assert!(plan.candidates.is_empty());
    assert_eq!(kept_reason(&plan, 2), Some(KeptReason::UnknownParent));
}

#[test]
fn candidates_are_ordered_by_wave_then_creation_then_id() {
    let images = [
        dangling(10, None, 2 * DAY),     // wave 0, newer
        dangling(11, None, 5 * DAY),     // wave 0, oldest
        dangling(13, None, 3 * DAY),     // wave 0, same age as 12: id decides
        dangling(12, None, 3 * DAY),     // wave 0
        dangling(20, None, 9 * DAY),     // wave 1 (parent of 21)
        dangling(21, Some(20), 8 * DAY), // wave 0
    ];
    let plan = run(&images, &[]);
    assert_eq!(
        candidate_ids(&plan),
        vec![id(21), id(11), id(12), id(13), id(10), id(20)]
    );
    let waves: Vec<u32> = plan.candidates.iter().map(|c| c.wave).collect();
    assert_eq!(waves, vec![0, 0, 0, 0, 0, 1]);
}

#[test]
fn kept_counts_and_bytes_add_up() {
    let images = [
        image(1, &["a:1"], None, Some(3 * DAY)),
        image(2, &["b:1"], None, Some(3 * DAY)),
        dangling(3, None, 3 * DAY),
        dangling(4, None, 60),
        image(5, &[], None, None),
        dangling(6, None, 3 * DAY),
        image(7, &["c:1"], Some(6), Some(3 * DAY)),
        dangling(8, None, 3 * DAY),
    ];
    let plan = run(
        &images,
        &[
            container("c1", 3, "dead", &[]),
            container("c2", 3, "running", &[]),
        ],
    );
    assert_eq!(
        plan.kept,
        KeptCounts {
            tagged: 3,
            in_use: 1,
            too_young: 2,
            has_children: 1,
            ..KeptCounts::default()
        }
    );
    assert_eq!(candidate_ids(&plan), vec![id(8)]);
    assert_eq!(plan.kept_bytes(KeptReason::Tagged), 1000 + 2000 + 7000);
    assert_eq!(plan.kept_bytes(KeptReason::InUse), 3000);
    assert_eq!(plan.kept_bytes(KeptReason::TooYoung), 4000 + 5000);
    assert_eq!(plan.kept_bytes(KeptReason::HasChildren), 6000);
    assert_eq!(plan.candidate_bytes(), 8000);
    assert_eq!(
        usize::try_from(plan.kept.total()).unwrap() + plan.candidates.len(),
        images.len()
    );
}

#[test]
fn empty_input_gives_an_empty_plan() {
    let plan = run(&[], &[container("c1", 1, "running", &[])]);
    assert_eq!(plan, Plan::default());
}

// ---------------------------------------------------------------------------------------------
// Invariants over random image forests.

/// Every container state the Docker API documents.
const STATES: [&str; 7] = [
    "running",
    "exited",
    "created",
    "dead",
    "restarting",
    "paused",
    "removing",
];

#[derive(Debug, Clone)]
struct Spec {
    tagged: bool,
    /// Index of an earlier image (so links form a forest), when `Some`.
    parent: Option<prop::sample::Index>,
    /// Seconds old; `None` unknown. Around the 1-day boundary, in the future, or far past.
    age: Option<i64>,
}

fn age_strategy() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        1 => Just(None),
        2 => (-2 * DAY..0).prop_map(Some),
        3 => (DAY - 3..=DAY + 3).prop_map(Some),
        4 => (0..4 * DAY).prop_map(Some),
    ]
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        prop::bool::weighted(0.25),
        prop::option::weighted(0.6, any::<prop::sample::Index>()),
        age_strategy(),
    )
        .prop_map(|(tagged, parent, age)| Spec {
            tagged,
            parent,
            age,
        })
}

fn scenario() -> impl Strategy<Value = (Vec<Image>, Vec<Container>)> {
    (
        prop::collection::vec(spec_strategy(), 0..40),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop::sample::select(&STATES[..]),
            ),
            0..12,
        ),
    )
        .prop_map(|(specs, uses)| {
            let mut images = Vec::new();
            for (n, spec) in specs.iter().enumerate() {
                let n_u32 = u32::try_from(n).unwrap() + 1;
                let parent = match (&spec.parent, n) {
                    (Some(index), n) if n > 0 => Some(u32::try_from(index.index(n)).unwrap() + 1),
                    _ => None,
                };
                let tags: &[&str] = if spec.tagged { &["repo:tag"] } else { &[] };
                images.push(image(n_u32, tags, parent, spec.age));
            }
            let containers = if images.is_empty() {
                Vec::new()
            } else {
                uses.iter()
                    .enumerate()
                    .map(|(k, (index, state))| {
                        let target = u32::try_from(index.index(images.len())).unwrap() + 1;
                        container(&format!("c{k}"), target, state, &[])
                    })
                    .collect()
            };
            // Shuffle-independent: reverse so that children often come before parents.
            images.reverse();
            (images, containers)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plan_invariants((images, containers) in scenario()) {
        let plan = run(&images, &containers);
        let by_id: HashMap<&str, &Image> = images.iter().map(|i| (i.id.as_str(), i)).collect();
        let used: HashSet<&str> = containers.iter().map(|c| c.image_id.as_str()).collect();
        let min_age = chrono::Duration::from_std(MIN_AGE).unwrap();

        let mut seen = HashSet::new();
        let mut wave: HashMap<&str, u32> = HashMap::new();
        for candidate in &plan.candidates {
            prop_assert!(seen.insert(candidate.id.as_str()), "candidate twice: {}", candidate.id);
            let image = by_id.get(candidate.id.as_str()).expect("candidate is a listed image");
            prop_assert!(image.repo_tags.is_empty(), "tagged candidate {}", candidate.id);
            prop_assert!(!used.contains(candidate.id.as_str()), "in-use candidate {}", candidate.id);
            let created = image.created.expect("candidate has a known creation time");
            prop_assert!(created <= now(), "future candidate");
            prop_assert!(now() - created >= min_age, "too young candidate {}", candidate.id);
            prop_assert_eq!(candidate.created, created);
            prop_assert_eq!(candidate.size_bytes, image.size_bytes);
            wave.insert(candidate.id.as_str(), candidate.wave);
        }
        // Children of a candidate are candidates removed in an earlier wave.
        for image in &images {
            let Some(parent) = image.parent_id.as_deref() else { continue };
            if let Some(&parent_wave) = wave.get(parent) {
                let child_wave = wave.get(image.id.as_str());
                prop_assert!(
                    child_wave.is_some_and(|w| *w < parent_wave),
                    "candidate {} has child {} that is not removed before it", parent, image.id
                );
            }
        }
        // Deletion order: waves never decrease.
        prop_assert!(plan.candidates.windows(2).all(|w| w[0].wave <= w[1].wave));

        // Kept + candidates = all, every image exactly once.
        prop_assert_eq!(usize::try_from(plan.kept.total()).unwrap() + plan.candidates.len(), images.len());
        prop_assert_eq!(plan.kept_images.len() as u64, plan.kept.total());
        let mut all: Vec<&str> = plan.candidates.iter().map(|c| c.id.as_str())
            .chain(plan.kept_images.iter().map(|k| k.id.as_str())).collect();
        all.sort_unstable();
        let mut expected: Vec<&str> = images.iter().map(|i| i.id.as_str()).collect();
        expected.sort_unstable();
        prop_assert_eq!(all, expected);

        // Every kept reason is the true one.
        for kept in &plan.kept_images {
            let image = by_id[kept.id.as_str()];
            let reason = if !image.repo_tags.is_empty() {
                KeptReason::Tagged
            } else if used.contains(image.id.as_str()) {
                KeptReason::InUse
            } else if image.created.is_none_or(|c| c > now() || now() - c < min_age) {
                KeptReason::TooYoung
            } else {
                KeptReason::HasChildren
            };
            prop_assert_eq!(kept.reason, reason, "image {}", kept.id);
            if reason == KeptReason::HasChildren {
                // It has a child that is not a candidate.
                prop_assert!(images.iter().any(|child| child.parent_id.as_deref() == Some(image.id.as_str())
                    && !wave.contains_key(child.id.as_str())));
            }
        }

        // Maximality: an eligible image whose children are all candidates is a candidate.
        for image in &images {
            let eligible = image.repo_tags.is_empty()
                && !used.contains(image.id.as_str())
                && image.created.is_some_and(|c| c <= now() && now() - c >= min_age);
            let children_go = images.iter()
                .filter(|child| child.parent_id.as_deref() == Some(image.id.as_str()))
                .all(|child| wave.contains_key(child.id.as_str()));
            prop_assert_eq!(wave.contains_key(image.id.as_str()), eligible && children_go,
                "image {}", image.id);
        }

        // Same answer whatever the input order.
        let mut reversed = images.clone();
        reversed.reverse();
        prop_assert_eq!(candidate_ids(&run(&reversed, &containers)), candidate_ids(&plan));
    }
}

// ---------------------------------------------------------------------------------------------
// Engines that ignore `noprune` (Podman): no delete may take an unplanned parent with it.

fn run_on_podman(images: &[Image], containers: &[Container]) -> Plan {
    planner::plan_on(images, containers, MIN_AGE, now(), false)
}

/// The untagged ancestors a delete of `id` takes with it where `noprune` is ignored: the
/// parent chain up to the first tagged (or unlisted) image.
fn untagged_ancestors<'a>(images: &'a [Image], id: &str) -> Vec<&'a str> {
    let by_id: HashMap<&str, &Image> = images.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut out = Vec::new();
    let mut current = by_id.get(id).and_then(|image| image.parent_id.as_deref());
    while let Some(parent) = current {
        let Some(image) = by_id.get(parent) else {
            break;
        };
        if !image.repo_tags.is_empty() || out.contains(&parent) {
            break;
        }
        out.push(parent);
        current = image.parent_id.as_deref();
    }
    out
}

/// (what, images, planned on Docker, planned on Podman, kept as `parent_not_planned` on Podman)
type PodmanRow = (&'static str, Vec<Image>, Vec<u32>, Vec<u32>, Vec<u32>);

#[test]
#[expect(clippy::too_many_lines, reason = "one table, a row per shape of chain")]
fn parent_not_planned_table() {
    let old = 2 * DAY;
    let young = 3600;
    let table: Vec<PodmanRow> = vec![
        (
            "old child of a young untagged parent",
            vec![dangling(1, None, young), dangling(2, Some(1), old)],
            vec![2],
            vec![],
            vec![2],
        ),
        (
            "old chain under a young untagged root: all of it stays",
            vec![
                dangling(1, None, young),
                dangling(2, Some(1), old),
                dangling(3, Some(2), old),
                dangling(4, Some(3), old),
            ],
            vec![4, 3, 2],
            vec![],
            vec![2, 3, 4],
        ),
        (
            "old child of a tagged parent: the parent is never deleted with it",
            vec![
                image(1, &["base:1"], None, Some(old)),
                dangling(2, Some(1), old),
            ],
            vec![2],
            vec![2],
            vec![],
        ),
        (
            "a whole old dangling chain goes on both",
            vec![dangling(1, None, old), dangling(2, Some(1), old)],
            vec![2, 1],
            vec![2, 1],
            vec![],
        ),
        (
            "parent in use by a container",
            vec![dangling(1, None, old), dangling(2, Some(1), old)],
            vec![2],
            vec![],
            vec![2],
        ),
        (
            "parent with a second, young child: both old siblings under it stay",
            vec![
                dangling(1, None, old),
                dangling(2, Some(1), old),
                dangling(3, Some(1), young),
                dangling(4, Some(1), old),
            ],
            vec![2, 4],
            vec![],
            vec![2, 4],
        ),
        (
            "untagged intermediates of a tagged build: kept with children on both",
            vec![
                dangling(1, None, old),
                dangling(2, Some(1), old),
                image(3, &["app:1"], Some(2), Some(old)),
            ],
            vec![],
            vec![],
            vec![],
        ),
    ];
    for (what, images, docker, podman, under) in table {
        let containers = if what.starts_with("parent in use") {
            vec![container("c1", 1, "exited", &[])]
        } else {
            vec![]
        };
        let sorted = |mut ids: Vec<String>| {
            ids.sort();
            ids
        };
        let ids_of = |ns: &[u32]| sorted(ns.iter().map(|n| id(*n)).collect());
        let on_docker = run(&images, &containers);
        assert_eq!(
            sorted(candidate_ids(&on_docker)),
            ids_of(&docker),
            "{what} (Docker)"
        );
        assert_eq!(on_docker.kept.parent_not_planned, 0, "{what} (Docker)");
        let on_podman = run_on_podman(&images, &containers);
        assert_eq!(
            sorted(candidate_ids(&on_podman)),
            ids_of(&podman),
            "{what} (Podman)"
        );
        let kept_under: Vec<String> = sorted(
            on_podman
                .kept_images
                .iter()
                .filter(|kept| kept.reason == KeptReason::ParentNotPlanned)
                .map(|kept| kept.id.clone())
                .collect(),
        );
        assert_eq!(kept_under, ids_of(&under), "{what} (Podman)");
        assert_eq!(
            on_podman.kept.parent_not_planned,
            under.len() as u64,
            "{what}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// On an engine that ignores `noprune`, every untagged ancestor a planned delete would take
    /// with it is planned too (and removed after it); the plan is the Docker plan minus the
    /// images kept as `parent_not_planned`, each of which has an untagged parent that stays.
    #[test]
    fn no_delete_takes_an_unplanned_parent_on_podman((images, containers) in scenario()) {
        let docker = run(&images, &containers);
        let podman = run_on_podman(&images, &containers);
        let planned: HashMap<&str, u32> =
            podman.candidates.iter().map(|c| (c.id.as_str(), c.wave)).collect();
        for candidate in &podman.candidates {
            for ancestor in untagged_ancestors(&images, &candidate.id) {
                prop_assert!(
                    planned.get(ancestor).is_some_and(|wave| *wave > candidate.wave),
                    "candidate {} would take its untagged ancestor {} with it", candidate.id, ancestor
                );
            }
        }
        let docker_ids: HashSet<String> = candidate_ids(&docker).into_iter().collect();
        let podman_ids: HashSet<String> = candidate_ids(&podman).into_iter().collect();
        prop_assert!(podman_ids.is_subset(&docker_ids));
        let kept_under: HashSet<String> = podman.kept_images.iter()
            .filter(|kept| kept.reason == KeptReason::ParentNotPlanned)
            .map(|kept| kept.id.clone())
            .collect();
        let difference: HashSet<String> = docker_ids.difference(&podman_ids).cloned().collect();
        prop_assert_eq!(&kept_under, &difference);
        for id in &kept_under {
            let ancestors = untagged_ancestors(&images, id);
            prop_assert!(ancestors.first().is_some_and(|parent| !planned.contains_key(parent)));
        }
        prop_assert_eq!(usize::try_from(podman.kept.total()).unwrap() + podman.candidates.len(), images.len());
    }
}
