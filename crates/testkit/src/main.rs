//! `pruneguard-testkit`: the testkit for shell scripts (demo, benches). `mkimages` writes
//! `docker load` archives and prints the image IDs, one per line, in load order (with a
//! shared tag, the last line is the tagged image); `random-bytes` prints seeded random bytes;
//! `report-field` and `report-count` read a JSON report; `cycle-summary` summarises
//! bench/cycle.sh's records; `create-containers` creates containers through the Engine API.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use testkit::containers::{self, ContainerBatch};
use testkit::cycle_summary::{self, CycleRun};
use testkit::{INDEX_PLACEHOLDER, ImageSet, RandomBytes, Tags, report};

#[derive(Parser)]
#[command(
    name = "pruneguard-testkit",
    about = "Generate test images for pruneguard (docker load archives), without any registry; \
             read JSON reports, summarise and set up the benches."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a docker-save archive of COUNT distinct images; print their IDs, one per line.
    Mkimages(Mkimages),
    /// Write LEN deterministic random bytes from SEED to stdout (e.g. build context files).
    RandomBytes {
        #[arg(long)]
        seed: String,
        #[arg(long, value_name = "LEN")]
        bytes: u64,
    },
    /// Print one top-level field of a JSON report (a string without quotes, else JSON).
    ReportField {
        #[arg(value_name = "REPORT.json")]
        file: PathBuf,
        field: String,
    },
    /// Print how many items a top-level list (or object) of a JSON report holds.
    ReportCount {
        #[arg(value_name = "REPORT.json")]
        file: PathBuf,
        field: String,
    },
    /// Summarise bench/cycle.sh's records: a Markdown table, or with --json a JSON summary on
    /// stdout and the table on stderr.
    CycleSummary(CycleSummaryArgs),
    /// Create COUNT containers (never started) through the Engine API on a unix socket.
    CreateContainers(CreateContainers),
}

#[derive(Args)]
struct CycleSummaryArgs {
    /// Print the JSON summary on stdout and the table on stderr.
    #[arg(long)]
    json: bool,
    /// K, the cycles each cleaner ran.
    #[arg(long, value_name = "K")]
    cycles: u64,
    #[arg(long, value_name = "BYTES")]
    base_layer_bytes: u64,
    #[arg(long, value_name = "BYTES")]
    junk_layer_bytes: u64,
    /// Wall time of the prune-af cleaner's run.
    #[arg(long, value_name = "MS")]
    prune_af_ms: u64,
    /// Wall time of the pruneguard cleaner's run.
    #[arg(long, value_name = "MS")]
    pruneguard_ms: u64,
    #[arg(long, value_name = "MS")]
    total_ms: u64,
    /// The daemon's and the registry's versions, as the table shows them.
    #[arg(long, value_name = "TEXT")]
    docker: String,
    #[arg(long)]
    cores: u64,
    /// The records files (one line per cycle of each cleaner).
    #[arg(value_name = "RECORDS", required = true)]
    records: Vec<PathBuf>,
}

#[derive(Args)]
struct CreateContainers {
    #[arg(
        long,
        help = "The daemon: unix:///path/docker.sock (as in DOCKER_HOST) or the socket's path."
    )]
    host: String,
    /// The image of each container; {i} becomes its index (e.g. bench/tagged:{i}).
    #[arg(long, value_name = "PATTERN")]
    image: String,
    #[arg(long)]
    count: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// The containers' command.
    #[arg(last = true, value_name = "CMD", default_values_t = ["/bin/sh".to_owned()])]
    cmd: Vec<String>,
}

