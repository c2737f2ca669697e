//! Which engine a [`Sandbox`](super::Sandbox) runs: the targets of `scripts/sandbox.sh start
//! --engine NAME` (issue 10), chosen for a whole test run by `PRUNEGUARD_ENGINE` (default
//! `docker-20.10`), and what each one is known to have (swarm, image store, where containerd
//! keeps image data).

use std::fmt;

/// The engine targets, as `scripts/engines.sh list` prints them.
pub const ENGINES: [&str; 6] = [
    "docker-20.10",
    "docker-28",
    "docker-28-containerd",
    "docker-28-containerd-ext",
    "podman-5",
    "podman-4.3",
];

/// The variable that picks the engine of every sandbox of a test run.
pub const ENGINE_ENV: &str = "PRUNEGUARD_ENGINE";

/// Where an engine keeps images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// A graph driver's layer store under the data root (dockerd's overlay2, Podman's
    /// containers/storage).
    Classic,
    /// containerd's content store and snapshotter (dockerd's `containerd-snapshotter`).
    Containerd,
}

impl Store {
    /// `classic` or `containerd`: how doctor's JSON names the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Store::Classic => "classic",
            Store::Containerd => "containerd",
        }
    }
}

/// One engine target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Engine {
    /// The target's name (`docker-28-containerd`, `podman-5`, …).
    pub name: &'static str,
    /// Podman's Docker-compatible service rather than dockerd.
    pub is_podman: bool,
    /// The engine has swarm mode (dockerd); Podman has none.
    pub has_swarm: bool,
    pub store: Store,
    /// containerd runs as a daemon of its own, with its root on a filesystem of its own
    /// ([`Sandbox::containerd_root`](super::Sandbox::containerd_root) is that root).
    pub containerd_ext: bool,
}

impl Engine {
    /// The target called `name`; panics (failing the test) for an unknown one.
    pub fn named(name: &str) -> Engine {
        let Some(&name) = ENGINES.iter().find(|known| **known == name) else {
            panic!(
                "unknown engine {name:?} (from {ENGINE_ENV} or a test); the engines are: {}",
                ENGINES.join(", ")
            );
        };
        let is_podman = name.starts_with("podman-");
        Engine {
            name,
            is_podman,
            has_swarm: !is_podman,
            store: if name.starts_with("docker-28-containerd") {
                Store::Containerd
            } else {
                Store::Classic
            },
            containerd_ext: name == "docker-28-containerd-ext",
        }
    }

    /// The engine this test run targets: `$PRUNEGUARD_ENGINE`, default `docker-20.10`.
    pub fn from_env() -> Engine {
        match std::env::var(ENGINE_ENV) {
            Ok(name) if !name.is_empty() => Engine::named(&name),
            _ => Engine::named(ENGINES[0]),
        }
    }

    /// `docker` or `podman`: how pruneguard's reports name the engine.
    pub fn kind(self) -> &'static str {
        if self.is_podman { "podman" } else { "docker" }
    }

    /// The engine runs from a root filesystem that `scripts/sandbox.sh ensure-engines` builds
    /// (every target but the host's own dockerd 20.10).
    pub fn needs_rootfs(self) -> bool {
        self.name != ENGINES[0]
    }

    /// The name of its daemon's log in the sandbox directory.
    pub fn log_file(self) -> &'static str {
        if self.is_podman {
            "podman.log"
        } else {
            "dockerd.log"
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name)
    }
}
