//! tracing-subscriber set up from --log-level (dockerd's level names); the
//! level can change while berthd runs (SIGHUP with a new debug or log-level).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::Level;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{reload, Registry};

static LEVEL: OnceLock<reload::Handle<LevelFilter, Registry>> = OnceLock::new();

pub fn level_of(name: &str) -> Level {
    match name {
        "debug" => Level::DEBUG,
        "warn" => Level::WARN,
        "error" | "fatal" => Level::ERROR,
        _ => Level::INFO,
    }
}

pub fn init(level: &str) {
    let (filter, handle) = reload::Layer::new(LevelFilter::from_level(level_of(level)));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = LEVEL.set(handle);
    }
}

/// Logs at `level` from now on (a no-op before `init`).
pub fn set_level(level: &str) {
    if let Some(handle) = LEVEL.get() {
        let _ = handle.modify(|f| *f = LevelFilter::from_level(level_of(level)));
    }
}
