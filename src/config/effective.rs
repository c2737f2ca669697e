//! The effective configuration as a config file: every key, in the file's own layout, with
//! durations as the README writes them. Loading the output back gives the same settings, so
//! `pruneguard config > config.toml` is a valid starting point.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::cli::OutputFormat;
use crate::policy::DiskPath;

use super::Settings;
use super::values::format_duration;

/// A TOML string literal (quoted and escaped).
fn string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn duration(value: Duration) -> String {
    string(&format_duration(value))
}

fn path(value: &Path) -> String {
    string(&value.display().to_string())
}

fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|item| string(&item.to_string()))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Renders `settings` as a config file, headed by a comment naming the sources.
#[expect(
    clippy::too_many_lines,
    reason = "one flat list of every key, in the order of the file"
)]
pub fn render(settings: &Settings) -> String {
    let gates = &settings.policy.gates;
    let workload = &gates.workload;
    let mut out = match &settings.config_file {
        Some(path) => format!(
            "# Effective configuration (defaults < {} < environment < flags).\n",
            path.display()
        ),
        None => {
            "# Effective configuration (defaults < environment < flags; no config file read).\n"
                .to_string()
        }
    };
    let mut table = |name: &str, keys: &[(&str, Option<String>, &str)]| {
        let _ = writeln!(out, "\n[{name}]");
        for (key, value, unset) in keys {
            // Writing to a String cannot fail.
            let _ = match value {
                Some(value) => writeln!(out, "{key} = {value}"),
                None => writeln!(out, "# {key} is not set: {unset}"),
            };
        }
    };
    let set = Some;
    table(
        "engine",
        &[
            ("host", set(string(&settings.host.to_string())), ""),
            ("tls_verify", set(settings.tls_verify.to_string()), ""),
            (
                "tls_cert_path",
                settings.tls_cert_path.as_deref().map(path),
                "no TLS files (a TLS host needs them)",
            ),
            ("api_timeout", set(duration(settings.api_timeout)), ""),
            (
                "max_list_size",
                set(string(&super::format_size(settings.max_list_size))),
                "",
            ),
        ],
    );
    table(
        "policy",
        &[
            ("min_age", set(duration(settings.policy.min_age)), ""),
            (
                "age_basis",
                set(string(settings.policy.age_basis.as_str())),
                "",
            ),
        ],
    );
    table(
        "gates",
        &[
            ("wait", set(duration(gates.wait)), ""),
            ("wait_interval", set(duration(gates.wait_interval)), ""),
        ],
    );
    table(
        "gates.disk",
        &[
            (
                "paths",
                set(list(gates.disk.paths.iter().map(DiskPath::text))),
                "",
            ),
            (
                "threshold_percent",
                set(gates.disk.threshold_percent.to_string()),
                "",
            ),
            (
                "inode_threshold_percent",
                gates
                    .disk
                    .inode_threshold_percent
                    .map(|percent| percent.to_string()),
                "inode usage does not open the disk gate",
            ),
        ],
    );
    table(
        "gates.quiet",
        &[("period", set(duration(gates.quiet.period)), "")],
    );
    table(
        "gates.workload",
        &[
            ("stacks", set(list(&workload.stacks)), ""),
            ("labels", set(list(&workload.labels)), ""),
            ("containers", set(list(&workload.containers)), ""),
            (
                "lock_files",
                set(list(workload.lock_files.iter().map(|file| file.display()))),
                "",
            ),
            (
                "stale_lock_after",
                set(duration(workload.stale_lock_after)),
                "",
            ),
        ],
    );
    table(
        "gates.swarm",
        &[
            ("enabled", set(gates.swarm.enabled.to_string()), ""),
            ("stuck_after", set(duration(gates.swarm.stuck_after)), ""),
            (
                "worker_evidence",
                set(list(&gates.swarm.worker_evidence)),
                "",
            ),
            (
                "manager_host",
                settings
                    .swarm_manager_host
                    .as_ref()
                    .map(|host| string(&host.to_string())),
                "a worker judges itself from local evidence only",
            ),
            (
                "manager_tls_cert_path",
                settings
                    .swarm_manager_tls
                    .as_ref()
                    .map(|files| path(&files.dir)),
                "the manager is not spoken to over TLS",
            ),
        ],
    );
    table("state", &[("dir", set(path(&settings.state_dir)), "")]);
    let format = match settings.output {
        OutputFormat::Text => "text",
        OutputFormat::Json => "json",
    };
    table(
        "output",
        &[
            ("format", set(string(format)), ""),
            (
                "metrics_file",
                settings.metrics_file.as_deref().map(path),
                "no metrics are written",
            ),
        ],
    );
    table(
        "watch",
        &[("interval", set(duration(settings.watch_interval)), "")],
    );
    for (name, keys) in super::tiers::render(&settings.tiers) {
        let keys: Vec<(&str, Option<String>, &str)> = keys
            .into_iter()
            .map(|(key, value)| (key, Some(value), ""))
            .collect();
        table(name, &keys);
    }
    out
}
