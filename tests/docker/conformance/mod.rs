//! The engine contract (issue 10) as tests that run on every engine target: whichever engine
//! `PRUNEGUARD_ENGINE` names (`scripts/test.sh --engine NAME`; default `docker-20.10`), each
//! test starts its own sandbox of it. CI runs this module on all six targets; on
//! `docker-20.10` the rest of the suite runs too.
//!
//! - `plan_run`: exact plan and run: what is kept (tagged, in use by containers in every
//!   state, young, with children, builder chains), and nothing unplanned disappears; never
//!   laxer than the engine's own `image prune`.
//! - `gates`: the disk gate on a small loop data root (and containerd's own filesystem), the
//!   quiet gate after each kind of activity, the swarm gate (or its absence on Podman).
//! - `doctor`: doctor's JSON names the engine and the image store.
//! - `multi_platform`: multi-platform images with attestations on the containerd store.
//!
//! Ages: on the containerd store an image's age runs from when it lost its tag
//! (`Metadata.LastTagTime`, which a load sets to now), so tests that need "old" dangling
//! images on every engine load them, wait [`SETTLE`], and plan with `--min-age` [`MIN_AGE`];
//! images loaded after the wait are young on every engine.

mod doctor;
mod gates;
mod multi_platform;
mod plan_run;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::Sandbox;

/// How long tests wait after loading "old" images before they plan with [`MIN_AGE`].
pub const SETTLE: Duration = Duration::from_secs(6);
/// The `--min-age` that makes images loaded [`SETTLE`] ago old and images loaded just before
/// the plan young, on every store.
pub const MIN_AGE: &str = "5s";

/// `a − b`.
pub fn minus(a: &BTreeSet<String>, b: &BTreeSet<String>) -> BTreeSet<String> {
    a.difference(b).cloned().collect()
}

/// `df`'s Use% of the filesystem holding `path` (rounded up, as df and pruneguard do).
pub fn df_percent(path: &Path) -> u8 {
    df_field(path, "pcent")
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|err| panic!("df --output=pcent {}: {err}", path.display()))
}

/// Bytes used on the filesystem holding `path`.
pub fn df_used_bytes(path: &Path) -> u64 {
    df_field(path, "used")
        .parse()
        .unwrap_or_else(|err| panic!("df --output=used {}: {err}", path.display()))
}

fn df_field(path: &Path, field: &str) -> String {
    let out = Command::new("df")
        .args(["-B1", &format!("--output={field}")])
        .arg(path)
        .output()
        .expect("df runs");
    assert!(out.status.success(), "df {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A `docker build` (the classic builder, as every target has it) of `dockerfile` in a
/// fresh context tagged `tag`; returns the built image's ID.
pub fn build(sb: &Sandbox, tag: &str, dockerfile: &str) -> String {
    let context = sb
        .scratch()
        .join(format!("build-{}", tag.replace([':', '/'], "-")));
    std::fs::create_dir_all(&context).expect("create the build context");
    std::fs::write(context.join("Dockerfile"), dockerfile).expect("write the Dockerfile");
    let mut command = sb.docker_command();
    command
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", tag])
        .arg(&context);
    let output = command.output().expect("docker build runs");
    assert!(
        output.status.success(),
        "docker build -t {tag} on {}: {}",
        sb.engine(),
        String::from_utf8_lossy(&output.stderr)
    );
    sb.image_id(tag)
        .unwrap_or_else(|| panic!("{tag} exists after the build on {}", sb.engine()))
}
