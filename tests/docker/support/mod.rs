//! Test support for pruneguard's integration tests: private Docker daemons and generated images.
//!
//! A module of the `docker` test binary (tests/docker/). Every [`Sandbox`] is its own engine
//! (dockerd with its own containerd, or a Podman service; its own data root, exec root, socket
//! and network namespace) started by `scripts/sandbox.sh`; dropping it stops the engine and
//! removes everything. Which engine is [`Engine::from_env`] (`PRUNEGUARD_ENGINE`, default
//! `docker-20.10`; see `engine`). Images come from
//! the `testkit` crate (`docker save` archives made in-process) through `docker load`: no
//! registry is ever contacted and the developer's own daemon is never touched.
//!
//! A sandbox that cannot start always fails the test (a panic), never skips it: under CI
//! (`CI=true` or `PRUNEGUARD_REQUIRE_DOCKER=1`) the message says Docker is required there;
//! elsewhere it says to run `scripts/test.sh` as root, which installs what the tests need.
//!
//! Running pruneguard itself and reading its report is `runs` (re-exported here); injecting
//! faults between pruneguard and a sandbox is `proxy`. A daemon that also serves mutual TLS is
//! [`Sandbox::start_with_tls`]; its listener is inside the sandbox's network namespace, where
//! [`in_netns`] and [`Sandbox::pruneguard_in_netns`] run a program.

mod engine;
pub mod fake_api;
pub mod proxy;
mod runs;
pub mod swarm;

pub use engine::{Engine, Store};

pub use runs::{
    OPEN_GATES, Run, Running, bare_pruneguard, bare_pruneguard_in_netns, gate, ids, json_command,
    json_run, pruneguard, run, spawn,
};

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The repository root (where `scripts/` lives).
/// A request path without the `/vX.Y` prefix and the query: `/images/json`.
pub fn endpoint_of(path: &str) -> &str {
    let path = path.split('?').next().unwrap_or_default();
    match path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            rest.find('/').map_or(path, |slash| &rest[slash..])
        }
        _ => path,
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo_root().join("scripts").join(name)
}

/// The docker CLI the helpers use: `$PGSB_DOCKER`, else `/usr/bin/docker` (Debian's
/// `docker.io`, which `scripts/test.sh` installs), else `docker` from `PATH`.
pub fn docker_cli() -> OsString {
    if let Some(cli) = std::env::var_os("PGSB_DOCKER").filter(|v| !v.is_empty()) {
        return cli;
    }
    if Path::new("/usr/bin/docker").exists() {
        return OsString::from("/usr/bin/docker");
    }
    OsString::from("docker")
}

/// True where a missing Docker is a broken setup: `CI=true` or `PRUNEGUARD_REQUIRE_DOCKER=1`.
pub fn docker_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("PRUNEGUARD_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .is_some_and(|euid| euid == "0")
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        || Path::new("/usr/sbin").join(program).is_file()
}

/// Fails the test because no sandbox could be had. Never returns.
pub(crate) fn sandbox_unavailable(detail: &str) -> ! {
    let mut hints = Vec::new();
    if !is_root() {
        hints.push("the tests are not running as root");
    }
    let engine = Engine::from_env();
    if !engine.needs_rootfs() && !on_path("dockerd") {
        hints.push("dockerd is not installed (Debian package docker.io)");
    }
    if engine.needs_rootfs() && detail.contains("root filesystem is not built") {
        hints.push(
            "the engines' root filesystems are not built yet (run `scripts/sandbox.sh \
             ensure-engines` as root, or `scripts/test.sh --engine NAME`, which does)",
        );
    }
    let hints = if hints.is_empty() {
        String::new()
    } else {
        format!("\nLikely cause: {}.", hints.join("; "))
    };
    assert!(
        !docker_required(),
        "pruneguard test sandbox could not start, and Docker is required here \
         (CI=true or PRUNEGUARD_REQUIRE_DOCKER=1); engine {engine}: {detail}{hints}"
    );
    panic!(
        "pruneguard test sandbox (engine {engine}) could not start: {detail}{hints}\n\
         The integration tests need root and a private dockerd. Run the suite with \
         `scripts/test.sh` as root (or `sudo scripts/test.sh`): it installs Docker (docker.io), \
         iproute2, busybox-static and the rest, then runs the tests."
    );
}

