//! pruneguard against a private dockerd that serves mutual TLS like `dockerd --tlsverify`
//! (`Sandbox::start_with_tls`: 127.0.0.1:2376 inside the sandbox's namespace, certificates of
//! its own CA), run inside that namespace:
//! - a run over `https://` with `--tls-cert-path` removes exactly the old unused dangling
//!   images, as it does over the socket; the docker CLI's environment (`tcp://`,
//!   `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`) works as it is;
//! - a CA that did not sign the daemon's certificate, a missing client certificate, a client
//!   certificate of another CA, a name the certificate does not carry, a plain-HTTP request to
//!   the TLS port and an unreadable certificate directory each stop the run (exit 1) before
//!   anything is deleted, with a message that says what to fix;
//! - `doctor` says the same in its `daemon` check.

use crate::support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use support::{ImageSpec, OPEN_GATES, Run, Sandbox, gate, ids, run};

/// The TLS listener's URL as pruneguard writes it (`https://127.0.0.1:2376`).
fn https_url(sb: &Sandbox) -> String {
    sb.tls_url().replacen("tcp://", "https://", 1)
}

/// `pruneguard ARGS… --output json` inside the sandbox's namespace, with gates open and
/// `DOCKER_HOST` unset (the host comes from `args` or `env`).
fn in_netns(sb: &Sandbox, args: &[&str], env: &[(&str, &Path)]) -> Run {
    let mut command = sb.pruneguard_in_netns();
    command.env_remove("DOCKER_HOST").args(args);
    if args.first() != Some(&"doctor") {
        command.args(OPEN_GATES);
    }
    command.args(["--output", "json"]);
    for (name, value) in env {
        command.env(name, value);
    }
    run(&mut command)
}

/// A directory holding copies of `files` of `from`.
fn cert_dir(sb: &Sandbox, name: &str, from: &Path, files: &[&str]) -> PathBuf {
    let dir = sb.scratch().join(name);
    fs::create_dir_all(&dir).unwrap();
    for file in files {
        fs::copy(from.join(file), dir.join(file)).unwrap();
    }
    dir
}

/// Old dangling images (3 days), and the tagged image they left: what a run may and may not
/// delete.
fn load_fixture(sb: &Sandbox) -> (BTreeSet<String>, String) {
    let ids = sb.load_images(&ImageSpec::tagged("tls/app:1", 3).age_days(3));
    (ids[..2].iter().cloned().collect(), ids[2].clone())
}

