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
            let spec = oci_spec::runtime::Spec::load(bundle.join("config.json")).ok();
            let bpf = spec.as_ref().and_then(compiled_program);
            let (init_bundle, lent) = match (&spec, &bpf) {
                (Some(spec), Some(_)) => lend_seccomp_caps(spec, &bundle)?,
                _ => (bundle, Vec::new()),
            };
            let env_order = spec
                .as_ref()
                .and_then(|s| s.process().as_ref()?.env().clone())
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e.split_once('=').map(|(k, _)| k.to_string()))
                .collect();
            builder(a)?
                .with_executor(SeccompExecutor {
                    bpf,
                    lent,
                    env_order,
                })
                .as_init(init_bundle)
                .with_systemd(false)
                .with_detach(true)
                .build()
                .map_err(err)?;
            if let Some(spec) = &spec {
                disable_oom_killer(spec);
            }
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

    fn process(
        caps: &[oci_spec::runtime::Capability],
        nnp: Option<bool>,
    ) -> oci_spec::runtime::Process {
        let set: oci_spec::runtime::Capabilities = caps.iter().copied().collect();
        let mut sets = oci_spec::runtime::LinuxCapabilities::default();
        sets.set_bounding(Some(set.clone()))
            .set_effective(Some(set.clone()))
            .set_permitted(Some(set));
        let mut p = oci_spec::runtime::Process::default();
        p.set_capabilities(Some(sets)).set_no_new_privileges(nnp);
        p
    }

    #[test]
    fn the_init_borrows_only_what_the_install_lacks() {
        use oci_spec::runtime::Capability::{Chown, Setpcap, SysAdmin};
        let lent = to_lend(&process(&[Chown, Setpcap], None));
        assert_eq!(
            lent,
            [Lent {
                cap: caps::Capability::CAP_SYS_ADMIN,
                bounding: true,
                effective: true,
                permitted: true
            }]
        );
        assert_eq!(to_lend(&process(&[Chown], Some(false))).len(), 2);
        assert!(to_lend(&process(&[Chown], Some(true))).is_empty());
        assert!(to_lend(&process(&[Chown, SysAdmin], None)).is_empty());
    }
}

/// Installs the compiled program the daemon named (bundle::SECCOMP_PROGRAM)
/// just before the container's command, so that libcontainer's init does not
/// compile the profile again at every start.
///
/// Without CAP_SYS_ADMIN the kernel takes a filter only from a process with
/// no_new_privs, which a container must not show (dockerd's shows
/// `NoNewPrivs: 0`; runc loads the filter before it drops capabilities). So
/// the init keeps the capabilities it needs for that (`lent`) through
/// libcontainer's drop, installs the filter, and then gives them back here.
#[derive(Clone)]
struct SeccompExecutor {
    bpf: Option<Vec<u8>>,
    lent: Vec<Lent>,
    /// The names of process.env in the spec's order, which libcontainer
    /// hands over in a HashMap's (a container's `env` would come out in a
    /// new order at every start; runc keeps the spec's).
    env_order: Vec<String>,
}

