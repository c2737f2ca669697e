//! On a real 3-node swarm (`support::swarm::SwarmRig`, `scripts/swarm.sh`): a worker whose task
//! is mid-pull from the throttled registry has its swarm gate closed, from local evidence and,
//! separately, from the manager's task list (`--swarm-manager-host`); a worker whose manager is
//! gone closes the gate when it was told to ask it; and `contrib/swarm/pruneguard.yml` deploys
//! as a global service whose task runs on every node from the image of `scripts/build-image.sh`.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::swarm::{Node, SwarmRig};
use crate::support::{expect_success, gate, repo_root, run};

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `pruneguard run --output json` on `node`, disk gate open, with `args`; the report.
fn run_on(node: &Node, args: &[&str]) -> Value {
    let result = run(node
        .pruneguard()
        .args([
            "run",
            "--no-config",
            "--disk-threshold",
            "0",
            "--output",
            "json",
        ])
        .args(args));
    assert_eq!(result.code, 0, "pruneguard run {args:?}: {}", result.show());
    result.json().clone()
}

fn detail(gate: &Value) -> &str {
    gate["detail"].as_str().unwrap_or_default()
}

/// Old dangling images on `node` (3 days old), their IDs.
fn old_dangling(rig: &SwarmRig, node: &Node) -> Vec<String> {
    let archive = rig.scratch().join(format!("old-{}.tar", node.n));
    let ids = testkit::ImageSet::new()
        .no_tag()
        .count(2)
        .age(Duration::from_secs(3 * 86_400))
        .write(&archive)
        .expect("generate old dangling images");
    node.load(&archive);
    ids
}

/// The current state of `node`'s task of `service`, as the manager sees it (`Preparing …`).
fn task_state_on(rig: &SwarmRig, service: &str, node: &Node) -> String {
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
            "{{.CurrentState}}",
            service,
        ])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn write_stack(rig: &SwarmRig, name: &str, text: &str) -> PathBuf {
    let path = rig.scratch().join(name);
    fs::write(&path, text).expect("write a stack file");
    path
}

#[test]
fn worker_mid_pull_closes_the_swarm_gate_locally_and_by_the_manager() {
    // 2 Mbit/s: a 5 MB layer takes some 20 s to pull.
    let rig = SwarmRig::start("2mbit");
    let image = rig.publish("run-app/web:1", 5_000_000);
    let worker = rig.worker(2);
    let dangling = old_dangling(&rig, worker);
    let stack = write_stack(
        &rig,
        "run-app-1.yml",
        &format!(
            "version: \"3.8\"\nservices:\n  web:\n    image: {image}\n    deploy:\n      replicas: 3\n      endpoint_mode: dnsrr\n      placement:\n        max_replicas_per_node: 1\n"
        ),
    );
    rig.manager().docker_ok([
        "stack".as_ref(),
        "deploy".as_ref(),
        "--resolve-image".as_ref(),
        "never".as_ref(),
        "-c".as_ref(),
        stack.as_os_str(),
        "run-app-1".as_ref(),
    ]);
    wait_until(
        "the worker's task to be preparing (pulling)",
        Duration::from_secs(30),
        || task_state_on(&rig, "run-app-1_web", worker).starts_with("Preparing"),
    );
    // Local evidence: the worker creates the task's networks (here the stack's overlay
    // network) before it pulls the image (swarmkit's prepare step).
    let mut report = Value::Null;
    wait_until(
        "the worker's evidence to name the stack's network",
        Duration::from_secs(15),
        || {
            report = run_on(worker, &["--quiet-period", "10m"]);
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
    assert!(
        task_state_on(&rig, "run-app-1_web", worker).starts_with("Preparing"),
        "still pulling when judged"
    );
    assert_eq!(report["decision"], "skipped", "{report:#}");

    // Exact: the manager lists the worker's task as preparing (local evidence left out).
    let report = run_on(
        worker,
        &[
            "--quiet-period",
            "0s",
            "--swarm-worker-evidence",
            "created_tasks",
            "--swarm-manager-host",
            rig.manager().host.as_str(),
        ],
    );
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["open"], false, "{swarm:#}");
    assert!(
        detail(swarm).contains(&format!(
            "as the manager at {} lists them",
            rig.manager().host
        )),
        "{swarm:#}"
    );
    assert!(detail(swarm).contains("task run-app-1_web."), "{swarm:#}");
    assert_eq!(
        swarm["evidence"]["worker"]["manager_host"],
        rig.manager().host.as_str()
    );
    for id in &dangling {
        assert!(
            worker.dangling().contains(id),
            "{id} must not be pruned mid-pull"
        );
    }

    // Once it runs, the manager's answer opens the gate (and nothing else closes it).
    wait_until("the worker's task to run", Duration::from_secs(90), || {
        task_state_on(&rig, "run-app-1_web", worker).starts_with("Running")
    });
    let report = run_on(
        worker,
        &[
            "--quiet-period",
            "0s",
            "--swarm-worker-evidence",
            "created_tasks",
            "--swarm-manager-host",
            rig.manager().host.as_str(),
        ],
    );
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["open"], true, "{swarm:#}");
    assert!(
        detail(swarm).contains("every task assigned to this node runs"),
        "{swarm:#}"
    );
    assert_eq!(report["decision"], "pruned", "{report:#}");
    eprintln!("registry: {}", rig.counts());
}

