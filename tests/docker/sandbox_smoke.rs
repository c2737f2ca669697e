//! The test harness itself works: a private daemon starts, generated images load with the
//! expected IDs (dangling and tagged), containers can be created and really run, the daemon can
//! be stopped and started again, two sandboxes joined by a veth pair form a swarm, and a
//! sandbox's TLS listener answers only a client certificate its CA signed.
//! Needs root and Docker: run `scripts/test.sh` (as root), which installs what is missing.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use support::{ImageSpec, OPEN_GATES, Sandbox};

#[test]
fn sandbox_daemon_loads_generated_images_and_runs_containers() {
    let sb = Sandbox::start();
    assert!(sb.host().starts_with("unix:///"), "host: {}", sb.host());
    assert!(
        sb.socket().exists(),
        "no socket at {}",
        sb.socket().display()
    );
    assert_ne!(
        sb.socket().as_path(),
        std::path::Path::new("/var/run/docker.sock")
    );
    assert!(
        sb.docker_ok(["info", "--format", "{{.DockerRootDir}}"])
            .starts_with(&*sb.data_root().to_string_lossy()),
        "the daemon must use the sandbox's data root"
    );
    assert!(sb.image_ids().is_empty(), "a new sandbox has no images");

    // Three images under one tag, created long ago: the last keeps the tag, two are dangling.
    let ids =
        sb.load_images(&ImageSpec::tagged("smoke/app:old", 3).created("2020-01-02T03:04:05Z"));
    assert_eq!(ids.len(), 3);
    let all: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(all.len(), 3, "the images must have distinct IDs: {ids:?}");
    assert_eq!(sb.image_ids(), all);
    let dangling: BTreeSet<String> = ids[..2].iter().cloned().collect();
    assert_eq!(sb.dangling_ids(), dangling);
    assert_eq!(
        sb.image_id("smoke/app:old").as_deref(),
        Some(ids[2].as_str())
    );
    for id in &ids {
        assert_eq!(
            sb.docker_ok(["image", "inspect", "--format", "{{.Created}}", id]),
            "2020-01-02T03:04:05Z"
        );
    }

    // A container from a dangling image (created, never started) keeps that image in use.
    let container = sb.docker_ok(["create", &ids[0]]);
    assert!(sb.container_ids().contains(&container));
    assert_eq!(
        sb.docker_ok(["inspect", "--format", "{{.Image}}", &container]),
        ids[0]
    );

    // A busybox image runs for real, offline.
    let bb = sb.load_images(&ImageSpec::tagged("smoke/busybox:1", 1).busybox());
    assert_eq!(
        sb.docker_ok([
            "run",
            "--rm",
            "smoke/busybox:1",
            "/bin/sh",
            "-c",
            "echo ran"
        ]),
        "ran"
    );
    let running = sb.docker_ok(["run", "-d", &bb[0]]);
    assert_eq!(
        sb.docker_ok(["inspect", "--format", "{{.State.Running}}", &running]),
        "true"
    );

    // "Daemon is down", then up again with the same data.
    sb.stop_daemon();
    assert!(!sb.docker(["version"]).status.success());
    sb.start_daemon();
    assert_eq!(sb.image_ids().len(), 4);

    let dir = sb.dir().to_path_buf();
    sb.stop();
    assert!(!dir.exists(), "stop removes the sandbox dir");
}

#[test]
fn sandbox_pair_forms_a_swarm_whose_worker_refuses_services() {
    let (manager, worker) = Sandbox::pair();
    assert_eq!(manager.addr(), Some("10.213.0.1"));
    assert_eq!(worker.addr(), Some("10.213.0.2"));
    manager.docker_ok(["swarm", "init", "--advertise-addr", "10.213.0.1"]);
    let token = manager.docker_ok(["swarm", "join-token", "-q", "worker"]);
    worker.docker_ok(["swarm", "join", "--token", &token, "10.213.0.1:2377"]);
    assert_eq!(
        manager.docker_ok(["node", "ls", "-q"]).lines().count(),
        2,
        "manager sees both nodes"
    );
    // A worker answers GET /services with 503 (what pruneguard's swarm gate sees); the
    // manager with 200.
    let (status, body) = worker.api_get("/services");
    assert_eq!(status, 503, "worker GET /services: {body}");
    assert!(body.contains("not a swarm manager"), "body: {body}");
    assert_eq!(manager.api_get("/services").0, 200);
}

