//! `contrib/swarm/pruneguard.yml` as a global service on the rig: the static image of
//! `scripts/build-image.sh`, the contract file with the rig's overrides (each node's socket,
//! short settings, the manager over TLS by name), and its real `pruneguard watch` pruning old
//! unused images on every node once the swarm is converged.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    LONG_AGO, app_stack, assert_present, deploy, detail, image_id, image_ids, old_dangling,
    wait_running_everywhere, wait_until_explained, write_stack,
};
use crate::support::swarm::{Node, SwarmRig};
use crate::support::{expect_success, gate, repo_root};

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
