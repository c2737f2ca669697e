//! Where Docker and Podman's Docker-compatible service differ, as pure functions: which engine
//! answers ([`detect`]), what its events are called ([`activity_action`], [`PODMAN_ACTIVITY`]),
//! which error answers mean "the image is gone" ([`is_gone`]), and how messages name the engine
//! and its fix ([`Speaker`]). `docker.rs` calls these at the engine boundary, so nothing above
//! it sees Podman's spellings.

use crate::model::EngineKind;

/// What `/version` says, reduced to what detection reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionFacts {
    /// `Version`: dockerd's version; Podman puts its own version here too.
    pub version: String,
    /// `Platform.Name`: `Docker Engine - Community`, or Podman's `linux/amd64/debian-13`.
    pub platform_name: String,
    /// `Components[]`: (`Name`, `Version`).
    pub components: Vec<(String, String)>,
    /// Whether an answer carried `Libpod-Api-Version` or `Libpod-Buildah-Version`.
    pub libpod_header: bool,
}

/// The engine and its own version. Podman is recognised by its `Podman Engine` component, a
/// platform name that says Podman, or its Libpod headers; anything else is Docker (dockerd and
/// what claims to be it). The version is the engine component's (`Podman Engine`, `Engine`),
/// else `Version`.
pub fn detect(facts: &VersionFacts) -> (EngineKind, String) {
    let component = |wanted: &str| {
        facts
            .components
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, version)| version.clone())
            .filter(|version| !version.is_empty())
    };
    let podman_component = component("Podman Engine");
    let is_podman = podman_component.is_some()
        || facts.libpod_header
        || facts.platform_name.to_ascii_lowercase().contains("podman");
    if is_podman {
        let version = podman_component.unwrap_or_else(|| facts.version.clone());
        (EngineKind::Podman, version)
    } else {
        let version = component("Engine").unwrap_or_else(|| facts.version.clone());
        (EngineKind::Docker, version)
    }
}

/// The `event` filter sent to Podman: its names for what the quiet gate counts (Podman 4 and 5
/// call a load `loadfromarchive`, and a build is an image `build` event).
pub const PODMAN_ACTIVITY: [&str; 6] = [
    "pull",
    "loadfromarchive",
    "import",
    "tag",
    "build",
    "create",
];

/// The `event` filter sent to Docker.
pub const DOCKER_ACTIVITY: [&str; 5] = ["pull", "load", "import", "tag", "create"];

/// The quiet gate's name for an event, when it is activity: image `pull`, `load`, `import`,
/// `tag`, `build` and container `create`, whichever engine spelt it (Podman's
/// `loadfromarchive` is a `load`; its older `loadFromArchive` too). `None`: not activity.
pub fn activity_action(kind: &str, action: &str) -> Option<&'static str> {
    match (kind, action.to_ascii_lowercase().as_str()) {
        ("image", "pull") => Some("pull"),
        ("image", "load" | "loadfromarchive") => Some("load"),
        ("image", "import") => Some("import"),
        ("image", "tag") => Some("tag"),
        ("image", "build") => Some("build"),
        ("container", "create") => Some("create"),
        _ => None,
    }
}

/// An error answer that means the image does not exist (any more): 404 from either engine,
/// and Podman's 500 with `image not known` (4.3, 5.x) or `no such image`.
pub fn is_gone(status: u16, message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    status == 404
        || (status == 500
            && (message.contains("image not known") || message.contains("no such image")))
}

/// Who a message is about: the detected engine, or (before detection) either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Speaker {
    /// Not yet known (connecting, negotiating the API version).
    #[default]
    Unknown,
    Known(EngineKind),
}

impl Speaker {
    /// `the Docker daemon`, `the Podman service`, `the container engine`.
    pub fn the_engine(self) -> &'static str {
        match self {
            Self::Unknown => "the container engine",
            Self::Known(EngineKind::Docker) => "the Docker daemon",
            Self::Known(EngineKind::Podman) => "the Podman service",
        }
    }

    /// `Docker socket`, `Podman socket`, `engine socket`.
    pub fn socket(self) -> &'static str {
        match self {
            Self::Unknown => "engine socket",
            Self::Known(EngineKind::Docker) => "Docker socket",
            Self::Known(EngineKind::Podman) => "Podman socket",
        }
    }

    /// How to check that the engine runs.
    pub fn start_hint(self) -> &'static str {
        match self {
            Self::Unknown => {
                "Check that dockerd (`systemctl status docker`) or `podman system service` \
                 (`systemctl status podman.socket`) is running"
            }
            Self::Known(EngineKind::Docker) => {
                "Check that dockerd is running (`systemctl status docker`)"
            }
            Self::Known(EngineKind::Podman) => {
                "Check that the Podman service is running (`systemctl status podman.socket`, \
                 or `podman system service` by hand; a user's service, `systemctl --user status \
                 podman.socket`, is rootless Podman, which is not supported yet)"
            }
        }
    }

    /// Where the engine's own log is.
    pub fn log_hint(self) -> &'static str {
        match self {
            Self::Unknown => "`journalctl -u docker` or `journalctl -u podman`",
            Self::Known(EngineKind::Docker) => "`journalctl -u docker`",
            Self::Known(EngineKind::Podman) => "`journalctl -u podman.service -u podman.socket`",
        }
    }

    /// Who may use the socket.
    pub fn permission_hint(self) -> &'static str {
        match self {
            Self::Unknown => "Run pruneguard as root, or (Docker) as a user in the docker group",
            Self::Known(EngineKind::Docker) => {
                "Run pruneguard as root or as a user in the docker group"
            }
            Self::Known(EngineKind::Podman) => {
                "Run pruneguard as root: it needs the rootful Podman socket \
                 (/run/podman/podman.sock); rootless Podman is not supported yet"
            }
        }
    }
}

