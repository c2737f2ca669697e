//! `pruneguard-testkit`: the testkit for shell scripts (demo, benches). `mkimages` writes
//! `docker load` archives and prints the image IDs, one per line, in load order (with a
//! shared tag, the last line is the tagged image); `random-bytes` prints seeded random bytes.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use testkit::{INDEX_PLACEHOLDER, ImageSet, RandomBytes, Tags};

#[derive(Parser)]
#[command(
    name = "pruneguard-testkit",
    about = "Generate test images for pruneguard (docker load archives), without any registry."
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
