//! Command-line flags, as clap parses them. Only raw values live here: turning them into typed,
//! validated settings (and merging them with the environment and the config file) is
//! `config::Settings::resolve`'s job.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
The default policy removes only dangling (untagged) images created at least 24h ago that no
container uses (in any state) and that have no child images, and only when every gate is open:
  disk      the data root's filesystem is at least 80 % full (as df computes Use%)
  workload  no configured app deploy is live (stacks, labels, container names, lock files)
  swarm     no swarm service is updating or has tasks still starting
  quiet     no image pull/load/import/tag or container create in the last 10m
Tagged images, volumes, containers, networks and build cache are never touched.

Exit status: 0 finished (pruned, nothing to do, or skipped because a gate is closed),
1 runtime failure (daemon unreachable, another run holds the lock; doctor: a check failed),
2 usage or configuration error, 3 some planned deletions failed.

Start with `pruneguard doctor`, then `pruneguard plan` to see what a run would do.";

/// Gated, conservative Docker image pruning: only dangling images, only under disk pressure,
/// never while a deploy is live.
#[derive(Debug, Parser)]
#[command(name = "pruneguard", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// More log output on stderr (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Accepted before the subcommand as well as after it.
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The flags every command accepts before or after its name (`pruneguard --config X plan`
/// and `pruneguard plan --config X` are the same). Each has the id of the flag of the same name
/// in [`RunArgs`] and [`StatusArgs`]: clap's global propagation fills those with a value given
/// before the subcommand, so the commands read only their own arguments, and their `--help`
/// keeps its own wording. A command that has no use for one (`-H` for `status`, all of them for
/// `completions` and `man`) accepts and ignores it.
#[derive(Debug, Clone, Default, Args)]
#[expect(
    clippy::doc_markdown,
    reason = "these comments are --help text: `[env: NAME] [key: a.b]` would print the backticks"
)]
pub struct GlobalArgs {
    /// Config file (TOML). Default: /etc/pruneguard/config.toml, used only if it exists.
    ///
    /// [env: PRUNEGUARD_CONFIG]
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// Ignore every config file; use defaults, environment and flags only.
    #[arg(long, global = true)]
    pub no_config: bool,

    /// Docker daemon to talk to (<unix:///var/run/docker.sock>, <tcp://host:2375>,
    /// <https://host:2376> with --tls-cert-path).
    ///
    /// [env: DOCKER_HOST] [key: engine.host]
    #[arg(short = 'H', long, value_name = "URL", global = true)]
    pub host: Option<String>,

    /// Report format on stdout.
    ///
    /// [env: PRUNEGUARD_OUTPUT] [key: output.format]
    #[arg(long, value_enum, value_name = "FORMAT", global = true)]
    pub output: Option<OutputFormat>,

    /// Where a run takes its lock and writes the last run's report, and where `status` reads it
    /// [default: /var/lib/pruneguard].
    ///
    /// [env: PRUNEGUARD_STATE_DIR] [key: state.dir]
    #[arg(long, value_name = "PATH", global = true)]
    pub state_dir: Option<PathBuf>,
}

/// The global flags, hidden, for the commands that ignore them (`completions`, `man`): with the
/// same ids, they keep clap from listing the global ones in those commands' `--help`, while a
/// global flag given anywhere is still accepted.
fn ignored_global_flags() -> [clap::Arg; 5] {
    let path = || clap::value_parser!(PathBuf);
    [
        clap::Arg::new("config").long("config").value_parser(path()),
        clap::Arg::new("no_config")
            .long("no-config")
            .action(clap::ArgAction::SetTrue),
        clap::Arg::new("host").short('H').long("host"),
        clap::Arg::new("output")
            .long("output")
            .value_parser(clap::value_parser!(OutputFormat)),
        clap::Arg::new("state_dir")
            .long("state-dir")
            .value_parser(path()),
    ]
    .map(|arg| arg.hide(true))
}

