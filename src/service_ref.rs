//! Pure: which images a swarm service can still name (issue 11). On a manager, every image
//! referenced by a service's current or previous spec is kept (`service_ref`): the previous
//! spec is the release a rollback returns to, and a teardown and redeploy of a stack names the
//! same digests again.
//!
//! A reference is matched, conservatively (anything it may mean is kept):
//! - `name:tag@sha256:d` and `name@sha256:d`: every image whose `RepoDigests` holds digest `d`
//!   (under any repository name: the same digest is the same content), and for the first form
//!   also the image tagged `name:tag`;
//! - `name:tag` and `name` (`:latest`): the image carrying that tag;
//! - an image ID (`sha256:…`, with or without the prefix) or an ID prefix: that image.

// Pure: no clock, filesystem, environment or process (clippy.toml lists what is denied).
#![deny(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Image, Service};
use crate::plan::resolve_image_ref;

/// Image ID → the names of the services whose current or previous spec names it (sorted).
pub type ServiceRefs = BTreeMap<String, BTreeSet<String>>;

/// Every image the services' specs reference, with the services that reference it.
pub fn referenced(services: &[Service], images: &[Image]) -> ServiceRefs {
    let mut refs = ServiceRefs::new();
    for service in services {
        let name = if service.name.is_empty() {
            service.id.clone()
        } else {
            service.name.clone()
        };
        for reference in [&service.image, &service.previous_image]
            .into_iter()
            .flatten()
        {
            for id in images_named_by(reference, images) {
                refs.entry(id).or_default().insert(name.clone());
            }
        }
    }
    refs
}

/// The IDs of every image `reference` may mean (see the module's documentation).
pub fn images_named_by(reference: &str, images: &[Image]) -> BTreeSet<String> {
    let reference = reference.trim();
    let mut ids = BTreeSet::new();
    if reference.is_empty() {
        return ids;
    }
    match reference.rsplit_once('@') {
        Some((name, digest)) => {
            let digest = digest.to_ascii_lowercase();
            ids.extend(
                images
                    .iter()
                    .filter(|image| {
                        image.repo_digests.iter().any(|repo_digest| {
                            repo_digest
                                .rsplit_once('@')
                                .is_some_and(|(_, have)| have.eq_ignore_ascii_case(&digest))
                        })
                    })
                    .map(|image| image.id.clone()),
            );
            // `name:tag@…`: the tag too (it may have moved on; keeping it costs nothing, as a
            // tagged image is never a candidate anyway).
            let has_tag = name
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'));
            if has_tag {
                ids.extend(resolve_image_ref(name, images));
            }
        }
        None => ids.extend(resolve_image_ref(reference, images)),
    }
    ids
}
