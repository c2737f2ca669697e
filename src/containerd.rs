//! Where containerd keeps image data, for the disk gate on Docker's containerd image store.
//!
//! On that store, image content and unpacked snapshots live under **containerd's root**, which
//! is not the daemon's data root when containerd runs as its own daemon (Debian's unit starts
//! dockerd with `--containerd=/run/containerd/containerd.sock`). The root is found, in order:
//!
//! 1. the config next to containerd's socket (`<dir of Containerd.Address>/containerd.toml`):
//!    dockerd writes one there for the containerd it starts itself, with
//!    `root = "<data-root>/containerd/daemon"`;
//! 2. the config of the running containerd that serves that socket: a `containerd` process
//!    started with `--config FILE` (`-c FILE`) whose `[grpc] address` is the socket;
//! 3. the config next to the socket present but unreadable (dockerd writes it mode 0600), or
//!    the socket in dockerd's exec root (`…/docker/containerd/containerd.sock`): dockerd
//!    started containerd, so the root is `<data-root>/containerd`;
//! 4. containerd's own default config, `/etc/containerd/config.toml` (`root = …`, config
//!    versions 1 to 3 alike);
//! 5. containerd's default, `/var/lib/containerd`.
//!
//! [`root_from_config`], [`grpc_address`], [`config_argument`] and [`resolve`] are pure
//! (table-tested); [`discover`] reads the files and `/proc` (once per process and socket).

use std::path::{Path, PathBuf};

/// containerd's default config file.
pub const DEFAULT_CONFIG: &str = "/etc/containerd/config.toml";
/// containerd's default root.
pub const DEFAULT_ROOT: &str = "/var/lib/containerd";
/// The config dockerd writes next to the socket of a containerd it starts.
pub const MANAGED_CONFIG_NAME: &str = "containerd.toml";

/// How containerd's root was found, for doctor and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdRoot {
    pub path: PathBuf,
    pub source: RootSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// `root` of this config file.
    Config(PathBuf),
    /// dockerd started containerd: under the data root.
    ManagedByDockerd,
    /// No config says otherwise: containerd's default.
    Default,
}

impl RootSource {
    pub fn describe(&self) -> String {
        match self {
            Self::Config(path) => format!("root in {}", path.display()),
            Self::ManagedByDockerd => "containerd started by dockerd, under the data root".into(),
            Self::Default => format!("containerd's default, no root in {DEFAULT_CONFIG}"),
        }
    }
}

/// A config file as read: its text, or that it exists but could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    Absent,
    Unreadable,
    Text(String),
}

/// The top-level `root` of a containerd config (every config version keeps it there), when it
/// is an absolute path. A config that does not parse says nothing.
pub fn root_from_config(text: &str) -> Option<PathBuf> {
    let table: toml::Table = text.parse().ok()?;
    let root = table.get("root")?.as_str()?;
    let path = PathBuf::from(root);
    path.is_absolute().then_some(path)
}

/// The `[grpc] address` of a containerd config; containerd's default when it names none.
pub fn grpc_address(text: &str) -> Option<PathBuf> {
    let table: toml::Table = text.parse().ok()?;
    let address = table
        .get("grpc")
        .and_then(|grpc| grpc.get("address"))
        .and_then(toml::Value::as_str)
        .filter(|address| !address.is_empty())
        .unwrap_or("/run/containerd/containerd.sock");
    Some(PathBuf::from(address))
}

/// The config file a `containerd` command line names (`--config F`, `--config=F`, `-c F`);
/// `None` for any other program or without one.
pub fn config_argument(argv: &[String]) -> Option<PathBuf> {
    let program = argv.first()?;
    if Path::new(program).file_name()? != "containerd" {
        return None;
    }
    let mut rest = argv[1..].iter();
    while let Some(arg) = rest.next() {
        if arg == "--config" || arg == "-c" {
            return rest.next().map(PathBuf::from);
        }
        if let Some(file) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(file));
        }
    }
    None
}

/// The socket is in dockerd's exec root (`/var/run/docker/containerd/containerd.sock` by
/// default): dockerd started this containerd.
fn in_dockerd_exec_root(address: &Path) -> bool {
    let mut parts = address.components().rev();
    let names: Vec<_> = parts
        .by_ref()
        .take(3)
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    names == ["containerd.sock", "containerd", "docker"]
}

