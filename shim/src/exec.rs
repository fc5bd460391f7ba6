//! An exec done by the shim itself, for containers on the built-in runtime.
//!
//! Going through `berthd runtime exec` cost two short-lived processes per
//! exec: a 31 MB binary (RocksDB and all, ~4-7 ms just to start) and
//! libcontainer's intermediate, which re-reads the container's state and
//! cgroups. The shim already holds everything an exec needs: the container's
//! init pid (whose namespaces and cgroups the exec joins), the OCI `process`
//! the daemon built, and the compiled seccomp program. So it does what runc's
//! `exec` does, in two forks:
//!
//! - the *joiner* (a child of the shim) moves itself into the container's
//!   cgroups and namespaces (the user namespace last: the network namespace
//!   of a remapped container belongs to the host's user namespace), then
//!   forks, since a pid namespace only applies to children;
//! - the *process* (the joiner's child, the shim's through the subreaper
//!   once the joiner exits) sets up stdio or a pty from the container's own
//!   devpts, rlimits, seccomp, user, groups and capabilities, and execs.
//!
//! Both report failure as text on a close-on-exec pipe: the shim reads it to
//! its end, so an exec that succeeded is one whose pipe closed empty.
//! Only the shim's single thread ever forks here, so the children may
//! allocate.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Deserialize;

/// The part of an OCI `process` an exec uses.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub cwd: String,
    #[serde(default)]
    pub terminal: bool,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    #[serde(default)]
    pub no_new_privileges: bool,
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    #[serde(default)]
    pub console_size: Option<ConsoleSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    #[serde(default)]
    pub umask: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub bounding: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
    #[serde(default)]
    pub inheritable: Vec<String>,
    #[serde(default)]
    pub permitted: Vec<String>,
    #[serde(default)]
    pub ambient: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Deserialize)]
pub struct ConsoleSize {
    pub height: u16,
    pub width: u16,
}

/// The stdio the process gets: three descriptors, or a pty it makes.
pub enum Stdio {
    Fds([OwnedFd; 3]),
    Tty,
}

/// A started exec: its pid (in the shim's namespace) and the pty's master.
pub struct Spawned {
    pub pid: i32,
    pub master: Option<OwnedFd>,
}

/// The capability names, by number (linux/capability.h); the daemon's spec
/// uses the same table.
pub const CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability set as the kernel's 64-bit mask; unknown names are errors.
fn cap_mask(names: &[String]) -> Result<u64, String> {
    let mut mask = 0u64;
    for n in names {
        let upper = n.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        let bit = CAPS
            .iter()
            .position(|c| *c == full)
            .ok_or_else(|| format!("unknown capability {n:?}"))?;
        mask |= 1 << bit;
    }
    Ok(mask)
}

fn rlimit_resource(kind: &str) -> Result<libc::__rlimit_resource_t, String> {
    Ok(match kind {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        other => return Err(format!("unknown rlimit {other:?}")),
    })
}

/// An errno in Go's words, as runc (and so dockerd) prints it:
/// "no such file or directory".
fn errno_text(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    let s = s.split(" (os error").next().unwrap_or_default();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn check(r: libc::c_long, what: &str) -> Result<(), String> {
    if r < 0 {
        Err(format!("{what}: {}", errno_text(last_errno())))
    } else {
        Ok(())
    }
}

/// Namespaces in the order they are joined: the user namespace last, for
/// the others (the network namespace above all) may belong to the host's.
const NAMESPACES: [(&str, libc::c_int); 7] = [
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
    ("user", libc::CLONE_NEWUSER),
];

/// The namespaces of `pid` that are not the shim's own, opened.
fn namespaces_of(pid: i32) -> Result<Vec<(File, libc::c_int)>, String> {
    let mut out = Vec::new();
    for (name, flag) in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
        let file = File::open(&theirs).map_err(|e| format!("{theirs}: {e}"))?;
        let meta = file.metadata().map_err(|e| format!("{theirs}: {e}"))?;
        if ours.is_ok_and(|o| o.ino() == meta.ino() && o.dev() == meta.dev()) {
            continue;
        }
        out.push((file, flag));
    }
    Ok(out)
}

/// The cgroup.procs files of `pid`'s cgroups, one per hierarchy, from
/// /proc/PID/cgroup and where each hierarchy is mounted (v1 and v2).
fn cgroup_procs_of(pid: i32) -> Result<Vec<File>, String> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("/proc/{pid}/cgroup: {e}"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let mut files = Vec::new();
    for path in cgroup_dirs(&cgroups, &mountinfo) {
        let procs = Path::new(&path).join("cgroup.procs");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .map_err(|e| format!("{}: {e}", procs.display()))?;
        files.push(f);
    }
    Ok(files)
}

