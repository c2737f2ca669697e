//! Issue 10, the containerd image store, in the pure core: the disk gate over several
//! filesystems (open when any is at or above the threshold, each listed), `reclaimed_bytes`
//! summed over the filesystems, and the plan's age reference (the later of `Created` and
//! `LastTagTime`: never earlier than either, so never laxer than Docker's own `until`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use pruneguard::decision::Action;
use pruneguard::gates::{self, Evidence};
use pruneguard::model::{DiskObservation, DiskUsage, Image, ImageStore};
use pruneguard::plan::{self, KeptReason};
use pruneguard::report::{Report, ReportInput};

use crate::fixtures::{DAY, ago, disk, id, image, now, policy, snapshot};

fn at(path: &str, percent: u8) -> DiskUsage {
    DiskUsage {
        path: PathBuf::from(path),
        ..disk(percent, Some(5))
    }
}

fn other(path: &str, percent: Option<u8>) -> DiskObservation {
    DiskObservation {
        path: PathBuf::from(path),
        usage: percent.map_or_else(
            || Err(format!("statvfs({path}) failed: Permission denied")),
            |percent| Ok(at(path, percent)),
        ),
    }
}

/// (data root %, other filesystems, threshold, open, phrases of the detail)
type GateCase = (u8, Vec<DiskObservation>, u8, bool, &'static [&'static str]);

#[test]
fn the_disk_gate_opens_when_any_filesystem_is_full() {
    let table: [GateCase; 6] = [
        (
            50,
            vec![other("/var/lib/containerd", Some(91))],
            80,
            true,
            &[
                "/var/lib/docker (ext4) is 50 % full, /var/lib/containerd (ext4) is 91 % full; threshold 80 %: under pressure.",
            ],
        ),
        (
            85,
            vec![other("/var/lib/containerd", Some(10))],
            80,
            true,
            &["under pressure"],
        ),
        (
            79,
            vec![other("/var/lib/containerd", Some(79))],
            80,
            false,
            &[
                "79 % full, /var/lib/containerd (ext4) is 79 % full",
                "no pressure",
            ],
        ),
        (
            80,
            vec![other("/a", Some(1)), other("/b", Some(2))],
            80,
            true,
            &["/a (ext4) is 1 % full, /b (ext4) is 2 % full"],
        ),
        // Another filesystem that cannot be measured is named and cannot open the gate …
        (
            50,
            vec![other("/srv/ctr", None)],
            80,
            false,
            &["/srv/ctr could not be measured (statvfs(/srv/ctr) failed: Permission denied)"],
        ),
        // … nor keep a full one from opening it.
        (
            95,
            vec![other("/srv/ctr", None)],
            80,
            true,
            &["could not be measured", "under pressure"],
        ),
    ];
    for (root, others, threshold, open, phrases) in table {
        let mut snap = snapshot();
        snap.disk = Ok(at("/var/lib/docker", root));
        snap.more_disks = others.clone();
        let mut policy = policy();
        policy.disk.threshold_percent = threshold;
        let verdict = gates::disk_gate(&snap, &policy);
        assert_eq!(verdict.open, open, "{verdict:#?}");
        for phrase in phrases {
            assert!(
                verdict.detail.contains(phrase),
                "{phrase:?} in {}",
                verdict.detail
            );
        }
        let Evidence::Disk {
            usage, filesystems, ..
        } = &verdict.evidence
        else {
            panic!("disk evidence expected: {verdict:#?}");
        };
        assert_eq!(
            usage.path,
            PathBuf::from("/var/lib/docker"),
            "the first stays first"
        );
        let paths: Vec<PathBuf> = filesystems.iter().map(|fs| fs.path.clone()).collect();
        let mut expected = vec![PathBuf::from("/var/lib/docker")];
        expected.extend(others.iter().map(|other| other.path.clone()));
        assert_eq!(paths, expected, "every filesystem listed, in order");
        for (fs, observed) in filesystems[1..].iter().zip(&others) {
            assert_eq!(fs.error.is_some(), observed.usage.is_err());
            assert_eq!(
                fs.used_percent,
                observed.usage.as_ref().ok().map(|u| u.used_percent)
            );
        }
    }
}

