//! The per-container shim: `berthd shim <bundle>`. One process per container, in
//! its own session, the subreaper and parent of the container's processes. It
//! runs the bundle with youki's libcontainer (which forks: this process stays
//! single-threaded, no runtime, no threads), owns the container's stdout and
//! stderr, writes the json-file log itself, and records the exit status in
//! `<bundle>/exit.json`. The daemon may die and come back meanwhile: nothing here
//! depends on it after the start is reported.
//!
//! Protocol with the daemon: one JSON line on stdout, `{"pid":N}` once the
//! container runs or `{"error":"..."}` if it could not start; then stdout is
//! closed. The shim exits after writing exit.json.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// What the daemon tells the shim, in `<bundle>/shim.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    /// libcontainer's state directory root.
    pub state_root: PathBuf,
    /// The json-file log.
    pub log_path: PathBuf,
    /// cgroup path of the container ("/berth/<id>"), to read OOM kills.
    pub cgroup_path: String,
}

/// What the shim leaves in `<bundle>/exit.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExitStatus {
    pub exit_code: i32,
    pub oom_killed: bool,
    pub error: String,
}

pub const SHIM_CONFIG: &str = "shim.json";
pub const EXIT_FILE: &str = "exit.json";

/// The shim's entry point; returns the process exit code.
pub fn main(bundle: &Path) -> i32 {
    let _ = nix::unistd::setsid();
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let config: ShimConfig = match std::fs::read(bundle.join(SHIM_CONFIG))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            report(&serde_json::json!({ "error": format!("reading {SHIM_CONFIG}: {e}") }));
            return 1;
        }
    };
    match run(bundle, &config) {
        Ok(status) => {
            write_exit(bundle, &status);
            0
        }
        Err(e) => {
            report(&serde_json::json!({ "error": e }));
            1
        }
    }
}

fn report(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
    // Stdout was the daemon's pipe: let it go, so the daemon sees EOF.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null.as_fd());
    }
}

fn write_exit(bundle: &Path, status: &ExitStatus) {
    let tmp = bundle.join(".exit.json.tmp");
    if let Ok(bytes) = serde_json::to_vec(status) {
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, bundle.join(EXIT_FILE));
        }
    }
}

/// Lines of one stream on their way into the json-file log.
struct Stream {
    name: &'static str,
    fd: OwnedFd,
    pending: Vec<u8>,
    open: bool,
}

struct JsonLog {
    file: std::fs::File,
}

impl JsonLog {
    fn line(&mut self, stream: &str, bytes: &[u8]) {
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(bytes),
            "stream": stream,
            "time": crate::api::system::rfc3339(crate::store::eventlog::now_ns()),
        });
        let _ = writeln!(self.file, "{entry}");
    }

    /// Writes every complete line of `s`; with `flush`, the partial rest too.
    fn drain(&mut self, s: &mut Stream, flush: bool) {
        while let Some(nl) = s.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = s.pending.drain(..=nl).collect();
            self.line(s.name, &line);
        }
        // dockerd splits very long lines at 16 KiB.
        while s.pending.len() >= 16 << 10 {
            let part: Vec<u8> = s.pending.drain(..16 << 10).collect();
            self.line(s.name, &part);
        }
        if flush && !s.pending.is_empty() {
            let rest = std::mem::take(&mut s.pending);
            self.line(s.name, &rest);
        }
    }
}

