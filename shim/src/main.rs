//! berth-shim: the per-container shim (see `berth_shim::shim`), and, when
//! called as `docker-init`, a container's init (`berth_shim::init`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let called = args.first().and_then(|a| {
        std::path::Path::new(a)
            .file_name()
            .map(|n| n.to_os_string())
    });
    if called.as_deref() == Some(std::ffi::OsStr::new("docker-init")) {
        return ExitCode::from(berth_shim::init::main(&args[1..]) as u8);
    }
    if args.len() != 2 {
        eprintln!("usage: berth-shim <bundle>");
        return ExitCode::from(2);
    }
    let code = berth_shim::shim::main(std::path::Path::new(&args[1]));
    ExitCode::from(code as u8)
}
