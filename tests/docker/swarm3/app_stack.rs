//! The `run-app-1` stack, phase by phase (see the parent module): nothing is pruned on any
//! node mid-pull (judged from local evidence and from the manager's task list over TLS), mid
//! rolling update or during a young crash loop; after `docker stack rm` both releases survive
//! pruneguard's runs and the redeploy of release 1 downloads no blob.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    LONG_AGO, app_stack, assert_present, deploy, detail, image_id, manager_https_url, old_dangling,
    pruneguard_on, run_in_netns_on, run_on, wait_running_everywhere, wait_until,
};
use crate::support::swarm::{Node, SwarmRig};
use crate::support::{self, gate};

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
