//! `berthd runtime ...`: the built-in OCI runtime, youki's libcontainer behind
//! runc's command line, so the shim drives it exactly as it would drive runc or
//! crun (daemon.json `runtimes`):
//!
//! ```text
//! berthd runtime --root R [--log F] create --bundle B --pid-file P [--console-socket S] ID
//! berthd runtime --root R [--log F] start ID
//! berthd runtime --root R [--log F] kill ID SIGNAL
//! berthd runtime --root R [--log F] pause|resume ID
//! berthd runtime --root R [--log F] delete [--force] ID
//! ```
//!
//! Each call is a short-lived process: libcontainer forks, so it never runs in
//! the daemon. There is no `exec`: the shim does a built-in container's execs
//! itself (`berth_shim::exec`). The container's stdio is this process's stdio
//! (as with runc), so errors go to the `--log` file, never to stderr.

use std::path::PathBuf;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;

#[derive(Default)]
struct Args {
    root: PathBuf,
    log: Option<PathBuf>,
    command: String,
    bundle: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    console_socket: Option<PathBuf>,
    force: bool,
    positional: Vec<String>,
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        root: PathBuf::from("/run/berth/runtime"),
        ..Default::default()
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--root" => a.root = value()?.into(),
            "--log" => a.log = Some(value()?.into()),
            "--log-format" => {
                value()?;
            }
            "--bundle" | "-b" => a.bundle = Some(value()?.into()),
            "--pid-file" => a.pid_file = Some(value()?.into()),
            "--console-socket" => a.console_socket = Some(value()?.into()),
            "--detach" | "-d" => {}
            "--force" | "-f" => a.force = true,
            f if f.starts_with('-') => return Err(format!("unknown flag {f}")),
            _ if a.command.is_empty() => a.command = arg.clone(),
            _ => a.positional.push(arg.clone()),
        }
    }
    if a.command.is_empty() {
        return Err("no command".into());
    }
    Ok(a)
}

/// The entry point of `berthd runtime`; returns the process exit code.
pub fn main(argv: &[String]) -> i32 {
    // Rust ignores SIGPIPE at start; the container's init, which libcontainer
    // forks from here, must not inherit that.
    berth_shim::signals::reset();
    let args = match parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berthd runtime: {e}");
            return 2;
        }
    };
    match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            match &args.log {
                Some(log) => {
                    let _ = std::fs::write(log, format!("{e}\n"));
                }
                None => eprintln!("{e}"),
            }
            1
        }
    }
}

fn id_of(a: &Args) -> Result<String, String> {
    a.positional
        .first()
        .cloned()
        .ok_or_else(|| format!("{}: no container id", a.command))
}

fn load(a: &Args) -> Result<Container, String> {
    let id = id_of(a)?;
    Container::load(a.root.join(&id)).map_err(|e| format!("loading container {id}: {e}"))
}

/// The state root, the pid file, the console socket.
fn builder(a: &Args) -> Result<ContainerBuilder, String> {
    ContainerBuilder::new(id_of(a)?, SyscallType::default())
        .with_root_path(&a.root)
        .and_then(|b| b.with_pid_file(a.pid_file.clone()))
        .map(|b| b.with_console_socket(a.console_socket.clone()))
        .map_err(|e| e.to_string())
}

fn run(a: &Args) -> Result<(), String> {
    let err = |e: libcontainer::error::LibcontainerError| e.to_string();
    match a.command.as_str() {
        "create" => {
            let bundle = a.bundle.clone().ok_or("create: --bundle is required")?;
            let bpf = oci_spec::runtime::Spec::load(bundle.join("config.json"))
                .ok()
                .and_then(|spec| compiled_program(&spec));
            builder(a)?
                .with_executor(SeccompExecutor { bpf })
                .as_init(bundle)
                .with_systemd(false)
                .with_detach(true)
                .build()
                .map_err(err)?;
            Ok(())
        }
        "start" => load(a)?.start().map_err(err),
        "kill" => {
            let sig = a.positional.get(1).map(String::as_str).unwrap_or("SIGTERM");
            let signal = Signal::try_from(sig).map_err(|e| format!("signal {sig}: {e}"))?;
            load(a)?.kill(signal, true).map_err(err)
        }
        "pause" => load(a)?.pause().map_err(err),
        "resume" => load(a)?.resume().map_err(err),
        "delete" => match load(a) {
            Ok(mut c) => c.delete(a.force).map_err(err),
            // Nothing left to delete: as runc, not an error with --force.
            Err(_) if a.force => Ok(()),
            Err(e) => Err(e),
        },
        other => Err(format!("unknown command {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_runcs_command_line() {
        let a = parse(&args(
            "--root /r --log /l create --bundle /b --pid-file=/p --console-socket /s abc",
        ))
        .unwrap();
        assert_eq!(a.command, "create");
        assert_eq!(a.root, PathBuf::from("/r"));
        assert_eq!(a.bundle, Some(PathBuf::from("/b")));
        assert_eq!(a.pid_file, Some(PathBuf::from("/p")));
        assert_eq!(a.console_socket, Some(PathBuf::from("/s")));
        assert_eq!(id_of(&a).unwrap(), "abc");
        let a = parse(&args("kill abc KILL")).unwrap();
        assert_eq!(a.positional, ["abc", "KILL"]);
        assert!(parse(&args("--nope x")).is_err());
        assert!(parse(&args("--root")).is_err());
    }
}

/// Installs the compiled program the daemon named (bundle::SECCOMP_PROGRAM)
/// just before the container's command, so that libcontainer's init does not
/// compile the profile again at every start. Capabilities are dropped by
/// then, so when the process lacks CAP_SYS_ADMIN the kernel takes a filter
/// only with no_new_privs set (a no-op for root, the only user it is for).
#[derive(Clone)]
struct SeccompExecutor {
    bpf: Option<Vec<u8>>,
}

impl libcontainer::workload::Executor for SeccompExecutor {
    fn exec(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> Result<(), libcontainer::workload::ExecutorError> {
        if let Some(bpf) = &self.bpf {
            super::seccomp_bpf::install(bpf)
                .map_err(libcontainer::workload::ExecutorError::Other)?;
        }
        libcontainer::workload::default::DefaultExecutor {}.exec(spec)
    }

    fn validate(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> Result<(), libcontainer::workload::ExecutorValidationError> {
        libcontainer::workload::default::DefaultExecutor {}.validate(spec)
    }
}

/// The program the daemon compiled for this container (bundle::SECCOMP_PROGRAM).
fn compiled_program(spec: &oci_spec::runtime::Spec) -> Option<Vec<u8>> {
    let path = spec
        .annotations()
        .as_ref()?
        .get(super::bundle::SECCOMP_PROGRAM)?;
    match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) => {
            // Without it the container would run unfiltered: refuse instead.
            tracing::error!(error = %e, path, "reading the seccomp program");
            Some(Vec::new())
        }
    }
}
