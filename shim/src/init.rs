//! `docker run --init`: the shim's binary, bind-mounted at /sbin/docker-init,
//! runs as the container's pid 1 in front of its command (what tini does for
//! dockerd): it starts the command, passes it the signals it gets, reaps every
//! orphan the container leaves, and exits as the command did. The binary is
//! static, so it runs in any image.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Signals that are the command's business, not ours.
const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
    Signal::SIGPIPE,
];

/// Runs `argv` (after an optional `--`) under this init; returns the exit code.
pub fn main(args: &[OsString]) -> i32 {
    let args = match args.first().map(|a| a.to_str()) {
        Some(Some("--")) => &args[1..],
        _ => args,
    };
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("docker-init: no command given");
        return 1;
    };
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(*s);
    }
    mask.add(Signal::SIGCHLD);
    if mask.thread_block().is_err() {
        eprintln!("docker-init: cannot block signals");
        return 1;
    }
    let mut command = std::process::Command::new(cmd);
    command.args(rest).process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            crate::signals::reset_before_exec();
            Ok(())
        });
    }
    let child = command.spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("docker-init: exec {}: {e}", cmd.to_string_lossy());
            return if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    let child = Pid::from_raw(child.id() as i32);
    // The command leads its own process group, and owns the terminal if any.
    // SAFETY: tcsetpgrp on stdin with a pid we just started; no memory is touched.
    unsafe {
        if libc::isatty(0) == 1 {
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(0, child.as_raw());
        }
    }
    loop {
        let sig = match mask.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(child, sig);
            continue;
        }
        // Reap everything that ended; the command's end is ours.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => return 128 + s as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