/// `plan`'s help: a plan is always a dry run, takes no lock and writes no report or metrics.
const PLAN_STATE_DIR_SHORT: &str = "Not used by a plan, which takes no lock and writes no report";
const PLAN_METRICS_FILE_SHORT: &str = "Not written by a plan, which writes no metrics";
const PLAN_STATE_DIR_HELP: &str = "Not used by a plan, which takes no lock and writes no report; \
accepted so that a run's flags work for a plan [default: /var/lib/pruneguard].\n\n\
[env: PRUNEGUARD_STATE_DIR] [key: state.dir]";
const PLAN_METRICS_FILE_HELP: &str = "Not written by a plan, which writes no metrics; accepted \
so that a run's flags work for a plan.\n\n\
[env: PRUNEGUARD_METRICS_FILE] [key: output.metrics_file]";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Gather, decide, act and report: the oneshot a timer runs.
    Run(RunArgs),
    /// Run the same cycle as `run` every --interval, for long-running hosts and swarm global
    /// services; metrics also served for Prometheus with --metrics-listen.
    #[command(after_help = WATCH_AFTER_HELP)]
    Watch(WatchArgs),
    /// Show what `run` would do and why, without deleting anything (= `run --dry-run`).
    // A plan is always dry: `--dry-run` is accepted but not shown.
    #[command(
        mut_arg("dry_run", |arg| arg.hide(true)),
        mut_arg("state_dir", |arg| arg.help(PLAN_STATE_DIR_SHORT).long_help(PLAN_STATE_DIR_HELP)),
        mut_arg("metrics_file", |arg| arg
            .help(PLAN_METRICS_FILE_SHORT)
            .long_help(PLAN_METRICS_FILE_HELP)),
    )]
    Plan(RunArgs),
    /// Check the host: daemon, data root persistence, registry auth, conflicting prune timers.
    Doctor(RunArgs),
    /// Print the effective configuration (defaults < file < environment < flags) as TOML.
    Config(ConfigArgs),
    /// Summarise the last run recorded in the state directory.
    Status(StatusArgs),
    /// Print a shell completion script.
    #[command(args = ignored_global_flags())]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    #[command(args = ignored_global_flags())]
    Man,
}

/// Flags shared by `run`, `plan`, `doctor` and `config`. Each names the environment variable
/// and the config key it overrides; `config::Settings` reads those (clap reads no environment,
/// so one place decides precedence).
#[derive(Debug, Clone, Default, Args)]
#[expect(
    clippy::doc_markdown,
    reason = "these comments are --help text: `[env: NAME] [key: a.b]` would print the backticks"
)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each bool is a switch of its own on the command line"
)]
pub struct RunArgs {
    /// Config file (TOML). Default: /etc/pruneguard/config.toml, used only if it exists.
    ///
    /// [env: PRUNEGUARD_CONFIG]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Ignore every config file; use defaults, environment and flags only.
    #[arg(long)]
    pub no_config: bool,

    /// Docker daemon to talk to (<unix:///var/run/docker.sock>, <tcp://host:2375>,
    /// <https://host:2376> with --tls-cert-path).
    ///
    /// [env: DOCKER_HOST] [key: engine.host]
    #[arg(short = 'H', long, value_name = "URL")]
    pub host: Option<String>,

    /// Speak TLS to a tcp:// host, verifying the daemon's certificate against ca.pem in
    /// --tls-cert-path (as the docker CLI's --tlsverify does; an https:// host always does).
    ///
    /// [env: DOCKER_TLS_VERIFY] [key: engine.tls_verify]
    #[arg(long)]
    pub tlsverify: bool,

    /// Directory with the TLS files of a TLS host, in Docker's layout: ca.pem (the CA that
    /// signed the daemon's certificate), and cert.pem with key.pem when the daemon asks for a
    /// client certificate.
    ///
    /// [env: DOCKER_CERT_PATH] [key: engine.tls_cert_path]
    #[arg(long, value_name = "DIR")]
    pub tls_cert_path: Option<PathBuf>,

    /// Report format on stdout.
    ///
    /// [env: PRUNEGUARD_OUTPUT] [key: output.format]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,

    /// Where the run lock and the last run's report live [default: /var/lib/pruneguard].
    ///
    /// [env: PRUNEGUARD_STATE_DIR] [key: state.dir]
    #[arg(long, value_name = "PATH")]
    pub state_dir: Option<PathBuf>,

    /// Decide and report, but delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Only images at least this old are candidates, measured by --age-basis [default: 24h].
    ///
    /// [env: PRUNEGUARD_MIN_AGE] [key: policy.min_age]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub min_age: Option<Duration>,

    /// What --min-age is measured from: unused_for (since pruneguard first saw the image
    /// untagged and unused by every container; a first run deletes nothing) or created (since
    /// the image was built) [default: unused_for].
    ///
    /// [env: PRUNEGUARD_AGE_BASIS] [key: policy.age_basis]
    #[arg(long, value_name = "BASIS", value_parser = crate::policy::AgeBasis::parse)]
    pub age_basis: Option<crate::policy::AgeBasis>,

    /// The disk gate opens at this Use% of the data root's filesystem [default: 80].
    ///
    /// [env: PRUNEGUARD_DISK_THRESHOLD] [key: gates.disk.threshold_percent]
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub disk_threshold: Option<u8>,

    /// The disk gate also opens at this inode Use% [default: inodes not checked].
    ///
    /// [env: PRUNEGUARD_DISK_INODE_THRESHOLD] [key: gates.disk.inode_threshold_percent]
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub disk_inode_threshold: Option<u8>,

