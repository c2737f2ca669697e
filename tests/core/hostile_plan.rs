//! The planner on hostile or odd daemon data: malformed, bare, upper-case and path-changing
//! IDs, duplicates, broken parent links, containers whose image reference is empty, short, a
//! name or unknown. Property: nothing is planned that such data could show to be tagged, in
//! use, malformed or duplicated; when a container's image matches nothing, nothing at all.

use std::collections::HashSet;

use proptest::prelude::*;

use pruneguard::model::{Container, Image, is_image_id};
use pruneguard::plan::{self as planner, KeptReason};

use crate::fixtures::{DAY, ago, container, id, now};

const MIN_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How an ID (of image `n`) may come from a daemon.
#[derive(Debug, Clone, Copy)]
enum IdForm {
    Proper(u32),
    /// 64 hex digits without `sha256:` (Podman).
    Bare(u32),
    Upper(u32),
    /// Would change a request path if it were put into one.
    Traversal,
    Empty,
}

impl IdForm {
    fn text(self) -> String {
        match self {
            Self::Proper(n) => id(n),
            Self::Bare(n) => id(n)["sha256:".len()..].to_string(),
            Self::Upper(n) => format!("sha256:{}", id(n)["sha256:".len()..].to_uppercase()),
            Self::Traversal => "sha256:x/../../../containers/0123456789ab".to_string(),
            Self::Empty => String::new(),
        }
    }
}

/// How a container may name its image.
#[derive(Debug, Clone)]
enum ImageRef {
    Id(IdForm),
    /// The first 12 hex digits of image `n`'s ID.
    Short(u32),
    Name(&'static str),
}

impl ImageRef {
    fn text(&self) -> String {
        match self {
            Self::Id(form) => form.text(),
            Self::Short(n) => id(*n)["sha256:".len().."sha256:".len() + 12].to_string(),
            Self::Name(name) => (*name).to_string(),
        }
    }

