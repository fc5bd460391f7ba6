//! berthd: the daemon's entry point.

use std::process::ExitCode;

use berth::config::{Config, Flags};
use berth::{buildinfo, daemon, logging};

fn main() -> ExitCode {
    // `berthd shim <bundle>`: the per-container shim (same binary, no daemon).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == "shim" {
        let code = berth::drivers::exec::shim::main(std::path::Path::new(&args[2]));
        return ExitCode::from(code as u8);
    }
    let (flags, matches) = Flags::parse_with_sources();
    if flags.version {
        println!(
            "Berth version {}, build {}",
            buildinfo::VERSION,
            buildinfo::GIT_COMMIT
        );
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(flags, &matches) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("berthd: {e}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(&config.log_level);
    match daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "berthd failed");
            eprintln!("berthd: failed to start daemon: {e}");
            ExitCode::FAILURE
        }
    }
}