#[test]
fn inode_pressure_on_another_filesystem_opens_the_gate() {
    let mut snap = snapshot();
    snap.disk = Ok(at("/var/lib/docker", 10));
    snap.more_disks = vec![DiskObservation {
        path: "/var/lib/containerd".into(),
        usage: Ok(DiskUsage {
            path: "/var/lib/containerd".into(),
            ..disk(10, Some(97))
        }),
    }];
    let mut policy = policy();
    policy.disk.inode_threshold_percent = Some(95);
    let verdict = gates::disk_gate(&snap, &policy);
    assert!(verdict.open, "{verdict:#?}");
    assert!(
        verdict.detail.contains("inodes 97 % used"),
        "{}",
        verdict.detail
    );
    assert!(verdict.detail.contains("inodes 95 %"), "{}", verdict.detail);
}

proptest! {
    /// Open exactly when some measured filesystem is at or above the threshold; every
    /// filesystem is listed once, with its Use%.
    #[test]
    fn open_iff_any_filesystem_is_at_or_above_the_threshold(
        root in 0_u8..=100,
        others in prop::collection::vec(prop::option::of(0_u8..=100), 0..4),
        threshold in 0_u8..=100,
    ) {
        let mut snap = snapshot();
        snap.disk = Ok(at("/var/lib/docker", root));
        snap.more_disks = others
            .iter()
            .enumerate()
            .map(|(n, percent)| other(&format!("/fs{n}"), *percent))
            .collect();
        let mut policy = policy();
        policy.disk.threshold_percent = threshold;
        let verdict = gates::disk_gate(&snap, &policy);
        let expected = root >= threshold || others.iter().flatten().any(|p| *p >= threshold);
        prop_assert_eq!(verdict.open, expected);
        let Evidence::Disk { filesystems, .. } = &verdict.evidence else {
            return Err(TestCaseError::fail("disk evidence expected"));
        };
        prop_assert_eq!(filesystems.len(), others.len() + 1);
        prop_assert_eq!(
            filesystems.iter().filter(|fs| fs.under_pressure).count(),
            usize::from(root >= threshold)
                + others.iter().flatten().filter(|p| **p >= threshold).count()
        );
    }
}

#[test]
fn reclaimed_bytes_sum_the_filesystems() {
    let used = |path: &str, bytes: u64| DiskUsage {
        used_bytes: bytes,
        ..at(path, 50)
    };
    let snap = snapshot();
    let verdicts = gates::evaluate(&snap, &policy(), now());
    let plan = plan::plan(&[], &[], Duration::ZERO, now());
    let report = Report::new(ReportInput {
        started_at: now(),
        dry_run: false,
        action: Action::decide(false, &verdicts, &plan),
        gates: verdicts,
        plan,
        execution: Some(pruneguard::execute::Execution::default()),
        disk: Some(used("/var/lib/docker", 1000)),
        disk_after: Some(used("/var/lib/docker", 900)),
        more_disks: vec![
            (
                used("/var/lib/containerd", 5000),
                Some(used("/var/lib/containerd", 2000)),
            ),
            // Grew meanwhile: counts 0, never negative.
            (used("/srv/x", 10), Some(used("/srv/x", 20))),
            // Not measured again: 0.
            (used("/srv/y", 10), None),
        ],
        image_store: Some(ImageStore::Containerd),
        wait: None,
        duration_ms: 1,
        min_age: "24h",
    });
    assert_eq!(report.reclaimed_bytes, 100 + 3000);
    let each: Vec<u64> = report
        .filesystems
        .iter()
        .map(|fs| fs.reclaimed_bytes)
        .collect();
    assert_eq!(each, [100, 3000, 0, 0]);
    let text = report.to_text(false);
    assert!(
        text.contains("Disk: /var/lib/docker now 50 % full, /var/lib/containerd now 50 % full"),
        "{text}"
    );
    let metrics = report.to_metrics(now());
    assert!(
        metrics.contains("pruneguard_disk_path_used_ratio{path=\"/var/lib/containerd\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\npruneguard_disk_used_ratio "),
        "the old name stays: {metrics}"
    );
}

fn tagged_at(image: Image, seconds_ago: Option<i64>) -> Image {
    Image {
        last_tag_time: seconds_ago.map(ago),
        ..image
    }
}

