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
    shed_code_pages();
    shim.run();
    0
}

/// Drops this process's mappings of its own executable's pages that were
/// never written (code, relocation tables, read-only data): setup (spawning
/// the runtime, receiving the pty, parsing the config) touched far more of
/// them than the loop ever reads again, and every page touched stays in RSS.
/// Such pages are the file's own, so they fault back in from the page cache
/// when used. A mapping with any written (anonymous) page, such as data or the
/// relocated RELRO, is left alone: dropping it would lose what was written.
/// One shim runs per container: this is most of its RSS.
fn shed_code_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [range, perms, _, _, _, path, ..] = fields.as_slice() {
            current = None;
            if perms.starts_with('r') && !perms.contains('w') && Path::new(path) == exe {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        current = Some((a, b));
                    }
                }
            }
            continue;
        }
        if let (Some((a, b)), ["Anonymous:", kb, ..]) = (current, fields.as_slice()) {
            current = None;
            if *kb != "0" {
                continue;
            }
            // SAFETY: a private file mapping none of whose pages was written:
            // dropping them only makes the next access read the file again.
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED);
            }
        }
    }
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

/// The json-file log, as dockerd's json-file driver writes it.
struct JsonLog {
    file: std::fs::File,
    pending: [Vec<u8>; 2],
    rotation: Rotation,
}

/// max-size/max-file: once the log reaches `max_size` it becomes `<log>.1`
/// (older ones shift up, the oldest beyond `max_files` goes), as dockerd's
/// json-file driver rotates after the write that reached the size.
#[derive(Default)]
struct Rotation {
    path: PathBuf,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl JsonLog {
    fn open(path: &Path, max_size: u64, max_files: u32) -> Result<JsonLog, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("opening the log {}: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonLog {
            file,
            pending: [Vec::new(), Vec::new()],
            rotation: Rotation {
                path: path.to_path_buf(),
                size,
                max_size,
                max_files: max_files.max(1),
            },
        })
    }

    fn line(&mut self, stream: u8, bytes: &[u8]) {
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(bytes),
            "stream": if stream == STDERR { "stderr" } else { "stdout" },
            "time": crate::time::rfc3339(crate::time::now_ns()),
        });
        let line = format!("{entry}\n");
        if self.file.write_all(line.as_bytes()).is_ok() {
            self.rotation.size += line.len() as u64;
        }
        if self.rotation.max_size > 0 && self.rotation.size >= self.rotation.max_size {
            self.rotate();
        }
    }

    fn rotate(&mut self) {
        let r = &mut self.rotation;
        let name = |n: u32| {
            let mut p = r.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if r.max_files > 1 {
            for n in (1..r.max_files - 1).rev() {
                let _ = std::fs::rename(name(n), name(n + 1));
            }
            let _ = std::fs::rename(&r.path, name(1));
        }
        // With max-file 1 the log starts again empty.
        match std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&r.path)
        {
            Ok(f) => {
                self.file = f;
                r.size = 0;
            }
            Err(_) => r.size = 0,
        }
    }

    /// Takes output of one stream; writes every complete line (and, with
    /// `flush`, the partial rest). dockerd splits very long lines at 16 KiB.
    fn write(&mut self, stream: u8, data: &[u8], flush: bool) {
        let k = usize::from(stream == STDERR);
        let mut pending = std::mem::take(&mut self.pending[k]);
        pending.extend_from_slice(data);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            self.line(stream, &line);
        }
        while pending.len() >= 16 << 10 {
            let part: Vec<u8> = pending.drain(..16 << 10).collect();
            self.line(stream, &part);
        }
        if flush && !pending.is_empty() {
            self.line(stream, &pending);
            pending.clear();
        }
        self.pending[k] = pending;
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
}

const MAIN: u64 = 0;

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

fn devnull() -> Result<OwnedFd, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| format!("/dev/null: {e}"))
}