/// The rig's TLS listener (what pruneguard's TLS tests talk to) is mutual TLS as on a real
/// host: inside the sandbox's namespace the docker CLI gets an answer with the client
/// certificate, and none without one, with a client certificate of another CA, or when it
/// trusts another CA; the listener comes back with the daemon; and pruneguard runs inside the
/// namespace with the environment its command was given.
#[test]
fn sandbox_tls_listener_answers_only_a_client_certificate_of_its_ca() {
    let sb = Sandbox::start_with_tls();
    let certs = sb.tls_dir();
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        assert!(certs.join(file).is_file(), "{file} in {}", certs.display());
    }
    let other = sb.scratch().join("other-ca");
    support::tls_certs(&other, &[], &[]);
    // `docker --tlsverify` trusting `ca`'s ca.pem, with the client certificate of `client`.
    let version = |ca: &Path, client: Option<&Path>| -> Output {
        let mut cmd = support::in_netns(&sb.netns(), support::docker_cli());
        cmd.env("DOCKER_CONFIG", sb.scratch().join("docker-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .arg("--tlsverify")
            .arg("--tlscacert")
            .arg(ca.join("ca.pem"));
        if let Some(client) = client {
            cmd.arg("--tlscert")
                .arg(client.join("cert.pem"))
                .arg("--tlskey")
                .arg(client.join("key.pem"));
        }
        cmd.args([
            "-H",
            &sb.tls_url(),
            "version",
            "--format",
            "{{.Server.Version}}",
        ]);
        cmd.output()
            .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"))
    };
    let expected = sb.docker_ok(["version", "--format", "{{.Server.Version}}"]);
    let answered = |out: &Output| support::expect_success("docker --tlsverify version", out);
    assert_eq!(answered(&version(&certs, Some(&certs))), expected);
    for (what, ca, client) in [
        ("no client certificate", &certs, None),
        ("a client certificate of another CA", &certs, Some(&other)),
        ("a client that trusts another CA", &other, Some(&certs)),
    ] {
        let out = version(ca, client.map(|c| c.as_path()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: answered");
        // Refused by the handshake, not for want of a listener.
        assert!(
            stderr.contains("tls:") || stderr.contains("x509:"),
            "{what}: {stderr}"
        );
    }

    sb.stop_daemon();
    assert!(!version(&certs, Some(&certs)).status.success());
    sb.start_daemon();
    assert_eq!(answered(&version(&certs, Some(&certs))), expected);

    let plan = support::run(
        sb.pruneguard_in_netns()
            .arg("plan")
            .args(OPEN_GATES)
            .args(["--output", "json"]),
    );
    assert_eq!(plan.code, 0, "{}", plan.show());
    plan.json();
}

/// What forces a start to fail: a name, `start`'s extra arguments, the environment, and the
/// step the message must name.
type FailedStart = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// A start that fails says once which step failed (with the logs there are) and leaves nothing
/// behind: no network namespace, no mount, no process, no directory. Forced two ways: a data
/// root image too large to create (before any daemon), and a dockerd that exits at once (an
/// unknown storage driver).
#[test]
fn a_failed_start_names_its_step_once_and_leaves_nothing() {
    let cases: [FailedStart; 2] = [
        (
            "impossible data root",
            &["--data-root-size", "999999999999"],
            &[],
            "creating the 999999999999 MiB data root image",
        ),
        (
            "dockerd exits at once",
            &[],
            &[("PGSB_STORAGE_DRIVER", "no-such-driver")],
            "waiting for dockerd to answer",
        ),
    ];
    for (what, args, env, step) in cases {
        let tmp = tempfile::Builder::new()
            .prefix("pgfail.")
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().join("sb");
        let out = std::process::Command::new("bash")
            .arg(support::repo_root().join("scripts/sandbox.sh"))
            .arg("start")
            .arg(&dir)
            .args(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("bash runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(out.stdout.is_empty(), "{what}: no host on stdout");
        assert_eq!(
            stderr.matches("sandbox.sh: sandbox in").count(),
            1,
            "{what}: said once: {stderr}"
        );
        assert!(
            stderr.contains(&format!("while {step}")),
            "{what}: {stderr}"
        );
        if env.is_empty() {
            assert!(
                stderr.contains("no daemon had started yet"),
                "{what}: {stderr}"
            );
        } else {
            assert!(stderr.contains("dockerd.log"), "{what}: {stderr}");
            assert!(
                stderr.contains("no-such-driver"),
                "{what}: the log: {stderr}"
            );
        }
        let netns = stderr
            .split("network namespace ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("{what}: names its namespace: {stderr}"));
        assert!(
            !std::path::Path::new("/var/run/netns").join(netns).exists(),
            "{what}: the namespace {netns} is left"
        );
        let dir_text = dir.to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(!mounts.contains(&dir_text), "{what}: a mount is left");
        let left: Vec<String> = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(Result::ok)
            .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
            .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
            .filter(|cmdline| cmdline.contains(&dir_text))
            .collect();
        assert!(left.is_empty(), "{what}: processes are left: {left:?}");
        assert!(!dir.exists(), "{what}: {} is left", dir.display());
    }
}
