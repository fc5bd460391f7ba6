//! berthd: the daemon's entry point.

use std::process::ExitCode;

use berth::config::{Config, Flags, DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT};
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
        return network_cleanup(&args[2..]);
    }
    let (flags, matches) = Flags::parse_with_sources();
    let validate = flags.validate;
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
    if validate {
        // On stderr, as dockerd (and nginx -t, sshd -t) print it.
        eprintln!("configuration OK");
        return ExitCode::SUCCESS;
    }
    logging::init(config.effective_log_level());
    // A reload parses the same command line again, with daemon.json as it is then.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match daemon::run(config, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "berthd failed");
            eprintln!("berthd: failed to start daemon: {e}");
            ExitCode::FAILURE
        }
    }
}

const NETWORK_CLEANUP_USAGE: &str = "\
Usage:  berthd network-cleanup [--data-root DIR] [--exec-root DIR]

Removes what a stopped berthd of DIR left on the host's network: its bridges,
its iptables chains and the jumps to them, and its containers' network
namespace mounts. Refused while a berthd runs on the data root.

Options:
      --data-root DIR   the daemon's data root (default /var/lib/berth)
      --exec-root DIR   the daemon's exec root (default /run/berth)
  -h, --help            print this and exit
";

/// What `berthd network-cleanup` was asked: None for --help.
fn network_cleanup_args(args: &[String]) -> Result<Option<(String, String)>, String> {
    let (mut data_root, mut exec_root) = (None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let slot = match flag {
            "-h" | "--help" if inline.is_none() => return Ok(None),
            "--data-root" => &mut data_root,
            "--exec-root" => &mut exec_root,
            _ if arg.starts_with('-') => return Err(format!("unknown flag: {arg}")),
            _ => {
                return Err(format!(
                    "unexpected argument: {arg:?} (it takes flags only)"
                ))
            }
        };
        let value = match inline {
            Some(v) => Some(v),
            None => it.next().filter(|v| !v.starts_with('-')).cloned(),
        };
        match value {
            Some(v) if !v.is_empty() => {
                if slot.replace(v).is_some() {
                    return Err(format!("{flag} given twice"));
                }
            }
            _ => return Err(format!("flag needs an argument: {flag}")),
        }
    }
    Ok(Some((
        data_root.unwrap_or_else(|| DEFAULT_DATA_ROOT.to_string()),
        exec_root.unwrap_or_else(|| DEFAULT_EXEC_ROOT.to_string()),
    )))
}

fn network_cleanup(args: &[String]) -> ExitCode {
    let (data_root, exec_root) = match network_cleanup_args(args) {
        Ok(Some(roots)) => roots,
        Ok(None) => {
            print!("{NETWORK_CLEANUP_USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprint!("berthd network-cleanup: {e}\n\n{NETWORK_CLEANUP_USAGE}");
            return ExitCode::from(2);
        }
    };
    match berth::drivers::network::cleanup(
        std::path::Path::new(&data_root),
        std::path::Path::new(&exec_root),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berthd network-cleanup: {e}");
            ExitCode::FAILURE
        }
    }
}