impl From<EngineKind> for Speaker {
    fn from(kind: EngineKind) -> Self {
        Self::Known(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(
        version: &str,
        platform: &str,
        components: &[(&str, &str)],
        header: bool,
    ) -> VersionFacts {
        VersionFacts {
            version: version.into(),
            platform_name: platform.into(),
            components: components
                .iter()
                .map(|(name, version)| ((*name).into(), (*version).into()))
                .collect(),
            libpod_header: header,
        }
    }

    #[test]
    fn engines_are_told_apart_by_components_platform_or_headers() {
        use EngineKind::{Docker, Podman};
        // (facts, engine, version)
        let table = [
            (
                facts("20.10.24+dfsg1", "", &[("Engine", "20.10.24+dfsg1")], false),
                Docker,
                "20.10.24+dfsg1",
            ),
            (
                facts(
                    "28.5.2",
                    "Docker Engine - Community",
                    &[("Engine", "28.5.2"), ("containerd", "2.1")],
                    false,
                ),
                Docker,
                "28.5.2",
            ),
            (
                facts("20.10.99-fake", "", &[], false),
                Docker,
                "20.10.99-fake",
            ),
            (
                facts(
                    "5.8.6",
                    "linux/amd64/debian-13",
                    &[("Podman Engine", "5.8.6"), ("Conmon", "2.1")],
                    true,
                ),
                Podman,
                "5.8.6",
            ),
            (
                facts("4.3.1", "", &[("Podman Engine", "4.3.1")], false),
                Podman,
                "4.3.1",
            ),
            (facts("4.3.1", "", &[], true), Podman, "4.3.1"),
            (facts("5.0.0", "Podman Engine", &[], false), Podman, "5.0.0"),
            (
                facts("5.0.0", "", &[("podman engine", "")], false),
                Docker,
                "5.0.0",
            ),
        ];
        for (facts, engine, version) in table {
            assert_eq!(detect(&facts), (engine, version.to_string()), "{facts:?}");
        }
    }

    #[test]
    fn both_engines_names_map_onto_the_activity_the_quiet_gate_counts() {
        let table = [
            ("image", "pull", Some("pull")),
            ("image", "load", Some("load")),
            ("image", "loadfromarchive", Some("load")),
            ("image", "loadFromArchive", Some("load")),
            ("image", "import", Some("import")),
            ("image", "tag", Some("tag")),
            ("image", "build", Some("build")),
            ("container", "create", Some("create")),
            ("image", "untag", None),
            ("image", "remove", None),
            ("image", "delete", None),
            ("image", "push", None),
            ("image", "save", None),
            ("image", "mount", None),
            ("container", "start", None),
            ("container", "init", None),
            ("container", "pull", None),
            ("image", "create", None),
            ("volume", "create", None),
        ];
        for (kind, action, expected) in table {
            assert_eq!(activity_action(kind, action), expected, "{kind} {action}");
        }
        for name in PODMAN_ACTIVITY.iter().chain(&DOCKER_ACTIVITY) {
            assert!(
                activity_action("image", name)
                    .or(activity_action("container", name))
                    .is_some(),
                "{name} is sent as a filter but not counted"
            );
        }
    }

    #[test]
    fn podman_500_image_not_known_is_gone_other_500s_are_not() {
        let table = [
            (404, "No such image: sha256:ab", true),
            (404, "", true),
            (500, "deleting image \"ab\": image not known", true),
            (500, "sha256:ab: image not known", true),
            (500, "No such image: ab", true),
            (500, "layer not known", false),
            (500, "database is locked", false),
            (409, "image not known", false),
            (400, "no such image", false),
        ];
        for (status, message, gone) in table {
            assert_eq!(is_gone(status, message), gone, "{status} {message}");
        }
    }
}
