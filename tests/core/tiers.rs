//! The reclaim tiers' pure core: `unused_tagged` planning (order, keep rules, newest per
//! repository, never in use / `service_ref` / recently used / unobserved), the record's last use
//! for tagged images, the watermark batches, and the `[tiers.*]` config rules.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use pruneguard::model::{Image, is_tag_reference};
use pruneguard::observe::{Record, TaggedEntry};
use pruneguard::policy::Pattern;
use pruneguard::tiers::UnusedTaggedSettings;
use pruneguard::tiers::unused_tagged::{self, Inputs, TagKeptReason};
use pruneguard::tiers::watermark::{self, Usage};

use super::fixtures::{DAY, ago, container, id, image, now};

fn record(last_used: &[(u32, i64)]) -> Record {
    Record {
        tagged: last_used
            .iter()
            .map(|(n, age)| {
                (
                    id(*n),
                    TaggedEntry {
                        last_used: ago(*age),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        ..Record::default()
    }
}

fn settings() -> UnusedTaggedSettings {
    UnusedTaggedSettings {
        enabled: true,
        ..UnusedTaggedSettings::default()
    }
}

fn plan(
    images: &[Image],
    record: &Record,
    settings: &UnusedTaggedSettings,
) -> unused_tagged::TagPlan {
    unused_tagged::plan(&Inputs {
        images,
        containers: &[],
        services: &[],
        record: Some(record),
        settings,
        honours_noprune: true,
        now: now(),
    })
}

/// On an engine that ignores `noprune` (Podman), removing the last tag of an image built on
/// an untagged parent would delete that parent too: such an image is kept; on Docker it goes.
#[test]
fn an_untagged_parent_keeps_the_image_where_noprune_is_ignored() {
    let images = vec![
        image(1, &[], None, Some(40 * DAY)),
        image(2, &["app:c1"], Some(1), Some(30 * DAY)),
        image(3, &["app:c2"], None, Some(20 * DAY)),
        image(4, &["app:c3"], None, Some(10 * DAY)),
    ];
    let record = record(&[(2, 29 * DAY), (3, 19 * DAY), (4, 9 * DAY)]);
    let on = |honours_noprune| {
        unused_tagged::plan(&Inputs {
            images: &images,
            containers: &[],
            services: &[],
            record: Some(&record),
            settings: &settings(),
            honours_noprune,
            now: now(),
        })
    };
    let docker = on(true);
    assert!(docker.candidates.iter().any(|c| c.reference == "app:c1"));
    let podman = on(false);
    assert_eq!(
        kept_reason(&podman, "app:c1"),
        Some(TagKeptReason::ParentNotPlanned)
    );
    assert!(podman.candidates.iter().any(|c| c.reference == "app:c2"));
}

fn kept_reason(plan: &unused_tagged::TagPlan, reference: &str) -> Option<TagKeptReason> {
    plan.kept
        .iter()
        .find(|kept| kept.reference == reference)
        .map(|kept| kept.reason)
}

/// CI tags each build by commit: the oldest-used builds go first, the newest stays.
#[test]
fn least_recently_used_first_and_the_newest_of_a_repository_stays() {
    let images = vec![
        image(1, &["app:c1"], None, Some(30 * DAY)),
        image(2, &["app:c2"], None, Some(20 * DAY)),
        image(3, &["app:c3"], None, Some(10 * DAY)),
        image(4, &["base:1"], None, Some(40 * DAY)),
    ];
    let record = record(&[(1, 9 * DAY), (2, 29 * DAY), (3, 8 * DAY), (4, 50 * DAY)]);
    let plan = plan(&images, &record, &settings());
    let order: Vec<&str> = plan
        .candidates
        .iter()
        .map(|c| c.reference.as_str())
        .collect();
    assert_eq!(order, ["app:c2", "app:c1"]);
    assert_eq!(
        kept_reason(&plan, "app:c3"),
        Some(TagKeptReason::NewestOfRepository)
    );
    // The only image of its repository is its newest.
    assert_eq!(
        kept_reason(&plan, "base:1"),
        Some(TagKeptReason::NewestOfRepository)
    );
}

#[test]
fn never_in_use_recently_used_unobserved_or_kept() {
    let images = vec![
        image(1, &["app:used"], None, Some(30 * DAY)),
        image(2, &["app:recent"], None, Some(29 * DAY)),
        image(3, &["app:unseen"], None, Some(28 * DAY)),
        image(4, &["team/base:1"], None, Some(27 * DAY)),
        image(5, &["app:other"], None, Some(26 * DAY)),
        image(6, &["app:newest"], None, Some(DAY)),
        image(7, &["team/base:2"], None, Some(DAY)),
        image(8, &["app:child-of"], None, Some(25 * DAY)),
        Image {
            parent_id: Some(id(8)),
            ..image(9, &["other:x"], None, Some(DAY))
        },
        image(10, &["app:future"], None, Some(24 * DAY)),
    ];
    let record = record(&[
        (1, 30 * DAY),
        (2, DAY),
        (4, 30 * DAY),
        (5, 30 * DAY),
        (6, 30 * DAY),
        (8, 30 * DAY),
        (10, -DAY),
    ]);
    let containers = vec![container("web", 1, "exited", &[])];
    let settings = UnusedTaggedSettings {
        keep: vec![Pattern::new("*/base:*").unwrap()],
        include: vec![
            Pattern::new("app:*").unwrap(),
            Pattern::new("team/*").unwrap(),
        ],
        ..settings()
    };
    let plan = unused_tagged::plan(&Inputs {
        images: &images,
        containers: &containers,
        services: &[],
        record: Some(&record),
        settings: &settings,
        honours_noprune: true,
        now: now(),
    });
    let order: Vec<&str> = plan
        .candidates
        .iter()
        .map(|c| c.reference.as_str())
        .collect();
    assert_eq!(order, ["app:other"]);
    for (reference, reason) in [
        ("app:used", TagKeptReason::InUse),
        ("app:recent", TagKeptReason::RecentlyUsed),
        ("app:unseen", TagKeptReason::NotObserved),
        ("team/base:1", TagKeptReason::Keep),
        ("app:newest", TagKeptReason::NewestOfRepository),
        ("app:child-of", TagKeptReason::HasChildren),
        ("app:future", TagKeptReason::RecentlyUsed),
    ] {
        assert_eq!(kept_reason(&plan, reference), Some(reason), "{reference}");
    }
}

/// An image goes only with its last tag: one tag that stays keeps all of them.
#[test]
fn an_image_with_a_kept_tag_keeps_every_tag_and_the_last_tag_carries_the_bytes() {
    let images = vec![
        Image {
            shared_size_bytes: Some(400),
            ..image(1, &["app:b", "app:a"], None, Some(30 * DAY))
        },
        image(2, &["app:c", "app:latest"], None, Some(20 * DAY)),
        image(3, &["app:new"], None, Some(DAY)),
    ];
    let record = record(&[(1, 30 * DAY), (2, 30 * DAY), (3, 30 * DAY)]);
    let settings = UnusedTaggedSettings {
        keep: vec![Pattern::new("*:latest").unwrap()],
        ..settings()
    };
    let plan = plan(&images, &record, &settings);
    let got: Vec<(&str, Option<u64>, bool)> = plan
        .candidates
        .iter()
        .map(|c| (c.reference.as_str(), c.expected_bytes, c.removes_image))
        .collect();
    assert_eq!(got, [("app:a", Some(0), false), ("app:b", Some(600), true)]);
    assert_eq!(
        kept_reason(&plan, "app:c"),
        Some(TagKeptReason::OtherTagKept)
    );
    assert_eq!(kept_reason(&plan, "app:latest"), Some(TagKeptReason::Keep));
}

#[test]
fn unknown_shared_size_is_unknown_bytes() {
    let images = vec![
        image(1, &["app:a"], None, Some(30 * DAY)),
        image(2, &["app:b"], None, Some(DAY)),
    ];
    let plan = plan(&images, &record(&[(1, 30 * DAY)]), &settings());
    assert_eq!(plan.candidates[0].expected_bytes, None);
    assert_eq!(plan.expected_bytes(), None);
}

#[test]
fn no_record_means_nothing_is_eligible() {
    let images = vec![
        image(1, &["app:a"], None, Some(30 * DAY)),
        image(2, &["app:b"], None, Some(DAY)),
    ];
    let plan = unused_tagged::plan(&Inputs {
        images: &images,
        containers: &[],
        services: &[],
        record: None,
        settings: &settings(),
        honours_noprune: true,
        now: now(),
    });
    assert!(plan.candidates.is_empty());
}

#[test]
fn the_record_keeps_last_use_of_tagged_images() {
    use pruneguard::observe::{Observation, update};
    let images = vec![
        image(1, &["app:a"], None, Some(30 * DAY)),
        image(2, &["app:b"], None, Some(30 * DAY)),
    ];
    let containers = vec![container("web", 1, "running", &[])];
    let destroyed = Ok(Vec::new());
    let first = update(
        &Record::default(),
        &Observation {
            images: &images,
            containers: &containers,
            destroyed: &destroyed,
        },
        ago(2 * DAY),
    );
    assert_eq!(first.last_used(&id(1)), Some(ago(2 * DAY)));
    assert_eq!(
        first.last_used(&id(2)),
        Some(ago(2 * DAY)),
        "first seen tagged"
    );
    let second = update(
        &first,
        &Observation {
            images: &images,
            containers: &containers,
            destroyed: &destroyed,
        },
        now(),
    );
    assert_eq!(second.last_used(&id(1)), Some(now()), "in use: now");
    assert_eq!(
        second.last_used(&id(2)),
        Some(ago(2 * DAY)),
        "unused: unchanged"
    );
    let text = second.to_json();
    assert_eq!(Record::parse(&text).unwrap(), second);
}

fn usage(percent: u64) -> Usage {
    Usage {
        used_bytes: percent * 1000,
        available_bytes: (100 - percent) * 1000,
    }
}

#[test]
fn watermarks_start_at_high_and_stop_at_low() {
    for (percent, starts, done) in [
        (84, false, false),
        (85, true, false),
        (80, false, true),
        (81, false, false),
    ] {
        assert_eq!(watermark::starts(usage(percent), 85), starts, "{percent}");
        assert_eq!(watermark::done(usage(percent), 80), done, "{percent}");
    }
    assert_eq!(usage(90).bytes_above(80), 10_000);
}

#[test]
fn batches_reach_the_low_watermark_and_stop_at_unknown_sizes() {
    let images: Vec<Image> = (1..=5)
        .map(|n| Image {
            size_bytes: 4000,
            shared_size_bytes: Some(if n == 3 { 4000 } else { 0 }),
            ..image(
                n,
                &[&format!("app:{n}")],
                None,
                Some(i64::from(40 - n) * DAY),
            )
        })
        .chain([image(9, &["app:new"], None, Some(DAY))])
        .collect();
    let record = record(&[
        (1, 40 * DAY),
        (2, 39 * DAY),
        (3, 38 * DAY),
        (4, 37 * DAY),
        (5, 36 * DAY),
    ]);
    let plan = plan(&images, &record, &settings());
    assert_eq!(plan.candidates.len(), 5);
    // 90 % of 100 kB: 10 kB above 80 %; 4 kB each except image 3 (all shared).
    assert_eq!(watermark::next_batch(usage(90), 80, &plan.candidates), 4);
    assert_eq!(watermark::next_batch(usage(80), 80, &plan.candidates), 0);
    assert_eq!(watermark::next_batch(usage(81), 80, &plan.candidates), 1);
    let mut unknown = plan.candidates.clone();
    unknown[1].expected_bytes = None;
    assert_eq!(watermark::next_batch(usage(90), 80, &unknown), 2);
}

#[test]
fn tag_references_are_strict() {
    for good in [
        "app:1",
        "registry:5000/team/app:3f9c",
        "localhost/a_b:v1.2-x",
        "a__b:x",
    ] {
        assert!(is_tag_reference(good), "{good}");
    }
    for bad in [
        "app",
        "app:",
        "../x:1",
        "a/../b:1",
        "App:1",
        "a:b/c",
        "a:1?force=1",
        "a%2F:1",
        "a@sha256:00:1",
        "a b:1",
        "a//b:1",
        "-a:1",
        "a:-1",
        "",
    ] {
        assert!(!is_tag_reference(bad), "{bad}");
    }
}

proptest! {
    /// Whatever the host: no candidate is in use, kept, newest of its repository or
    /// recently used; candidates come least recently used first; a batch never ends between
    /// an image's tags.
    #[test]
    fn candidates_obey_every_rule(
        ages in prop::collection::vec((0i64..60, 0i64..60, 0usize..3, any::<bool>()), 1..24),
    ) {
        let images: Vec<Image> = ages
            .iter()
            .enumerate()
            .map(|(n, (created, _, repo, second))| {
                let n = u32::try_from(n).unwrap();
                let mut tags = vec![format!("r{repo}:t{n}")];
                if *second {
                    tags.push(format!("r{repo}:u{n}"));
                }
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                image(n, &tags, None, Some(created * DAY))
            })
            .collect();
        let last: Vec<(u32, i64)> = ages
            .iter()
            .enumerate()
            .map(|(n, (_, last, _, _))| (u32::try_from(n).unwrap(), last * DAY))
            .collect();
        let record = record(&last);
        let containers = vec![container("c", 0, "created", &[])];
        let settings = UnusedTaggedSettings {
            keep: vec![Pattern::new("*:u1*").unwrap()],
            ..settings()
        };
        let plan = unused_tagged::plan(&Inputs {
            images: &images,
            containers: &containers,
            services: &[],
            record: Some(&record),
            settings: &settings,
            honours_noprune: true,            now: now(),
        });
        let mut previous = None;
        for candidate in &plan.candidates {
            prop_assert!(candidate.image_id != id(0), "in use");
            prop_assert!(!candidate.reference.contains(":u1"), "kept");
            prop_assert!(now() - candidate.last_used >= chrono::Duration::from_std(settings.unused_for).unwrap());
            if let Some(previous) = previous {
                prop_assert!(previous <= candidate.last_used);
            }
            previous = Some(candidate.last_used);
        }
        for candidate in &plan.candidates {
            let repo = unused_tagged::repository(&candidate.reference);
            prop_assert!(
                plan.kept.iter().any(|kept| unused_tagged::repository(&kept.reference) == repo),
                "the newest image of {} stays", repo
            );
        }
        for percent in 81..=100 {
            let batch = watermark::next_batch(usage(percent), 80, &plan.candidates);
            if batch > 0 {
                prop_assert!(plan.candidates[batch - 1].removes_image, "batch ends on an image's last tag");
            }
        }
    }
}

#[test]
fn config_rules_name_the_key_and_the_fix() {
    use super::config::Config;
    for (text, needle) in [
        (
            "[tiers.unused_tagged]\nlow_percent = 90\n",
            "tiers.unused_tagged.low_percent",
        ),
        (
            "[tiers.unused_tagged]\nhigh_percent = 101\n",
            "tiers.unused_tagged.high_percent",
        ),
        (
            "[tiers.unused_tagged]\nkeep_newest = 0\n",
            "tiers.unused_tagged.keep_newest",
        ),
        (
            "[tiers.unused_tagged]\ninclude = [\"a[\"]\n",
            "tiers.unused_tagged.include",
        ),
        (
            "[tiers.build_cache]\nkeep_storage = \"1TB\"\n",
            "tiers.build_cache.keep_storage",
        ),
        ("[tiers.build_cache]\nnope = 1\n", "nope"),
    ] {
        let config = Config::new(text);
        let error = config.resolve().unwrap_err().to_string();
        assert!(error.contains(needle), "{text}: {error}");
        assert!(error.contains("config.toml:"), "{text}: {error}");
    }
    let args = pruneguard::cli::RunArgs {
        tiers: vec!["dangling".into()],
        no_config: true,
        ..pruneguard::cli::RunArgs::default()
    };
    let error = pruneguard::config::Settings::resolve_with(
        &args,
        pruneguard::config::Mode::Run,
        &pruneguard::config::Environment::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("always runs first"), "{error}");
    let _ = Duration::ZERO;
}

/// Several filesystems (the data root, containerd's root): the watermarks follow the fullest,
/// by Use%, then by the bytes above the low watermark, then the first listed.
#[test]
fn the_fullest_filesystem_decides() {
    let sized = |used: u64, available: u64| Usage {
        used_bytes: used,
        available_bytes: available,
    };
    let cases: &[(&str, Vec<Usage>, Option<usize>)] = &[
        ("none measured", vec![], None),
        ("one", vec![usage(70)], Some(0)),
        ("the second is fuller", vec![usage(70), usage(90)], Some(1)),
        ("the first is fuller", vec![usage(95), usage(90)], Some(0)),
        ("equal: the first", vec![usage(90), usage(90)], Some(0)),
        // Both 90 %; the bigger one has more bytes above 80 %.
        (
            "equal percent: more bytes above low",
            vec![sized(900, 100), sized(9000, 1000)],
            Some(1),
        ),
        ("an empty filesystem", vec![sized(0, 0), usage(1)], Some(1)),
    ];
    for (name, usages, expected) in cases {
        assert_eq!(
            watermark::fullest(usages, 80).map(|(index, _)| index),
            *expected,
            "{name}"
        );
    }
    // A tier starts when any is at or above high, and is done only when the fullest is at or
    // below low.
    let data_root_low_containerd_high = [usage(60), usage(86)];
    let (_, fullest) = watermark::fullest(&data_root_low_containerd_high, 80).unwrap();
    assert!(watermark::starts(fullest, 85));
    assert!(!watermark::done(fullest, 80));
    let both_low = [usage(60), usage(80)];
    let (_, fullest) = watermark::fullest(&both_low, 80).unwrap();
    assert!(watermark::done(fullest, 80));
}

#[test]
fn freed_bytes_sum_over_filesystems() {
    for (before, after, freed) in [
        (vec![usage(90)], vec![usage(80)], 10_000),
        (
            vec![usage(90), usage(50)],
            vec![usage(85), usage(40)],
            15_000,
        ),
        // One grew (a container wrote): counts 0, not negative.
        (
            vec![usage(90), usage(50)],
            vec![usage(80), usage(60)],
            10_000,
        ),
        (vec![], vec![], 0),
    ] {
        assert_eq!(
            watermark::freed(&before, &after),
            freed,
            "{before:?} -> {after:?}"
        );
    }
}

/// Docker's image list says no `SharedSize` (-1): a build on a listed parent is expected to
/// free its size less the parent's; a pulled image with no parent is unknown.
#[test]
fn expected_bytes_from_the_parent_when_the_engine_has_no_shared_size() {
    let images = vec![
        Image {
            size_bytes: 10_000,
            ..image(1, &["base:1"], None, Some(40 * DAY))
        },
        Image {
            size_bytes: 16_000,
            ..image(2, &["app:c2"], Some(1), Some(30 * DAY))
        },
        Image {
            size_bytes: 16_000,
            ..image(3, &["app:c3"], Some(9), Some(29 * DAY))
        },
        Image {
            size_bytes: 16_000,
            shared_size_bytes: Some(12_000),
            ..image(4, &["app:c4"], Some(1), Some(28 * DAY))
        },
        image(5, &["app:new"], Some(1), Some(DAY)),
    ];
    let record = record(&[(1, 40 * DAY), (2, 30 * DAY), (3, 29 * DAY), (4, 28 * DAY)]);
    let plan = plan(&images, &record, &settings());
    let bytes: Vec<(&str, Option<u64>)> = plan
        .candidates
        .iter()
        .map(|c| (c.reference.as_str(), c.expected_bytes))
        .collect();
    assert_eq!(
        bytes,
        [
            // Parent listed: 16 kB less its 10 kB.
            ("app:c2", Some(6000)),
            // Parent not listed: unknown.
            ("app:c3", None),
            // The engine's SharedSize wins.
            ("app:c4", Some(4000)),
        ]
    );
    assert_eq!(
        kept_reason(&plan, "base:1"),
        Some(TagKeptReason::HasChildren)
    );
}
