//! `pruneguard doctor`: host checks (placeholder until the doctor lands).

use crate::cli::RunArgs;
use crate::exit::Outcome;

pub async fn run(args: &RunArgs) -> anyhow::Result<Outcome> {
    let _settings = crate::config::Settings::resolve(args)?;
    anyhow::bail!("doctor is not implemented yet")
}