    /// The images (well-formed IDs among `images`) this reference could mean, as an operator
    /// would read it; empty means it resolves to nothing.
    fn could_mean(&self, images: &[Image]) -> Vec<String> {
        // An ID prefix matches listed IDs whatever their case.
        let listed = |wanted: &str| images.iter().any(|image| image.id.to_lowercase() == wanted);
        let tagged = |tag: &str| {
            images
                .iter()
                .any(|image| image.repo_tags.iter().any(|t| t == tag))
        };
        match self {
            // A full ID in any form names that image, listed or not.
            Self::Id(IdForm::Proper(n) | IdForm::Bare(n) | IdForm::Upper(n)) => vec![id(*n)],
            Self::Id(IdForm::Traversal | IdForm::Empty) => Vec::new(),
            Self::Short(n) => {
                if listed(&id(*n)) {
                    images
                        .iter()
                        .filter(|image| image.id.to_lowercase() == id(*n))
                        .map(|image| image.id.clone())
                        .collect()
                } else {
                    Vec::new()
                }
            }
            Self::Name(name) => {
                let tag = match *name {
                    "app:1" | "docker.io/library/app:1" | "library/app:1" => "app:1",
                    "base" | "base:latest" => "base:latest",
                    _ => return Vec::new(),
                };
                if tagged(tag) {
                    images
                        .iter()
                        .filter(|image| image.repo_tags.iter().any(|t| t == tag))
                        .map(|image| image.id.clone())
                        .collect()
                } else {
                    Vec::new()
                }
            }
        }
    }
}

fn id_form() -> impl Strategy<Value = IdForm> {
    prop_oneof![
        8 => (1_u32..6).prop_map(IdForm::Proper),
        1 => (1_u32..6).prop_map(IdForm::Bare),
        1 => (1_u32..6).prop_map(IdForm::Upper),
        1 => Just(IdForm::Traversal),
        1 => Just(IdForm::Empty),
    ]
}

fn image_strategy() -> impl Strategy<Value = Image> {
    (
        id_form(),
        prop::sample::subsequence(vec!["app:1", "base:latest"], 0..=2),
        prop::option::weighted(0.4, id_form()),
        prop_oneof![
            Just(None),
            Just(Some(-3600)),
            Just(Some(DAY - 1)),
            Just(Some(DAY)),
            Just(Some(3 * DAY)),
        ],
    )
        .prop_map(|(form, tags, parent, age)| Image {
            id: form.text(),
            repo_tags: tags.into_iter().map(str::to_string).collect(),
            parent_id: parent.map(IdForm::text),
            created: age.map(ago),
            size_bytes: 1000,
            repo_digests: Vec::new(),
            last_tag_time: None,
            shared_size_bytes: None,
        })
}

fn ref_strategy() -> impl Strategy<Value = ImageRef> {
    prop_oneof![
        4 => id_form().prop_map(ImageRef::Id),
        1 => (1_u32..6).prop_map(ImageRef::Short),
        2 => prop::sample::select(vec![
            "app:1",
            "docker.io/library/app:1",
            "library/app:1",
            "base",
            "nothing:here",
            "app",
        ])
        .prop_map(ImageRef::Name),
    ]
}

fn containers_of(refs: &[ImageRef]) -> Vec<Container> {
    refs.iter()
        .enumerate()
        .map(|(n, reference)| Container {
            image_id: reference.text(),
            ..container(&format!("c{n}"), 1, "exited", &[])
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn nothing_doubtful_is_ever_planned(
        images in prop::collection::vec(image_strategy(), 0..8),
        refs in prop::collection::vec(ref_strategy(), 0..4),
    ) {
        let containers = containers_of(&refs);
        let plan = planner::plan(&images, &containers, MIN_AGE, now());
        let unresolved = refs.iter().any(|reference| reference.could_mean(&images).is_empty());
        if unresolved {
            prop_assert!(plan.candidates.is_empty(), "a container's image matches nothing: {plan:#?}");
            prop_assert!(!plan.unresolved_containers.is_empty());
        }
        let in_use: HashSet<String> = refs.iter().flat_map(|r| r.could_mean(&images)).collect();
        let candidates: HashSet<&str> = plan.candidates.iter().map(|c| c.id.as_str()).collect();
        for candidate in &plan.candidates {
            let id = candidate.id.as_str();
            prop_assert!(is_image_id(id), "malformed candidate {id:?}");
            let copies: Vec<&Image> = images.iter().filter(|image| image.id == id).collect();
            prop_assert_eq!(copies.len(), 1, "{} is listed {} times", id, copies.len());
            let image = copies[0];
            prop_assert!(image.repo_tags.is_empty(), "tagged candidate {id}");
            prop_assert!(!in_use.contains(id), "in-use candidate {id}");
            let created = image.created.expect("a candidate's age is known");
            prop_assert!(created <= now() && now() - created >= chrono::Duration::days(1));
            if let Some(parent) = &image.parent_id {
                prop_assert!(is_image_id(parent), "candidate {id} with a malformed parent");
                prop_assert!(images.iter().any(|other| &other.id == parent), "unknown parent");
            }
            for child in images.iter().filter(|other| other.parent_id.as_deref() == Some(id)) {
                prop_assert!(candidates.contains(child.id.as_str()), "{id} has a child that stays");
            }
        }
        // Every listed ID is accounted for exactly once, as a candidate or as kept.
        let distinct: HashSet<&str> = images.iter().map(|image| image.id.as_str()).collect();
        prop_assert_eq!(plan.candidates.len() + plan.kept_images.len(), distinct.len());
    }
}

/// The cases the property covers, spelled out, each with the reason the report gives.
#[test]
fn each_kind_of_odd_data_is_kept_for_its_own_reason() {
    let old = Some(ago(3 * DAY));
    let odd = |id: String, tags: &[&str], parent: Option<String>| Image {
        id,
        repo_tags: tags.iter().map(ToString::to_string).collect(),
        parent_id: parent,
        created: old,
        size_bytes: 1,
        repo_digests: Vec::new(),
        last_tag_time: None,
        shared_size_bytes: None,
    };
    let images = vec![
        odd(IdForm::Traversal.text(), &[], None),
        odd(IdForm::Upper(2).text(), &[], None),
        odd(id(3), &[], None),
        odd(id(3), &["app:1"], None),
        odd(id(4), &[], None),
        odd(id(4), &[], None),
        odd(id(5), &[], Some(id(99))),
        odd(id(6), &[], Some(IdForm::Traversal.text())),
    ];
    let plan = planner::plan(&images, &[], MIN_AGE, now());
    assert!(plan.candidates.is_empty(), "{plan:#?}");
    let reason = |wanted: &str| {
        plan.kept_images
            .iter()
            .find(|kept| kept.id == wanted)
            .map(|kept| kept.reason)
    };
    assert_eq!(
        reason(&IdForm::Traversal.text()),
        Some(KeptReason::MalformedId)
    );
    assert_eq!(
        reason(&IdForm::Upper(2).text()),
        Some(KeptReason::MalformedId)
    );
    assert_eq!(reason(&id(3)), Some(KeptReason::Tagged));
    assert_eq!(reason(&id(4)), Some(KeptReason::Duplicated));
    assert_eq!(reason(&id(5)), Some(KeptReason::UnknownParent));
    assert_eq!(reason(&id(6)), Some(KeptReason::UnknownParent));
    assert_eq!(plan.kept.duplicated, 1, "a duplicate is counted once");

    // Containers naming their image oddly still protect it; one naming nothing stops all.
    let images = vec![
        odd(id(1), &[], None),
        odd(id(2), &[], None),
        odd(id(3), &["app:1"], None),
        odd(id(4), &[], None),
    ];
    let refs = [
        ImageRef::Id(IdForm::Upper(1)),
        ImageRef::Short(2),
        ImageRef::Name("docker.io/library/app:1"),
    ];
    let plan = planner::plan(&images, &containers_of(&refs), MIN_AGE, now());
    assert_eq!(candidate_list(&plan), vec![id(4)]);
    let refs = [ImageRef::Name("nothing:here")];
    let plan = planner::plan(&images, &containers_of(&refs), MIN_AGE, now());
    assert!(plan.candidates.is_empty());
    assert_eq!(plan.unresolved_containers.len(), 1);
    assert_eq!(plan.unresolved_containers[0].image, "nothing:here");
    assert_eq!(
        plan.kept.unresolved_container, 3,
        "every otherwise eligible image"
    );
}

fn candidate_list(plan: &planner::Plan) -> Vec<String> {
    plan.candidates.iter().map(|c| c.id.clone()).collect()
}