/// The root, from the daemon's data root, containerd's socket and the two configs (pure).
/// `serving_config` is the config file and text of the running containerd that serves
/// `address`, when one was found.
pub fn resolve(
    data_root: &Path,
    address: Option<&Path>,
    managed_config: &ConfigFile,
    serving_config: Option<&(PathBuf, String)>,
    system_config: &ConfigFile,
) -> ContainerdRoot {
    if let (Some(address), ConfigFile::Text(text)) = (address, managed_config)
        && let Some(path) = root_from_config(text)
    {
        let config = address
            .parent()
            .unwrap_or(Path::new("/"))
            .join(MANAGED_CONFIG_NAME);
        return ContainerdRoot {
            path,
            source: RootSource::Config(config),
        };
    }
    if let Some((file, text)) = serving_config {
        return ContainerdRoot {
            path: root_from_config(text).unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)),
            source: RootSource::Config(file.clone()),
        };
    }
    let managed = matches!(managed_config, ConfigFile::Unreadable | ConfigFile::Text(_))
        || address.is_some_and(in_dockerd_exec_root);
    if managed {
        return ContainerdRoot {
            path: data_root.join("containerd"),
            source: RootSource::ManagedByDockerd,
        };
    }
    if let ConfigFile::Text(text) = system_config
        && let Some(path) = root_from_config(text)
    {
        return ContainerdRoot {
            path,
            source: RootSource::Config(PathBuf::from(DEFAULT_CONFIG)),
        };
    }
    ContainerdRoot {
        path: PathBuf::from(DEFAULT_ROOT),
        source: RootSource::Default,
    }
}

/// Reads a small config file; anything but "not there" that stops the read is `Unreadable`.
fn read_config(path: &Path) -> ConfigFile {
    use std::io::Read as _;
    const LIMIT: u64 = 1024 * 1024;
    let mut text = String::new();
    match std::fs::File::open(path).and_then(|file| file.take(LIMIT).read_to_string(&mut text)) {
        Ok(_) => ConfigFile::Text(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => ConfigFile::Absent,
        Err(_) => ConfigFile::Unreadable,
    }
}

/// The config (file and text) of a running `containerd` whose `[grpc] address` is `address`,
/// from `/proc/*/cmdline` (readable by everyone) and the config files it names (when
/// readable).
fn serving_config(address: &Path) -> Option<(PathBuf, String)> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name
            .to_string_lossy()
            .bytes()
            .all(|byte| byte.is_ascii_digit())
        {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|byte| *byte == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        let Some(file) = config_argument(&argv) else {
            continue;
        };
        if let ConfigFile::Text(text) = read_config(&file)
            && grpc_address(&text).as_deref() == Some(address)
        {
            return Some((file, text));
        }
    }
    None
}

