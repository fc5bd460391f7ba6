//! The per-container shim, `berth-shim <bundle>`: a small binary of its own (no
//! RocksDB, no HTTP, no async runtime, no libcontainer), one process per
//! container, so that fifty running containers cost fifty small processes.
//!
//! It runs in its own session as a subreaper. It has the OCI runtime (`berthd
//! runtime`, or runc) create the container with the stdio it made (pipes, or a
//! pty whose master comes back over a console socket); the runtime exits and the
//! container's init is reparented here. Then one poll loop, single-threaded:
//! it writes the main process's output into the json-file log, serves
//! `shim.sock` (attach, start, exec, resize: see `proto`), reaps processes and
//! records exit statuses in files. The daemon may die and come back meanwhile:
//! nothing here depends on it after `start`.
//!
//! Protocol with the daemon at launch: one JSON line on stdout (`proto::Created`),
//! then stdout is closed. The shim exits after writing exit.json and deleting the
//! container from the runtime.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::proto::{
    frame, Created, ExitStatus, Reply, Request, ShimConfig, EXEC_DIR, EXIT_FILE, SHIM_CONFIG,
    SHIM_SOCKET, STDERR, STDOUT,
};

mod event_loop;
mod health;
mod launch;
mod log;
mod requests;
mod stdio;

pub use event_loop::oom_kills;
use log::JsonLog;
use stdio::*;

/// A client's output buffer above which the process it follows is not read
/// (backpressure rather than unbounded memory).
const HIGH_WATER: usize = 1 << 20;
/// How long output may still come after a process exits (a descendant that
/// escaped the pid namespace's kill holds the pipe).
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// How long the shim waits for clients to take their last output at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The shim's entry point; returns the process exit code.
pub fn main(bundle: &Path) -> i32 {
    let _ = nix::unistd::setsid();
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let bundle = match std::fs::canonicalize(bundle) {
        Ok(b) => b,
        Err(e) => {
            report(&Created {
                error: format!("bundle {}: {e}", bundle.display()),
                ..Default::default()
            });
            return 1;
        }
    };
    // Sockets are bound by relative names: a bundle path can be longer than
    // sun_path allows.
    if let Err(e) = std::env::set_current_dir(&bundle) {
        report(&Created {
            error: format!("entering {}: {e}", bundle.display()),
            ..Default::default()
        });
        return 1;
    }
    let config: ShimConfig = match std::fs::read(SHIM_CONFIG)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            report(&Created {
                error: format!("reading {SHIM_CONFIG}: {e}"),
                ..Default::default()
            });
            return 1;
        }
    };
    let mut shim = match Shim::create(bundle, config) {
        Ok(s) => s,
        Err(e) => {
            report(&Created {
                error: e,
                ..Default::default()
            });
            return 1;
        }
    };
    crate::pages::shed_code_pages();
    shim.run();
    0
}

fn report(created: &Created) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string(created).unwrap_or_else(|_| "{}".into())
    );
    let _ = out.flush();
    // Stdout was the daemon's pipe: let it go, so the daemon sees EOF.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null.as_fd());
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader
/// never sees half of it.
fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// The main process (key 0) or an exec.
struct Proc {
    exec_id: Option<String>,
    pid: i32,
    tty: bool,
    /// The pty master: output is read from it, input written to it.
    master: Option<OwnedFd>,
    /// Pipe ends: stdin (write), stdout and stderr (read) without a tty.
    stdin: Option<OwnedFd>,
    outs: Vec<(u8, OwnedFd)>,
    stdin_buf: Vec<u8>,
    /// Close stdin once `stdin_buf` is written.
    stdin_closing: bool,
    /// Close stdin when an attached client ends its input (StdinOnce; always for exec).
    stdin_once: bool,
    exit: Option<i32>,
    exited_at: Option<Instant>,
    done: bool,
    /// The output kept for its own use (a health probe's), up to
    /// `health::MAX_OUTPUT` bytes.
    capture: Option<Vec<u8>>,
}

/// A process the runtime started for us: its pid and our ends of its stdio.
struct Started {
    pid: i32,
    master: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    outs: Vec<(u8, OwnedFd)>,
}

impl Proc {
    fn new(exec_id: Option<String>, tty: bool, started: Started, stdin_once: bool) -> Proc {
        Proc {
            exec_id,
            pid: started.pid,
            tty,
            master: started.master,
            stdin: started.stdin,
            outs: started.outs,
            stdin_buf: Vec::new(),
            stdin_closing: false,
            stdin_once,
            exit: None,
            exited_at: None,
            done: false,
            capture: None,
        }
    }

    fn sources_open(&self) -> bool {
        self.master.is_some() || !self.outs.is_empty()
    }
}

enum Role {
    /// Reading the request line.
    Request,
    /// The raw stream of a process.
    Stream {
        proc: u64,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Told the health status at each change (`watch_health`).
    Watch,
    /// Writing out what is left, then closing.
    Closing,
}

struct Client {
    sock: UnixStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    role: Role,
    input_closed: bool,
}

struct Shim {
    bundle: PathBuf,
    config: ShimConfig,
    sfd: SignalFd,
    listener: UnixListener,
    log: JsonLog,
    procs: HashMap<u64, Proc>,
    clients: HashMap<u64, Client>,
    next_key: u64,
    /// Processes reaped before we learnt their pid (an exec that ended at once).
    reaped: HashMap<i32, i32>,
    main_done_at: Option<Instant>,
    /// Requests served so far.
    served: u64,
    /// The compiled seccomp program direct execs install, once read.
    seccomp: Option<Vec<u8>>,
    /// The health check, once the container started (if it has one).
    health: Option<health::Health>,
}

const MAIN: u64 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_splits_lines_and_flushes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = JsonLog::open(&path, 0, 1).unwrap();
        log.write(STDOUT, b"a\nb", false);
        log.write(STDERR, b"e\n", false);
        log.write(STDOUT, b"c", true);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got: Vec<(&str, &str)> = lines
            .iter()
            .map(|v| (v["stream"].as_str().unwrap(), v["log"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [("stdout", "a\n"), ("stderr", "e\n"), ("stdout", "bc")]
        );
    }

    #[test]
    fn runtime_errors_are_read_from_runc_json_or_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("l");
        std::fs::write(&log, "{\"level\":\"error\",\"msg\":\"boom\"}\n").unwrap();
        let status = std::process::Command::new("false").status().unwrap();
        assert_eq!(runtime_error(&log, status), "boom");
        std::fs::write(&log, "plain words\n").unwrap();
        assert_eq!(runtime_error(&log, status), "plain words");
    }

    #[test]
    fn the_log_rotates_at_max_size_keeping_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = JsonLog::open(&path, 300, 3).unwrap();
        for i in 0..40 {
            log.write(STDOUT, format!("line {i:02}\n").as_bytes(), false);
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let rotated1 = read(&dir.path().join("log.1"));
        let rotated2 = read(&dir.path().join("log.2"));
        assert!(!dir.path().join("log.3").exists());
        for f in [&rotated1, &rotated2] {
            assert!(f.len() >= 300 && f.len() < 400, "{}", f.len());
        }
        // The newest lines are in the log, the ones before them in .1.
        assert!(read(&path).contains("line 39") || rotated1.contains("line 39"));
        assert!(!rotated2.contains("line 39"));
        assert!(!(read(&path) + &rotated1 + &rotated2).contains("line 00"));
    }
}
