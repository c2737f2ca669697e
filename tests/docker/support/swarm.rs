//! [`SwarmRig`]: a 3-node swarm (`scripts/swarm.sh`): three private daemons whose namespaces
//! share a bridge on 10.214.0.0/24, node 1 the manager and nodes 2 and 3 workers, and a
//! throttled local registry that every node pulls from at [`SwarmRig::registry`]. The manager's
//! dockerd also serves mutual TLS at [`SwarmRig::manager_tls_url`] (certificates in
//! [`SwarmRig::manager_tls_dir`]), reachable from every node's namespace
//! ([`Node::pruneguard_in_netns`]). Dropping the rig stops all of it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{docker_cli, expect_success, netns_of, repo_root, sandbox_script, sandbox_unavailable};

/// One node of the rig.
pub struct Node {
    pub n: usize,
    pub host: String,
    pub dir: PathBuf,
    /// A per-node state dir for pruneguard runs.
    pub state: PathBuf,
    config: PathBuf,
}

impl Node {
    pub fn docker<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(docker_cli());
        cmd.arg("-H")
            .arg(&self.host)
            .args(args)
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        cmd.output()
            .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"))
    }

    pub fn docker_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.docker(&args);
        expect_success(&format!("docker {args:?} (node {})", self.n), &out)
    }

    /// `Swarm.NodeID` of this node.
    pub fn node_id(&self) -> String {
        self.docker_ok(["info", "--format", "{{.Swarm.NodeID}}"])
    }

    /// `pruneguard` aimed at this node (its `DOCKER_HOST` and state dir), no config file.
    pub fn pruneguard(&self) -> Command {
        let mut cmd = super::bare_pruneguard();
        cmd.env("DOCKER_HOST", &self.host)
            .env("PRUNEGUARD_STATE_DIR", &self.state);
        cmd
    }

    /// The name of this node's network namespace (`/var/run/netns/NAME`), for
    /// [`in_netns`](super::in_netns).
    pub fn netns(&self) -> String {
        netns_of(&self.dir)
    }

    /// [`Node::pruneguard`] run inside this node's network namespace, on the rig's bridge
    /// (where 10.214.0.1, [`SwarmRig::manager_tls_url`], is reachable):
    /// [`bare_pruneguard_in_netns`](super::bare_pruneguard_in_netns) with `DOCKER_HOST` (this
    /// node's unix socket) and the state dir set.
    pub fn pruneguard_in_netns(&self) -> Command {
        let mut cmd = super::bare_pruneguard_in_netns(&self.netns());
        cmd.env("DOCKER_HOST", &self.host)
            .env("PRUNEGUARD_STATE_DIR", &self.state);
        cmd
    }

    /// `docker load`s an archive on this node.
    pub fn load(&self, archive: &Path) {
        self.docker_ok([
            OsStr::new("load"),
            OsStr::new("-q"),
            OsStr::new("-i"),
            archive.as_os_str(),
        ]);
    }
}

pub struct SwarmRig {
    tmp: Option<tempfile::TempDir>,
    prefix: PathBuf,
    pub nodes: Vec<Node>,
}

fn swarm_script<I, S>(args: I) -> Result<String, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/swarm.sh"))
        .args(args)
        .stdin(Stdio::null());
    let shown = format!("{cmd:?}");
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(format!(
            "{shown} exited with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(err) => Err(format!("cannot run {shown}: {err}")),
    }
}

impl SwarmRig {
    /// Starts the rig; the registry's answers are limited to `rate` (tc, e.g. `2mbit`, `off`).
    pub fn start(rate: &str) -> SwarmRig {
        let tmp = tempfile::Builder::new()
            .prefix("pgsw.")
            .tempdir()
            .unwrap_or_else(|err| sandbox_unavailable(&format!("cannot create a temp dir: {err}")));
        let prefix = tmp.path().join("sw");
        let stdout = swarm_script([
            OsStr::new("start"),
            prefix.as_os_str(),
            OsStr::new("--rate"),
            OsStr::new(rate),
        ])
        .unwrap_or_else(|err| sandbox_unavailable(&err));
        let hosts: Vec<String> = stdout
            .lines()
            .filter(|line| line.starts_with("unix://"))
            .map(str::to_owned)
            .collect();
        let mut rig = SwarmRig {
            tmp: Some(tmp),
            prefix: prefix.clone(),
            nodes: Vec::new(),
        };
        assert_eq!(hosts.len(), 3, "swarm.sh start printed {stdout:?}");
        for (i, host) in hosts.into_iter().enumerate() {
            let scratch = rig
                .tmp
                .as_ref()
                .map_or_else(PathBuf::new, |t| t.path().join(format!("node{}", i + 1)));
            let state = scratch.join("state");
            let config = scratch.join("docker-config");
            fs::create_dir_all(&state).expect("create a node's state dir");
            fs::create_dir_all(&config).expect("create a node's docker config dir");
            rig.nodes.push(Node {
                n: i + 1,
                host,
                dir: prefix.join(format!("n{}", i + 1)),
                state,
                config,
            });
        }
        rig
    }

    pub fn manager(&self) -> &Node {
        &self.nodes[0]
    }

    pub fn worker(&self, n: usize) -> &Node {
        assert!(n == 2 || n == 3, "the workers are nodes 2 and 3");
        &self.nodes[n - 1]
    }