/// The directories of the cgroups named in a /proc/PID/cgroup text, under
/// the mounts of a mountinfo text. Hierarchies not mounted are skipped.
pub fn cgroup_dirs(cgroups: &str, mountinfo: &str) -> Vec<String> {
    // (mount point, controllers: None for cgroup2)
    let mut mounts: Vec<(String, Option<HashSet<String>>)> = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let rfields: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || rfields.len() < 3 || fields[3] != "/" {
            continue;
        }
        match rfields[0] {
            "cgroup2" => mounts.push((fields[4].to_string(), None)),
            "cgroup" => {
                let set = rfields[2]
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains("xattr"))
                    .filter(|o| *o != "noprefix" && !o.starts_with("release_agent"))
                    .filter(|o| !o.starts_with("clone_children"))
                    .map(String::from)
                    .collect();
                mounts.push((fields[4].to_string(), Some(set)));
            }
            _ => {}
        }
    }
    let mut dirs = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let want: Option<HashSet<String>> = if ctrls.is_empty() {
            None
        } else {
            Some(ctrls.split(',').map(String::from).collect())
        };
        let found = mounts.iter().find(|(_, set)| match (&want, set) {
            (None, None) => true,
            (Some(w), Some(s)) => w == s,
            _ => false,
        });
        if let Some((mnt, _)) = found {
            dirs.push(format!("{}{}", mnt.trim_end_matches('/'), path));
        }
    }
    dirs
}

/// What `spawn` computes before it forks, so the children do no parsing.
struct Plan {
    namespaces: Vec<(File, libc::c_int)>,
    cgroups: Vec<File>,
    last_cap: usize,
    caps: Option<[u64; 5]>,
    rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    path: Vec<String>,
    cwd: CString,
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} holds a NUL byte"))
}

fn plan(init_pid: i32, p: &Process) -> Result<Plan, String> {
    if p.args.is_empty() {
        return Err("no command".into());
    }
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(CAPS.len() - 1)
        .min(CAPS.len() - 1);
    let caps = match &p.capabilities {
        Some(c) => Some([
            cap_mask(&c.bounding)?,
            cap_mask(&c.effective)?,
            cap_mask(&c.inheritable)?,
            cap_mask(&c.permitted)?,
            cap_mask(&c.ambient)?,
        ]),
        None => None,
    };
    let rlimits = p
        .rlimits
        .iter()
        .map(|r| Ok((rlimit_resource(&r.kind)?, r.soft, r.hard)))
        .collect::<Result<Vec<_>, String>>()?;
    let path = p
        .env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .split(':')
        .filter(|d| !d.is_empty())
        .map(String::from)
        .collect();
    Ok(Plan {
        namespaces: namespaces_of(init_pid)?,
        cgroups: cgroup_procs_of(init_pid)?,
        last_cap,
        caps,
        rlimits,
        argv: p
            .args
            .iter()
            .map(|a| cstring(a))
            .collect::<Result<_, _>>()?,
        envp: p.env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?,
        path,
        cwd: cstring(if p.cwd.is_empty() { "/" } else { &p.cwd })?,
    })
}

/// Runs `p` in the container whose init is `init_pid`, with `seccomp` (a
/// compiled BPF program) when given. Returns once the process has exec'd,
/// or with the reason it could not, in runc's words.
pub fn spawn(
    init_pid: i32,
    p: &Process,
    stdio: Stdio,
    seccomp: Option<&[u8]>,
) -> Result<Spawned, String> {
    let plan = plan(init_pid, p)?;
    let (err_r, err_w) = cloexec_pipe()?;
    let (pid_r, pid_w) = cloexec_pipe()?;
    let pty = match stdio {
        Stdio::Tty => Some(socketpair()?),
        Stdio::Fds(_) => None,
    };
    // SAFETY: the shim is single-threaded, so the child may run any code;
    // it never returns from `joiner`.
    let joiner = unsafe { libc::fork() };
    if joiner < 0 {
        return Err(format!("fork: {}", errno_text(last_errno())));
    }
    if joiner == 0 {
        drop(err_r);
        drop(pid_r);
        let theirs = pty.as_ref().map(|(_, theirs)| theirs.as_raw_fd());
        joiner_main(&plan, p, &stdio, theirs, seccomp, &err_w, &pid_w);
    }
    drop(err_w);
    drop(pid_w);
    drop(stdio);
    let mut pid_text = String::new();
    let _ = File::from(pid_r).read_to_string(&mut pid_text);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(joiner, &mut status, 0) };
    let mut error = String::new();
    let _ = File::from(err_r).read_to_string(&mut error);
    let pid: i32 = pid_text.trim().parse().unwrap_or(0);
    if !error.is_empty() || pid <= 0 {
        if pid > 0 {
            // It wrote why and exits: reap it here, not in the loop.
            // SAFETY: the process is ours (subreaper) once the joiner is gone.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
        if error.is_empty() {
            error = "the exec's process did not start".into();
        }
        return Err(error);
    }
    let master = match pty {
        Some((ours, theirs)) => {
            drop(theirs);
            Some(receive_fd(ours.as_fd())?)
        }
        None => None,
    };
    Ok(Spawned { pid, master })
}

