//! Live restore: a daemon that starts again watches each running
//! container's shim, or records the exit of one that ended meanwhile.

use actix::prelude::*;
use tracing::{info, warn};

use super::*;

/// The daemon started and found this container running: watch its shim
/// again, or, if it ended while no daemon watched, record how.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconnect;

impl Handler<Reconnect> for ContainerActor {
    type Result = ();

    fn handle(&mut self, _: Reconnect, ctx: &mut Context<Self>) {
        let dir = self.rt.bundle_dir(&self.id);
        let ended: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> = match open_shim(&dir)
        {
            Some(fd) => {
                info!(container = %self.id, "watching its shim again");
                Box::pin(shim_ended(fd))
            }
            None => Box::pin(async {}),
        };
        self.watch_exit(ended, dir, ctx);
    }
}

/// A pidfd of the shim that serves `bundle`, if it still runs: the pid in
/// its file is taken for the shim only while that process runs on this
/// bundle (pids are reused). A daemon killed between launching a shim and
/// writing its pid file leaves no file: then the shim is looked for among
/// the processes, and its file written.
pub(super) fn open_shim(bundle: &std::path::Path) -> Option<std::os::fd::OwnedFd> {
    let recorded = std::fs::read_to_string(bundle.join(SHIM_PID))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok());
    if let Some(fd) = recorded.and_then(|pid| pidfd_of_shim(pid, bundle)) {
        return Some(fd);
    }
    let pid = find_shim(bundle)?;
    let fd = pidfd_of_shim(pid, bundle)?;
    let _ = std::fs::write(bundle.join(SHIM_PID), pid.to_string());
    Some(fd)
}

/// A pidfd of process `pid` if it is the shim of `bundle` (its command line
/// is the shim and the bundle, nothing else).
fn pidfd_of_shim(pid: i32, bundle: &std::path::Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this fd; nothing else owns it.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // Read after the pidfd is held: if this is our shim now, the pidfd is its.
    is_shim_of(pid, bundle).then_some(fd)
}

fn is_shim_of(pid: i32, bundle: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(&cmdline)
        .split(|b| *b == 0)
        .collect();
    args.len() == 2 && args[1] == bundle.as_os_str().as_bytes()
}

/// The process whose command line is a shim on `bundle`, if any.
fn find_shim(bundle: &std::path::Path) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| is_shim_of(*pid, bundle))
}

/// Resolves when the process behind `pidfd` has ended (a pidfd turns
/// readable then).
pub(super) async fn shim_ended(pidfd: std::os::fd::OwnedFd) {
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same
    // until it is dropped with it.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    };
    match registered {
        Ok(fd) => {
            let _ = fd.readable().await;
        }
        Err(e) => warn!(error = %e, "watching a shim's pidfd"),
    }
}