    /// Measure this path's filesystem; repeatable, the gate opens when any of them is full.
    /// `auto` stands for the filesystems of the engine's image data: the data root and, on
    /// the containerd image store, containerd's root [default: auto].
    ///
    /// [env: PRUNEGUARD_DISK_PATHS] (`:`-separated) [env: PRUNEGUARD_DISK_PATH] (one path)
    /// [key: gates.disk.paths]
    #[arg(long = "disk-path", value_name = "PATH")]
    pub disk_paths: Vec<PathBuf>,

    /// The quiet gate stays closed this long after a pull/load/import/tag or container create; 0
    /// disables it [default: 10m].
    ///
    /// [env: PRUNEGUARD_QUIET_PERIOD] [key: gates.quiet.period]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub quiet_period: Option<Duration>,

    /// A stack or compose project glob whose live containers (or services) close the workload gate.
    /// Repeatable; replaces the config file's list.
    ///
    /// [key: gates.workload.stacks]
    #[arg(long = "workload-stack", value_name = "GLOB")]
    pub workload_stacks: Vec<String>,

    /// A `key` or `key=value` label selector on containers and services. Repeatable.
    ///
    /// [key: gates.workload.labels]
    #[arg(long = "workload-label", value_name = "SELECTOR")]
    pub workload_labels: Vec<String>,

    /// A container name glob. Repeatable.
    ///
    /// [key: gates.workload.containers]
    #[arg(long = "workload-container", value_name = "GLOB")]
    pub workload_containers: Vec<String>,

    /// A lock file; while it exists the workload gate is closed. Repeatable.
    ///
    /// [key: gates.workload.lock_files]
    #[arg(long = "workload-lock-file", value_name = "PATH")]
    pub workload_lock_files: Vec<PathBuf>,

    /// A lock file older than this is reported as stale (it still closes the gate) [default: 6h].
    ///
    /// [env: PRUNEGUARD_WORKLOAD_STALE_LOCK_AFTER] [key: gates.workload.stale_lock_after]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub workload_stale_lock_after: Option<Duration>,

    /// Do not evaluate the swarm gate (reported as disabled).
    ///
    /// [env: PRUNEGUARD_NO_SWARM_GATE] [key: gates.swarm.enabled]
    #[arg(long)]
    pub no_swarm_gate: bool,

    /// Enable an opt-in reclaim tier for this run: unused_tagged or build_cache (repeatable).
    /// The dangling tier always runs first and is not a value here.
    ///
    /// [key: tiers.unused_tagged.enabled, tiers.build_cache.enabled]
    #[arg(long = "tier", value_name = "NAME")]
    pub tiers: Vec<String>,

    /// A swarm service or task converging longer than this counts as stuck and no longer blocks
    /// pruning [default: 30m].
    ///
    /// [env: PRUNEGUARD_SWARM_STUCK_AFTER] [key: gates.swarm.stuck_after]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub swarm_stuck_after: Option<Duration>,

    /// What a swarm worker is judged by (repeatable; replaces the list): created_tasks,
    /// exited_tasks, task_events, pulls [default: all four]. The last three look back over the
    /// quiet period.
    ///
    /// [key: gates.swarm.worker_evidence]
    #[arg(long = "swarm-worker-evidence", value_name = "KIND")]
    pub swarm_worker_evidence: Vec<String>,

    /// On a swarm worker, ask this manager for the tasks assigned to this node (unix:///path,
    /// tcp://host:port or https://host:port, as for -H): the gate closes while one that should
    /// run does not, and when the manager cannot be asked [default: not set, local evidence
    /// only].
    ///
    /// [env: PRUNEGUARD_SWARM_MANAGER_HOST] [key: gates.swarm.manager_host]
    #[arg(long, value_name = "URL")]
    pub swarm_manager_host: Option<String>,

    /// Speak TLS to --swarm-manager-host with the files of this directory, in Docker's layout:
    /// ca.pem (the CA that signed the manager's certificate, always verified), and cert.pem
    /// with key.pem when the manager (or its proxy) asks for a client certificate. Needed for
    /// an https:// manager; makes a tcp:// manager TLS [default: not set].
    ///
    /// [env: PRUNEGUARD_SWARM_MANAGER_TLS_CERT_PATH] [key: gates.swarm.manager_tls_cert_path]
    #[arg(long, value_name = "DIR")]
    pub swarm_manager_tls_cert_path: Option<PathBuf>,

    /// While the disk gate is open but another gate is closed, re-check for up to this long instead
    /// of skipping [default: 0s, no wait]. A plan waits only when given this flag.
    ///
    /// [env: PRUNEGUARD_WAIT_FOR_GATES] [key: gates.wait]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait_for_gates: Option<Duration>,