    /// The registry every node pulls from (`10.214.0.254:5000`).
    pub fn registry(&self) -> String {
        swarm_script([OsStr::new("registry"), self.prefix.as_os_str()])
            .map_or_else(|err| panic!("{err}"), |out| out.trim().to_owned())
    }

    /// The manager's TLS certificates (`scripts/swarm.sh tls`, PREFIX/tls): `ca.pem`, the
    /// client's `cert.pem` and `key.pem` (a `DOCKER_CERT_PATH`), the server's
    /// `server-cert.pem` and `server-key.pem` (SANs: 10.214.0.1, `manager.pgsw.test`,
    /// 127.0.0.1, `localhost`) and `ca-key.pem`.
    pub fn manager_tls_dir(&self) -> PathBuf {
        swarm_script([OsStr::new("tls"), self.prefix.as_os_str()])
            .map_or_else(|err| panic!("{err}"), |out| PathBuf::from(out.trim()))
    }

    /// The manager's TLS listener (`dockerd --tlsverify`), `tcp://10.214.0.1:2376`: reachable
    /// from the nodes' namespaces ([`Node::pruneguard_in_netns`]; the manager's own too), not
    /// from the host. It comes back when the manager's daemon is restarted.
    pub fn manager_tls_url(&self) -> String {
        // The manager's address on the bridge, as scripts/swarm.sh wrote it (10.214.0.1).
        let addr = fs::read_to_string(self.manager().dir.join("addr"))
            .unwrap_or_else(|err| panic!("no address of the manager: {err}"));
        format!("tcp://{}:2376", addr.trim())
    }

    /// A directory every node's daemon sees at its own path (`PREFIX/shared`), chrooted
    /// engines too: where the sources of a service's bind mounts go.
    pub fn shared_dir(&self) -> PathBuf {
        self.prefix.join("shared")
    }

    /// A scratch directory of the test (below the rig's temp dir).
    pub fn scratch(&self) -> PathBuf {
        self.tmp
            .as_ref()
            .map_or_else(PathBuf::new, |t| t.path().to_path_buf())
    }

    /// Generates a busybox image with its own `layer_bytes` layer as `REGISTRY/name_tag`,
    /// built `age` ago (its `Created`: "old enough" by `--age-basis created` as soon as
    /// nothing uses it), loads it on the manager and pushes it; returns the reference.
    pub fn publish_built(&self, name_tag: &str, layer_bytes: u64, age: Duration) -> String {
        let reference = format!("{}/{name_tag}", self.registry());
        let archive = self.scratch().join("publish.tar");
        testkit::ImageSet::new()
            .tag(&reference)
            .busybox()
            .layer_bytes(layer_bytes)
            .age(age)
            .write(&archive)
            .unwrap_or_else(|err| panic!("cannot generate {reference}: {err:#}"));
        self.manager().load(&archive);
        let _ = fs::remove_file(&archive);
        self.manager().docker_ok(["push", "-q", &reference]);
        reference
    }

    /// The registry's request counts (`scripts/registry.sh counts`), as `key=value` pairs.
    pub fn counts(&self) -> String {
        swarm_script([OsStr::new("counts"), self.prefix.as_os_str()])
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// The registry access log's size now: [`SwarmRig::node_counts`] since then.
    pub fn mark(&self) -> u64 {
        let out = swarm_script([OsStr::new("mark"), self.prefix.as_os_str()])
            .unwrap_or_else(|err| panic!("{err}"));
        out.trim()
            .parse()
            .unwrap_or_else(|err| panic!("swarm.sh mark printed {out:?}: {err}"))
    }

    /// The registry's request counts of node `n`'s requests since `mark` (`manifest_gets`,
    /// `blob_gets`, `blob_bytes`, …).
    pub fn node_counts(&self, n: usize, mark: u64) -> BTreeMap<String, u64> {
        let out = swarm_script([
            OsStr::new("counts"),
            self.prefix.as_os_str(),
            OsStr::new("--since"),
            OsStr::new(&mark.to_string()),
            OsStr::new("--node"),
            OsStr::new(&n.to_string()),
        ])
        .unwrap_or_else(|err| panic!("{err}"));
        out.split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .filter_map(|(key, value)| Some((key.to_owned(), value.parse().ok()?)))
            .collect()
    }

    /// Stops node `n`'s dockerd (the namespaces and the other nodes stay).
    pub fn stop_daemon(&self, n: usize) {
        sandbox_script([OsStr::new("stop-daemon"), self.nodes[n - 1].dir.as_os_str()])
            .unwrap_or_else(|err| panic!("stopping node {n}'s daemon failed: {err}"));
    }

    fn shutdown(&mut self) -> Result<(), String> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        match swarm_script([OsStr::new("stop"), self.prefix.as_os_str()]) {
            Ok(_) => {
                drop(tmp);
                Ok(())
            }
            Err(err) => {
                let kept = tmp.keep();
                Err(format!(
                    "stopping the swarm rig failed (kept {}): {err}",
                    kept.display()
                ))
            }
        }
    }
}

impl Drop for SwarmRig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                let log = fs::read_to_string(node.dir.join("dockerd.log")).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                eprintln!(
                    "--- last lines of node {}'s dockerd.log:\n{}",
                    node.n,
                    lines[lines.len().saturating_sub(15)..].join("\n")
                );
            }
        }
        if let Err(err) = self.shutdown() {
            eprintln!("{err}");
        }
    }
}
