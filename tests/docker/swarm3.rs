//! On a real 3-node swarm (`support::swarm::SwarmRig`, `scripts/swarm.sh`), with pruneguard run
//! on every node's own socket:
//! - a `run-app-1` stack (`docker stack deploy`, 3 replicas, one per node, `dnsrr`, images from
//!   the throttled registry) prunes nothing on any node mid-pull, mid rolling update or while a
//!   crash loop is younger than `stuck_after` (old dangling images wait on every node, so
//!   "nothing pruned" means something); a worker mid-pull is judged from local evidence and,
//!   separately, from the manager's task list (`--swarm-manager-host`, asked over mutual TLS
//!   from the worker's namespace);
//! - after an update to release 2, `docker stack rm` and pruneguard runs on every node (the
//!   default `unused_for` basis), the redeploy of release 1 downloads 0 blobs on every node;
//! - a worker told to ask its manager gets an answer over mutual TLS with the right files, and
//!   closes the gate when the handshake fails (another CA, no client certificate) or the
//!   manager is gone;
//! - `contrib/swarm/pruneguard.yml` deploys the image of `scripts/build-image.sh` as a global
//!   service whose real `pruneguard watch` prunes old unused images on every node once the
//!   swarm is quiet and converged, and keeps the app's images; with the file's opt-in switched
//!   on, the workers ask the manager by name (`extra_hosts`) over TLS (secrets).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::swarm::{Node, SwarmRig};
use crate::support::{self, expect_success, gate, repo_root, run};

/// Images "built long ago": old enough by `--age-basis created` as soon as nothing uses them.
const LONG_AGO: Duration = Duration::from_secs(3 * 86_400);

fn wait_until(what: &str, timeout: Duration, check: impl FnMut() -> bool) {
    wait_until_explained(what, timeout, check, String::new);
}

