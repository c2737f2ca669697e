//! `gates.disk.paths` from each source: the file's list (and its one-path alias `path`), the
//! repeatable `--disk-path`, and `PRUNEGUARD_DISK_PATHS` (`:`-separated; `PRUNEGUARD_DISK_PATH`
//! its one-path alias); `auto` anywhere in the list; an empty list or both spellings in one
//! source are errors naming the key and the place.

use std::path::PathBuf;

use pruneguard::cli::RunArgs;
use pruneguard::config::{Environment, Mode, Settings};
use pruneguard::policy::DiskPath;

use super::{Config, error_starting_at, no_config};

/// Environment variables of one case.
type Vars = &'static [(&'static str, &'static str)];

fn path(text: &str) -> DiskPath {
    DiskPath::Path(PathBuf::from(text))
}

fn paths_with(args: &RunArgs, env: &[(&str, &str)]) -> Vec<DiskPath> {
    let env = Environment::from_pairs(env.iter().copied());
    Settings::resolve_with(args, Mode::Run, &env)
        .unwrap_or_else(|error| panic!("{error}"))
        .policy
        .gates
        .disk
        .paths
}

fn env_error(env: &[(&str, &str)]) -> String {
    let env = Environment::from_pairs(env.iter().copied());
    Settings::resolve_with(&no_config(), Mode::Run, &env)
        .expect_err("a config error")
        .0
}

#[test]
fn the_file_lists_paths_or_uses_the_one_path_alias() {
    let table = [
        ("", vec![DiskPath::Auto]),
        ("[gates.disk]\npaths = [\"auto\"]\n", vec![DiskPath::Auto]),
        (
            "[gates.disk]\npaths = [\"auto\", \"/srv/containerd\"]\n",
            vec![DiskPath::Auto, path("/srv/containerd")],
        ),
        (
            "[gates.disk]\npaths = [\"/a\", \"/b\"]\n",
            vec![path("/a"), path("/b")],
        ),
        ("[gates.disk]\npath = \"auto\"\n", vec![DiskPath::Auto]),
        (
            "[gates.disk]\npath = \"/srv/docker\"\n",
            vec![path("/srv/docker")],
        ),
    ];
    for (text, expected) in table {
        let config = Config::new(text);
        assert_eq!(paths_with(&config.args(), &[]), expected, "{text:?}");
    }
}

#[test]
fn file_errors_name_the_key_and_line() {
    let both = error_starting_at("[gates.disk]\npath = \"/a\"\npaths = [\"/b\"]\n", 2);
    assert!(
        both.contains("gates.disk.path") && both.contains("gates.disk.paths"),
        "{both}"
    );
    let empty = error_starting_at("[gates.disk]\npaths = []\n", 2);
    assert!(
        empty.contains("gates.disk.paths") && empty.contains("measures nothing"),
        "{empty}"
    );
    let relative = error_starting_at("[gates.disk]\npaths = [\"auto\",\n \"rel/dir\"]\n", 3);
    assert!(
        relative.contains("gates.disk.paths") && relative.contains("not an absolute path"),
        "{relative}"
    );
}

#[test]
fn the_flag_repeats_and_replaces_the_lower_lists() {
    let config = Config::new("[gates.disk]\npaths = [\"/file\"]\n");
    let args = RunArgs {
        disk_paths: vec!["/one".into(), "auto".into(), "/two".into()],
        ..config.args()
    };
    assert_eq!(
        paths_with(&args, &[("PRUNEGUARD_DISK_PATHS", "/env")]),
        vec![path("/one"), DiskPath::Auto, path("/two")]
    );
    // Relative to where the command runs.
    let relative = RunArgs {
        disk_paths: vec!["rel".into()],
        ..no_config()
    };
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        paths_with(&relative, &[]),
        vec![DiskPath::Path(cwd.join("rel"))]
    );
}

#[test]
fn the_environment_separates_paths_with_colons() {
    let config = Config::new("[gates.disk]\npaths = [\"/file\"]\n");
    let table: [(Vars, Vec<DiskPath>); 5] = [
        (
            &[("PRUNEGUARD_DISK_PATHS", "/a:/b")],
            vec![path("/a"), path("/b")],
        ),
        (
            &[("PRUNEGUARD_DISK_PATHS", "auto::/srv/c:")],
            vec![DiskPath::Auto, path("/srv/c")],
        ),
        (&[("PRUNEGUARD_DISK_PATH", "/alias")], vec![path("/alias")]),
        (&[("PRUNEGUARD_DISK_PATH", "auto")], vec![DiskPath::Auto]),
        // Unset or empty: the file's list.
        (&[("PRUNEGUARD_DISK_PATHS", "")], vec![path("/file")]),
    ];
    for (env, expected) in table {
        assert_eq!(paths_with(&config.args(), env), expected, "{env:?}");
    }
    let both = env_error(&[
        ("PRUNEGUARD_DISK_PATHS", "/a"),
        ("PRUNEGUARD_DISK_PATH", "/b"),
    ]);
    assert!(both.contains("PRUNEGUARD_DISK_PATH "), "{both}");
    let nothing = env_error(&[("PRUNEGUARD_DISK_PATHS", ":::")]);
    assert!(
        nothing.starts_with("environment variable PRUNEGUARD_DISK_PATHS (`gates.disk.paths`): "),
        "{nothing}"
    );
}