#[test]
fn worker_whose_manager_is_gone_closes_the_gate_when_told_to_ask_it() {
    let rig = SwarmRig::start("off");
    let worker = rig.worker(3);
    let manager_host = rig.manager().host.clone();
    rig.stop_daemon(1);
    let report = run_on(
        worker,
        &[
            "--quiet-period",
            "0s",
            "--swarm-manager-host",
            &manager_host,
        ],
    );
    let swarm = gate(&report, "swarm");
    assert_eq!(swarm["open"], false, "{swarm:#}");
    for needle in [
        format!("the swarm manager at {manager_host} (gates.swarm.manager_host)"),
        "unset gates.swarm.manager_host".to_string(),
        "unknown state counts as closed".to_string(),
    ] {
        assert!(detail(swarm).contains(&needle), "{needle}: {swarm:#}");
    }
    assert_eq!(report["decision"], "skipped", "{report:#}");
}

/// The static image: `PRUNEGUARD_IMAGE_ARCHIVE` when set (an archive of
/// `scripts/build-image.sh`), else built now by `scripts/build-image.sh` (a release build).
fn image_archive(rig: &SwarmRig) -> PathBuf {
    if let Some(path) = std::env::var_os("PRUNEGUARD_IMAGE_ARCHIVE").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let out = rig.scratch().join("pruneguard-image.tar");
    let built = Command::new("bash")
        .arg(repo_root().join("scripts/build-image.sh"))
        .args(["--tag", "pruneguard:test", "--out"])
        .arg(&out)
        .output()
        .expect("run scripts/build-image.sh");
    expect_success("scripts/build-image.sh", &built);
    out
}

/// A copy of `contrib/swarm/pruneguard.yml` for the rig: the loaded image `tag`, each node's
/// own socket directory through `by_node` (a swarm mount template), and a command that runs.
fn rig_stack_file(rig: &SwarmRig, tag: &str, by_node: &std::path::Path) -> PathBuf {
    let contract = fs::read_to_string(repo_root().join("contrib/swarm/pruneguard.yml"))
        .expect("read contrib/swarm/pruneguard.yml");
    // Docker 20.10's CLI appends an override file's command to the base one, so the copy is
    // edited in place: each replaced text must be there, or the contract file changed.
    let command = "      - watch\n      - --interval\n      - 1h\n";
    let run = "      - run\n      - --no-config\n      - --disk-threshold\n      - \"0\"\n      - --workload-lock-file\n      - /pruneguard\n      - --wait-for-gates\n      - 1h\n      - --wait-interval\n      - 5s\n";
    let mut text = contract.clone();
    for (from, to) in [
        ("image: pruneguard:0.1.0", format!("image: {tag}")),
        (command, run.to_string()),
        (
            "DOCKER_HOST: unix:///var/run/docker.sock",
            "DOCKER_HOST: unix:///var/run/docker.sock/docker.sock".to_string(),
        ),
        (
            "source: /var/run/docker.sock",
            format!("source: {}/{{{{.Node.ID}}}}", by_node.display()),
        ),
    ] {
        assert!(
            text.contains(from),
            "contrib/swarm/pruneguard.yml has no {from:?}"
        );
        text = text.replacen(from, &to, 1);
    }
    write_stack(rig, "pruneguard.yml", &text)
}

#[test]
fn stack_file_runs_a_global_service_on_every_node() {
    let rig = SwarmRig::start("off");
    let archive = image_archive(&rig);
    let mut tag = String::new();
    for node in &rig.nodes {
        let loaded = node.docker_ok(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
        tag = loaded
            .lines()
            .find_map(|line| line.strip_prefix("Loaded image: "))
            .unwrap_or_else(|| panic!("docker load printed {loaded:?}"))
            .to_owned();
    }
    // The contract file as it is, with an override: the image loaded here; the node's socket
    // (the rig's nodes share one file system, so each node's socket directory is reached by
    // its node ID, a swarm mount template); and, until `watch` exists on this branch, a command
    // that keeps running against that socket: a run waiting for a workload gate that the
    // binary itself, as a lock file, keeps closed.
    let by_node = rig.scratch().join("by-node");
    fs::create_dir_all(&by_node).expect("create the by-node dir");
    for node in &rig.nodes {
        let socket_dir = PathBuf::from(node.host.trim_start_matches("unix://"))
            .parent()
            .expect("a socket path has a parent")
            .to_path_buf();
        std::os::unix::fs::symlink(&socket_dir, by_node.join(node.node_id()))
            .expect("link a node's socket dir");
    }
    let stack = rig_stack_file(&rig, &tag, &by_node);
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
    wait_until(
        "a running task on every node",
        Duration::from_secs(60),
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
    );
    // Each task talks to its own node's daemon through the bind-mounted socket.
    for node in &rig.nodes {
        let ids = node.docker_ok([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ]);
        let id = ids
            .lines()
            .next()
            .unwrap_or_else(|| panic!("no task container on node {}", node.n));
        let mut text = String::new();
        wait_until(
            "the task's first gate check",
            Duration::from_secs(20),
            || {
                let logs = node.docker(["logs", id]);
                text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
                text.contains("waiting for gates") || text.contains("error")
            },
        );
        assert!(
            text.contains("waiting for gates") && !text.contains("cannot reach the Docker daemon"),
            "node {}: {text}",
            node.n
        );
    }
}
