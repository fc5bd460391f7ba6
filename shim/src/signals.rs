//! A process handed to a container starts as the kernel would start it:
//! every signal at its default action and none blocked. A parent's state
//! leaks otherwise (the shim blocks SIGCHLD for its signalfd; Rust ignores
//! SIGPIPE; a shell ignores SIGQUIT in background jobs), and a container's
//! shell or pipeline then behaves unlike on dockerd.

/// Resets every catchable signal to SIG_DFL and empties the mask, glibc's
/// own two (32, 33) included: only between fork and exec, where nothing of
/// glibc's threading runs any more. Only async-signal-safe calls.
pub fn reset_before_exec() {
    // SAFETY: sigemptyset/sigprocmask/signal on valid arguments; no memory
    // is allocated and no lock is taken.
    unsafe {
        // The raw rt_sigaction: glibc's signal() refuses 32 and 33, which it
        // keeps for itself, and those can arrive ignored too.
        #[repr(C)]
        struct KernelSigaction {
            handler: usize,
            flags: libc::c_ulong,
            restorer: usize,
            mask: u64,
        }
        let dfl = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                );
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Resets the standard signals (1..SIGRTMIN) and empties the mask, leaving
/// glibc's own alone: for a process that goes on running (berthd runtime).
pub fn reset() {
    // SAFETY: signal/sigemptyset/sigprocmask on valid arguments.
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
