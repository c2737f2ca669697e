//! `cycle-summary`: turns `bench/cycle.sh`'s per-cycle records into its JSON summary (which
//! `tests/cycle_docker.rs` asserts on) and its Markdown table (the README's).
//!
//! A record is one line of `key=value` words. The line of cycle 0 is the cold first deploy
//! (the registry's counts, `disk_after_redeploy`, `tagged_ids=BASE,APP1,APP2`); every later
//! line is one cycle (the redeploy's counts, dangling counts, the clean's time and report,
//! `tagged_ids_after_clean`, disk use). Values that look like integers become integers, `-`
//! becomes null, anything else stays a string; keys keep their order in the line.
//!
//! The output is byte for byte what the Python summary it replaces printed (`json.dump` with
//! `indent=2`, ASCII only; Python's float formatting for the table), so that summaries of old
//! and new runs compare with `diff`.

use anyhow::{Context as _, Result, bail};
use serde::ser::{Serialize, SerializeMap as _, Serializer};
use serde_json::Value;

/// The two cleaners of the scenario, in the order the summary lists them, with the command
/// each runs as the table names it.
const CLEANERS: [(&str, &str); 2] = [
    ("prune-af", "`docker system prune -af`"),
    ("pruneguard", "`pruneguard run` (defaults, disk gate open)"),
];

/// The registry's counts of one deploy (`scripts/registry.sh counts`), in this order.
const COUNTS: [&str; 6] = [
    "manifest_gets",
    "manifest_heads",
    "blob_gets",
    "blob_bytes",
    "requests",
    "errors",
];

/// The facts of one bench/cycle.sh run that are not in the records.
#[derive(Clone, Debug)]
pub struct CycleRun {
    /// K, the number of cycles per cleaner.
    pub cycles: u64,
    pub base_layer_bytes: u64,
    pub junk_layer_bytes: u64,
    /// Wall time of the prune-af cleaner's whole run (sandbox start to stop).
    pub prune_af_ms: u64,
    /// Wall time of the pruneguard cleaner's whole run.
    pub pruneguard_ms: u64,
    /// Wall time of both.
    pub total_ms: u64,
    /// The daemon's and the registry's versions, e.g. `dockerd 26.1.5, v2.8.2+ds1 ...`.
    pub docker: String,
    pub cores: u64,
}

/// What `cycle-summary` prints: the JSON summary and the Markdown table, each without its
/// final newline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CycleSummary {
    pub json: String,
    pub table: String,
}

/// Summarises the records (the contents of every records file, concatenated).
pub fn summarize(run: &CycleRun, records: &str) -> Result<CycleSummary> {
    let mut building: Vec<CleanerRecords> = Vec::new();
    for (index, line) in records.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        add_record(&mut building, line)
            .with_context(|| format!("record {} ({line:?}) of the cycle records", index + 1))?;
    }
    let cleaners = CLEANERS
        .iter()
        .map(|&(name, command)| {
            let records = building
                .iter_mut()
                .find(|records| records.name == name)
                .with_context(|| {
                    format!(
                        "the records have no line for the {name} cleaner: pass every \
                         records file of the run"
                    )
                })?;
            let duration_ms = if name == "prune-af" {
                run.prune_af_ms
            } else {
                run.pruneguard_ms
            };
            Cleaner::finish(std::mem::take(records), command, duration_ms)
        })
        .collect::<Result<Vec<_>>>()?;
    let summary = Summary {
        k: run.cycles,
        min_age_seconds: 86_400,
        base_layer_bytes: run.base_layer_bytes,
        junk_layer_bytes: run.junk_layer_bytes,
        images: Images {
            base: "127.0.0.1:5000/cycle/base:1",
            apps: ["127.0.0.1:5000/cycle/app1:1", "127.0.0.1:5000/cycle/app2:1"],
        },
        distinct_layers: 4,
        docker: run.docker.clone(),
        cores: run.cores,
        duration_ms: run.total_ms,
        cleaners,
    };
    let json = serde_json::to_string_pretty(&summary)
        .context("cannot serialise the cycle summary as JSON")?;
    Ok(CycleSummary {
        json: ascii_only(&json),
        table: table(run, &summary)?,
    })
}

// ---------------------------------------------------------------------------------------------
// records

