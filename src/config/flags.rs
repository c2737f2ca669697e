//! The command-line layer: [`RunArgs`] (already typed by clap where clap can) into a
//! [`SettingsLayer`]. Relative paths are taken from where the command runs.

use std::time::Duration;

use crate::cli::RunArgs;
use crate::policy::{LabelSelector, Pattern};

use super::ConfigError;
use super::host::HostUrl;
use super::layer::{SettingsLayer, Source, Sourced};
use super::values;

fn flag<T>(name: &'static str, value: Option<T>) -> Option<Sourced<T>> {
    value.map(|value| Sourced::new(value, Source::Flag(name)))
}

fn duration(name: &'static str, value: Option<Duration>) -> Option<Sourced<Duration>> {
    flag(name, value)
}

/// A repeatable flag: given at least once, it replaces the lower layers' list.
fn list<T>(
    name: &'static str,
    key: &str,
    items: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<Sourced<Vec<T>>>, ConfigError> {
    if items.is_empty() {
        return Ok(None);
    }
    let source = Source::Flag(name);
    let parsed = items
        .iter()
        .map(|item| parse(item).map_err(|problem| ConfigError::at(&source, key, &problem)))
        .collect::<Result<_, _>>()?;
    Ok(Some(Sourced::new(parsed, source)))
}

/// A host URL flag. Empty means the default, as an empty `DOCKER_HOST` does.
fn host_flag(
    flag: &'static str,
    key: &str,
    value: Option<&str>,
) -> Result<Option<Sourced<HostUrl>>, ConfigError> {
    let Some(text) = value.filter(|host| !host.trim().is_empty()) else {
        return Ok(None);
    };
    let source = Source::Flag(flag);
    let host = HostUrl::parse(text).map_err(|problem| ConfigError::at(&source, key, &problem))?;
    Ok(Some(Sourced::new(host, source)))
}

/// The flags' layer.
pub fn layer(args: &RunArgs) -> Result<SettingsLayer, ConfigError> {
    let mut layer = SettingsLayer::default();
    layer.engine.host = host_flag("-H/--host", "engine.host", args.host.as_deref())?;
    // A switch: given, it turns TLS on; absent, it leaves the lower layers' choice.
    layer.engine.tls_verify = args
        .tlsverify
        .then(|| Sourced::new(true, Source::Flag("--tlsverify")));
    layer.engine.tls_cert_path = flag(
        "--tls-cert-path",
        args.tls_cert_path.as_deref().map(values::from_cwd),
    );
    layer.engine.api_timeout = duration("--api-timeout", args.api_timeout);
    layer.engine.max_list_size = args
        .max_list_size
        .map(|size| Sourced::new(size, Source::Flag("--max-list-size")));
    layer.policy.min_age = duration("--min-age", args.min_age);
    layer.policy.age_basis = flag("--age-basis", args.age_basis);

    let gates = &mut layer.gates;
    gates.wait = duration("--wait-for-gates", args.wait_for_gates);
    gates.wait_interval = duration("--wait-interval", args.wait_interval);
    // Repeatable: given at least once, the flags are the whole list.
    gates.disk.paths = (!args.disk_paths.is_empty()).then(|| {
        Sourced::new(
            args.disk_paths
                .iter()
                .map(|path| values::disk_path_from_cwd(path))
                .collect(),
            Source::Flag("--disk-path"),
        )
    });
    gates.disk.threshold_percent = flag("--disk-threshold", args.disk_threshold);
    gates.disk.inode_threshold_percent = flag("--disk-inode-threshold", args.disk_inode_threshold);
    gates.quiet.period = duration("--quiet-period", args.quiet_period);

    let workload = &mut gates.workload;
    workload.stacks = list(
        "--workload-stack",
        "gates.workload.stacks",
        &args.workload_stacks,
        Pattern::new,
    )?;
    workload.labels = list(
        "--workload-label",
        "gates.workload.labels",
        &args.workload_labels,
        LabelSelector::parse,
    )?;
    workload.containers = list(
        "--workload-container",
        "gates.workload.containers",
        &args.workload_containers,
        Pattern::new,
    )?;
    workload.lock_files = if args.workload_lock_files.is_empty() {
        None
    } else {
        let source = Source::Flag("--workload-lock-file");
        let files = args
            .workload_lock_files
            .iter()
            .map(|path| {
                values::lock_file(&path.to_string_lossy())
                    .map(|_| values::from_cwd(path))
                    .map_err(|problem| {
                        ConfigError::at(&source, "gates.workload.lock_files", &problem)
                    })
            })
            .collect::<Result<_, _>>()?;
        Some(Sourced::new(files, source))
    };
    workload.stale_lock_after = duration(
        "--workload-stale-lock-after",
        args.workload_stale_lock_after,
    );

    // The flag only turns the gate off; leaving it out leaves the lower layers' choice.
    gates.swarm.enabled = flag("--no-swarm-gate", args.no_swarm_gate.then_some(false));
    gates.swarm.stuck_after = duration("--swarm-stuck-after", args.swarm_stuck_after);
    gates.swarm.worker_evidence = list(
        "--swarm-worker-evidence",
        "gates.swarm.worker_evidence",
        &args.swarm_worker_evidence,
        crate::worker_evidence::WorkerEvidence::parse,
    )?;
    gates.swarm.manager_host = host_flag(
        "--swarm-manager-host",
        "gates.swarm.manager_host",
        args.swarm_manager_host.as_deref(),
    )?;
    gates.swarm.manager_tls_cert_path = flag(
        "--swarm-manager-tls-cert-path",
        args.swarm_manager_tls_cert_path
            .as_deref()
            .map(values::from_cwd),
    );

    layer.state.dir = flag(
        "--state-dir",
        args.state_dir.as_deref().map(values::from_cwd),
    );
    layer.output.format = flag("--output", args.output);
    layer.output.metrics_file = flag(
        "--metrics-file",
        args.metrics_file.as_deref().map(values::from_cwd),
    );
    layer.tiers = super::tiers::flag_layer(&args.tiers)?;
    Ok(layer)
}