/// [`wait_until`], with what `explain` says added to the message of a timeout.
fn wait_until_explained(
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
fn pruneguard_on(node: &Node, subcommand: &str, args: &[&str]) -> Value {
    report_of(node, node.pruneguard(), subcommand, args)
}

/// `pruneguard run` on `node` (see [`pruneguard_on`]).
fn run_on(node: &Node, args: &[&str]) -> Value {
    pruneguard_on(node, "run", args)
}

/// [`run_on`] inside `node`'s network namespace ([`Node::pruneguard_in_netns`]), where the
/// manager's TLS listener ([`SwarmRig::manager_tls_url`]) is reachable, as from a real node.
fn run_in_netns_on(node: &Node, args: &[&str]) -> Value {
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
fn manager_https_url(rig: &SwarmRig) -> String {
    let url = rig.manager_tls_url();
    let addr = url
        .strip_prefix("tcp://")
        .unwrap_or_else(|| panic!("the manager's TLS URL is not tcp://: {url}"));
    format!("https://{addr}")
}

fn detail(gate: &Value) -> &str {
    gate["detail"].as_str().unwrap_or_default()
}

/// Old dangling images on `node` (built 3 days ago), their IDs as the engine names them: each
/// is loaded from an archive of its own (the containerd store loads one image per archive
/// and names it by its manifest, not by the config digest testkit knows).
fn old_dangling(rig: &SwarmRig, node: &Node) -> Vec<String> {
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
fn image_ids(node: &Node) -> Vec<String> {
    node.docker_ok(["image", "ls", "-a", "-q", "--no-trunc"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn image_id(node: &Node, reference: &str) -> String {
    node.docker_ok(["image", "inspect", "--format", "{{.Id}}", reference])
}

/// Asserts that every image of `ids` is still on `node`, `when` saying at what point.
fn assert_present(node: &Node, ids: &[String], when: &str) {
    let present = image_ids(node);
    for id in ids {
        assert!(
            present.contains(id),
            "node {}: {id} must not be pruned {when}",
            node.n
        );
    }
}

/// `pruneguard run --age-basis created` on `node` while the swarm converges: the swarm gate
/// must be closed and nothing deleted (the old dangling images `kept` are still there).
fn assert_nothing_pruned(node: &Node, kept: &[String], when: &str, quiet: &str) -> Value {
    let report = run_on(node, &["--age-basis", "created", "--quiet-period", quiet]);
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["open"], false, "node {} {when}: {swarm:#}", node.n);
    assert_eq!(
        report["decision"], "skipped",
        "node {} {when}: {report:#}",
        node.n
    );
    assert_eq!(report["removed"], Value::Array(Vec::new()), "{report:#}");
    assert_present(node, kept, when);
    report
}

/// The manager's view of `node`'s current task of `service`: `IMAGE STATE`, e.g.
/// `10.214.0.254:5000/run-app/web:1 Preparing 3 seconds ago`.
fn task_on(rig: &SwarmRig, service: &str, node: &Node) -> String {
    let id = node.node_id();
    rig.manager()
        .docker_ok([
            "service",
            "ps",
            "--filter",
            &format!("node={id}"),
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Image}} {{.CurrentState}}",
            service,
        ])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The current state of `node`'s task of `service`, as the manager sees it (`Preparing …`).
fn task_state_on(rig: &SwarmRig, service: &str, node: &Node) -> String {
    task_on(rig, service, node)
        .split_once(' ')
        .map(|(_, state)| state.to_owned())
        .unwrap_or_default()
}

/// Waits until `service` runs a task on every node; a timeout shows every task's state and
/// error, as the manager lists them.
fn wait_running_everywhere(rig: &SwarmRig, service: &str, timeout: Duration) {
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

fn write_stack(rig: &SwarmRig, name: &str, text: &str) -> PathBuf {
    let path = rig.scratch().join(name);
    fs::write(&path, text).expect("write a stack file");
    path
}

/// A stack of one service `web` running `image`: 3 replicas, one per node, `dnsrr`, updated
/// one task at a time (stop first) with 5 s between two; its busybox `sleep` ignores SIGTERM,
/// so a task is killed after 1 s.
fn app_stack(rig: &SwarmRig, name: &str, image: &str) -> PathBuf {
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
fn deploy(rig: &SwarmRig, stack: &Path, name: &str) {
    rig.manager().docker_ok([
        "stack".as_ref(),
        "deploy".as_ref(),
        "-c".as_ref(),
        stack.as_os_str(),
        name.as_ref(),
    ]);
}

fn show_counts(counts: &BTreeMap<String, u64>) -> String {
    [
        "blob_gets",
        "blob_bytes",
        "manifest_gets",
        "manifest_heads",
        "requests",
    ]
    .iter()
    .map(|key| format!("{key}={}", counts.get(*key).copied().unwrap_or_default()))
    .collect::<Vec<_>>()
    .join(" ")
}

/// The `run-app-1` stack's service.
const SERVICE: &str = "run-app-1_web";

/// What the phases of the app-stack test share.
struct App<'rig> {
    rig: &'rig SwarmRig,
    web1: String,
    web2: String,
    /// Image IDs of release 1 and 2.
    release1: String,
    release2: String,
    /// Each node's old dangling images.
    dangling: Vec<Vec<String>>,
    started: Instant,
}

#[test]
fn app_stack_prunes_nothing_while_converging_and_redeploys_from_local_layers() {
    // 2 Mbit/s for all nodes together: the workers' 3 MB pulls of release 1 take some 25 s,
    // each 1.5 MB pull of release 2 some 6 s.
    let rig = SwarmRig::start("2mbit");
    let web1 = rig.publish_built("run-app/web:1", 3_000_000, LONG_AGO);
    let web2 = rig.publish_built("run-app/web:2", 1_500_000, LONG_AGO);
    let mut app = App {
        rig: &rig,
        release1: image_id(rig.manager(), &web1),
        release2: image_id(rig.manager(), &web2),
        web1,
        web2,
        dangling: rig
            .nodes
            .iter()
            .map(|node| old_dangling(&rig, node))
            .collect(),
        started: Instant::now(),
    };
    first_deploy_mid_pull(&mut app);
    rolling_update(&app);
    young_crash_loop(&app);
    teardown_and_redeploy(&app);
    eprintln!(
        "done after {:?}; registry in all: {}",
        app.started.elapsed(),
        rig.counts()
    );
}

/// Deploys release 1; nothing is pruned on any node while the workers pull it.
fn first_deploy_mid_pull(app: &mut App) {
    let rig = app.rig;
    let (manager, w2, w3) = (rig.manager(), rig.worker(2), rig.worker(3));
    let service = SERVICE;
    let before_deploy = rig.mark();
    deploy(rig, &app_stack(rig, "run-app-1", &app.web1), "run-app-1");

    // --- Mid-pull (first deploy). The manager has the image (it pushed it); the workers pull.
    wait_until(
        "both workers' tasks to be preparing (pulling)",
        Duration::from_secs(30),
        || {
            task_state_on(rig, service, w2).starts_with("Preparing")
                && task_state_on(rig, service, w3).starts_with("Preparing")
        },
    );
    let report = assert_nothing_pruned(manager, &app.dangling[0], "mid-pull", "0s");
    let swarm = gate(&report, "swarm");
    assert!(detail(swarm).contains(service), "{swarm:#}");
    assert_eq!(swarm["evidence"]["role"], "manager", "{swarm:#}");
    // Local evidence: the worker creates the task's networks (here the stack's overlay
    // network) before it pulls the image (swarmkit's prepare step).
    let mut report = Value::Null;
    wait_until(
        "the worker's evidence to name the stack's network",
        Duration::from_secs(15),
        || {
            report = run_on(w2, &["--age-basis", "created", "--quiet-period", "10m"]);
            detail(gate(&report, "swarm"))
                .contains("run-app-1_default is created (a task arriving on this node)")
        },
    );
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["open"], false, "{swarm:#}");
    assert_eq!(swarm["evidence"]["role"], "worker", "{swarm:#}");
    assert!(
        detail(swarm).contains("judged from local evidence"),
        "{swarm:#}"
    );
    assert_eq!(report["decision"], "skipped", "{report:#}");
    assert_nothing_pruned(w3, &app.dangling[2], "mid-pull", "10m");
    for worker in [w2, w3] {
        assert!(
            task_state_on(rig, service, worker).starts_with("Preparing"),
            "node {}: still pulling when judged",
            worker.n
        );
    }

    // Exact: the manager lists the worker's task as preparing (local evidence left out).
    let report = asked_over_tls(rig, w2);
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["open"], false, "{swarm:#}");
    assert!(detail(swarm).contains("task run-app-1_web."), "{swarm:#}");
    assert_eq!(report["decision"], "skipped", "{report:#}");
    for (node, kept) in rig.nodes.iter().zip(&app.dangling) {
        assert_present(node, kept, "mid-pull");
    }

    // Once it runs, the manager's answer opens the gate (and nothing else closes it): the
    // checks above could fail. New old dangling images replace the pruned ones.
    wait_running_everywhere(rig, service, Duration::from_secs(90));
    eprintln!("first deploy converged after {:?}", app.started.elapsed());
    let report = asked_over_tls(rig, w2);
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["open"], true, "{swarm:#}");
    assert!(
        detail(swarm).contains("every task assigned to this node runs"),
        "{swarm:#}"
    );
    assert_eq!(report["decision"], "pruned", "{report:#}");
    app.dangling[1] = old_dangling(rig, w2);
    for node in &rig.nodes {
        let counts = rig.node_counts(node.n, before_deploy);
        eprintln!("node {} first deploy: {}", node.n, show_counts(&counts));
        if node.n != 1 {
            assert!(
                counts["blob_gets"] > 0,
                "node {} pulled: {counts:?}",
                node.n
            );
        }
    }
}

/// `pruneguard run` on `worker` judged from its tasks as the manager lists them (local
/// evidence left out but for task containers being created), asked as an operator deploys it:
/// from the worker's own network namespace, over mutual TLS to the manager's `dockerd
/// --tlsverify` at `https://10.214.0.1:2376`, with Docker's certificate files. Asserts that the
/// manager answered; returns the report.
fn asked_over_tls(rig: &SwarmRig, worker: &Node) -> Value {
    let url = manager_https_url(rig);
    let certs = rig.manager_tls_dir();
    let report = run_in_netns_on(
        worker,
        &[
            "--age-basis",
            "created",
            "--quiet-period",
            "0s",
            "--swarm-worker-evidence",
            "created_tasks",
            "--swarm-manager-host",
            &url,
            "--swarm-manager-tls-cert-path",
            certs.to_str().expect("a UTF-8 temp dir"),
        ],
    );
    let swarm = gate(&report, "swarm");
    assert!(
        detail(swarm).contains(&format!("as the manager at {url} lists them")),
        "{swarm:#}"
    );
    assert!(
        !detail(swarm).contains("could not be asked"),
        "the manager answered: {swarm:#}"
    );
    assert_eq!(
        swarm["evidence"]["worker"]["manager_host"],
        url.as_str(),
        "{swarm:#}"
    );
    assert!(
        swarm["evidence"]["worker"]["manager_tasks"].as_u64() >= Some(1),
        "the manager listed the worker's task: {swarm:#}"
    );
    report
}

/// Updates to release 2; nothing is pruned on the manager nor on a worker whose task is
/// being replaced.
fn rolling_update(app: &App) {
    let rig = app.rig;
    let (manager, w2, w3) = (rig.manager(), rig.worker(2), rig.worker(3));
    let service = SERVICE;
    // --- Mid rolling update to release 2: the manager sees the update; each worker is
    // checked while its new task pulls (stop-first: its old task is being stopped or has exited).
    manager.docker_ok([
        "service", "update", "--detach", "--image", &app.web2, service,
    ]);
    let update_state = || {
        manager.docker_ok([
            "service",
            "inspect",
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
            service,
        ])
    };
    wait_until("the update to start", Duration::from_secs(10), || {
        update_state() == "updating"
    });
    let report = assert_nothing_pruned(manager, &app.dangling[0], "mid-update", "0s");
    assert!(
        detail(gate(&report, "swarm")).contains("is updating"),
        "{report:#}"
    );
    let mut checked = [false; 2];
    wait_until(
        "each worker's release-2 task to be preparing",
        Duration::from_secs(90),
        || {
            for (i, worker) in [w2, w3].into_iter().enumerate() {
                if checked[i] {
                    continue;
                }
                // The new task is prepared (pulled) while its desired state is still `ready`.
                let tasks = rig.manager().docker_ok([
                    "service",
                    "ps",
                    "--filter",
                    &format!("node={}", worker.node_id()),
                    "--format",
                    "{{.Image}} {{.CurrentState}}",
                    service,
                ]);
                if tasks
                    .lines()
                    .any(|task| task.contains("/run-app/web:2 Preparing "))
                {
                    assert_nothing_pruned(worker, &app.dangling[worker.n - 1], "mid-update", "10m");
                    checked[i] = true;
                }
            }
            checked == [true; 2]
        },
    );
    wait_until("the update to complete", Duration::from_secs(90), || {
        update_state() == "completed"
    });
    eprintln!("rolling update done after {:?}", app.started.elapsed());
}

/// A service crash-looping on every node, younger than `stuck_after`: nothing is pruned.
fn young_crash_loop(app: &App) {
    let rig = app.rig;
    let manager = rig.manager();
    // --- A crash loop younger than stuck_after (30m): closed on every node.
    let crash = "run-app-1_crash";
    manager.docker_ok([
        "service",
        "create",
        "--detach",
        "--name",
        crash,
        "--replicas",
        "3",
        "--replicas-max-per-node",
        "1",
        "--endpoint-mode",
        "dnsrr",
        "--restart-condition",
        "any",
        "--restart-delay",
        "1s",
        &app.web2,
        "/bin/busybox",
        "false",
    ]);
    // Dry runs until the loop shows (two attempts ended): they delete nothing. Any of them
    // that found the gate open is reported: before its second crash a service is not a loop
    // yet (D9), and a task waiting out its first restart delay (desired `ready`) does not count
    // as starting, so the manager's gate is open for those few seconds.
    wait_until(
        "the manager to see the crash loop",
        Duration::from_secs(45),
        || {
            let report = run_on(
                manager,
                &[
                    "--dry-run",
                    "--age-basis",
                    "created",
                    "--quiet-period",
                    "0s",
                ],
            );
            let swarm = gate(&report, "swarm");
            if swarm["open"] == true {
                let tasks = manager.docker_ok([
                    "service",
                    "ps",
                    "--no-trunc",
                    "--format",
                    "{{.Name}} {{.Node}} desired={{.DesiredState}} {{.CurrentState}} {{.Error}}",
                    crash,
                ]);
                eprintln!("before the loop showed, the manager's gate was open: {swarm}\n{tasks}");
            }
            detail(swarm).contains(&format!("service {crash} is crash-looping"))
        },
    );
    for (node, kept) in rig.nodes.iter().zip(&app.dangling) {
        assert_nothing_pruned(node, kept, "during a young crash loop", "10m");
    }
    // The same loop, judged with stuck_after 1s (from the record the runs above wrote): stuck,
    // it no longer holds the gate closed. A dry run: nothing is deleted.
    std::thread::sleep(Duration::from_secs(2));
    let report = run_on(
        manager,
        &[
            "--dry-run",
            "--age-basis",
            "created",
            "--quiet-period",
            "0s",
            "--swarm-stuck-after",
            "1s",
        ],
    );
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["open"], true, "{swarm:#}");
    assert!(detail(swarm).contains("stuck"), "{swarm:#}");
    manager.docker_ok(["service", "rm", crash]);
}

/// `docker stack rm`, pruneguard on every node, and the redeploy of release 1 from local
/// layers.
fn teardown_and_redeploy(app: &App) {
    let rig = app.rig;
    let manager = rig.manager();
    let service = SERVICE;
    // --- Teardown: release 1 is the previous spec, release 2 the current one; on the
    // workers both are untagged (pinned by digest) and unused once the stack is gone.
    manager.docker_ok(["stack", "rm", "run-app-1"]);
    for node in &rig.nodes {
        wait_until(
            &format!("node {}'s task containers to be removed", node.n),
            Duration::from_secs(60),
            || {
                node.docker_ok([
                    "ps",
                    "-aq",
                    "--filter",
                    "label=com.docker.swarm.service.name",
                ])
                .is_empty()
            },
        );
    }
    for (node, kept) in rig.nodes.iter().zip(&app.dangling) {
        // The default basis (unused_for, min_age 24h; the test harness sets `created`, so it is
        // named): the first run after the teardown observes, the second finds nothing old
        // enough.
        for _ in 0..2 {
            let report = run_on(node, &["--age-basis", "unused_for", "--quiet-period", "0s"]);
            assert_eq!(gate(&report, "swarm")["open"], true, "{report:#}");
            assert_eq!(report["removed"], Value::Array(Vec::new()), "{report:#}");
        }
        let both_releases = [app.release1.clone(), app.release2.clone()];
        assert_present(node, &both_releases, "after the teardown");
        assert_present(node, kept, "after the teardown");
        if node.n == 1 {
            continue;
        }
        let plan = pruneguard_on(
            node,
            "plan",
            &["--age-basis", "unused_for", "--quiet-period", "0s"],
        );
        let listed = plan["kept_images"].as_array().cloned().unwrap_or_default();
        // On the classic store a task's image is pinned by digest and has no tag once the
        // task is gone: dangling, kept by the grace period alone. The containerd store keeps
        // the name the task pulled (repo:tag beside the digest): tagged, never a candidate.
        let containerd = support::Engine::from_env().store == support::Store::Containerd;
        for id in &both_releases {
            let kept = listed
                .iter()
                .find(|image| image["id"] == id.as_str())
                .unwrap_or_else(|| panic!("node {}: {id} not in kept_images: {plan:#}", node.n));
            if containerd {
                assert_eq!(kept["reason"], "tagged", "{kept:#}");
            } else {
                assert_eq!(kept["reason"], "too_young", "{kept:#}");
                assert!(kept["unused_since"].is_string(), "observed: {kept:#}");
            }
        }
        if containerd {
            continue;
        }
        // What the issue saw: by Created, both releases would be deleted now.
        let by_created = pruneguard_on(
            node,
            "plan",
            &["--quiet-period", "0s", "--age-basis", "created"],
        );
        let candidates = by_created["candidates"].to_string();
        assert!(
            candidates.contains(&app.release1) && candidates.contains(&app.release2),
            "node {}: {by_created:#}",
            node.n
        );
    }

    // --- Redeploy release 1: every node has its layers, so no blob is downloaded.
    let before_redeploy = rig.mark();
    deploy(rig, &app_stack(rig, "run-app-1", &app.web1), "run-app-1");
    wait_running_everywhere(rig, service, Duration::from_secs(60));
    for node in &rig.nodes {
        let counts = rig.node_counts(node.n, before_redeploy);
        eprintln!("node {} redeploy: {}", node.n, show_counts(&counts));
        if node.n == 1 {
            // `docker stack deploy` resolves the tag to a digest through the manager's daemon
            // (`/distribution/…/json`), which reads the manifest and the image config (one
            // small blob, not a layer); the manager's task itself pulls nothing.
            assert!(
                counts["blob_gets"] <= 1 && counts["blob_bytes"] < 16_384,
                "node 1 downloaded more than the image config: {counts:?}"
            );
        } else {
            assert_eq!(counts["blob_gets"], 0, "node {}: {counts:?}", node.n);
        }
    }
}

/// `--swarm-manager-host URL --swarm-manager-tls-cert-path DIR`, quiet period 0s, run on
/// `worker` inside its namespace: the report.
fn ask_manager(worker: &Node, url: &str, cert_dir: &Path) -> Value {
    run_in_netns_on(
        worker,
        &[
            "--quiet-period",
            "0s",
            "--swarm-manager-host",
            url,
            "--swarm-manager-tls-cert-path",
            cert_dir.to_str().expect("a UTF-8 temp dir"),
        ],
    )
}

/// Asserts that the swarm gate of `report` is closed because the manager at `url` could not
/// be asked, its detail holding every one of `needles`, and that nothing was deleted.
fn assert_manager_not_asked(report: &Value, url: &str, needles: &[String]) {
    let swarm = gate(report, "swarm");
    assert_eq!(swarm["open"], false, "{swarm:#}");
    let expected = [
        format!(
            "the swarm manager at {url} (gates.swarm.manager_host) could not be asked for this \
             node's tasks"
        ),
        "unset gates.swarm.manager_host".to_string(),
        "unknown state counts as closed".to_string(),
    ];
    for needle in expected.iter().chain(needles) {
        assert!(
            detail(swarm).contains(needle.as_str()),
            "{needle}: {swarm:#}"
        );
    }
    assert_eq!(
        swarm["evidence"]["worker"]["manager_host"], url,
        "{swarm:#}"
    );
    assert_eq!(report["decision"], "skipped", "{report:#}");
    assert_eq!(report["removed"], Value::Array(Vec::new()), "{report:#}");
}

/// What a failed TLS handshake with the manager says: the handshake, what failed (`reason`),
/// the files of `cert_dir` to check and the setting that names them.
fn handshake_failure(url: &str, cert_dir: &Path, reason: &str) -> Vec<String> {
    let dir = cert_dir.display();
    vec![
        format!("the TLS handshake with the container engine at {url} failed: {reason}"),
        format!("check that {dir}/ca.pem is the CA that signed the daemon's certificate"),
        format!("{dir}/cert.pem and key.pem are a client certificate"),
        "gates.swarm.manager_tls_cert_path".to_string(),
        "--swarm-manager-tls-cert-path".to_string(),
    ]
}

/// A worker asks its manager over mutual TLS (`dockerd --tlsverify` on 10.214.0.1:2376, asked
/// from the worker's namespace): with the right files it gets an answer; with a CA that did
/// not sign the manager's certificate, or without a client certificate, the handshake fails
/// and the gate stays closed, naming the files; and once the manager is gone, the gate is
/// closed too (over TLS and on its unix socket).
#[test]
fn worker_asks_its_manager_over_tls_and_closes_when_it_cannot() {
    let rig = SwarmRig::start("off");
    let worker = rig.worker(3);
    let https = manager_https_url(&rig);
    let certs = rig.manager_tls_dir();
    let old = old_dangling(&rig, worker);

    // Certificates of another CA, made for the manager's names: the manager's certificate is
    // not one its ca.pem signed.
    let other_ca = rig.scratch().join("other-ca");
    support::tls_certs(&other_ca, &["10.214.0.1"], &["manager.pgsw.test"]);
    let report = ask_manager(worker, &https, &other_ca);
    assert_manager_not_asked(
        &report,
        &https,
        // The CA's name is the rig's too (scripts/tls-certs.sh), so rustls finds an issuer by
        // name whose signature does not match (BadSignature), or none (UnknownIssuer).
        &handshake_failure(&https, &other_ca, "invalid peer certificate: "),
    );
    assert_present(worker, &old, "when the manager could not be asked");

    // The right CA but no client certificate: dockerd --tlsverify refuses the client.
    let ca_only = rig.scratch().join("ca-only");
    fs::create_dir_all(&ca_only).expect("create the ca-only dir");
    fs::copy(certs.join("ca.pem"), ca_only.join("ca.pem")).expect("copy ca.pem");
    let report = ask_manager(worker, &https, &ca_only);
    assert_manager_not_asked(
        &report,
        &https,
        &handshake_failure(&https, &ca_only, "received fatal alert: "),
    );
    assert_present(worker, &old, "when the manager could not be asked");

    // The right files: the manager answers, over `https://` and over `tcp://` with the cert
    // path, which is TLS too (the report names it as spoken, `https://`, as the docker CLI
    // upgrades a tcp:// host with DOCKER_TLS_VERIFY). The swarm runs no service, so nothing is
    // assigned to this node.
    for url in [rig.manager_tls_url(), https.clone()] {
        let report = ask_manager(worker, &url, &certs);
        let swarm = gate(&report, "swarm");
        assert_eq!(swarm["open"], true, "{url}: {swarm:#}");
        for needle in [
            format!("as the manager at {https} lists them"),
            "every task assigned to this node runs".to_string(),
        ] {
            assert!(
                detail(swarm).contains(&needle),
                "{url}: {needle}: {swarm:#}"
            );
        }
        assert_eq!(
            swarm["evidence"]["worker"]["manager_host"],
            https.as_str(),
            "{url}: {swarm:#}"
        );
        assert_eq!(
            swarm["evidence"]["worker"]["manager_tasks"], 0,
            "{url}: {swarm:#}"
        );
    }
    // Only the manager's answers kept the old images: now they go.
    let present = image_ids(worker);
    assert!(
        old.iter().all(|id| !present.contains(id)),
        "pruned once the manager answered: {present:?}"
    );

    // The manager is gone: over TLS (from the namespace) and on its unix socket.
    let unix = rig.manager().host.clone();
    rig.stop_daemon(1);
    let report = ask_manager(worker, &https, &certs);
    assert_manager_not_asked(&report, &https, &[]);
    let report = run_on(
        worker,
        &["--quiet-period", "0s", "--swarm-manager-host", &unix],
    );
    assert_manager_not_asked(&report, &unix, &[]);
}

/// The static image: `PRUNEGUARD_IMAGE_ARCHIVE` when set (an archive of
/// `scripts/build-image.sh`), else built by `scripts/build-image.sh --profile image-test` (the
/// release build without LTO, see Cargo.toml) into the target directory, where cargo's own
/// fingerprints make a second build of an unchanged tree a no-op.
fn image_archive() -> PathBuf {
    if let Some(path) = std::env::var_os("PRUNEGUARD_IMAGE_ARCHIVE").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    let out = target.join("image/pruneguard-image-test.tar");
    let started = Instant::now();
    let built = Command::new("bash")
        .arg(repo_root().join("scripts/build-image.sh"))
        .args([
            "--profile",
            "image-test",
            "--tag",
            "pruneguard:test",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run scripts/build-image.sh");
    expect_success("scripts/build-image.sh --profile image-test", &built);
    eprintln!("scripts/build-image.sh took {:?}", started.elapsed());
    out
}

/// Short settings for the rig, through the stack's environment.
const WATCH_ENV: &str = "      PRUNEGUARD_WATCH_INTERVAL: 2s\n      PRUNEGUARD_MIN_AGE: 1s\n      PRUNEGUARD_QUIET_PERIOD: 3s\n      PRUNEGUARD_DISK_THRESHOLD: \"0\"\n      PRUNEGUARD_DISK_PATH: /var/lib/pruneguard\n";

/// The manager's name in its TLS certificate, as the rig's stack file asks for it (resolved
/// through `extra_hosts`).
const MANAGER_BY_NAME: &str = "https://manager.pgsw.test:2376";

/// A copy of `contrib/swarm/pruneguard.yml` for the rig: the loaded image `tag`, each node's
/// own socket directory through `by_node` (a swarm mount template), the interval left to
/// the environment, and [`WATCH_ENV`]; and the file's commented opt-in of the manager over TLS
/// switched on: [`MANAGER_BY_NAME`] (its address in `extra_hosts`), the certificate files
/// `certs` (`ca.pem`, `cert.pem`, `key.pem`) as secrets from files, in `/run/secrets`.
fn rig_stack_file(rig: &SwarmRig, tag: &str, by_node: &Path, certs: &Path) -> PathBuf {
    let contract = fs::read_to_string(repo_root().join("contrib/swarm/pruneguard.yml"))
        .expect("read contrib/swarm/pruneguard.yml");
    // Docker 20.10's CLI appends an override file's command to the base one, so the copy is
    // edited in place: each replaced text must be there, or the contract file changed.
    let mut text = contract.clone();
    let manager_addr = rig
        .manager_tls_url()
        .trim_start_matches("tcp://")
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let secret = |file: &str| certs.join(file).display().to_string();
    let replacements: [(String, String); 10] = [
        ("image: pruneguard:0.1.0".into(), format!("image: {tag}")),
        (
            lines(&["      - watch", "      - --interval", "      - 1h"]),
            lines(&["      - watch"]),
        ),
        (
            lines(&["      PRUNEGUARD_STATE_DIR: /var/lib/pruneguard"]),
            lines(&["      PRUNEGUARD_STATE_DIR: /var/lib/pruneguard"]) + WATCH_ENV,
        ),
        (
            "DOCKER_HOST: unix:///var/run/docker.sock".into(),
            "DOCKER_HOST: unix:///var/run/docker.sock/docker.sock".into(),
        ),
        (
            "source: /var/run/docker.sock".into(),
            format!("source: {}/{{{{.Node.ID}}}}", by_node.display()),
        ),
        // The manager over TLS: the commented lines, live, with the rig's name and address
        // and the secrets from files.
        (
            lines(&["      # PRUNEGUARD_SWARM_MANAGER_HOST: https://manager.lan:2376"]),
            lines(&[&format!(
                "      PRUNEGUARD_SWARM_MANAGER_HOST: {MANAGER_BY_NAME}"
            )]),
        ),
        (
            lines(&["      # PRUNEGUARD_SWARM_MANAGER_TLS_CERT_PATH: /run/secrets"]),
            lines(&["      PRUNEGUARD_SWARM_MANAGER_TLS_CERT_PATH: /run/secrets"]),
        ),
        (
            lines(&[
                "    # secrets:",
                "    #   - { source: pruneguard_manager_ca, target: ca.pem }",
                "    #   - { source: pruneguard_manager_cert, target: cert.pem }",
                "    #   - { source: pruneguard_manager_key, target: key.pem, mode: 0400 }",
            ]),
            lines(&[
                "    secrets:",
                "      - { source: pruneguard_manager_ca, target: ca.pem }",
                "      - { source: pruneguard_manager_cert, target: cert.pem }",
                "      - { source: pruneguard_manager_key, target: key.pem, mode: 0400 }",
            ]),
        ),
        (
            lines(&[
                "    # extra_hosts:                  # when the name is in no DNS the nodes use",
                "    #   - \"manager.lan:10.0.0.1\"",
            ]),
            lines(&[
                "    extra_hosts:",
                &format!("      - \"manager.pgsw.test:{manager_addr}\""),
            ]),
        ),
        (
            lines(&[
                "# secrets:",
                "#   pruneguard_manager_ca: { external: true }",
                "#   pruneguard_manager_cert: { external: true }",
                "#   pruneguard_manager_key: { external: true }",
            ]),
            lines(&[
                "secrets:",
                &format!("  pruneguard_manager_ca: {{ file: {} }}", secret("ca.pem")),
                &format!(
                    "  pruneguard_manager_cert: {{ file: {} }}",
                    secret("cert.pem")
                ),
                &format!(
                    "  pruneguard_manager_key: {{ file: {} }}",
                    secret("key.pem")
                ),
            ]),
        ),
    ];
    for (from, to) in replacements {
        assert!(
            text.contains(&from),
            "contrib/swarm/pruneguard.yml has no {from:?}"
        );
        text = text.replacen(&from, &to, 1);
    }
    write_stack(rig, "pruneguard.yml", &text)
}

/// `lines`, each ended by a newline.
fn lines(lines: &[&str]) -> String {
    lines.iter().flat_map(|line| [*line, "\n"]).collect()
}

/// The last report (`last-run.json`) of the stack's watch on `node`, from its `state` volume
/// (on the node's data root), if there is one yet.
fn last_run(node: &Node) -> Option<Value> {
    let volume = node.docker_ok([
        "volume",
        "inspect",
        "pruneguard_state",
        "--format",
        "{{.Mountpoint}}",
    ]);
    let text = fs::read_to_string(Path::new(&volume).join("last-run.json")).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|err| {
        panic!(
            "node {}: last-run.json is no JSON report ({err}): {text}",
            node.n
        )
    }))
}

/// The stack's watch on the worker `node` asked the manager by name over TLS, from its task
/// (its overlay network, out through the node's `docker_gwbridge`): its last report's swarm gate
/// is open on the manager's answer. A manager that cannot be asked closes the gate, so the
/// worker's prune already needed an answer; the report says whose.
fn assert_asked_manager_by_name(node: &Node) {
    let started = Instant::now();
    let report = loop {
        let last = last_run(node);
        if let Some(report) = last.filter(|report| gate(report, "swarm")["open"] == true) {
            break report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "node {}: no last report with an open swarm gate: {:#}",
            node.n,
            last_run(node).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let swarm = gate(&report, "swarm");
    assert_eq!(
        swarm["evidence"]["worker"]["manager_host"], MANAGER_BY_NAME,
        "node {}: {swarm:#}",
        node.n
    );
    for needle in [
        format!("as the manager at {MANAGER_BY_NAME} lists them"),
        "every task assigned to this node runs".to_string(),
    ] {
        assert!(
            detail(swarm).contains(&needle),
            "node {}: {needle}: {swarm:#}",
            node.n
        );
    }
    assert!(
        swarm["evidence"]["worker"]["manager_tasks"].as_u64() >= Some(2),
        "node {}: the manager listed the app's and pruneguard's tasks: {swarm:#}",
        node.n
    );
}

fn task_logs(node: &Node, service: &str) -> String {
    let ids = node.docker_ok([
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ]);
    let Some(id) = ids.lines().next() else {
        return String::new();
    };
    let logs = node.docker(["logs", id]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    )
}

#[test]
fn stack_file_watch_prunes_old_unused_images_on_every_node_once_converged() {
    let archive = image_archive();
    let rig = SwarmRig::start("off");
    let mut tag = String::new();
    for node in &rig.nodes {
        let loaded = node.docker_ok(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
        tag = loaded
            .lines()
            .find_map(|line| line.strip_prefix("Loaded image: "))
            .unwrap_or_else(|| panic!("docker load printed {loaded:?}"))
            .to_owned();
    }
    // An app built long ago and running on every node (untagged, pinned by digest, on the
    // workers), and old dangling images beside it.
    let web = rig.publish_built("run-app/web:1", 500_000, LONG_AGO);
    let app = image_id(rig.manager(), &web);
    deploy(&rig, &app_stack(&rig, "run-app-2", &web), "run-app-2");
    let dangling: Vec<Vec<String>> = rig
        .nodes
        .iter()
        .map(|node| old_dangling(&rig, node))
        .collect();
    wait_running_everywhere(&rig, "run-app-2_web", Duration::from_secs(60));
    let pruneguard = image_id(rig.manager(), &tag);

    // The contract file as it is, with an override: the image loaded here; the node's socket
    // (the rig's nodes share one file system, so each node's socket directory is reached by
    // its node ID, a swarm mount template, in the directory every node's daemon sees); and
    // short settings in the environment.
    let by_node = rig.shared_dir().join("by-node");
    fs::create_dir_all(&by_node).expect("create the by-node dir");
    for node in &rig.nodes {
        let socket_dir = PathBuf::from(node.host.trim_start_matches("unix://"))
            .parent()
            .expect("a socket path has a parent")
            .to_path_buf();
        std::os::unix::fs::symlink(&socket_dir, by_node.join(node.node_id()))
            .expect("link a node's socket dir");
    }
    let stack = rig_stack_file(&rig, &tag, &by_node, &rig.manager_tls_dir());
    let started = Instant::now();
    rig.manager().docker_ok([
        "stack".as_ref(),
        "deploy".as_ref(),
        "--resolve-image".as_ref(),
        "never".as_ref(),
        "-c".as_ref(),
        stack.as_os_str(),
        "pruneguard".as_ref(),
    ]);
    let service = "pruneguard_pruneguard";
    let mode = rig.manager().docker_ok([
        "service",
        "inspect",
        "--format",
        "{{if .Spec.Mode.Global}}global{{end}} {{.Spec.EndpointSpec.Mode}}",
        service,
    ]);
    assert_eq!(mode, "global dnsrr");
    wait_running_everywhere(&rig, service, Duration::from_secs(60));
    // Each task watches its own node's daemon through the bind-mounted socket: the old
    // dangling images go on every node, once the swarm is converged and quiet.
    for (node, old) in rig.nodes.iter().zip(&dangling) {
        wait_until_explained(
            &format!(
                "the watch on node {} to prune its old dangling images",
                node.n
            ),
            Duration::from_secs(60),
            || {
                let present = image_ids(node);
                old.iter().all(|id| !present.contains(id))
            },
            || {
                let swarm = last_run(node).map(|report| gate(&report, "swarm").clone());
                format!("; its last swarm gate: {:#}", swarm.unwrap_or_default())
            },
        );
        let logs = task_logs(node, service);
        assert!(logs.contains("watching"), "node {}: {logs}", node.n);
        assert!(
            logs.contains("decision=\"pruned\""),
            "node {}: {logs}",
            node.n
        );
        assert!(
            !logs.contains("cannot reach the"),
            "node {}: {logs}",
            node.n
        );
        assert_present(node, &[app.clone(), pruneguard.clone()], "by the watch");
        if node.n != 1 {
            assert_asked_manager_by_name(node);
        }
    }
    eprintln!("every node pruned {:?} after the deploy", started.elapsed());
}