    /// How often to re-check the gates while waiting [default: 30s].
    ///
    /// [env: PRUNEGUARD_WAIT_INTERVAL] [key: gates.wait_interval]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait_interval: Option<Duration>,

    /// Give up on a Docker API request after this long; at least 1s [default: 30s].
    ///
    /// [env: PRUNEGUARD_API_TIMEOUT] [key: engine.api_timeout]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub api_timeout: Option<Duration>,

    /// Refuse a list answer (images, containers, services, tasks) larger than this; nothing is
    /// deleted then. Raise it on hosts with very many images or containers; each MiB of list
    /// costs about 5 MiB of memory while decoding [default: 4MiB].
    ///
    /// [env: PRUNEGUARD_MAX_LIST_SIZE] [key: engine.max_list_size]
    #[arg(long, value_name = "SIZE", value_parser = crate::config::parse_size)]
    pub max_list_size: Option<u64>,

    /// Write `node_exporter` textfile metrics here after a run (atomically).
    ///
    /// [env: PRUNEGUARD_METRICS_FILE] [key: output.metrics_file]
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

const WATCH_AFTER_HELP: &str = "\
Each tick is one `pruneguard run`: gather, decide, delete (every gate open), report. The tick's
report replaces last-run.json in the state directory (see `pruneguard status`) and the
--metrics-file; stdout stays empty. One log line per tick goes to stderr. A tick that fails (the
daemon is down, a list is refused) deletes nothing, is logged and counted in the metrics
(pruneguard_last_run_success 0), and the next tick comes as planned.

Ticks start every --interval, each pause drawn from 90 % to 110 % of it (jitter, so that the
nodes of a swarm do not all prune at once); the first tick starts at once.

SIGTERM or SIGINT during a tick: no deletion starts after it, the ones in flight are seen through,
the tick's report is written, and watch exits 0. Between ticks: exits 0 at once. So systemd
(Restart=on-failure) and Docker (restart_policy on-failure) restart it only after a failure:
a configuration error (exit 2), a lock held by another run or an address in use (exit 1).

Examples:
  pruneguard watch --interval 1h
  pruneguard watch --interval 10m --metrics-listen 127.0.0.1:9708   # curl 127.0.0.1:9708/metrics";

/// Flags of `watch`: those of a run, the interval and the metrics address.
#[derive(Debug, Clone, Default, Args)]
#[expect(
    clippy::doc_markdown,
    reason = "these comments are --help text: `[env: NAME] [key: a.b]` would print the backticks"
)]
pub struct WatchArgs {
    /// Time between the starts of two ticks, with ±10 % jitter; at least 1s [default: 1h].
    ///
    /// [env: PRUNEGUARD_WATCH_INTERVAL] [key: watch.interval]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// Serve the latest tick's metrics over HTTP at ADDR (GET /metrics, Prometheus text format),
    /// e.g. 127.0.0.1:9708 [default: not served].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Flags of `config`: those of a run (the settings it prints), and `--check`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Only validate the settings (types, ranges, globs, path syntax) and print one line: exit 0
    /// if they are valid, 2 naming the file, line and key if not. Reads the config file and
    /// nothing else: no daemon, no check that directories exist (usable in a build sandbox).
    #[arg(long)]
    pub check: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Flags of `status`. The state directory is resolved as a run resolves it (flag,
/// environment, config file, default).
#[derive(Debug, Clone, Default, Args)]
#[expect(
    clippy::doc_markdown,
    reason = "these comments are --help text: `[env: NAME] [key: a.b]` would print the backticks"
)]
pub struct StatusArgs {
    /// Config file (TOML) whose `state.dir` to read. Default: /etc/pruneguard/config.toml, used
    /// only if it exists.
    ///
    /// [env: PRUNEGUARD_CONFIG]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Ignore every config file.
    #[arg(long)]
    pub no_config: bool,

    /// Where the last run's report lives [default: /var/lib/pruneguard].
    ///
    /// [env: PRUNEGUARD_STATE_DIR] [key: state.dir]
    #[arg(long, value_name = "PATH")]
    pub state_dir: Option<PathBuf>,

    /// Summary format on stdout.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    pub output: OutputFormat,

    /// Accepted (a global flag) and ignored: `status` reads a file and talks to no daemon.
    #[arg(short = 'H', long, value_name = "URL", hide = true)]
    pub host: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// A summary for people.
    #[default]
    Text,
    /// One JSON document (see docs/report-schema.md).
    Json,
}

/// Parses a humantime duration such as `24h`, `90m` or `0s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|error| format!("{error}; write a duration such as 24h, 90m or 0s"))
}