/// containerd's root for a daemon whose data root is `data_root` and whose containerd socket
/// is `address` (`/info` `Containerd.Address`), reading the configs on this machine. Found
/// once per process for each data root and socket (the disk gate is re-checked every second
/// while deleting).
pub fn discover(data_root: &Path, address: Option<&str>) -> ContainerdRoot {
    type Key = (PathBuf, Option<String>);
    static FOUND: std::sync::Mutex<Vec<(Key, ContainerdRoot)>> = std::sync::Mutex::new(Vec::new());
    let key = (data_root.to_path_buf(), address.map(str::to_string));
    // A poisoned lock only loses the cache.
    if let Ok(found) = FOUND.lock()
        && let Some((_, root)) = found.iter().find(|(known, _)| *known == key)
    {
        return root.clone();
    }
    let address = address
        .map(|address| address.strip_prefix("unix://").unwrap_or(address))
        .map(Path::new)
        .filter(|address| address.is_absolute());
    let managed_config = address
        .and_then(Path::parent)
        .map_or(ConfigFile::Absent, |dir| {
            read_config(&dir.join(MANAGED_CONFIG_NAME))
        });
    let serving = match managed_config {
        ConfigFile::Text(_) => None,
        _ => address.and_then(serving_config),
    };
    let system_config = read_config(Path::new(DEFAULT_CONFIG));
    let root = resolve(
        data_root,
        address,
        &managed_config,
        serving.as_ref(),
        &system_config,
    );
    if let Ok(mut found) = FOUND.lock() {
        found.push((key, root.clone()));
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_read_from_every_config_version() {
        let table = [
            ("root = \"/srv/containerd\"\n", Some("/srv/containerd")),
            (
                "version = 2\nroot = \"/data/ctr\"\nstate = \"/run/containerd\"\n[grpc]\naddress = \"/run/c.sock\"\n",
                Some("/data/ctr"),
            ),
            (
                "version = 3\nroot = '/mnt/c'\n[plugins.'io.containerd.cri.v1.images']\nsnapshotter = 'overlayfs'\n",
                Some("/mnt/c"),
            ),
            // Commented out, nested, relative or not TOML: says nothing.
            ("#root = \"/srv/containerd\"\nversion = 2\n", None),
            ("[grpc]\nroot = \"/nested\"\n", None),
            ("root = \"relative/dir\"\n", None),
            ("root = 7\n", None),
            ("this is not toml = = =\n", None),
            ("", None),
        ];
        for (text, expected) in table {
            assert_eq!(
                root_from_config(text),
                expected.map(PathBuf::from),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_root_follows_the_configs_in_order() {
        let data_root = Path::new("/var/lib/docker");
        let managed_sock = Path::new("/var/run/docker/containerd/containerd.sock");
        let system_sock = Path::new("/run/containerd/containerd.sock");
        let text = |root: &str| ConfigFile::Text(format!("version = 2\nroot = \"{root}\"\n"));
        let table = [
            // dockerd's own containerd, its config readable (doctor as root).
            (
                Some(managed_sock),
                text("/var/lib/docker/containerd/daemon"),
                text("/srv/other"),
                "/var/lib/docker/containerd/daemon",
                RootSource::Config(PathBuf::from("/var/run/docker/containerd/containerd.toml")),
            ),
            // The same, its config mode 0600 (a run as a docker-group user).
            (
                Some(managed_sock),
                ConfigFile::Unreadable,
                text("/srv/other"),
                "/var/lib/docker/containerd",
                RootSource::ManagedByDockerd,
            ),
            // dockerd's exec root, config not found at all.
            (
                Some(managed_sock),
                ConfigFile::Absent,
                ConfigFile::Absent,
                "/var/lib/docker/containerd",
                RootSource::ManagedByDockerd,
            ),
            // Debian: containerd as its own daemon, its config names a root.
            (
                Some(system_sock),
                ConfigFile::Absent,
                text("/srv/containerd"),
                "/srv/containerd",
                RootSource::Config(PathBuf::from(DEFAULT_CONFIG)),
            ),
            // … a config without a root, or none, or unreadable: the default.
            (
                Some(system_sock),
                ConfigFile::Absent,
                ConfigFile::Text("version = 2\n".into()),
                DEFAULT_ROOT,
                RootSource::Default,
            ),
            (
                Some(system_sock),
                ConfigFile::Absent,
                ConfigFile::Unreadable,
                DEFAULT_ROOT,
                RootSource::Default,
            ),
            (
                None,
                ConfigFile::Absent,
                ConfigFile::Absent,
                DEFAULT_ROOT,
                RootSource::Default,
            ),
        ];
        for (address, managed, system, path, source) in table {
            let root = resolve(data_root, address, &managed, None, &system);
            assert_eq!(root.path, PathBuf::from(path), "{address:?} {managed:?}");
            assert_eq!(root.source, source, "{address:?} {managed:?}");
        }
    }

    #[test]
    fn the_running_containerd_serving_the_socket_names_its_config() {
        let sock = Path::new("/srv/sb/c/containerd.sock");
        let serving = (
            PathBuf::from("/srv/sb/containerd.toml"),
            "version = 2\nroot = \"/srv/sb/ctr/root\"\n[grpc]\naddress = \"/srv/sb/c/containerd.sock\"\n"
                .to_string(),
        );
        let system = ConfigFile::Text("root = \"/elsewhere\"\n".into());
        let root = resolve(
            Path::new("/var/lib/docker"),
            Some(sock),
            &ConfigFile::Absent,
            Some(&serving),
            &system,
        );
        assert_eq!(root.path, PathBuf::from("/srv/sb/ctr/root"));
        assert_eq!(root.source, RootSource::Config(serving.0.clone()));
        // Without a root of its own: containerd's default.
        let bare = (
            serving.0.clone(),
            "[grpc]\naddress = \"/x.sock\"\n".to_string(),
        );
        let root = resolve(
            Path::new("/d"),
            Some(sock),
            &ConfigFile::Absent,
            Some(&bare),
            &system,
        );
        assert_eq!(root.path, PathBuf::from(DEFAULT_ROOT));
    }

    #[test]
    fn command_lines_and_addresses() {
        let argv = |args: &[&str]| args.iter().map(ToString::to_string).collect::<Vec<_>>();
        for (args, expected) in [
            (&["containerd", "--config", "/a.toml"][..], Some("/a.toml")),
            (
                &["/usr/bin/containerd", "-c", "/b.toml", "-l", "debug"],
                Some("/b.toml"),
            ),
            (
                &["containerd", "--log-level", "info", "--config=/c.toml"],
                Some("/c.toml"),
            ),
            (&["containerd"], None),
            (&["containerd", "--config"], None),
            (&["containerd-shim-runc-v2", "--config", "/a.toml"], None),
            (&["dockerd", "-c", "/a.toml"], None),
        ] {
            assert_eq!(
                config_argument(&argv(args)),
                expected.map(PathBuf::from),
                "{args:?}"
            );
        }
        assert_eq!(
            grpc_address("[grpc]\naddress = \"/tmp/c.sock\"\n"),
            Some(PathBuf::from("/tmp/c.sock"))
        );
        assert_eq!(
            grpc_address("version = 2\n"),
            Some(PathBuf::from("/run/containerd/containerd.sock"))
        );
        assert_eq!(grpc_address("= ="), None);
    }

    #[test]
    fn dockerd_exec_root_sockets() {
        for (address, managed) in [
            ("/var/run/docker/containerd/containerd.sock", true),
            ("/run/docker/containerd/containerd.sock", true),
            ("/run/containerd/containerd.sock", false),
            ("/tmp/sb/docker/containerd/other.sock", false),
            ("containerd.sock", false),
        ] {
            assert_eq!(
                in_dockerd_exec_root(Path::new(address)),
                managed,
                "{address}"
            );
        }
    }
}
