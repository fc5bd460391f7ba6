//! A process's stdio (pipes, or a pty whose master the runtime sends back),
//! and what the runtime leaves behind (its pid file, its log).

use super::*;

pub(super) fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

pub(super) fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

pub(super) fn devnull() -> Result<OwnedFd, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| format!("/dev/null: {e}"))
}

/// The stdio a process is created with, and our ends of it.
pub(super) struct Stdio3 {
    pub(super) theirs: [OwnedFd; 3],
    pub(super) stdin: Option<OwnedFd>,
    pub(super) outs: Vec<(u8, OwnedFd)>,
}

pub(super) fn make_stdio(tty: bool, stdin: bool) -> Result<Stdio3, String> {
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
pub(super) fn receive_master(listener: &UnixListener) -> Result<OwnedFd, String> {
    listener
        .set_nonblocking(false)
        .map_err(|e| format!("console socket: {e}"))?;
    let (conn, _) = listener
        .accept()
        .map_err(|e| format!("console socket: {e}"))?;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    crate::exec::receive_fd(conn.as_fd())
}

pub(super) fn read_pid(path: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// What the runtime wrote into its log when it failed: the error, in its words.
pub(super) fn runtime_error(log: &Path, status: std::process::ExitStatus) -> String {
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
