//! tracing-subscriber set up from --log-level (dockerd's level names).

use std::io::IsTerminal;

use tracing::Level;

pub fn level_of(name: &str) -> Level {
    match name {
        "debug" => Level::DEBUG,
        "warn" => Level::WARN,
        "error" | "fatal" => Level::ERROR,
        _ => Level::INFO,
    }
}

pub fn init(level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(level_of(level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
