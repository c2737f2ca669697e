//! `pruneguard doctor`'s `swarm_manager` check on a real manager and worker
//! (`Sandbox::pair_with_tls`): it asks the manager for the worker's tasks the way a run does.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use super::{World, check, detail, run_json, status};
use crate::support::{self, Sandbox};

impl World {
    /// [`World::doctor`] run inside the network namespace `netns`.
    fn doctor_in_netns(&self, netns: &str, host: &str) -> Command {
        let mut cmd = support::bare_pruneguard_in_netns(netns);
        cmd.env("DOCKER_CONFIG", self.path("docker-config"))
            .env("HOME", self.path("home"))
            .env("PRUNEGUARD_UNIT_DIRS", self.path("units"))
            .args(["doctor", "--no-config", "-H", host, "--state-dir"])
            .arg(self.state_dir());
        cmd
    }
}

/// On a real manager and worker (`Sandbox::pair_with_tls`), the `swarm_manager` check asks the
/// manager for the worker's tasks the way a run does: over TLS it passes, a CA that did not
/// sign the manager's certificate and a worker given as the manager fail with the fix, a
/// client key others can read warns, and a manager is not asked at all.
#[test]
fn swarm_manager_check_asks_the_manager_as_a_run_would() {
    let (manager, worker) = Sandbox::pair_with_tls();
    manager.docker_ok(["swarm", "init", "--advertise-addr", "10.213.0.1"]);
    let token = manager.docker_ok(["swarm", "join-token", "-q", "worker"]);
    worker.docker_ok(["swarm", "join", "--token", &token, "10.213.0.1:2377"]);
    let world = World::new();
    let certs = manager.tls_dir();
    let url = "https://10.213.0.1:2376";
    let doctor = |manager_host: &str, certs: Option<&Path>| {
        let mut cmd = world.doctor_in_netns(&worker.netns(), worker.host());
        cmd.args(["--swarm-manager-host", manager_host]);
        if let Some(certs) = certs {
            cmd.arg("--swarm-manager-tls-cert-path").arg(certs);
        }
        run_json(cmd)
    };

    let (ok, json) = doctor(url, Some(&certs));
    assert_eq!(ok.code, 0, "{}", ok.show());
    assert_eq!(status(&json, "swarm_manager"), "ok", "{json}");
    assert!(
        detail(&json, "swarm_manager").contains(&format!(
            "the swarm manager at {url} lists 0 task(s) for this node"
        )),
        "{json}"
    );

    let other = world.path("other-ca");
    support::tls_certs(&other, &[], &[]);
    let wrong_ca = world.path("wrong-ca");
    fs::create_dir_all(&wrong_ca).unwrap();
    fs::copy(other.join("ca.pem"), wrong_ca.join("ca.pem")).unwrap();
    for file in ["cert.pem", "key.pem"] {
        fs::copy(certs.join(file), wrong_ca.join(file)).unwrap();
    }
    let (failed, json) = doctor(url, Some(&wrong_ca));
    assert_eq!(failed.code, 1, "{}", failed.show());
    assert_eq!(status(&json, "swarm_manager"), "fail", "{json}");
    assert!(
        detail(&json, "swarm_manager")
            .contains("the TLS handshake failed: invalid peer certificate"),
        "{json}"
    );
    let fix = check(&json, "swarm_manager")["fix"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        fix.contains(&format!("{}/ca.pem", wrong_ca.display())),
        "{fix}"
    );
    assert!(fix.contains("unset gates.swarm.manager_host"), "{fix}");

    // The worker's own socket as "the manager": it answers 503.
    let (failed, json) = doctor(worker.host(), None);
    assert_eq!(failed.code, 1, "{}", failed.show());
    assert!(
        detail(&json, "swarm_manager").contains("HTTP 503"),
        "{json}"
    );

    // A client key other users can read: the answer is fine, the key is not.
    let loose = world.path("loose");
    fs::create_dir_all(&loose).unwrap();
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        fs::copy(certs.join(file), loose.join(file)).unwrap();
    }
    fs::set_permissions(loose.join("key.pem"), fs::Permissions::from_mode(0o644)).unwrap();
    let (warned, json) = doctor(url, Some(&loose));
    assert_eq!(warned.code, 0, "{}", warned.show());
    assert_eq!(status(&json, "swarm_manager"), "warn", "{json}");
    assert!(
        check(&json, "swarm_manager")["fix"]
            .as_str()
            .unwrap()
            .starts_with("chmod 600 "),
        "{json}"
    );

    // On the manager itself nobody is asked.
    let mut cmd = world.doctor(manager.host());
    cmd.args(["--no-config", "--swarm-manager-host", url])
        .arg("--swarm-manager-tls-cert-path")
        .arg(&certs);
    let (_, json) = run_json(cmd);
    assert_eq!(status(&json, "swarm_manager"), "ok", "{json}");
    assert!(
        detail(&json, "swarm_manager").contains("not asked"),
        "{json}"
    );
}
