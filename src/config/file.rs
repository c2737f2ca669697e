//! The config file layer: TOML as written (with spans, so every error names the file and the
//! line), turned into a [`SettingsLayer`]. Unknown keys and values of the wrong type are errors.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::policy::{LabelSelector, Pattern};

use super::ConfigError;
use super::layer::{
    DiskLayer, DiskPath, EngineLayer, GatesLayer, OutputLayer, PolicyLayer, QuietLayer,
    SettingsLayer, Source, Sourced, StateLayer, SwarmLayer, WatchLayer, WorkloadLayer,
};
use super::values;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    engine: FileEngine,
    policy: FilePolicy,
    gates: FileGates,
    state: FileState,
    output: FileOutput,
    watch: FileWatch,
    tiers: super::tiers::FileTiers,
}

type Text = Option<Spanned<String>>;
type List = Option<Spanned<Vec<Spanned<String>>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileEngine {
    host: Text,
    tls_verify: Option<Spanned<bool>>,
    tls_cert_path: Text,
    api_timeout: Text,
    max_list_size: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FilePolicy {
    min_age: Text,
    age_basis: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileGates {
    wait: Text,
    wait_interval: Text,
    disk: FileDisk,
    quiet: FileQuiet,
    workload: FileWorkload,
    swarm: FileSwarm,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileDisk {
    /// The one-path alias of `paths`, kept from before `paths` existed.
    path: Text,
    paths: List,
    threshold_percent: Option<Spanned<i64>>,
    inode_threshold_percent: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileQuiet {
    period: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileWorkload {
    stacks: List,
    labels: List,
    containers: List,
    lock_files: List,
    stale_lock_after: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileSwarm {
    enabled: Option<Spanned<bool>>,
    stuck_after: Text,
    worker_evidence: List,
    manager_host: Text,
    manager_tls_cert_path: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileState {
    dir: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileWatch {
    interval: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileOutput {
    format: Text,
    metrics_file: Text,
}

/// Reads, parses and checks the config file at `path` into a layer.
pub fn load(path: &Path) -> Result<SettingsLayer, ConfigError> {
    let text = read_regular(path).map_err(|error| {
        ConfigError(format!(
            "cannot read the config file {}: {error}. Fix the path given with --config or \
             PRUNEGUARD_CONFIG, or pass --no-config to run on defaults.",
            path.display()
        ))
    })?;
    parse(path, &text)
}

/// A config file is a regular file of modest size: a FIFO or a device would block or never
/// end, so it is opened without blocking and refused unless it is a regular file (symlinks to
/// one are fine: /etc/pruneguard/config.toml is often a link into the Nix store).
fn read_regular(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
    let file = std::fs::OpenOptions::new()
        .read(true)
        // O_NONBLOCK fits in an i32 (it is one of open(2)'s flag bits).
        .custom_flags(i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0))
        .open(path)
        .map_err(|error| error.to_string())?;
    let meta = file.metadata().map_err(|error| error.to_string())?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(format!("it is larger than {MAX_CONFIG_BYTES} bytes"));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES)
        .read_to_string(&mut text)
        .map_err(|error| error.to_string())?;
    Ok(text)
}

/// Parses config `text` read from `path` (named in errors) into a layer.
pub fn parse(path: &Path, text: &str) -> Result<SettingsLayer, ConfigError> {
    let file = Lines { path, text };
    let raw = toml::from_str::<FileConfig>(text).map_err(|error| {
        // toml's message names an unknown key but not the key of a value of the wrong type:
        // quoting the line names it either way.
        let quoted = error
            .span()
            .and_then(|span| text.get(..span.start.min(text.len())))
            .map(|before| {
                let start = before.rfind('\n').map_or(0, |newline| newline + 1);
                let line = text[start..].lines().next().unwrap_or("").trim();
                line.chars().take(100).collect::<String>()
            })
            .filter(|line| !line.is_empty())
            .map(|line| format!(" (in `{line}`)"))
            .unwrap_or_default();
        let place = match error.span() {
            Some(span) => format!("{}:{}", path.display(), file.line(&span)),
            None => path.display().to_string(),
        };
        ConfigError(format!(
            "{place}: {}{quoted}\nSee `pruneguard config --no-config` for every key with its default.",
            error.message().trim_end()
        ))
    })?;
    file.layer(raw)
}

/// The file's path and text, to turn spans into [`Source::File`].
struct Lines<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Lines<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        // toml's spans start on a character boundary; `get` keeps a bad one from panicking.
        self.text
            .get(..end)
            .map_or(0, |before| before.matches('\n').count())
            + 1
    }

    fn source(&self, span: &Range<usize>) -> Source {
        Source::File {
            path: self.path.to_path_buf(),
            line: self.line(span),
        }
    }

    /// Parses one value; an error names the key at the value's line.
    fn value<R, T>(
        &self,
        key: &str,
        raw: Option<Spanned<R>>,
        parse: impl FnOnce(R) -> Result<T, String>,
    ) -> Result<Option<Sourced<T>>, ConfigError> {
        raw.map(|spanned| {
            let source = self.source(&spanned.span());
            match parse(spanned.into_inner()) {
                Ok(value) => Ok(Sourced::new(value, source)),
                Err(problem) => Err(ConfigError::at(&source, key, &problem)),
            }
        })
        .transpose()
    }

    /// Parses a list item by item; an error names the key at the item's line.
    fn list<T>(
        &self,
        key: &str,
        raw: List,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Sourced<Vec<T>>>, ConfigError> {
        raw.map(|spanned| {
            let source = self.source(&spanned.span());
            let items = spanned
                .into_inner()
                .iter()
                .map(|item| {
                    parse(item.get_ref()).map_err(|problem| {
                        ConfigError::at(&self.source(&item.span()), key, &problem)
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(Sourced::new(items, source))
        })
        .transpose()
    }

    /// `gates.disk.paths`, or its alias `gates.disk.path`; both at once is an error.
    fn disk_paths(
        &self,
        path: Text,
        paths: List,
    ) -> Result<Option<Sourced<Vec<DiskPath>>>, ConfigError> {
        match (path, paths) {
            (Some(path), Some(_)) => Err(ConfigError::at(
                &self.source(&path.span()),
                "gates.disk.path",
                "is the one-path alias of `gates.disk.paths`, which is set too; remove `path` \
                 and list every path in `paths`",
            )),
            (Some(path), None) => Ok(self
                .value("gates.disk.path", Some(path), |text| {
                    values::disk_path(&text)
                })?
                .map(|sourced| Sourced::new(vec![sourced.value], sourced.source))),
            (None, paths) => {
                let Some(list) = self.list("gates.disk.paths", paths, values::disk_path)? else {
                    return Ok(None);
                };
                let value = values::non_empty_disk_paths(list.value).map_err(|problem| {
                    ConfigError::at(&list.source, "gates.disk.paths", &problem)
                })?;
                Ok(Some(Sourced::new(value, list.source)))
            }
        }
    }

    fn engine_layer(&self, raw: FileEngine) -> Result<EngineLayer, ConfigError> {
        Ok(EngineLayer {
            host: self.value("engine.host", raw.host, |text| super::HostUrl::parse(&text))?,
            tls_verify: self.value("engine.tls_verify", raw.tls_verify, Ok)?,
            tls_cert_path: self.value("engine.tls_cert_path", raw.tls_cert_path, |text| {
                values::absolute_path(&text)
            })?,
            api_timeout: self.value("engine.api_timeout", raw.api_timeout, |text| {
                values::duration(&text)
            })?,
            max_list_size: self.value("engine.max_list_size", raw.max_list_size, |text| {
                values::size(&text)
            })?,
        })
    }

    fn layer(&self, raw: FileConfig) -> Result<SettingsLayer, ConfigError> {
        let duration =
            |key: &str, value: Text| self.value(key, value, |text| values::duration(&text));
        let percent =
            |key: &str, value: Option<Spanned<i64>>| self.value(key, value, values::percent);
        let path =
            |key: &str, value: Text| self.value(key, value, |text| values::absolute_path(&text));
        let mut gates = raw.gates;
        let tiers = super::tiers::file_layer(self, raw.tiers)?;
        let workload = std::mem::take(&mut gates.workload);
        Ok(SettingsLayer {
            engine: self.engine_layer(raw.engine)?,
            policy: PolicyLayer {
                min_age: duration("policy.min_age", raw.policy.min_age)?,
                age_basis: self.value("policy.age_basis", raw.policy.age_basis, |text| {
                    crate::policy::AgeBasis::parse(&text)
                })?,
            },
            gates: GatesLayer {
                wait: duration("gates.wait", gates.wait)?,
                wait_interval: duration("gates.wait_interval", gates.wait_interval)?,
                disk: DiskLayer {
                    paths: self.disk_paths(gates.disk.path, gates.disk.paths)?,
                    threshold_percent: percent(
                        "gates.disk.threshold_percent",
                        gates.disk.threshold_percent,
                    )?,
                    inode_threshold_percent: percent(
                        "gates.disk.inode_threshold_percent",
                        gates.disk.inode_threshold_percent,
                    )?,
                },
                quiet: QuietLayer {
                    period: duration("gates.quiet.period", gates.quiet.period)?,
                },
                workload: WorkloadLayer {
                    stacks: self.list("gates.workload.stacks", workload.stacks, Pattern::new)?,
                    labels: self.list(
                        "gates.workload.labels",
                        workload.labels,
                        LabelSelector::parse,
                    )?,
                    containers: self.list(
                        "gates.workload.containers",
                        workload.containers,
                        Pattern::new,
                    )?,
                    lock_files: self.list(
                        "gates.workload.lock_files",
                        workload.lock_files,
                        values::lock_file,
                    )?,
                    stale_lock_after: duration(
                        "gates.workload.stale_lock_after",
                        workload.stale_lock_after,
                    )?,
                },
                swarm: SwarmLayer {
                    enabled: self.value("gates.swarm.enabled", gates.swarm.enabled, Ok)?,
                    stuck_after: duration("gates.swarm.stuck_after", gates.swarm.stuck_after)?,
                    worker_evidence: self.list(
                        "gates.swarm.worker_evidence",
                        gates.swarm.worker_evidence,
                        crate::worker_evidence::WorkerEvidence::parse,
                    )?,
                    manager_host: self.value(
                        "gates.swarm.manager_host",
                        gates.swarm.manager_host,
                        |text| super::HostUrl::parse(&text),
                    )?,
                    manager_tls_cert_path: path(
                        "gates.swarm.manager_tls_cert_path",
                        gates.swarm.manager_tls_cert_path,
                    )?,
                },
            },
            state: StateLayer {
                dir: path("state.dir", raw.state.dir)?,
            },
            output: OutputLayer {
                format: self.value("output.format", raw.output.format, |text| {
                    values::output_format(&text)
                })?,
                metrics_file: path("output.metrics_file", raw.output.metrics_file)?,
            },
            watch: WatchLayer {
                interval: duration("watch.interval", raw.watch.interval)?,
            },
            tiers,
        })
    }
}

impl super::tiers::FileValues for Lines<'_> {
    fn value<R, T>(
        &self,
        key: &str,
        raw: Option<Spanned<R>>,
        parse: impl FnOnce(R) -> Result<T, String>,
    ) -> Result<Option<Sourced<T>>, ConfigError> {
        Lines::value(self, key, raw, parse)
    }

    fn list<T>(
        &self,
        key: &str,
        raw: List,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Sourced<Vec<T>>>, ConfigError> {
        Lines::list(self, key, raw, parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_path_that_is_no_regular_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("config.toml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // Opened blocking, this would wait forever for a writer.
        let error = load(&fifo).unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");
    }

    #[test]
    fn a_relative_lock_file_in_the_file_is_an_error_naming_the_key_and_line() {
        let path = Path::new("/etc/pruneguard/config.toml");
        let text = "[gates.workload]\nlock_files = [\"run/deploy.lock\"]\n";
        let error = parse(path, text).unwrap_err().to_string();
        assert!(error.contains("config.toml:2"), "{error}");
        assert!(error.contains("gates.workload.lock_files"), "{error}");
        assert!(error.contains("not an absolute path"), "{error}");
    }
}