/// The joiner: into the cgroups and namespaces, then the fork of the
/// process. Never returns.
fn joiner_main(
    plan: &Plan,
    p: &Process,
    stdio: &Stdio,
    pty: Option<RawFd>,
    seccomp: Option<&[u8]>,
    err_w: &OwnedFd,
    pid_w: &OwnedFd,
) -> ! {
    let fail = |msg: String| -> ! {
        let _ = write_fd(err_w, msg.as_bytes());
        // SAFETY: _exit ends this child without running the shim's destructors.
        unsafe { libc::_exit(1) }
    };
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() }.to_string();
    for mut f in plan.cgroups.iter() {
        if let Err(e) = f.write_all(me.as_bytes()) {
            fail(format!("joining the container's cgroup: {e}"));
        }
    }
    for (f, flag) in &plan.namespaces {
        // SAFETY: setns on an open namespace descriptor.
        if unsafe { libc::setns(f.as_raw_fd(), *flag) } < 0 {
            fail(format!("setns: {}", errno_text(last_errno())));
        }
    }
    // SAFETY: single-threaded; the child runs `process_main` and never returns.
    let child = unsafe { libc::fork() };
    if child < 0 {
        fail(format!("fork: {}", errno_text(last_errno())));
    }
    if child == 0 {
        match process_main(plan, p, stdio, pty, seccomp) {
            Ok(never) => match never {},
            Err(msg) => fail(msg),
        }
    }
    let _ = write_fd(pid_w, child.to_string().as_bytes());
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

enum Never {}