/// The stdio a process is created with, and our ends of it.
struct Stdio3 {
    theirs: [OwnedFd; 3],
    stdin: Option<OwnedFd>,
    outs: Vec<(u8, OwnedFd)>,
}

fn make_stdio(tty: bool, stdin: bool) -> Result<Stdio3, String> {
    if tty {
        // The runtime makes the pty inside the container; the helper's own
        // stdio is not the container's.
        return Ok(Stdio3 {
            theirs: [devnull()?, devnull()?, devnull()?],
            stdin: None,
            outs: Vec::new(),
        });
    }
    let (in_theirs, in_ours) = if stdin {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        (devnull()?, None)
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    for fd in [&out_r, &err_r] {
        set_nonblocking(fd);
    }
    if let Some(w) = &in_ours {
        set_nonblocking(w);
    }
    Ok(Stdio3 {
        theirs: [in_theirs, out_w, err_w],
        stdin: in_ours,
        outs: vec![(STDOUT, out_r), (STDERR, err_r)],
    })
}

/// Receives the pty master the runtime sends over a console socket.
fn receive_master(listener: &UnixListener) -> Result<OwnedFd, String> {
    listener
        .set_nonblocking(false)
        .map_err(|e| format!("console socket: {e}"))?;
    let (conn, _) = listener
        .accept()
        .map_err(|e| format!("console socket: {e}"))?;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    crate::exec::receive_fd(conn.as_fd())
}

fn read_pid(path: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// What the runtime wrote into its log when it failed: the error, in its words.
fn runtime_error(log: &Path, status: std::process::ExitStatus) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // runc writes JSON lines ({"level":"error","msg":...}); ours plain text.
    let msg = text
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(String::from))
                .or_else(|| Some(l.to_string()))
        })
        .filter(|l| !l.trim().is_empty())
        .last();
    msg.unwrap_or_else(|| format!("the runtime failed ({status})"))
}

