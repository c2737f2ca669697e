//! On a real 3-node swarm (`support::swarm::SwarmRig`, `scripts/swarm.sh`), with pruneguard run
//! on every node's own socket:
//! - `app_stack`: a `run-app-1` stack (`docker stack deploy`, 3 replicas, one per node,
//!   `dnsrr`, images from the throttled registry) prunes nothing on any node mid-pull, mid
//!   rolling update or while a crash loop is younger than `stuck_after` (old dangling images
//!   wait on every node, so "nothing pruned" means something); a worker mid-pull is judged from
//!   local evidence and, separately, from the manager's task list (`--swarm-manager-host`,
//!   asked over mutual TLS from the worker's namespace); after an update to release 2,
//!   `docker stack rm` and pruneguard runs on every node (the default `unused_for` basis), the
//!   redeploy of release 1 downloads 0 blobs on every node;
//! - `manager_tls`: a worker told to ask its manager gets an answer over mutual TLS with the
//!   right files, and closes the gate when the handshake fails (another CA, no client
//!   certificate) or the manager is gone;
//! - `stack_file`: `contrib/swarm/pruneguard.yml` deploys the image of
//!   `scripts/build-image.sh` as a global service whose real `pruneguard watch` prunes old
//!   unused images on every node once the swarm is quiet and converged, and keeps the app's
//!   images; with the file's opt-in switched on, the workers ask the manager by name
//!   (`extra_hosts`) over TLS (secrets).
//!
//! This file holds what they share: running pruneguard on a node (or from its network
//! namespace), waiting (for a running task on every node too), old dangling images, and the
//! app stack `app_stack` and `stack_file` deploy.

mod app_stack;
mod manager_tls;
mod stack_file;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::swarm::{Node, SwarmRig};
use crate::support::{self, run};

/// Images "built long ago": old enough by `--age-basis created` as soon as nothing uses them.
pub(super) const LONG_AGO: Duration = Duration::from_secs(3 * 86_400);

pub(super) fn wait_until(what: &str, timeout: Duration, check: impl FnMut() -> bool) {
    wait_until_explained(what, timeout, check, String::new);
}

/// [`wait_until`], with what `explain` says added to the message of a timeout.
pub(super) fn wait_until_explained(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
    explain: impl Fn() -> String,
) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}{}",
            explain()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `pruneguard SUBCOMMAND --output json` on `node`, disk gate open, with `args`; the report.
pub(super) fn pruneguard_on(node: &Node, subcommand: &str, args: &[&str]) -> Value {
    report_of(node, node.pruneguard(), subcommand, args)
}

/// `pruneguard run` on `node` (see [`pruneguard_on`]).
pub(super) fn run_on(node: &Node, args: &[&str]) -> Value {
    pruneguard_on(node, "run", args)
}

/// [`run_on`] inside `node`'s network namespace ([`Node::pruneguard_in_netns`]), where the
/// manager's TLS listener ([`SwarmRig::manager_tls_url`]) is reachable, as from a real node.
pub(super) fn run_in_netns_on(node: &Node, args: &[&str]) -> Value {
    report_of(node, node.pruneguard_in_netns(), "run", args)
}

/// `command` (pruneguard aimed at `node`) run as `SUBCOMMAND --output json`, disk gate open,
/// with `args`: it must exit 0 with a report, which is returned.
fn report_of(node: &Node, mut command: Command, subcommand: &str, args: &[&str]) -> Value {
    command.args([
        subcommand,
        "--no-config",
        "--disk-threshold",
        "0",
        "--output",
        "json",
    ]);
    // Runs measured from `created` (the test binary's default basis) test the gates with
    // images built long ago. On the containerd store age counts from the later of `Created`
    // and the last tag change (decisions D11), and a load or a pull is one: such images are
    // young there, so these runs take `--min-age 0s` on that store.
    let from_created = !args
        .windows(2)
        .any(|pair| pair == ["--age-basis", "unused_for"]);
    if from_created
        && !args.contains(&"--min-age")
        && support::Engine::from_env().store == support::Store::Containerd
    {
        command.args(["--min-age", "0s"]);
    }
    let result = run(command.args(args));
    assert_eq!(
        result.code,
        0,
        "pruneguard {subcommand} {args:?} on node {}: {}",
        node.n,
        result.show()
    );
    result.json().clone()
}

/// The manager's TLS listener as an operator writes it: `https://10.214.0.1:2376` (the rig's
/// `tcp://` URL with the scheme that requires TLS).
pub(super) fn manager_https_url(rig: &SwarmRig) -> String {
    let url = rig.manager_tls_url();
    let addr = url
        .strip_prefix("tcp://")
        .unwrap_or_else(|| panic!("the manager's TLS URL is not tcp://: {url}"));
    format!("https://{addr}")
}

