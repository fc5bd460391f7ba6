//! berthd: the daemon's entry point.

use std::process::ExitCode;

use berth::config::{Config, Flags};
use berth::{buildinfo, daemon, logging};

fn main() -> ExitCode {
    // `berthd runtime ...`: the built-in OCI runtime, run by the shims (no daemon).
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.get(1).map(String::as_str) == Some("runtime") {
        let code = berth::drivers::exec::runtime::main(&args[2..]);
        return ExitCode::from(code as u8);
    }
    // `berthd userns-hold`: holds a user namespace while the daemon maps it.
    if args.get(1).map(String::as_str) == Some("userns-hold") {
        return ExitCode::from(berth::drivers::userns::hold_main(&args[2..]) as u8);
    }
    // `berthd network-cleanup --data-root D --exec-root E`: removes the
    // bridges, rules and namespace mounts a (stopped) daemon of D left.
    if args.get(1).map(String::as_str) == Some("network-cleanup") {
        let arg = |name: &str, default: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1).cloned())
                .unwrap_or_else(|| default.to_string())
        };
        let data_root = arg("--data-root", berth::drivers::network::DEFAULT_DATA_ROOT);
        let exec_root = arg("--exec-root", "/run/berth");
        return match berth::drivers::network::cleanup(
            std::path::Path::new(&data_root),
            std::path::Path::new(&exec_root),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berthd network-cleanup: {e}");
                ExitCode::FAILURE
            }
        };
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