fn run(bundle: &Path, config: &ShimConfig) -> Result<ExitStatus, String> {
    use libcontainer::container::builder::ContainerBuilder;
    use libcontainer::syscall::syscall::SyscallType;

    let mut log = JsonLog {
        file: std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.log_path)
            .map_err(|e| format!("opening the log {}: {e}", config.log_path.display()))?,
    };
    let (out_r, out_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let devnull = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;

    // SIGCHLD through a signalfd, so the loop below waits on one poll.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("blocking SIGCHLD: {e}"))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;

    let mut container = ContainerBuilder::new(config.id.clone(), SyscallType::default())
        .with_root_path(&config.state_root)
        .map_err(|e| format!("{e}"))?
        .with_stdin(OwnedFd::from(devnull))
        .with_stdout(out_w)
        .with_stderr(err_w)
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| start_error(&e.to_string()))?;
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(start_error(&e.to_string()));
    }
    let init = container
        .pid()
        .map(|p| Pid::from_raw(p.as_raw()))
        .ok_or_else(|| "the container has no pid".to_string())?;
    report(&serde_json::json!({ "pid": init.as_raw() }));

    let mut streams = [
        Stream {
            name: "stdout",
            fd: out_r,
            pending: Vec::new(),
            open: true,
        },
        Stream {
            name: "stderr",
            fd: err_r,
            pending: Vec::new(),
            open: true,
        },
    ];
    let mut status: Option<i32> = None;
    let mut buf = vec![0u8; 64 << 10];
    // After init exits, the pipes close once its last descendant is gone (the
    // pid namespace kills them); a descendant that escaped gets a second.
    let mut grace_ms = 1000i32;
    loop {
        if status.is_some() && streams.iter().all(|s| !s.open) {
            break;
        }
        let mut fds: Vec<PollFd> = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let open: Vec<usize> = (0..streams.len()).filter(|i| streams[*i].open).collect();
        for i in &open {
            fds.push(PollFd::new(streams[*i].fd.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if status.is_some() {
            PollTimeout::from(100u8)
        } else {
            PollTimeout::NONE
        };
        let ready = poll(&mut fds, timeout).unwrap_or(0);
        let revents: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready == 0 && status.is_some() {
            grace_ms -= 100;
            if grace_ms <= 0 {
                break;
            }
        }
        if revents[0] {
            while let Ok(Some(_)) = sfd.read_signal() {}
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == init => status = Some(code),
                    Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => {
                        status = Some(128 + sig as i32)
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        for (k, i) in open.iter().enumerate() {
            if !revents[k + 1] {
                continue;
            }
            let s = &mut streams[*i];
            match nix::unistd::read(s.fd.as_fd(), &mut buf) {
                Ok(0) | Err(_) => {
                    s.open = false;
                    log.drain(s, true);
                }
                Ok(n) => {
                    s.pending.extend_from_slice(&buf[..n]);
                    log.drain(s, false);
                }
            }
        }
    }
    for s in &mut streams {
        log.drain(s, true);
    }
    let oom_killed = oom_kills(&config.cgroup_path) > 0;
    let _ = container.delete(true);
    Ok(ExitStatus {
        exit_code: status.unwrap_or(255),
        oom_killed,
        error: String::new(),
    })
}

/// A start failure in the words the docker CLI reads (it exits 127 for
/// "executable file not found" and "no such file or directory", 126 for
/// "permission denied").
fn start_error(e: &str) -> String {
    // libcontainer: "executable 'x' not found in $PATH"; runc (and so dockerd):
    // `exec: "x": executable file not found in $PATH`.
    let detail = match e
        .split_once("executable '")
        .and_then(|(_, r)| r.split_once("' not found"))
    {
        Some((binary, _)) => format!("exec: \"{binary}\": executable file not found in $PATH"),
        None => e.to_string(),
    };
    format!("failed to create task: OCI runtime create failed: unable to start container process: {detail}: unknown")
}

/// OOM kills recorded by the memory cgroup (v1 memory.oom_control, v2
/// memory.events).
fn oom_kills(cgroup_path: &str) -> u64 {
    let rel = cgroup_path.trim_start_matches('/');
    let candidates = [
        format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"),
        format!("/sys/fs/cgroup/{rel}/memory.events"),
    ];
    for c in candidates {
        if let Ok(text) = std::fs::read_to_string(&c) {
            if let Some(n) = text
                .lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok())
            {
                return n;
            }
        }
    }
    0
}