impl libcontainer::workload::Executor for SeccompExecutor {
    fn exec(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> Result<(), libcontainer::workload::ExecutorError> {
        use libcontainer::workload::ExecutorError;
        if let Some(bpf) = &self.bpf {
            super::seccomp_bpf::install(bpf).map_err(ExecutorError::Other)?;
        }
        give_back(&self.lent).map_err(ExecutorError::Other)?;
        libcontainer::workload::default::DefaultExecutor {}.exec(spec)
    }

    fn validate(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> Result<(), libcontainer::workload::ExecutorValidationError> {
        libcontainer::workload::default::DefaultExecutor {}.validate(spec)
    }

    fn setup_envs(
        &self,
        mut envs: std::collections::HashMap<String, String>,
    ) -> Result<(), libcontainer::workload::ExecutorSetEnvsError> {
        for (k, _) in std::env::vars_os() {
            std::env::remove_var(k);
        }
        for k in &self.env_order {
            if let Some(v) = envs.remove(k) {
                std::env::set_var(k, v);
            }
        }
        // What libcontainer added (HOME when the spec has none), after.
        let mut rest: Vec<(String, String)> = envs.into_iter().collect();
        rest.sort();
        for (k, v) in rest {
            std::env::set_var(k, v);
        }
        Ok(())
    }
}

/// A capability added to the init's spec for the install, and the sets it
/// was added to (those it must leave again).
#[derive(Clone, Debug, PartialEq)]
struct Lent {
    cap: caps::Capability,
    bounding: bool,
    effective: bool,
    permitted: bool,
}

/// The capabilities the init borrows for installing the filter: CAP_SYS_ADMIN
/// (seccomp without no_new_privs) and CAP_SETPCAP (to drop them again from
/// the bounding set).
const BORROWED: [oci_spec::runtime::Capability; 2] = [
    oci_spec::runtime::Capability::SysAdmin,
    oci_spec::runtime::Capability::Setpcap,
];

/// What the init must borrow: each of BORROWED its sets lack. Nothing when
/// it has CAP_SYS_ADMIN already, or asks for no_new_privs.
fn to_lend(process: &oci_spec::runtime::Process) -> Vec<Lent> {
    use libcontainer::capabilities::CapabilityExt;
    let Some(sets) = process.capabilities() else {
        return Vec::new();
    };
    if process.no_new_privileges() == Some(true) {
        return Vec::new();
    }
    let lacks = |s: &Option<oci_spec::runtime::Capabilities>, c: &oci_spec::runtime::Capability| {
        !s.as_ref().is_some_and(|s| s.contains(c))
    };
    let lent: Vec<Lent> = BORROWED
        .iter()
        .map(|c| Lent {
            cap: c.to_cap(),
            bounding: lacks(sets.bounding(), c),
            effective: lacks(sets.effective(), c),
            permitted: lacks(sets.permitted(), c),
        })
        .filter(|l| l.bounding || l.effective || l.permitted)
        .collect();
    if lent
        .iter()
        .any(|l| l.cap == caps::Capability::CAP_SYS_ADMIN)
    {
        lent
    } else {
        Vec::new()
    }
}

/// When the init must borrow capabilities, writes `<bundle>/init/config.json`:
/// the spec with BORROWED in its bounding, effective and permitted sets.
/// Returns the bundle libcontainer should read and what to give back. The
/// bundle's own config.json stays as the daemon wrote it (execs read it).
fn lend_seccomp_caps(
    spec: &oci_spec::runtime::Spec,
    bundle: &std::path::Path,
) -> Result<(PathBuf, Vec<Lent>), String> {
    let Some(process) = spec.process() else {
        return Ok((bundle.to_path_buf(), Vec::new()));
    };
    let lent = to_lend(process);
    let Some(sets) = process.capabilities().clone().filter(|_| !lent.is_empty()) else {
        return Ok((bundle.to_path_buf(), Vec::new()));
    };
    let with_borrowed = |s: &Option<oci_spec::runtime::Capabilities>| {
        let mut s = s.clone().unwrap_or_default();
        s.extend(BORROWED);
        Some(s)
    };
    let mut widened = sets.clone();
    widened
        .set_bounding(with_borrowed(sets.bounding()))
        .set_effective(with_borrowed(sets.effective()))
        .set_permitted(with_borrowed(sets.permitted()));
    let mut process = process.clone();
    process.set_capabilities(Some(widened));
    let mut init = spec.clone();
    init.set_process(Some(process));
    let dir = bundle.join("init");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    init.save(dir.join("config.json"))
        .map_err(|e| format!("writing the init's spec: {e}"))?;
    Ok((dir, lent))
}

/// Gives back what the init borrowed: the bounding set first (that needs
/// CAP_SETPCAP still effective), then the effective and permitted sets.
fn give_back(lent: &[Lent]) -> Result<(), String> {
    use caps::CapSet;
    let drop = |set: CapSet, l: &Lent| {
        caps::drop(None, set, l.cap)
            .map_err(|e| format!("dropping {} from the {set:?} set: {e}", l.cap))
    };
    for l in lent.iter().filter(|l| l.bounding) {
        drop(CapSet::Bounding, l)?;
    }
    for l in lent.iter().filter(|l| l.effective) {
        drop(CapSet::Effective, l)?;
    }
    for l in lent.iter().filter(|l| l.permitted) {
        drop(CapSet::Permitted, l)?;
    }
    Ok(())
}

/// `--oom-kill-disable` on cgroup v1: libcontainer leaves
/// memory.oom_control as it is, whatever the spec says, so it is set here,
/// once the container's cgroup is made and before its command runs.
fn disable_oom_killer(spec: &oci_spec::runtime::Spec) {
    let Some(linux) = spec.linux() else {
        return;
    };
    let wanted = linux
        .resources()
        .as_ref()
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.disable_oom_killer())
        == Some(true);
    let Some(path) = linux.cgroups_path().as_ref().filter(|_| wanted) else {
        return;
    };
    let file = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(path.strip_prefix("/").unwrap_or(path))
        .join("memory.oom_control");
    if file.exists() {
        if let Err(e) = std::fs::write(&file, "1") {
            tracing::warn!(error = %e, path = %file.display(), "disabling the OOM killer");
        }
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