/// The records of one cleaner, as read so far.
#[derive(Default)]
struct CleanerRecords {
    name: String,
    tagged_ids: Option<Vec<String>>,
    cold_deploy: Fields,
    cycles: Vec<CycleEntry>,
}

fn add_record(building: &mut Vec<CleanerRecords>, line: &str) -> Result<()> {
    let mut words = Words::parse(line)?;
    let name = words.take("cleaner")?;
    let cycle = integer(&words.take("cycle")?).context("cycle")?;
    // The registry log's byte offset: bookkeeping of the script, not a measurement.
    let _ = words.take("offset");
    if !CLEANERS.iter().any(|&(known, _)| known == name) {
        let known: Vec<&str> = CLEANERS.iter().map(|&(known, _)| known).collect();
        bail!("unknown cleaner {name:?} (known: {})", known.join(", "));
    }
    let position = if let Some(position) = building.iter().position(|r| r.name == name) {
        position
    } else {
        building.push(CleanerRecords {
            name,
            ..CleanerRecords::default()
        });
        building.len() - 1
    };
    let records = &mut building[position];
    if cycle == 0 {
        let ids = words.take("tagged_ids")?;
        records.tagged_ids = Some(ids.split(',').map(str::to_owned).collect());
        records.cold_deploy = words.into_fields()?;
        return Ok(());
    }
    let Some(expected_ids) = &records.tagged_ids else {
        bail!(
            "cycle {cycle} of {} comes before its cycle 0 (the cold deploy's tagged_ids)",
            records.name
        );
    };
    let ids: Vec<String> = words
        .take("tagged_ids_after_clean")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let mut redeploy = [0; COUNTS.len()];
    for (slot, key) in redeploy.iter_mut().zip(COUNTS) {
        *slot = integer(&words.take(key)?).with_context(|| key.to_owned())?;
    }
    let tagged_kept = ids
        .iter()
        .zip(expected_ids)
        .filter(|(got, want)| got == want)
        .count();
    records.cycles.push(CycleEntry {
        cycle,
        redeploy: Counts(redeploy),
        rest: words.into_fields()?,
        tagged_kept_after_clean: tagged_kept,
        tagged_ids_after_clean: ids
            .into_iter()
            .map(|id| (id != "-").then_some(id))
            .collect(),
    });
    Ok(())
}

/// The `key=value` words of a record line, in order.
struct Words(Vec<(String, String)>);

impl Words {
    fn parse(line: &str) -> Result<Words> {
        let mut words: Vec<(String, String)> = Vec::new();
        for word in line.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                bail!("{word:?} is not key=value");
            };
            // A repeated key keeps its first place and its last value (as a dict would).
            match words.iter_mut().find(|(seen, _)| seen == key) {
                Some(slot) => value.clone_into(&mut slot.1),
                None => words.push((key.to_owned(), value.to_owned())),
            }
        }
        Ok(Words(words))
    }

    fn take(&mut self, key: &str) -> Result<String> {
        let position = self
            .0
            .iter()
            .position(|(seen, _)| seen == key)
            .with_context(|| format!("the record has no {key}= word"))?;
        Ok(self.0.remove(position).1)
    }

    fn into_fields(self) -> Result<Fields> {
        self.0
            .into_iter()
            .map(|(key, text)| {
                let value = record_value(&text).with_context(|| key.clone())?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>>>()
            .map(Fields)
    }
}

/// `-` is null, `[-]DIGITS` an integer, anything else a string.
fn record_value(text: &str) -> Result<Value> {
    if text == "-" {
        return Ok(Value::Null);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return integer(text).map(Value::from);
    }
    Ok(Value::String(text.to_owned()))
}

fn integer(text: &str) -> Result<i64> {
    text.parse()
        .with_context(|| format!("{text:?} is not an integer that fits in 64 bits"))
}

// ---------------------------------------------------------------------------------------------
// the summary, field by field in the order it is printed

#[derive(serde::Serialize)]
struct Summary {
    k: u64,
    min_age_seconds: u64,
    base_layer_bytes: u64,
    junk_layer_bytes: u64,
    images: Images,
    distinct_layers: u64,
    docker: String,
    cores: u64,
    duration_ms: u64,
    cleaners: Vec<Cleaner>,
}

#[derive(serde::Serialize)]
struct Images {
    base: &'static str,
    apps: [&'static str; 2],
}

#[derive(serde::Serialize)]
struct Cleaner {
    #[serde(rename = "cleaner")]
    name: String,
    command: &'static str,
    cycles: Vec<CycleEntry>,
    tagged_ids: Vec<String>,
    cold_deploy: Fields,
    duration_ms: u64,
    totals: Totals,
    max_old_dangling_after_clean: i64,
    max_young_dangling_after_clean: i64,
    min_tagged_kept_after_clean: usize,
}

#[derive(serde::Serialize)]
struct CycleEntry {
    cycle: i64,
    redeploy: Counts,
    /// Every other word of the record, in its order (dangling counts, `clean_ms`, decision,
    /// removed, disk use).
    #[serde(flatten)]
    rest: Fields,
    tagged_kept_after_clean: usize,
    tagged_ids_after_clean: Vec<Option<String>>,
}

#[derive(serde::Serialize)]
struct Totals {
    #[serde(flatten)]
    counts: Counts,
    old_dangling_removed: i64,
}

/// One value per [`COUNTS`] key.
#[derive(Clone, Copy, Default)]
struct Counts([i64; COUNTS.len()]);

impl Counts {
    fn get(&self, key: &str) -> i64 {
        COUNTS
            .iter()
            .position(|known| *known == key)
            .map_or(0, |index| self.0[index])
    }
}

impl Serialize for Counts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(COUNTS.len()))?;
        for (key, value) in COUNTS.iter().zip(self.0) {
            map.serialize_entry(key, &value)?;
        }
        map.end()
    }
}

