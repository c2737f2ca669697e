//! The `pruneguard` binary: parse flags, start logging, run the command, map the result to an
//! exit status (see `pruneguard::exit`).

use std::process::ExitCode;

use clap::Parser as _;
use pruneguard::{app, cli::Cli, exit, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(app::run(cli)),
        Err(error) => Err(anyhow::Error::new(error).context("cannot start the async runtime")),
    };
    match &result {
        Err(error) => eprintln!("pruneguard: error: {error:#}"),
        // The report is written; end the way the signal would have ended the process.
        Ok(exit::Outcome::Signalled(signal)) => pruneguard::signals::die_by(*signal),
        Ok(_) => {}
    }
    ExitCode::from(exit::code(&result))
}