/// The process: stdio, limits, seccomp, identity, then exec.
fn process_main(
    plan: &Plan,
    p: &Process,
    stdio: &Stdio,
    pty: Option<RawFd>,
    seccomp: Option<&[u8]>,
) -> Result<Never, String> {
    crate::signals::reset_before_exec();
    // SAFETY: plain syscalls on descriptors and integers this process owns.
    unsafe {
        match stdio {
            Stdio::Fds(fds) => {
                // Above 2 first, so that no dup2 overwrites a source.
                let mut high = [0; 3];
                for (i, fd) in fds.iter().enumerate() {
                    high[i] = libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3);
                    check(high[i] as libc::c_long, "stdio")?;
                }
                for (i, fd) in high.iter().enumerate() {
                    check(libc::dup2(*fd, i as RawFd) as libc::c_long, "stdio")?;
                }
            }
            Stdio::Tty => {
                let sock = pty.ok_or("no pty socket")?;
                let master = libc::open(
                    c"/dev/ptmx".as_ptr(),
                    libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
                );
                check(master as libc::c_long, "opening /dev/ptmx")?;
                let unlock: libc::c_int = 0;
                check(
                    libc::ioctl(master, libc::TIOCSPTLCK, &unlock) as libc::c_long,
                    "unlocking the pty",
                )?;
                let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
                check(slave as libc::c_long, "opening the pty's slave")?;
                if let Some(size) = &p.console_size {
                    let ws = libc::winsize {
                        ws_row: size.height,
                        ws_col: size.width,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    libc::ioctl(slave, libc::TIOCSWINSZ, &ws);
                }
                // The user owns the terminal it is given, as with runc.
                libc::fchown(slave, p.user.uid, u32::MAX);
                send_fd(sock, master)?;
                libc::close(master);
                check(libc::setsid() as libc::c_long, "setsid")?;
                check(
                    libc::ioctl(slave, libc::TIOCSCTTY, 0) as libc::c_long,
                    "setting the controlling terminal",
                )?;
                for i in 0..3 {
                    check(libc::dup2(slave, i) as libc::c_long, "stdio")?;
                }
                if slave > 2 {
                    libc::close(slave);
                }
            }
        }
        // Nothing of the shim's beyond stdio reaches the process.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        for (res, soft, hard) in &plan.rlimits {
            let lim = libc::rlimit {
                rlim_cur: *soft,
                rlim_max: *hard,
            };
            check(
                libc::setrlimit(*res, &lim) as libc::c_long,
                "setting rlimits",
            )?;
        }
        if let Some(adj) = p.oom_score_adj {
            let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
        }
        libc::umask(p.user.umask.unwrap_or(0o022) as libc::mode_t);
    }
    let binary = look_path(&p.args[0], &plan.path)?;
    // Without no_new_privs the filter goes in while the capabilities that
    // allow it are still there (as runc does); with it, just before exec.
    if let (Some(bpf), false) = (seccomp, p.no_new_privileges) {
        install_seccomp(bpf)?;
    }
    // As runc: the directory is entered as root, and once more as the user
    // when root could not (a root-squashed mount).
    // SAFETY: chdir on a C string.
    let early = unsafe { libc::chdir(plan.cwd.as_ptr()) } == 0;
    set_identity(plan, p)?;
    // SAFETY: chdir/prctl with valid arguments.
    unsafe {
        if !early && libc::chdir(plan.cwd.as_ptr()) < 0 {
            return Err(format!(
                "chdir to cwd ({:?}) set in config.json failed: {}",
                plan.cwd.to_string_lossy(),
                errno_text(last_errno())
            ));
        }
        if p.no_new_privileges {
            check(
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long,
                "no_new_privs",
            )?;
        }
    }
    if let (Some(bpf), true) = (seccomp, p.no_new_privileges) {
        install_seccomp(bpf)?;
    }
    let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = plan.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NUL-terminated arrays of C strings alive here.
    unsafe { libc::execve(binary.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Err(format!(
        "exec: {:?}: {}",
        p.args[0],
        errno_text(last_errno())
    ))
}

/// Groups, gid and uid, then the capability sets, as runc orders them: the
/// bounding set first, the permitted set kept across the uid change.
fn set_identity(plan: &Plan, p: &Process) -> Result<(), String> {
    let u = &p.user;
    // SAFETY: prctl/setgroups/setresgid/setresuid/capset with valid arguments.
    unsafe {
        if let Some([bounding, ..]) = plan.caps {
            for cap in 0..=plan.last_cap {
                if bounding & (1 << cap) == 0 {
                    check(
                        libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) as libc::c_long,
                        "dropping from the bounding set",
                    )?;
                }
            }
        }
        check(
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) as libc::c_long,
            "keepcaps",
        )?;
        check(
            libc::setgroups(u.additional_gids.len(), u.additional_gids.as_ptr()) as libc::c_long,
            "setgroups",
        )?;
        check(
            libc::setresgid(u.gid, u.gid, u.gid) as libc::c_long,
            "setgid",
        )?;
        check(
            libc::setresuid(u.uid, u.uid, u.uid) as libc::c_long,
            "setuid",
        )?;
        check(
            libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) as libc::c_long,
            "keepcaps",
        )?;
        if let Some([_, effective, inheritable, permitted, ambient]) = plan.caps {
            #[repr(C)]
            struct Header {
                version: u32,
                pid: i32,
            }
            #[repr(C)]
            #[derive(Clone, Copy)]
            struct Data {
                effective: u32,
                permitted: u32,
                inheritable: u32,
            }
            let header = Header {
                version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
                pid: 0,
            };
            let half = |m: u64, hi: bool| if hi { (m >> 32) as u32 } else { m as u32 };
            let data = [false, true].map(|hi| Data {
                effective: half(effective, hi),
                permitted: half(permitted, hi),
                inheritable: half(inheritable, hi),
            });
            check(
                libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()),
                "setting capabilities",
            )?;
            for cap in 0..=plan.last_cap {
                if ambient & (1 << cap) != 0 {
                    // As runc: a cap the kernel refuses to raise is skipped.
                    libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0);
                }
            }
        }
    }
    Ok(())
}

