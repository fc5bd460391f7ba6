//! berth-shim: the per-container shim (see `berth_shim::shim`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() != 2 {
        eprintln!("usage: berth-shim <bundle>");
        return ExitCode::from(2);
    }
    let code = berth_shim::shim::main(std::path::Path::new(&args[1]));
    ExitCode::from(code as u8)
}
