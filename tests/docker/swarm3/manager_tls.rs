//! A worker asks its manager over mutual TLS: an answer with the right files; a closed gate,
//! naming the files, when the handshake fails (another CA, no client certificate); a closed gate
//! once the manager is gone.

use std::fs;
use std::path::Path;

use serde_json::Value;

use super::{
    assert_present, detail, image_ids, manager_https_url, old_dangling, run_in_netns_on, run_on,
};
use crate::support::swarm::{Node, SwarmRig};
use crate::support::{self, gate};

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