/// The binary `name` names: itself when it has a slash, else the first
/// executable regular file of that name on `path`; in runc's words when none.
fn look_path(name: &str, path: &[String]) -> Result<CString, String> {
    let executable = |p: &str| -> Result<(), i32> {
        let meta = std::fs::metadata(p).map_err(|e| e.raw_os_error().unwrap_or(libc::ENOENT))?;
        if meta.is_dir() {
            return Err(libc::EISDIR);
        }
        if meta.mode() & 0o111 == 0 {
            return Err(libc::EACCES);
        }
        Ok(())
    };
    if name.contains('/') {
        return match executable(name) {
            Ok(()) => cstring(name),
            Err(libc::ENOENT) => Err(format!(
                "exec: {name:?}: stat {name}: no such file or directory"
            )),
            Err(e) => Err(format!("exec: {name:?}: {}", errno_text(e))),
        };
    }
    for dir in path {
        let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
        if executable(&candidate).is_ok() {
            return cstring(&candidate);
        }
    }
    Err(format!(
        "exec: {name:?}: executable file not found in $PATH"
    ))
}

/// Hands the kernel a compiled seccomp program (`struct sock_filter`s). A
/// process that may not (no CAP_SYS_ADMIN) gets no_new_privs first, which
/// the kernel then requires.
pub fn install_seccomp(bpf: &[u8]) -> Result<(), String> {
    if bpf.is_empty() || bpf.len() % 8 != 0 {
        return Err(format!("a seccomp program of {} bytes", bpf.len()));
    }
    let filters: Vec<libc::sock_filter> = bpf
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: filters.len() as u16,
        filter: filters.as_ptr() as *mut libc::sock_filter,
    };
    let load = || {
        // SAFETY: prog points at `filters`, alive for the call.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        }
    };
    if load() == 0 {
        return Ok(());
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if load() == 0 {
        Ok(())
    } else {
        Err(format!(
            "loading the seccomp program: {}",
            errno_text(last_errno())
        ))
    }
}

fn cloexec_pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn socketpair() -> Result<(OwnedFd, OwnedFd), String> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("socketpair: {e}"))
}

fn write_fd(fd: &OwnedFd, bytes: &[u8]) -> std::io::Result<()> {
    // SAFETY: borrowing the descriptor for one write; ManuallyDrop keeps it open.
    let mut f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
    f.write_all(bytes)
}

fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), String> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd];
    let iov = [std::io::IoSlice::new(b"pty")];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("sending the pty: {e}"))
}

/// A descriptor sent over a unix socket (SCM_RIGHTS): a pty's master.
pub(crate) fn receive_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 16];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receiving the pty: {e}"))?;
    for cmsg in msg.cmsgs().map_err(|e| format!("receiving the pty: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor; we own it.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err("no pty came back".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_become_the_kernels_bits() {
        let m = cap_mask(&["CAP_CHOWN".into(), "net_raw".into(), "CAP_BPF".into()]).unwrap();
        assert_eq!(m, 1 | 1 << 13 | 1 << 39);
        assert!(cap_mask(&["CAP_NOPE".into()]).is_err());
    }

    #[test]
    fn cgroups_are_found_under_their_v1_and_v2_mounts() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
35 30 0:31 /inner /mnt/bind rw - cgroup cgroup rw,pids";
        let cgroups = "\
4:memory:/berth/abc
3:cpuacct,cpu:/berth/abc
2:pids:/berth/abc
1:name=systemd:/x
0::/berth/abc";
        assert_eq!(
            cgroup_dirs(cgroups, mountinfo),
            [
                "/sys/fs/cgroup/memory/berth/abc",
                "/sys/fs/cgroup/cpu,cpuacct/berth/abc",
                "/sys/fs/cgroup/systemd/x",
                "/sys/fs/cgroup/unified/berth/abc",
            ]
        );
    }

    #[test]
    fn errors_are_in_gos_words() {
        assert_eq!(errno_text(libc::ENOENT), "no such file or directory");
        assert_eq!(errno_text(libc::EACCES), "permission denied");
    }

    #[test]
    fn binaries_are_looked_up_on_the_path() {
        let path = vec!["/nonexistent".to_string(), "/bin".to_string()];
        assert_eq!(look_path("sh", &path).unwrap().to_str().unwrap(), "/bin/sh");
        assert_eq!(
            look_path("nosuch", &path).unwrap_err(),
            "exec: \"nosuch\": executable file not found in $PATH"
        );
        assert_eq!(
            look_path("/nosuch", &path).unwrap_err(),
            "exec: \"/nosuch\": stat /nosuch: no such file or directory"
        );
        assert_eq!(
            look_path("/etc/passwd", &path).unwrap_err(),
            "exec: \"/etc/passwd\": permission denied"
        );
    }
}
