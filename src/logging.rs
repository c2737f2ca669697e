//! Logs go to stderr through `tracing`; the report goes to stdout. Under systemd
//! (`JOURNAL_STREAM` set) lines carry no timestamps or colours: journald adds its own.

use tracing_subscriber::EnvFilter;

pub fn init(verbosity: u8) {
    let default = match verbosity {
        0 => "pruneguard=info",
        1 => "pruneguard=debug",
        _ => "pruneguard=trace,bollard=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
    // Only fails when a subscriber is already installed (tests); the existing one serves.
    drop(result);
}