/// Record words as an object that keeps their order (`serde_json`'s own map sorts its keys).
#[derive(Default)]
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(seen, _)| seen == key)
            .map(|(_, value)| value)
    }

    fn int(&self, key: &str) -> Result<i64> {
        match self.get(key) {
            Some(value) => value
                .as_i64()
                .with_context(|| format!("{key} is {value}, not an integer")),
            None => bail!("the record has no {key}= word"),
        }
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Cleaner {
    fn finish(records: CleanerRecords, command: &'static str, duration_ms: u64) -> Result<Self> {
        let name = records.name;
        let Some(tagged_ids) = records.tagged_ids else {
            bail!("{name} has no cycle 0 record (the cold deploy)");
        };
        let cycles = records.cycles;
        if cycles.is_empty() {
            bail!("{name} has no cycle after the cold deploy: run at least one cycle (K >= 1)");
        }
        let per_cycle = |what: &dyn Fn(&CycleEntry) -> Result<i64>| {
            cycles
                .iter()
                .map(|entry| what(entry).with_context(|| format!("{name}, cycle {}", entry.cycle)))
                .collect::<Result<Vec<i64>>>()
        };
        let mut totals = Counts::default();
        for entry in &cycles {
            for (total, value) in totals.0.iter_mut().zip(entry.redeploy.0) {
                *total += value;
            }
        }
        let old_removed = per_cycle(&|entry| {
            Ok(entry.rest.int("old_dangling_before")? - entry.rest.int("old_dangling_after")?)
        })?;
        let old_after = per_cycle(&|entry| entry.rest.int("old_dangling_after"))?;
        let young_after = per_cycle(&|entry| {
            Ok(entry.rest.int("dangling_after")? - entry.rest.int("old_dangling_after")?)
        })?;
        let min_tagged_kept = cycles
            .iter()
            .map(|entry| entry.tagged_kept_after_clean)
            .min()
            .unwrap_or(0);
        Ok(Cleaner {
            name,
            command,
            tagged_ids,
            cold_deploy: records.cold_deploy,
            duration_ms,
            totals: Totals {
                counts: totals,
                old_dangling_removed: old_removed.iter().sum(),
            },
            max_old_dangling_after_clean: old_after.into_iter().max().unwrap_or(0),
            max_young_dangling_after_clean: young_after.into_iter().max().unwrap_or(0),
            min_tagged_kept_after_clean: min_tagged_kept,
            cycles,
        })
    }
}

/// Escapes every character outside printable ASCII as `\uXXXX` (UTF-16, lowercase hex), as
/// Python's `json.dump` does by default. `serde_json` escapes only `"`, `\` and control
/// characters, and outside strings its output is ASCII, so escaping afterwards is exact.
fn ascii_only(json: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(json.len());
    for ch in json.chars() {
        if ch < '\u{7f}' {
            out.push(ch);
        } else {
            for unit in ch.encode_utf16(&mut [0; 2]) {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// the table

/// Bytes in decimal megabytes, one decimal (Rust and Python both round the exact binary value
/// half to even, so the digits agree).
#[expect(
    clippy::cast_precision_loss,
    reason = "byte counts of a bench run are far below 2^53"
)]
fn mb(bytes: i64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[expect(
    clippy::cast_precision_loss,
    reason = "milliseconds of a bench run are far below 2^53"
)]
fn seconds(ms: u64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

/// A record value as Python's `str()` shows it in the table.
fn shown(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "None".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

fn table(run: &CycleRun, summary: &Summary) -> Result<String> {
    let k = run.cycles;
    let mut out = vec![
        format!(
            "Deploy cycle, K = {k}: per cleaner, totals over the {k} redeploys that follow its \
             cleans (each deploy pulls base + 2 apps, 4 distinct layers)."
        ),
        String::new(),
        "| cleaner | manifest GETs (rate-limited pulls) | manifest HEADs | blob GETs | bytes \
         downloaded | old dangling (≥ 24h) left after clean | young dangling left after clean \
         | tagged base/app images kept | clean time (mean) |"
            .to_owned(),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|".to_owned(),
    ];
    for cleaner in &summary.cleaners {
        let totals = &cleaner.totals.counts;
        let clean_ms = cleaner
            .cycles
            .iter()
            .map(|entry| entry.rest.int("clean_ms"))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("{}'s clean times", cleaner.name))?;
        #[expect(
            clippy::cast_precision_loss,
            reason = "a bench run's milliseconds and cycle count are far below 2^53"
        )]
        let mean_clean = clean_ms.iter().sum::<i64>() as f64 / clean_ms.len() as f64;
        out.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} of 3 | {mean_clean:.0} ms |",
            cleaner.command,
            totals.get("manifest_gets"),
            totals.get("manifest_heads"),
            totals.get("blob_gets"),
            mb(totals.get("blob_bytes")),
            cleaner.max_old_dangling_after_clean,
            cleaner.max_young_dangling_after_clean,
            cleaner.min_tagged_kept_after_clean,
        ));
    }
    let cold = &summary.cleaners[0].cold_deploy;
    out.push(String::new());
    out.push(format!(
        "The cold first deploy (same for both): {} manifest GETs, {} blob GETs, {}.",
        shown(cold.get("manifest_gets")),
        shown(cold.get("blob_gets")),
        mb(cold.int("blob_bytes").context("the cold deploy")?),
    ));
    out.push(String::new());
    out.push("Disk used (`du -sbx` of the data root) and blob GETs per cycle:".to_owned());
    out.push(String::new());
    out.push(
        "| cycle | prune -af: before clean | after clean | after redeploy | blob GETs \
         | pruneguard: before clean | after clean | after redeploy | blob GETs | images it \
         removed |"
            .to_owned(),
    );
    out.push("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".to_owned());
    let [prune, guard] = [&summary.cleaners[0], &summary.cleaners[1]];
    for (a, g) in prune.cycles.iter().zip(&guard.cycles) {
        let disk = |entry: &CycleEntry, key: &str| -> Result<String> {
            Ok(mb(entry
                .rest
                .int(key)
                .with_context(|| format!("cycle {}", entry.cycle))?))
        };
        out.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            a.cycle,
            disk(a, "disk_before_clean")?,
            disk(a, "disk_after_clean")?,
            disk(a, "disk_after_redeploy")?,
            a.redeploy.get("blob_gets"),
            disk(g, "disk_before_clean")?,
            disk(g, "disk_after_clean")?,
            disk(g, "disk_after_redeploy")?,
            g.redeploy.get("blob_gets"),
            shown(g.rest.get("removed")),
        ));
    }
    out.push(String::new());
    out.push(format!(
        "({} cores, {}; prune -af run {} s, pruneguard run {} s, total {} s)",
        run.cores,
        run.docker,
        seconds(run.prune_af_ms),
        seconds(run.pruneguard_ms),
        seconds(run.total_ms),
    ));
    Ok(out.join("\n"))
}

#[cfg(test)]
mod tests;
