//! A process handed to a container starts as the kernel would start it:
//! every signal at its default action and none blocked. A parent's state
//! leaks otherwise (the shim blocks SIGCHLD for its signalfd; Rust ignores
//! SIGPIPE; a shell ignores SIGQUIT in background jobs), and a container's
//! shell or pipeline then behaves unlike on dockerd.

/// Resets every catchable signal to SIG_DFL and empties the mask. Only
/// async-signal-safe calls: fit for between fork and exec.
pub fn reset() {
    // SAFETY: sigemptyset/sigprocmask/signal on valid arguments; no memory
    // is allocated and no lock is taken.
    unsafe {
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