#[test]
fn age_counts_from_the_later_of_created_and_last_tag_time() {
    // (created seconds ago, last tag change seconds ago, candidate with min_age 24h)
    let table = [
        (3 * DAY, None, true),
        (3 * DAY, Some(2 * DAY), true),
        // Untagged (or loaded) an hour ago: Docker's own `until=24h` keeps it.
        (3 * DAY, Some(3600), false),
        (3 * DAY, Some(DAY - 1), false),
        (3 * DAY, Some(DAY), true),
        // A last tag change before the creation (a classic-store oddity) changes nothing.
        (2 * DAY, Some(5 * DAY), true),
        (3600, Some(5 * DAY), false),
        // In the future (clock skew): young.
        (3 * DAY, Some(-60), false),
    ];
    for (created, tagged, candidate) in table {
        let images = [tagged_at(image(1, &[], None, Some(created)), tagged)];
        let result = plan::plan(&images, &[], Duration::from_secs(86_400), now());
        assert_eq!(
            result.candidates.len() == 1,
            candidate,
            "created {created}s ago, tagged {tagged:?}: {result:#?}"
        );
        if !candidate {
            assert_eq!(result.kept_images[0].reason, KeptReason::TooYoung);
        } else if tagged.is_some_and(|tagged| tagged < created) {
            assert!(
                result.candidates[0].reason.contains("last tag change"),
                "{result:#?}"
            );
        }
    }
}

#[test]
fn a_young_child_by_last_tag_time_keeps_its_parent() {
    let images = [
        image(1, &[], None, Some(3 * DAY)),
        tagged_at(image(2, &[], Some(1), Some(3 * DAY)), Some(60)),
    ];
    let result = plan::plan(&images, &[], Duration::from_secs(86_400), now());
    assert!(result.candidates.is_empty(), "{result:#?}");
    let reason = |n| {
        result
            .kept_images
            .iter()
            .find(|kept| kept.id == id(n))
            .map(|kept| kept.reason)
    };
    assert_eq!(reason(1), Some(KeptReason::HasChildren));
    assert_eq!(reason(2), Some(KeptReason::TooYoung));
}

fn time(seconds_ago: i64) -> DateTime<Utc> {
    ago(seconds_ago)
}

proptest! {
    /// The age reference is never earlier than either time, and is one of them.
    #[test]
    fn the_age_reference_is_never_earlier_than_either(
        created in prop::option::of(-DAY..10 * DAY),
        tagged in prop::option::of(-DAY..10 * DAY),
    ) {
        let image = Image {
            created: created.map(time),
            last_tag_time: tagged.map(time),
            ..image(1, &[], None, None)
        };
        match (image.age_reference(), created) {
            (None, None) => {}
            (Some(reference), Some(created)) => {
                prop_assert!(reference >= time(created));
                if let Some(tagged) = tagged {
                    prop_assert!(reference >= time(tagged));
                }
                prop_assert!(reference == time(created) || Some(reference) == tagged.map(time));
            }
            (reference, created) => {
                return Err(TestCaseError::fail(format!("{reference:?} for created {created:?}")));
            }
        }
    }

    /// A last tag change only ever removes candidates: the plan with it is a subset of the
    /// plan without it.
    #[test]
    fn last_tag_times_only_remove_candidates(
        ages in prop::collection::vec((0..5 * DAY, prop::option::of(-DAY..5 * DAY)), 1..8),
        parents in prop::collection::vec(prop::option::of(0_u32..8), 8),
    ) {
        let images: Vec<Image> = ages
            .iter()
            .enumerate()
            .map(|(n, (created, _))| {
                let n = u32::try_from(n).unwrap();
                let parent = parents[n as usize].filter(|parent| *parent < n);
                image(n, &[], parent, Some(*created))
            })
            .collect();
        let with: Vec<Image> = images
            .iter()
            .zip(&ages)
            .map(|(image, (_, tagged))| tagged_at(image.clone(), *tagged))
            .collect();
        let min_age = Duration::from_secs(86_400);
        let before = plan::plan(&images, &[], min_age, now());
        let after = plan::plan(&with, &[], min_age, now());
        for candidate in &after.candidates {
            prop_assert!(before.candidates.iter().any(|c| c.id == candidate.id));
        }
    }
}