pub(super) fn detail(gate: &Value) -> &str {
    gate["detail"].as_str().unwrap_or_default()
}

/// Old dangling images on `node` (built 3 days ago), their IDs as the engine names them: each
/// is loaded from an archive of its own (the containerd store loads one image per archive
/// and names it by its manifest, not by the config digest testkit knows).
pub(super) fn old_dangling(rig: &SwarmRig, node: &Node) -> Vec<String> {
    let written = testkit::ImageSet::new()
        .no_tag()
        .count(2)
        .age(LONG_AGO)
        .write_per_image(|i| rig.scratch().join(format!("old-{}-{i}.tar", node.n)))
        .expect("generate old dangling images");
    written
        .iter()
        .map(|one| {
            // `docker load` names an untagged image by its ID, as the engine names it (a
            // diff of the image list would race with a task's pull).
            let loaded = node.docker_ok(["load".as_ref(), "-i".as_ref(), one.path.as_os_str()]);
            let ids: Vec<&str> = loaded
                .lines()
                .filter_map(|line| line.strip_prefix("Loaded image ID: "))
                .collect();
            assert_eq!(
                ids.len(),
                1,
                "node {}: loading {} printed {loaded:?}",
                node.n,
                one.id
            );
            ids[0].to_owned()
        })
        .collect()
}

/// Every image ID on `node`.
pub(super) fn image_ids(node: &Node) -> Vec<String> {
    node.docker_ok(["image", "ls", "-a", "-q", "--no-trunc"])
        .lines()
        .map(str::to_owned)
        .collect()
}

pub(super) fn image_id(node: &Node, reference: &str) -> String {
    node.docker_ok(["image", "inspect", "--format", "{{.Id}}", reference])
}

/// Asserts that every image of `ids` is still on `node`, `when` saying at what point.
pub(super) fn assert_present(node: &Node, ids: &[String], when: &str) {
    let present = image_ids(node);
    for id in ids {
        assert!(
            present.contains(id),
            "node {}: {id} must not be pruned {when}",
            node.n
        );
    }
}

/// Waits until `service` runs a task on every node; a timeout shows every task's state and
/// error, as the manager lists them.
pub(super) fn wait_running_everywhere(rig: &SwarmRig, service: &str, timeout: Duration) {
    wait_until_explained(
        &format!("a running task of {service} on every node"),
        timeout,
        || {
            let states = rig.manager().docker_ok([
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Node}} {{.CurrentState}}",
                service,
            ]);
            states
                .lines()
                .filter(|line| line.contains(" Running "))
                .count()
                == 3
        },
        || {
            let tasks = rig.manager().docker([
                "service",
                "ps",
                "--no-trunc",
                "--format",
                "{{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}",
                service,
            ]);
            format!(
                "; the manager lists:\n{}{}",
                String::from_utf8_lossy(&tasks.stdout),
                String::from_utf8_lossy(&tasks.stderr)
            )
        },
    );
}

pub(super) fn write_stack(rig: &SwarmRig, name: &str, text: &str) -> PathBuf {
    let path = rig.scratch().join(name);
    fs::write(&path, text).expect("write a stack file");
    path
}

/// A stack of one service `web` running `image`: 3 replicas, one per node, `dnsrr`, updated
/// one task at a time (stop first) with 5 s between two; its busybox `sleep` ignores SIGTERM,
/// so a task is killed after 1 s.
pub(super) fn app_stack(rig: &SwarmRig, name: &str, image: &str) -> PathBuf {
    write_stack(
        rig,
        &format!("{name}.yml"),
        &format!(
            "version: \"3.8\"\nservices:\n  web:\n    image: {image}\n    deploy:\n      replicas: 3\n      endpoint_mode: dnsrr\n      placement:\n        max_replicas_per_node: 1\n      update_config:\n        parallelism: 1\n        delay: 5s\n        order: stop-first\n    stop_grace_period: 1s\n"
        ),
    )
}

/// `docker stack deploy -c STACK NAME` on the manager. Images are resolved to digests as
/// the CLI does by default (the manager's daemon asks the registry), so workers pull and keep
/// them by digest, untagged.
pub(super) fn deploy(rig: &SwarmRig, stack: &Path, name: &str) {
    rig.manager().docker_ok([
        "stack".as_ref(),
        "deploy".as_ref(),
        "-c".as_ref(),
        stack.as_os_str(),
        name.as_ref(),
    ]);
}