impl Shim {
    fn runtime(&self, log: &Path) -> Command {
        let mut cmd = Command::new(&self.config.runtime[0]);
        cmd.args(&self.config.runtime[1..]).arg("--log").arg(log);
        // The container's processes descend from it: they must not start
        // with our blocked SIGCHLD (the signalfd) or anything ignored.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                crate::signals::reset_before_exec();
                Ok(())
            });
        }
        cmd
    }

    /// Runs one runtime command with the given stdio; its error on failure.
    fn run_runtime(&self, args: &[&str], stdio: Option<[OwnedFd; 3]>) -> Result<(), String> {
        let log = self.bundle.join("runtime.log");
        let _ = std::fs::remove_file(&log);
        let mut cmd = self.runtime(&log);
        cmd.args(args);
        match stdio {
            Some([i, o, e]) => {
                cmd.stdin(Stdio::from(i))
                    .stdout(Stdio::from(o))
                    .stderr(Stdio::from(e));
            }
            None => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
            }
        }
        let status = cmd
            .status()
            .map_err(|e| format!("running the runtime {}: {e}", self.config.runtime[0]))?;
        if status.success() {
            Ok(())
        } else {
            Err(runtime_error(&log, status))
        }
    }

    /// Runs `runtime ARGS --pid-file P [--console-socket S] ID` with stdio made
    /// for the process: pipes, or a pty whose master the runtime sends over
    /// the console socket bound at `console_rel` (relative to the bundle).
    fn run_process(
        &self,
        args: &[&str],
        tty: bool,
        stdin: bool,
        pid_file: &Path,
        console_rel: &str,
    ) -> Result<Started, String> {
        let stdio = make_stdio(tty, stdin)?;
        let console = if tty {
            let _ = std::fs::remove_file(console_rel);
            Some(UnixListener::bind(console_rel).map_err(|e| format!("console socket: {e}"))?)
        } else {
            None
        };
        let pid_s = pid_file.display().to_string();
        let console_abs = self.bundle.join(console_rel).display().to_string();
        let id = self.config.id.clone();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--pid-file", &pid_s]);
        if tty {
            all.extend(["--console-socket", &console_abs]);
        }
        all.push(&id);
        let started = self.run_runtime(&all, Some(stdio.theirs)).and_then(|()| {
            let master = match &console {
                Some(l) => {
                    let m = receive_master(l)?;
                    set_nonblocking(&m);
                    Some(m)
                }
                None => None,
            };
            Ok(Started {
                pid: read_pid(pid_file)?,
                master,
                stdin: stdio.stdin,
                outs: stdio.outs,
            })
        });
        if tty {
            let _ = std::fs::remove_file(console_rel);
        }
        started
    }

    fn create(bundle: PathBuf, config: ShimConfig) -> Result<Shim, String> {
        if config.runtime.is_empty() {
            return Err("no runtime configured".into());
        }
        let log = JsonLog::open(&config.log_path, config.log_max_size, config.log_max_files)?;
        // SIGCHLD through a signalfd, so the loop waits on one poll. Children
        // started with std's Command get the mask reset.
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()
            .map_err(|e| format!("blocking SIGCHLD: {e}"))?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| format!("signalfd: {e}"))?;
        let _ = std::fs::remove_file(SHIM_SOCKET);
        let listener =
            UnixListener::bind(SHIM_SOCKET).map_err(|e| format!("{SHIM_SOCKET}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{SHIM_SOCKET}: {e}"))?;
        let _ = std::fs::create_dir_all(EXEC_DIR);
        let mut shim = Shim {
            bundle,
            config,
            sfd,
            listener,
            log,
            procs: HashMap::new(),
            clients: HashMap::new(),
            next_key: 1,
            reaped: HashMap::new(),
            main_done_at: None,
            served: 0,
            seccomp: None,
        };
        let (tty, open_stdin) = (shim.config.tty, shim.config.open_stdin);
        let bundle_s = shim.bundle.display().to_string();
        let pid_file = shim.bundle.join("init.pid");
        let started = shim.run_process(
            &["create", "--bundle", &bundle_s],
            tty,
            open_stdin,
            &pid_file,
            "console.sock",
        );
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                let id = shim.config.id.clone();
                let _ = shim.run_runtime(&["delete", "--force", &id], None);
                return Err(e);
            }
        };
        let pid = started.pid;
        let stdin_once = shim.config.stdin_once;
        // The client's terminal size from the start (ConsoleSize), so the
        // first prompt already fits.
        if let (Some(master), Some([h, w])) = (started.master.as_ref(), shim.config.console_size) {
            if h > 0 && w > 0 {
                let _ = resize(master, h, w);
            }
        }
        shim.procs
            .insert(MAIN, Proc::new(None, tty, started, stdin_once));
        report(&Created {
            pid: pid as u32,
            error: String::new(),
        });
        Ok(shim)
    }

    fn main_done(&self) -> bool {
        self.procs.get(&MAIN).is_none_or(|p| p.done)
    }

    /// The loop: until the main process is done and its clients have their output.
    fn run(&mut self) {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if let Some(at) = self.main_done_at {
                let execs_done = self.procs.values().all(|p| p.done);
                if (self.clients.is_empty() && execs_done) || at.elapsed() > CLOSE_GRACE {
                    break;
                }
            }
            if self.poll_once(&mut buf) {
                shed_code_pages();
            }
        }
        let id = self.config.id.clone();
        let _ = self.run_runtime(&["delete", "--force", &id], None);
        let _ = std::fs::remove_file(SHIM_SOCKET);
    }

    /// One poll and what it found; true when a request was served (which runs
    /// code the loop does not, such as the runtime's spawn).
    fn poll_once(&mut self, buf: &mut [u8]) -> bool {
        let served = self.served;
        // What each poll entry is.
        enum Slot {
            Signal,
            Listener,
            Source(u64, usize), // proc, index in outs (usize::MAX: the master)
            Stdin(u64),
            Client(u64),
        }
        let mut slots: Vec<Slot> = vec![Slot::Signal, Slot::Listener];
        let mut fds: Vec<PollFd> = vec![
            PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
        ];
        let blocked = |key: u64, clients: &HashMap<u64, Client>| {
            clients.values().any(|c| {
                matches!(c.role, Role::Stream { proc, .. } if proc == key)
                    && c.out.len() > HIGH_WATER
            })
        };
        for (key, p) in &self.procs {
            if !blocked(*key, &self.clients) {
                if let Some(m) = &p.master {
                    let mut ev = PollFlags::POLLIN;
                    if !p.stdin_buf.is_empty() {
                        ev |= PollFlags::POLLOUT;
                    }
                    fds.push(PollFd::new(m.as_fd(), ev));
                    slots.push(Slot::Source(*key, usize::MAX));
                }
                for (i, (_, fd)) in p.outs.iter().enumerate() {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    slots.push(Slot::Source(*key, i));
                }
            }
            if let Some(s) = &p.stdin {
                if !p.stdin_buf.is_empty() {
                    fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
                    slots.push(Slot::Stdin(*key));
                }
            }
        }
        for (key, c) in &self.clients {
            let mut ev = PollFlags::empty();
            let target_full = match c.role {
                Role::Stream { proc, .. } => self
                    .procs
                    .get(&proc)
                    .is_some_and(|p| p.stdin_buf.len() > HIGH_WATER),
                _ => false,
            };
            if !c.input_closed && !target_full {
                ev |= PollFlags::POLLIN;
            }
            if !c.out.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.sock.as_fd(), ev));
            slots.push(Slot::Client(*key));
        }
        let waiting =
            self.procs.values().any(|p| p.exit.is_some() && !p.done) || self.main_done_at.is_some();
        let timeout = if waiting {
            PollTimeout::from(100u8)
        } else {
            PollTimeout::NONE
        };
        let _ = poll(&mut fds, timeout);
        let ready: Vec<(usize, PollFlags)> = fds
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (i, r)))
            .collect();
        drop(fds);
        for (i, rev) in ready {
            match slots[i] {
                Slot::Signal => self.reap(),
                Slot::Listener => self.accept(),
                Slot::Source(key, idx) => {
                    if rev.contains(PollFlags::POLLOUT) {
                        self.write_stdin(key);
                    }
                    if rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                        self.read_source(key, idx, buf);
                    }
                }
                Slot::Stdin(key) => self.write_stdin(key),
                Slot::Client(key) => {
                    if rev.contains(PollFlags::POLLOUT) {
                        self.write_client(key);
                    }
                    if rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                        self.read_client(key, buf);
                    }
                }
            }
        }
        self.finish_procs();
        self.served != served
    }

    fn reap(&mut self) {
        while let Ok(Some(_)) = self.sfd.read_signal() {}
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            match self
                .procs
                .values_mut()
                .find(|p| p.pid == pid && p.exit.is_none())
            {
                Some(p) => {
                    p.exit = Some(code);
                    p.exited_at = Some(Instant::now());
                }
                None => {
                    self.reaped.insert(pid, code);
                }
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((sock, _)) = self.listener.accept() {
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let key = self.next_key;
            self.next_key += 1;
            self.clients.insert(
                key,
                Client {
                    sock,
                    inbuf: Vec::new(),
                    out: Vec::new(),
                    role: Role::Request,
                    input_closed: false,
                },
            );
        }
    }

    /// Output of a process: into the log (main), and to every client that follows it.
    fn read_source(&mut self, key: u64, idx: usize, buf: &mut [u8]) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        let (stream, fd) = if idx == usize::MAX {
            match &p.master {
                Some(m) => (STDOUT, m),
                None => return,
            }
        } else {
            match p.outs.get(idx) {
                Some((s, fd)) => (*s, fd),
                None => return,
            }
        };
        let n = match nix::unistd::read(fd, buf) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => return,
            // EIO: the pty's other side is gone.
            Err(_) => 0,
        };
        let tty = p.tty;
        if n == 0 {
            if idx == usize::MAX {
                p.master = None;
            } else {
                p.outs.remove(idx);
            }
            if key == MAIN {
                self.log.write(stream, &[], true);
            }
            return;
        }
        let data = &buf[..n];
        if key == MAIN {
            self.log.write(stream, data, false);
        }
        for c in self.clients.values_mut() {
            if let Role::Stream {
                proc,
                stdout,
                stderr,
                ..
            } = c.role
            {
                let wanted = if stream == STDERR { stderr } else { stdout };
                if proc != key || !wanted {
                    continue;
                }
                if tty {
                    c.out.extend_from_slice(data);
                } else {
                    frame(stream, data, &mut c.out);
                }
            }
        }
    }

    fn write_stdin(&mut self, key: u64) {
        let Some(p) = self.procs.get_mut(&key) else {
            return;
        };
        let fd = match (&p.master, &p.stdin) {
            (Some(m), _) => m,
            (None, Some(s)) => s,
            (None, None) => {
                p.stdin_buf.clear();
                return;
            }
        };
        match nix::unistd::write(fd, &p.stdin_buf) {
            Ok(n) => {
                p.stdin_buf.drain(..n);
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            // The process no longer reads its stdin.
            Err(_) => {
                p.stdin_buf.clear();
                p.stdin = None;
            }
        }
        if p.stdin_buf.is_empty() && p.stdin_closing {
            p.stdin = None;
        }
    }

    fn write_client(&mut self, key: u64) {
        let Some(c) = self.clients.get_mut(&key) else {
            return;
        };
        match c.sock.write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                self.clients.remove(&key);
                return;
            }
        }
        if c.out.is_empty() && matches!(c.role, Role::Closing) {
            self.clients.remove(&key);
        }
    }

    fn read_client(&mut self, key: u64, buf: &mut [u8]) {
        let Some(c) = self.clients.get_mut(&key) else {
            return;
        };
        let n = match c.sock.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(_) => {
                self.clients.remove(&key);
                return;
            }
        };
        if n == 0 {
            c.input_closed = true;
            match c.role {
                Role::Request | Role::Closing => {
                    if c.out.is_empty() {
                        self.clients.remove(&key);
                    }
                }
                Role::Stream { proc, stdin, .. } => {
                    if stdin {
                        if let Some(p) = self.procs.get_mut(&proc) {
                            if p.stdin_once && !p.tty {
                                p.stdin_closing = true;
                                if p.stdin_buf.is_empty() {
                                    p.stdin = None;
                                }
                            }
                        }
                    }
                }
            }
            return;
        }
        match c.role {
            Role::Request => {
                c.inbuf.extend_from_slice(&buf[..n]);
                if let Some(nl) = c.inbuf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = c.inbuf.drain(..=nl).collect();
                    let rest = std::mem::take(&mut c.inbuf);
                    self.request(key, &line, rest);
                } else if c.inbuf.len() > 1 << 20 {
                    self.clients.remove(&key);
                }
            }
            Role::Stream { proc, stdin, .. } => {
                if stdin {
                    self.to_stdin(proc, &buf[..n]);
                }
            }
            Role::Closing => {}
        }
    }

    fn to_stdin(&mut self, key: u64, data: &[u8]) {
        if let Some(p) = self.procs.get_mut(&key) {
            if p.master.is_some() || p.stdin.is_some() {
                p.stdin_buf.extend_from_slice(data);
            }
        }
        self.write_stdin(key);
    }

    fn reply(&mut self, key: u64, reply: &Reply, role: Role) {
        if let Some(c) = self.clients.get_mut(&key) {
            if let Ok(line) = serde_json::to_string(reply) {
                c.out.extend_from_slice(line.as_bytes());
                c.out.push(b'\n');
            }
            c.role = role;
        }
        self.write_client(key);
    }

    fn fail(&mut self, key: u64, error: String) {
        self.reply(
            key,
            &Reply {
                error,
                ..Default::default()
            },
            Role::Closing,
        );
    }

    fn request(&mut self, key: u64, line: &[u8], rest: Vec<u8>) {
        self.served += 1;
        let req: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => return self.fail(key, format!("bad request: {e}")),
        };
        match req {
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                if self.main_done() {
                    return self.fail(key, "the container is not running".into());
                }
                self.reply(
                    key,
                    &Reply::default(),
                    Role::Stream {
                        proc: MAIN,
                        stdin,
                        stdout,
                        stderr,
                    },
                );
                if stdin && !rest.is_empty() {
                    self.to_stdin(MAIN, &rest);
                }
            }
            Request::Start => {
                let id = self.config.id.clone();
                match self.run_runtime(&["start", &id], None) {
                    Ok(()) => {
                        let pid = self.procs.get(&MAIN).map_or(0, |p| p.pid as u32);
                        self.reply(
                            key,
                            &Reply {
                                pid,
                                ..Default::default()
                            },
                            Role::Closing,
                        )
                    }
                    Err(e) => self.fail(key, e),
                }
            }
            Request::Exec {
                exec_id,
                process,
                stdin,
                stdout,
                stderr,
            } => match self.exec(&exec_id, &process, stdin) {
                Ok((proc, pid)) => {
                    self.reply(
                        key,
                        &Reply {
                            pid: pid as u32,
                            ..Default::default()
                        },
                        Role::Stream {
                            proc,
                            stdin,
                            stdout,
                            stderr,
                        },
                    );
                    if stdin && !rest.is_empty() {
                        self.to_stdin(proc, &rest);
                    }
                }
                Err(e) => self.fail(key, e),
            },
            Request::Resize {
                exec_id,
                height,
                width,
            } => {
                let p = self
                    .procs
                    .values()
                    .find(|p| p.exec_id == exec_id && !p.done);
                let result = match p.and_then(|p| p.master.as_ref()) {
                    Some(m) => resize(m, height, width),
                    None => Err("no tty to resize".to_string()),
                };
                match result {
                    Ok(()) => self.reply(key, &Reply::default(), Role::Closing),
                    Err(e) => self.fail(key, e),
                }
            }
        }
    }

    /// Starts an exec through the runtime; returns its key and pid.
    fn exec(
        &mut self,
        exec_id: &str,
        process: &serde_json::Value,
        stdin: bool,
    ) -> Result<(u64, i32), String> {
        if self.main_done() {
            return Err("the container is not running".into());
        }
        if exec_id.is_empty() || !exec_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("bad exec id {exec_id:?}"));
        }
        let tty = process
            .get("terminal")
            .and_then(|t| t.as_bool())
            .unwrap_or(false);
        let dir = self.bundle.join(EXEC_DIR);
        let process_file = dir.join(format!("{exec_id}.json"));
        let pid_file = dir.join(format!("{exec_id}.pid"));
        let console_rel = format!("{EXEC_DIR}/{exec_id}.tty");
        if self.config.direct_exec {
            return self.exec_direct(exec_id, process, tty, stdin);
        }
        std::fs::write(
            &process_file,
            serde_json::to_vec(process).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", process_file.display()))?;
        let p_s = process_file.display().to_string();
        let started = self.run_process(
            &["exec", "--process", &p_s, "--detach"],
            tty,
            stdin,
            &pid_file,
            &console_rel,
        );
        let _ = std::fs::remove_file(&process_file);
        let _ = std::fs::remove_file(&pid_file);
        let started = started?;
        let pid = started.pid;
        let proc = Proc::new(Some(exec_id.to_string()), tty, started, true);
        Ok((self.add_exec(proc), pid))
    }

    fn add_exec(&mut self, mut proc: Proc) -> u64 {
        // It may have ended before we knew its pid.
        proc.exit = self.reaped.remove(&proc.pid);
        proc.exited_at = proc.exit.map(|_| Instant::now());
        let key = self.next_key;
        self.next_key += 1;
        self.procs.insert(key, proc);
        key
    }

    /// An exec the shim does itself (see `exec`): it joins the init's
    /// namespaces and cgroups.
    fn exec_direct(
        &mut self,
        exec_id: &str,
        process: &serde_json::Value,
        tty: bool,
        stdin: bool,
    ) -> Result<(u64, i32), String> {
        let spec: crate::exec::Process = serde_json::from_value(process.clone())
            .map_err(|e| format!("the exec's process: {e}"))?;
        let init = self.procs.get(&MAIN).map_or(0, |p| p.pid);
        // Read once: the program does not change while the container runs.
        if self.seccomp.is_none() {
            if let Some(path) = &self.config.seccomp_program {
                let bpf = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                self.seccomp = Some(bpf);
            }
        }
        let (how, stdin_fd, outs) = if tty {
            (crate::exec::Stdio::Tty, None, Vec::new())
        } else {
            let stdio = make_stdio(false, stdin)?;
            (
                crate::exec::Stdio::Fds(stdio.theirs),
                stdio.stdin,
                stdio.outs,
            )
        };
        let spawned = crate::exec::spawn(init, &spec, how, self.seccomp.as_deref())?;
        if let Some(m) = &spawned.master {
            set_nonblocking(m);
        }
        let started = Started {
            pid: spawned.pid,
            master: spawned.master,
            stdin: stdin_fd,
            outs,
        };
        let proc = Proc::new(Some(exec_id.to_string()), tty, started, true);
        Ok((self.add_exec(proc), spawned.pid))
    }

    /// A process that has exited and whose output is read (or whose grace is
    /// over) is done: its exit is written down and its clients are let go.
    fn finish_procs(&mut self) {
        let finished: Vec<u64> = self
            .procs
            .iter()
            .filter(|(_, p)| {
                !p.done
                    && p.exited_at
                        .is_some_and(|at| !p.sources_open() || at.elapsed() > DRAIN_GRACE)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in finished {
            let Some(p) = self.procs.get_mut(&key) else {
                continue;
            };
            p.done = true;
            p.master = None;
            p.outs.clear();
            p.stdin = None;
            let status = ExitStatus {
                exit_code: p.exit.unwrap_or(255),
                oom_killed: false,
                error: String::new(),
            };
            match p.exec_id.clone() {
                Some(exec_id) => {
                    if let Ok(bytes) = serde_json::to_vec(&status) {
                        write_atomic(
                            &self.bundle.join(EXEC_DIR).join(format!("{exec_id}.exit")),
                            &bytes,
                        );
                    }
                }
                None => {
                    self.log.write(STDOUT, &[], true);
                    self.log.write(STDERR, &[], true);
                    let status = ExitStatus {
                        oom_killed: oom_kills(&self.config.cgroup_path) > 0,
                        ..status
                    };
                    if let Ok(bytes) = serde_json::to_vec(&status) {
                        write_atomic(&self.bundle.join(EXIT_FILE), &bytes);
                    }
                    self.main_done_at = Some(Instant::now());
                }
            }
            let mut gone = Vec::new();
            for (ck, c) in self.clients.iter_mut() {
                if matches!(c.role, Role::Stream { proc, .. } if proc == key) {
                    c.role = Role::Closing;
                    if c.out.is_empty() {
                        gone.push(*ck);
                    }
                }
            }
            for ck in gone {
                self.clients.remove(&ck);
            }
            if key != MAIN {
                self.procs.remove(&key);
            }
        }
    }
}

fn resize(master: &OwnedFd, height: u16, width: u16) -> Result<(), String> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer we pass.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("resizing: {}", std::io::Error::last_os_error()))
    }
}

/// OOM kills recorded by the memory cgroup (v1 memory.oom_control, v2
/// memory.events).
pub fn oom_kills(cgroup_path: &str) -> u64 {
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