#[test]
fn a_run_over_tls_removes_what_a_run_over_the_socket_would() {
    let sb = Sandbox::start_with_tls();
    let (old, tagged) = load_fixture(&sb);
    let certs = sb.tls_dir();
    let url = https_url(&sb);

    // A plan first: the same candidates as over the socket.
    let over_socket = support::json_run(&sb, "plan", &[]);
    let plan = in_netns(
        &sb,
        &[
            "plan",
            "-H",
            &url,
            "--tls-cert-path",
            certs.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(plan.code, 0, "{}", plan.show());
    assert_eq!(
        ids(plan.json(), "candidates"),
        ids(&over_socket.report, "candidates"),
        "{}",
        plan.show()
    );

    // The docker CLI's environment, as it is: tcp:// with DOCKER_TLS_VERIFY and
    // DOCKER_CERT_PATH. The run deletes over TLS.
    let tcp = sb.tls_url();
    let result = in_netns(
        &sb,
        &["run"],
        &[
            ("DOCKER_HOST", Path::new(&tcp)),
            ("DOCKER_TLS_VERIFY", Path::new("1")),
            ("DOCKER_CERT_PATH", &certs),
        ],
    );
    assert_eq!(result.code, 0, "{}", result.show());
    let report = result.json();
    assert_eq!(report["decision"], "pruned", "{report:#}");
    assert_eq!(ids(report, "removed"), old, "{report:#}");
    let left = sb.image_ids();
    assert!(left.contains(&tagged), "the tagged image stays");
    assert!(old.iter().all(|id| !left.contains(id)), "{left:?}");
    assert_eq!(gate(report, "disk")["open"], true, "{report:#}");
}

/// Every way the TLS can be wrong stops the run before anything is deleted, with the fix.
#[test]
fn a_tls_connection_that_cannot_be_verified_deletes_nothing_and_says_what_to_fix() {
    let sb = Sandbox::start_with_tls();
    let (old, _) = load_fixture(&sb);
    let certs = sb.tls_dir();
    let url = https_url(&sb);
    let other = sb.scratch().join("other-ca");
    support::tls_certs(&other, &[], &[]);
    let wrong_ca = cert_dir(&sb, "wrong-ca", &other, &["ca.pem"]);
    // Trusts the right CA, with another CA's client certificate.
    let foreign_client = cert_dir(&sb, "foreign-client", &other, &["cert.pem", "key.pem"]);
    fs::copy(certs.join("ca.pem"), foreign_client.join("ca.pem")).unwrap();
    let no_client = cert_dir(&sb, "no-client", &certs, &["ca.pem"]);
    let half_client = cert_dir(&sb, "half-client", &certs, &["ca.pem", "cert.pem"]);
    let empty = cert_dir(&sb, "empty", &certs, &[]);

    let dir = |path: &Path| path.to_str().unwrap().to_owned();
    // (what, host, cert dir, what stderr must say)
    let cases: Vec<(&str, String, PathBuf, Vec<String>)> = vec![
        (
            "a CA that did not sign the daemon's certificate",
            url.clone(),
            wrong_ca.clone(),
            vec![
                "the TLS handshake with".into(),
                format!("at {url} failed"),
                "invalid peer certificate".into(),
                format!("{}/ca.pem", dir(&wrong_ca)),
            ],
        ),
        (
            "no client certificate",
            url.clone(),
            no_client.clone(),
            vec![
                format!("the TLS handshake with the container engine at {url} failed"),
                format!("{}/cert.pem and key.pem", dir(&no_client)),
            ],
        ),
        (
            "a client certificate of another CA",
            url.clone(),
            foreign_client.clone(),
            vec![format!(
                "the TLS handshake with the container engine at {url} failed"
            )],
        ),
        (
            // The same listener by another name: the certificate names 127.0.0.1 and
            // localhost, not the IPv4-mapped IPv6 address.
            "a name the daemon's certificate does not carry",
            url.replace("127.0.0.1", "[::ffff:127.0.0.1]"),
            certs.clone(),
            vec![
                "the TLS handshake with".into(),
                "certificate not valid for name".into(),
            ],
        ),
        (
            "a client certificate without its key",
            url.clone(),
            half_client.clone(),
            vec![
                format!("cannot speak TLS to {url}"),
                "cert.pem is there but".into(),
                "engine.tls_cert_path (--tls-cert-path, DOCKER_CERT_PATH)".into(),
            ],
        ),
        (
            "a directory without ca.pem",
            url.clone(),
            empty.clone(),
            vec![
                format!(
                    "cannot speak TLS to {url}: cannot read {}/ca.pem",
                    dir(&empty)
                ),
                "engine.tls_cert_path".into(),
            ],
        ),
    ];
    for (what, host, certs, needles) in cases {
        let result = in_netns(
            &sb,
            &["run", "-H", &host, "--tls-cert-path", &dir(&certs)],
            &[],
        );
        assert_eq!(result.code, 1, "{what}: {}", result.show());
        for needle in needles {
            assert!(
                result.stderr.contains(&needle),
                "{what}: expected {needle:?} in\n{}",
                result.show()
            );
        }
        assert!(
            old.iter().all(|id| sb.image_ids().contains(id)),
            "{what}: nothing may be deleted"
        );
    }
}

/// Plain HTTP to the TLS port, and an https:// host with no certificate directory.
#[test]
fn plain_http_to_a_tls_port_and_a_tls_host_without_files_delete_nothing() {
    let sb = Sandbox::start_with_tls();
    let (old, _) = load_fixture(&sb);
    let url = https_url(&sb);
    // Plain HTTP to the TLS port: refused by the daemon, nothing deleted.
    let plain = in_netns(&sb, &["run", "-H", &sb.tls_url()], &[]);
    assert_eq!(plain.code, 1, "{}", plain.show());
    for needle in [
        "tcp://127.0.0.1:2376 serves TLS: write it as https://",
        "engine.tls_cert_path for the engine",
        "gates.swarm.manager_tls_cert_path for a swarm manager",
    ] {
        assert!(plain.stderr.contains(needle), "{needle}: {}", plain.show());
    }
    assert!(old.iter().all(|id| sb.image_ids().contains(id)));

    // An https:// host without a certificate directory is a configuration error (exit 2).
    let unconfigured = in_netns(&sb, &["run", "-H", &url], &[]);
    assert_eq!(unconfigured.code, 2, "{}", unconfigured.show());
    assert!(
        unconfigured.stderr.contains("set engine.tls_cert_path"),
        "{}",
        unconfigured.show()
    );
}

#[test]
fn doctor_checks_the_daemon_over_tls_and_names_the_tls_fix() {
    let sb = Sandbox::start_with_tls();
    let certs = sb.tls_dir();
    let url = https_url(&sb);
    let state = sb.state_dir();
    let state = state.to_str().unwrap();
    let daemon = |report: &serde_json::Value| -> serde_json::Value {
        report["checks"]
            .as_array()
            .and_then(|checks| checks.iter().find(|check| check["name"] == "daemon"))
            .cloned()
            .unwrap_or_else(|| panic!("no daemon check: {report:#}"))
    };
    // doctor over TLS with the certificate directory `certs`.
    let doctor = |certs: &Path| {
        let certs = certs.to_str().unwrap();
        let args = ["doctor", "--no-config", "--state-dir", state, "-H", &url];
        in_netns(&sb, &[&args[..], &["--tls-cert-path", certs]].concat(), &[])
    };
    let ok = doctor(&certs);
    let check = daemon(ok.json());
    assert_eq!(check["status"], "ok", "{}", ok.show());
    assert!(
        check["detail"].as_str().unwrap().contains(&url),
        "{check:#}"
    );

    let no_client = cert_dir(&sb, "no-client", &certs, &["ca.pem"]);
    let failed = doctor(&no_client);
    assert_eq!(failed.code, 1, "{}", failed.show());
    let check = daemon(failed.json());
    assert_eq!(check["status"], "fail", "{check:#}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("the TLS handshake with the container engine"),
        "{check:#}"
    );
    assert!(
        check["fix"].as_str().unwrap().contains("key.pem"),
        "{check:#}"
    );
}