/// Runs `scripts/sandbox.sh ARGS…` and returns its stdout, or a description of the failure.
pub(crate) fn sandbox_script<I, S>(args: I) -> Result<String, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    sandbox_script_env(args, &[])
}

/// [`sandbox_script`] with variables added to its environment (`PGSB_TLS_DIR`, …).
fn sandbox_script_env<I, S>(args: I, env: &[(&str, &OsStr)]) -> Result<String, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("bash");
    cmd.arg(script("sandbox.sh"));
    cmd.args(args);
    cmd.envs(env.iter().copied());
    cmd.stdin(Stdio::null());
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

/// Writes a CA and a server and a client certificate it signed into `dir` (created; it must not
/// hold certificates yet) with `scripts/tls-certs.sh`, in Docker's file names: `ca.pem`,
/// `cert.pem` and `key.pem` (the client's: `dir` is a `DOCKER_CERT_PATH`), `server-cert.pem`
/// and `server-key.pem` (dockerd's), `ca-key.pem`. The server certificate names 127.0.0.1,
/// `localhost`, every IP of `ips` and every DNS name of `names`. Certificates of a CA a daemon
/// does not trust: call it again, into another directory.
pub fn tls_certs(dir: &Path, ips: &[&str], names: &[&str]) {
    let mut cmd = Command::new("bash");
    cmd.arg(script("tls-certs.sh")).arg(dir);
    for ip in ips {
        cmd.args(["--ip", ip]);
    }
    for name in names {
        cmd.args(["--dns", name]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"));
    expect_success(&format!("{cmd:?}"), &out);
}

/// `PROGRAM` (add its arguments and environment to the command) run inside the network
/// namespace `netns` (a sandbox's or a swarm node's, `/var/run/netns/NAME`): `nsenter
/// --net=/var/run/netns/NETNS -- PROGRAM`. Only the network is the namespace's: the files, the
/// environment and stdin are the command's, and nsenter execs PROGRAM (the child's pid is its
/// own). Stdin is null unless the caller sets it.
pub fn in_netns(netns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/var/run/netns/{netns}"))
        .arg("--")
        .arg(program)
        .stdin(Stdio::null());
    cmd
}

/// Asserts that a command succeeded and returns its stdout without trailing whitespace.
pub fn expect_success(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// A private engine for one test. Dropping it stops the engine and removes its files.
pub struct Sandbox {
    engine: Engine,
    /// The sandbox's temporary directory (None once it has been stopped or kept).
    tmp: Option<tempfile::TempDir>,
    /// The DIR given to `scripts/sandbox.sh` (inside `tmp`).
    dir: PathBuf,
    /// Where the test's own files go (archives, state dir, docker CLI config).
    scratch: PathBuf,
    host: String,
    addr: Option<String>,
    /// The daemon also serves mutual TLS at [`TLS_ADDR`] ([`Sandbox::start_with_tls`]).
    tls: bool,
}

/// The certificates of a TLS listener, written for `scripts/sandbox.sh` (which copies them to
/// DIR/tls, what the daemon and [`Sandbox::tls_dir`] use); dropped once the sandbox started.
struct TlsListener {
    certs: PathBuf,
    addr: &'static str,
}

impl TlsListener {
    /// Certificates below `parent` whose server certificate also names `ips`, for a listener
    /// at `addr`.
    fn new(parent: &Path, ips: &[&str], addr: &'static str) -> Self {
        let certs = parent.join("tls");
        tls_certs(&certs, ips, &[]);
        Self { certs, addr }
    }

    /// What `scripts/sandbox.sh start` and `pair` read.
    fn env(&self) -> Vec<(&'static str, &OsStr)> {
        vec![
            ("PGSB_TLS_DIR", self.certs.as_os_str()),
            ("PGSB_TLS_ADDR", OsStr::new(self.addr)),
        ]
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.certs);
    }
}

/// Where [`Sandbox::start_with_tls`]'s daemon serves TLS, inside the sandbox's network
/// namespace: nothing outside it can reach it, and every sandbox may use the same port.
const TLS_ADDR: &str = "127.0.0.1:2376";

static ARCHIVES: AtomicUsize = AtomicUsize::new(0);

impl Sandbox {
    /// Starts a private engine, the one `PRUNEGUARD_ENGINE` names (default `docker-20.10`).
    /// Panics (failing the test) if it cannot.
    pub fn start() -> Sandbox {
        Self::start_args(&[], false)
    }

    /// Starts a private dockerd (Docker engines only) that, besides its unix socket
    /// ([`Sandbox::host`], as always), serves mutual TLS like `dockerd --tlsverify` on
    /// [`Sandbox::tls_url`] inside its network namespace, with certificates of its own
    /// ([`Sandbox::tls_dir`]). Reach it from inside the namespace: [`in_netns`] with
    /// [`Sandbox::netns`], or [`Sandbox::pruneguard_in_netns`]. The listener comes back with
    /// [`Sandbox::start_daemon`].
    pub fn start_with_tls() -> Sandbox {
        let engine = Engine::from_env();
        assert!(
            !engine.is_podman,
            "Sandbox::start_with_tls is for Docker engines (dockerd --tlsverify), not {engine}"
        );
        Self::start_args(&[], true)
    }

    /// The engine of this test run ([`Engine::from_env`]), without starting anything: for
    /// tests that decide what to expect before they start a sandbox.
    pub fn target() -> Engine {
        Engine::from_env()
    }

    /// Starts a private daemon whose data root is a loop-mounted ext4 file system of `mb` MiB,
    /// for tests that fill a disk. Note that `docker load` needs free space for the archive
    /// and the layers at once: load big images one by one (as [`Sandbox::load_images`] does).
    ///
    /// On `docker-28-containerd-ext`, containerd's own filesystem (where its image data
    /// goes) gets the same size.
    pub fn start_with_disk_mb(mb: u64) -> Sandbox {
        let mut args = vec!["--data-root-size".to_owned(), mb.to_string()];
        if Engine::from_env().containerd_ext {
            args.extend(["--containerd-root-size".to_owned(), mb.to_string()]);
        }
        Self::start_args(&args, false)
    }

    fn start_args(extra: &[String], tls: bool) -> Sandbox {
        let engine = Engine::from_env();
        let tmp = new_tempdir();
        let dir = tmp.path().join("sb");
        let listener = tls.then(|| TlsListener::new(tmp.path(), &[], TLS_ADDR));
        let mut args: Vec<OsString> = vec![
            "start".into(),
            dir.clone().into(),
            "--engine".into(),
            engine.name.into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        let env = listener.as_ref().map(TlsListener::env).unwrap_or_default();
        let stdout =
            sandbox_script_env(&args, &env).unwrap_or_else(|err| sandbox_unavailable(&err));
        let host = stdout
            .lines()
            .last()
            .filter(|line| line.starts_with("unix://"))
            .unwrap_or_else(|| sandbox_unavailable(&format!("unexpected output: {stdout:?}")))
            .to_owned();
        drop(listener);
        let mut sandbox = Self::from_parts(engine, tmp, dir, host, None);
        sandbox.tls = tls;
        sandbox
    }

    /// Two daemons in two network namespaces joined by a veth pair: the first has 10.213.0.1,
    /// the second 10.213.0.2 (see [`Sandbox::addr`]). For swarm manager + worker tests:
    /// `swarm init --advertise-addr 10.213.0.1` on the first, then `swarm join` from the second.
    pub fn pair() -> (Sandbox, Sandbox) {
        Self::pair_args(false)
    }

    /// [`Sandbox::pair`] whose daemons also serve mutual TLS on port 2376 of every address
    /// they have (a worker reaches the first at `10.213.0.1:2376`), with certificates of one CA
    /// that name 10.213.0.1 and 10.213.0.2 ([`Sandbox::tls_dir`] of either).
    pub fn pair_with_tls() -> (Sandbox, Sandbox) {
        Self::pair_args(true)
    }

    fn pair_args(tls: bool) -> (Sandbox, Sandbox) {
        let engine = Engine::from_env();
        assert!(
            engine.has_swarm,
            "Sandbox::pair is for swarm tests, and {engine} has no swarm"
        );
        let tmp1 = new_tempdir();
        let tmp2 = new_tempdir();
        let dir1 = tmp1.path().join("sb");
        let dir2 = tmp2.path().join("sb");
        let args: [&OsStr; 5] = [
            "pair".as_ref(),
            dir1.as_os_str(),
            dir2.as_os_str(),
            "--engine".as_ref(),
            engine.name.as_ref(),
        ];
        // 0.0.0.0: the pair's addresses exist only once dockerd has started.
        let listener = tls
            .then(|| TlsListener::new(tmp1.path(), &["10.213.0.1", "10.213.0.2"], "0.0.0.0:2376"));
        let env = listener.as_ref().map(TlsListener::env).unwrap_or_default();
        let stdout = sandbox_script_env(args, &env).unwrap_or_else(|err| sandbox_unavailable(&err));
        drop(listener);
        let hosts: Vec<&str> = stdout
            .lines()
            .filter(|line| line.starts_with("unix://"))
            .collect();
        if hosts.len() != 2 {
            let _ = sandbox_script([OsStr::new("stop"), dir1.as_os_str()]);
            let _ = sandbox_script([OsStr::new("stop"), dir2.as_os_str()]);
            sandbox_unavailable(&format!("unexpected output of pair: {stdout:?}"));
        }
        let addr = |dir: &Path| {
            fs::read_to_string(dir.join("addr"))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        let a1 = addr(&dir1);
        let a2 = addr(&dir2);
        let mut first = Self::from_parts(engine, tmp1, dir1, hosts[0].to_owned(), a1);
        let mut second = Self::from_parts(engine, tmp2, dir2, hosts[1].to_owned(), a2);
        first.tls = tls;
        second.tls = tls;
        (first, second)
    }

    fn from_parts(
        engine: Engine,
        tmp: tempfile::TempDir,
        dir: PathBuf,
        host: String,
        addr: Option<String>,
    ) -> Sandbox {
        let scratch = tmp.path().join("scratch");
        for sub in ["", "state", "docker-config", "images"] {
            fs::create_dir_all(scratch.join(sub)).expect("create the sandbox's scratch dirs");
        }
        Sandbox {
            engine,
            tmp: Some(tmp),
            dir,
            scratch,
            host,
            addr,
            tls: false,
        }
    }

    /// The engine this sandbox runs.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Where containerd keeps image data on the containerd store: its own filesystem's root
    /// (`docker-28-containerd-ext`: DIR/ctr/root, a loop-mounted ext4 of its own) or the one
    /// dockerd's own containerd uses under the data root. None on the classic store.
    pub fn containerd_root(&self) -> Option<PathBuf> {
        match (self.engine.store, self.engine.containerd_ext) {
            (Store::Classic, _) => None,
            (Store::Containerd, true) => Some(self.dir.join("ctr").join("root")),
            (Store::Containerd, false) => Some(self.data_root().join("containerd").join("daemon")),
        }
    }

    /// The daemon's address, for `DOCKER_HOST` or `docker -H`: `unix:///…/docker.sock`
    /// (`…/podman.sock` for Podman).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path of the daemon's unix socket.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(self.host.trim_start_matches("unix://"))
    }

    /// This sandbox's address on the veth link (only for [`Sandbox::pair`]).
    pub fn addr(&self) -> Option<&str> {
        self.addr.as_deref()
    }

    /// The sandbox directory (`scripts/sandbox.sh`'s DIR; holds dockerd.log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The name of the sandbox's network namespace (`/var/run/netns/NAME`), for [`in_netns`].
    pub fn netns(&self) -> String {
        netns_of(&self.dir)
    }

    /// The directory of the TLS listener's certificates ([`Sandbox::start_with_tls`] only):
    /// `ca.pem`, and the client's `cert.pem` and `key.pem`, so it is a `DOCKER_CERT_PATH` (and
    /// dockerd's `server-cert.pem` and `server-key.pem`).
    pub fn tls_dir(&self) -> PathBuf {
        assert!(
            self.tls,
            "tls_dir: this sandbox has no TLS listener (Sandbox::start_with_tls)"
        );
        self.dir.join("tls")
    }

    /// The TLS listener's URL, `tcp://127.0.0.1:2376`, inside the sandbox's network namespace
    /// ([`Sandbox::start_with_tls`] only). Its server certificate names 127.0.0.1 and
    /// `localhost`.
    pub fn tls_url(&self) -> String {
        assert!(
            self.tls,
            "tls_url: this sandbox has no TLS listener (Sandbox::start_with_tls)"
        );
        format!("tcp://{TLS_ADDR}")
    }

    /// [`pruneguard`] run inside this sandbox's network namespace ([`bare_pruneguard_in_netns`]),
    /// where [`Sandbox::tls_url`] is: `DOCKER_HOST` is still the unix socket (give the TLS URL
    /// with `-H` or set `DOCKER_HOST` over it), `PRUNEGUARD_STATE_DIR` its state dir. Add
    /// `--no-config` yourself.
    pub fn pruneguard_in_netns(&self) -> Command {
        let mut cmd = bare_pruneguard_in_netns(&self.netns());
        cmd.env("DOCKER_HOST", self.host())
            .env("PRUNEGUARD_STATE_DIR", self.state_dir());
        cmd
    }

    /// The daemon's data root (`--data-root`; Podman's graphroot): what pruneguard measures
    /// for disk pressure.
    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A per-sandbox directory for `PRUNEGUARD_STATE_DIR`.
    pub fn state_dir(&self) -> PathBuf {
        self.scratch.join("state")
    }

    /// A per-sandbox directory where a test may put its own files (configs, reports, …).
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// The docker CLI aimed at this sandbox only (`-H`, `DOCKER_HOST`, a private
    /// `DOCKER_CONFIG`; contexts and TLS settings of the environment removed).
    pub fn docker_command(&self) -> Command {
        let mut cmd = Command::new(docker_cli());
        cmd.arg("-H").arg(&self.host);
        cmd.env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.scratch.join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `docker ARGS…` against this sandbox; does not check the exit status.
    pub fn docker<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.docker_command();
        cmd.args(args);
        cmd.output()
            .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"))
    }

    /// Runs `docker ARGS…` against this sandbox, asserts success, returns stdout (trimmed at
    /// the end).
    pub fn docker_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.docker(&args);
        expect_success(&format!("docker {args:?} (sandbox {})", self.host), &out)
    }

    /// Generates images with the `testkit` crate, `docker load`s them, and returns their IDs
    /// (`sha256:…`) in load order: with a tag, the last one is tagged and the others dangling.
    /// Images with their own big layers are loaded one archive per image (so a small data
    /// root needs room for one image at a time, not all of them twice).
    ///
    /// On the containerd store and on Podman, which load one image per tag from an archive
    /// (and the containerd store names images by their manifest, not their config), every
    /// image is loaded from an archive of its own and its ID is the one image that load added.
    pub fn load_images(&self, spec: &ImageSpec) -> Vec<String> {
        assert!(spec.count > 0, "ImageSpec::count must be at least 1");
        let set = spec.image_set();
        if self.engine.store == Store::Containerd || self.engine.is_podman {
            return self.load_one_by_one(spec, &set);
        }
        let n = ARCHIVES.fetch_add(1, Ordering::Relaxed);
        let archive = |suffix: &str| {
            self.scratch
                .join("images")
                .join(format!("images-{n}{suffix}.tar"))
        };
        let ids = if spec.layer_bytes.is_some() && spec.count > 1 {
            let written = set
                .write_per_image(|i| archive(&format!("-{i}")))
                .unwrap_or_else(|err| panic!("cannot generate the images of {spec:?}: {err:#}"));
            for one in &written {
                self.load_archive(&one.path);
            }
            written.into_iter().map(|one| one.id).collect()
        } else {
            let path = archive("");
            let ids = set
                .write(&path)
                .unwrap_or_else(|err| panic!("cannot generate the images of {spec:?}: {err:#}"));
            self.load_archive(&path);
            ids
        };
        assert_eq!(ids.len(), spec.count, "testkit returned {ids:?}");
        let present = self.image_ids();
        for id in &ids {
            assert!(
                present.contains(id),
                "image {id} was generated but is not in the daemon after docker load"
            );
        }
        ids
    }

    /// [`Sandbox::load_images`] for engines whose IDs are not testkit's, in load order.
    fn load_one_by_one(&self, spec: &ImageSpec, set: &testkit::ImageSet) -> Vec<String> {
        let n = ARCHIVES.fetch_add(1, Ordering::Relaxed);
        let written = set
            .write_per_image(|i| {
                self.scratch
                    .join("images")
                    .join(format!("images-{n}-{i}.tar"))
            })
            .unwrap_or_else(|err| panic!("cannot generate the images of {spec:?}: {err:#}"));
        let mut ids = Vec::new();
        for one in &written {
            let before = self.image_ids();
            self.load_archive(&one.path);
            let added: Vec<String> = self.image_ids().difference(&before).cloned().collect();
            assert_eq!(
                added.len(),
                1,
                "loading one image ({}, testkit ID {}) on {} added {added:?}",
                one.path.display(),
                one.id,
                self.engine
            );
            ids.extend(added);
        }
        ids
    }

    /// `docker load`s an archive, then removes it.
    fn load_archive(&self, archive: &Path) {
        self.docker_ok([
            OsStr::new("load"),
            OsStr::new("-q"),
            OsStr::new("-i"),
            archive.as_os_str(),
        ]);
        let _ = fs::remove_file(archive);
    }

    /// IDs of all images (`docker images -a --no-trunc -q`, de-duplicated).
    pub fn image_ids(&self) -> BTreeSet<String> {
        self.id_set(&["images", "-a", "--no-trunc", "-q"])
    }

    /// IDs of the dangling images (untagged, `dangling=true`).
    pub fn dangling_ids(&self) -> BTreeSet<String> {
        self.id_set(&[
            "images",
            "-a",
            "--no-trunc",
            "-q",
            "--filter",
            "dangling=true",
        ])
    }

    /// The image ID a reference (`name:tag` or ID) resolves to, if it exists.
    pub fn image_id(&self, reference: &str) -> Option<String> {
        let out = self.docker(["image", "inspect", "--format", "{{.Id}}", reference]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// IDs of all containers, running or not (`docker ps -a --no-trunc -q`).
    pub fn container_ids(&self) -> BTreeSet<String> {
        self.id_set(&["ps", "-a", "--no-trunc", "-q"])
    }

    fn id_set(&self, args: &[&str]) -> BTreeSet<String> {
        self.docker_ok(args)
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Stops the daemon (dockerd only; the sandbox stays) for "daemon is down" tests.
    pub fn stop_daemon(&self) {
        sandbox_script([OsStr::new("stop-daemon"), self.dir.as_os_str()])
            .unwrap_or_else(|err| panic!("stopping the sandbox daemon failed: {err}"));
    }

    /// Starts the daemon again after [`Sandbox::stop_daemon`] (same data root and socket).
    pub fn start_daemon(&self) {
        sandbox_script([OsStr::new("start-daemon"), self.dir.as_os_str()])
            .unwrap_or_else(|err| panic!("restarting the sandbox daemon failed: {err}"));
    }

    /// A raw `GET path` on the daemon's API socket (no version prefix needed): returns the
    /// HTTP status and the body. For checks the CLI hides, e.g. a swarm worker's 503.
    pub fn api_get(&self, path: &str) -> (u16, String) {
        let mut stream = UnixStream::connect(self.socket())
            .unwrap_or_else(|err| panic!("connect {}: {err}", self.host));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set a read timeout");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
        (status, body.to_owned())
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(self.dir.join(self.engine.log_file())).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        let mut out = String::new();
        for line in &all[all.len().saturating_sub(lines)..] {
            let _ = writeln!(out, "{line}");
        }
        out
    }

    /// Stops the sandbox now (what dropping it does), panicking if the stop fails.
    pub fn stop(mut self) {
        if let Err(err) = self.shutdown() {
            panic!("{err}");
        }
    }

    fn shutdown(&mut self) -> Result<(), String> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        match sandbox_script([OsStr::new("stop"), self.dir.as_os_str()]) {
            Ok(_) => {
                drop(tmp);
                Ok(())
            }
            Err(err) => {
                // Something may still be mounted below it: do not delete recursively.
                let kept = tmp.keep();
                Err(format!(
                    "stopping the sandbox failed (kept {}): {err}",
                    kept.display()
                ))
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.tmp.is_none() {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of the sandbox's {} ({}, engine {}):\n{}",
                self.engine.log_file(),
                self.dir.display(),
                self.engine,
                self.log_tail(40)
            );
        }
        if let Err(err) = self.shutdown() {
            eprintln!("{err}");
        }
    }
}

/// The network namespace of the sandbox in `dir` (`scripts/sandbox.sh` writes it to DIR/netns).
pub(crate) fn netns_of(dir: &Path) -> String {
    let name = fs::read_to_string(dir.join("netns")).unwrap_or_else(|err| {
        panic!(
            "no network namespace name in {}/netns: {err}",
            dir.display()
        )
    });
    name.trim().to_owned()
}

fn new_tempdir() -> tempfile::TempDir {
    // In $TMPDIR; keep the path short (unix socket paths are limited to 108 bytes, and
    // scripts/sandbox.sh falls back to /tmp for the sockets when DIR is long).
    tempfile::Builder::new()
        .prefix("pgsb.")
        .tempdir()
        .unwrap_or_else(|err| sandbox_unavailable(&format!("cannot create a temp dir: {err}")))
}

/// What [`Sandbox::load_images`] generates: `count` distinct images (distinct IDs).
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// `NAME:TAG` every image is listed under (the last one loaded keeps it); None: all
    /// dangling.
    pub tag: Option<String>,
    pub count: usize,
    /// RFC 3339 creation time. Set at most one of `created` and `age` (default: now).
    pub created: Option<String>,
    /// Creation time = now − age.
    pub age: Option<Duration>,
    /// Give every image its own random layer of this many bytes (to fill a disk).
    pub layer_bytes: Option<u64>,
    /// Add /bin/busybox (+ /bin/sh); default command `busybox sleep 3600`.
    pub busybox: bool,
    pub labels: Vec<(String, String)>,
    /// Same seed + same spec = same IDs. Default: a fresh random seed per call.
    pub seed: Option<String>,
}

impl ImageSpec {
    /// `count` images all listed under `tag`: after loading, 1 tagged and `count - 1` dangling.
    pub fn tagged(tag: &str, count: usize) -> ImageSpec {
        ImageSpec {
            tag: Some(tag.to_owned()),
            count,
            created: None,
            age: None,
            layer_bytes: None,
            busybox: false,
            labels: Vec::new(),
            seed: None,
        }
    }

    /// `count` images with no tag at all: all dangling.
    pub fn untagged(count: usize) -> ImageSpec {
        ImageSpec {
            tag: None,
            ..ImageSpec::tagged("unused:unused", count)
        }
    }

    /// Created `age` ago.
    #[must_use]
    pub fn age(mut self, age: Duration) -> ImageSpec {
        self.age = Some(age);
        self.created = None;
        self
    }

    /// Created `days` days ago.
    #[must_use]
    pub fn age_days(self, days: u64) -> ImageSpec {
        self.age(Duration::from_secs(days * 86_400))
    }

    /// Created at an RFC 3339 time, e.g. `2020-01-02T03:04:05Z`.
    #[must_use]
    pub fn created(mut self, rfc3339: &str) -> ImageSpec {
        self.created = Some(rfc3339.to_owned());
        self.age = None;
        self
    }

    #[must_use]
    pub fn layer_bytes(mut self, bytes: u64) -> ImageSpec {
        self.layer_bytes = Some(bytes);
        self
    }

    #[must_use]
    pub fn busybox(mut self) -> ImageSpec {
        self.busybox = true;
        self
    }

    /// The testkit image set this spec describes.
    fn image_set(&self) -> testkit::ImageSet {
        let mut set = testkit::ImageSet::new().count(self.count);
        set = match &self.tag {
            Some(tag) => set.tag(tag),
            None => set.no_tag(),
        };
        if let Some(created) = &self.created {
            let when = testkit::parse_time(created)
                .unwrap_or_else(|err| panic!("ImageSpec::created: {err:#}"));
            set = set.created(when);
        }
        if let Some(age) = self.age {
            set = set.age(age);
        }
        if let Some(bytes) = self.layer_bytes {
            set = set.layer_bytes(bytes);
        }
        if self.busybox {
            set = set.busybox();
        }
        for (key, value) in &self.labels {
            set = set.label(key, value);
        }
        if let Some(seed) = &self.seed {
            set = set.seed(seed);
        }
        set
    }
}