#[derive(Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "each bool is one command-line switch, as clap wants it"
)]
#[command(group = clap::ArgGroup::new("tags").required(true))]
#[command(group = clap::ArgGroup::new("when"))]
struct Mkimages {
    /// The archive to write. With --per-image, a pattern holding {i} (the image's index).
    #[arg(value_name = "OUT.tar")]
    out: PathBuf,
    /// NAME:TAG every image is listed under (after `docker load` the last one keeps it).
    #[arg(long, group = "tags")]
    tag: Option<String>,
    /// A NAME:TAG pattern holding {i}: each image gets its own tag (e.g. bench/tagged:{i}).
    #[arg(long, group = "tags", value_name = "PATTERN")]
    tag_each: Option<String>,
    /// List no tags: every image is dangling after `docker load`.
    #[arg(long, group = "tags")]
    no_tag: bool,
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// RFC 3339 creation time of every image (default: now).
    #[arg(long, group = "when", value_name = "RFC3339")]
    created: Option<String>,
    /// Creation time = now - SECONDS.
    #[arg(long, group = "when", value_name = "SECONDS")]
    age: Option<f64>,
    /// Give every image its own layer of this many seeded random bytes.
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    layer_bytes: u64,
    /// Base the images on /bin/busybox (Debian's busybox-static) and /bin/sh; Cmd busybox sleep 3600.
    #[arg(long)]
    busybox: bool,
    /// A config label (repeatable).
    #[arg(long, value_name = "K=V")]
    label: Vec<String>,
    /// Seed for distinct configs and random layers (default: random, so every call makes new IDs).
    #[arg(long)]
    seed: Option<String>,
    /// Make each image the parent of the next (a classic-builder chain; one archive only).
    #[arg(long)]
    parent_chain: bool,
    /// Write one archive per image, at OUT with {i} replaced by the image's index
    /// (Podman and containerd's image store load one image per tag from an archive).
    #[arg(long)]
    per_image: bool,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pruneguard-testkit: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Mkimages(args) => mkimages(&args),
        Command::RandomBytes { seed, bytes } => {
            let mut out = io::stdout().lock();
            io::copy(&mut RandomBytes::new(&seed, bytes), &mut out)
                .and_then(|_| out.flush())
                .context("cannot write the random bytes to stdout")?;
            Ok(())
        }
        Command::ReportField { file, field } => {
            let report = report::read_report(&file)?;
            let value = report::field(&report, &field)?;
            print_line(&report::shell_text(value))
        }
        Command::ReportCount { file, field } => {
            let report = report::read_report(&file)?;
            let count = report::count(report::field(&report, &field)?, &field)?;
            print_line(&count.to_string())
        }
        Command::CycleSummary(args) => cycle_summary(&args),
        Command::CreateContainers(args) => {
            let socket = containers::socket_path(&args.host)?;
            ContainerBatch {
                image: args.image,
                count: args.count,
                cmd: args.cmd,
                workers: args.workers,
            }
            .create(&socket)
        }
    }
}

fn print_line(text: &str) -> Result<()> {
    writeln!(io::stdout().lock(), "{text}").context("cannot write to stdout")
}

fn cycle_summary(args: &CycleSummaryArgs) -> Result<()> {
    let mut records = String::new();
    for path in &args.records {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the records file {}", path.display()))?;
        records.push_str(&text);
        if !records.is_empty() && !records.ends_with('\n') {
            records.push('\n');
        }
    }
    let run = CycleRun {
        cycles: args.cycles,
        base_layer_bytes: args.base_layer_bytes,
        junk_layer_bytes: args.junk_layer_bytes,
        prune_af_ms: args.prune_af_ms,
        pruneguard_ms: args.pruneguard_ms,
        total_ms: args.total_ms,
        docker: args.docker.clone(),
        cores: args.cores,
    };
    let summary = cycle_summary::summarize(&run, &records)?;
    if args.json {
        print_line(&summary.json)?;
        writeln!(io::stderr().lock(), "{}", summary.table).context("cannot write to stderr")
    } else {
        print_line(&summary.table)
    }
}

fn mkimages(args: &Mkimages) -> Result<()> {
    let tags = match (&args.tag, &args.tag_each) {
        (Some(tag), _) => Tags::Shared(tag.clone()),
        (None, Some(pattern)) => Tags::Each(pattern.clone()),
        (None, None) => Tags::None,
    };
    let mut set = ImageSet::new()
        .count(args.count)
        .tags(tags)
        .layer_bytes(args.layer_bytes)
        .parent_chain(args.parent_chain);
    if let Some(created) = &args.created {
        set = set.created(testkit::parse_time(created).context("--created")?);
    }
    if let Some(age) = args.age {
        let age = Duration::try_from_secs_f64(age).with_context(|| {
            format!("--age must be a non-negative number of seconds, got {age}")
        })?;
        set = set.age(age);
    }
    if args.busybox {
        set = set.busybox();
    }
    for item in &args.label {
        let Some((key, value)) = item.split_once('=').filter(|(key, _)| !key.is_empty()) else {
            bail!("--label expects KEY=VALUE, got {item:?}");
        };
        set = set.label(key, value);
    }
    if let Some(seed) = &args.seed {
        set = set.seed(seed);
    }

    let ids = if args.per_image {
        let pattern = args.out.to_string_lossy().into_owned();
        if !pattern.contains(INDEX_PLACEHOLDER) {
            bail!(
                "--per-image writes one archive per image: put {INDEX_PLACEHOLDER} in OUT.tar \
                 (e.g. images-{INDEX_PLACEHOLDER}.tar)"
            );
        }
        set.write_per_image(|index| {
            PathBuf::from(pattern.replace(INDEX_PLACEHOLDER, &index.to_string()))
        })?
        .into_iter()
        .map(|written| written.id)
        .collect()
    } else {
        set.write(&args.out)?
    };
    let mut out = io::stdout().lock();
    for id in ids {
        writeln!(out, "{id}").context("cannot print the image IDs")?;
    }
    Ok(())
}
