//! One berthd per data root: an exclusive flock held for the daemon's lifetime.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

pub struct DataRootLock {
    _lock: Flock<File>,
}

/// Who holds a data root's lock: the pid it wrote there, if it got to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
}

impl Holder {
    /// Whether the berthd that wrote its pid still runs (unknown: yes).
    fn is_alive(&self) -> bool {
        match self.pid {
            Some(pid) => !matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None),
                Err(nix::errno::Errno::ESRCH)
            ),
            None => true,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "berthd (pid {pid})"),
            None => f.write_str("another berthd"),
        }
    }
}

impl DataRootLock {
    /// Takes the lock or fails, naming the pid that holds it. A holder that
    /// is dead is waited for a little: a berthd killed while it forked a
    /// child (a shim, iptables) leaves the lock's file to that child until
    /// it execs, which under load can take a while; seen as a spurious "in
    /// use" when a killed berthd was started again at once.
    pub fn acquire(data_root: &Path) -> Result<DataRootLock> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let holder = match Self::try_acquire(data_root)? {
                Ok(lock) => return Ok(lock),
                Err(holder) => holder,
            };
            if holder.is_alive() || std::time::Instant::now() >= deadline {
                return Err(Error::conflict(format!(
                    "data root {} is in use by {holder}: only one berthd can use a data root; stop it or choose another --data-root",
                    data_root.display()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Takes the lock (writing this process's pid in it), or answers who
    /// holds it; never waits. `berthd network-cleanup` holds it too while it
    /// works, so no daemon starts on the data root meanwhile.
    pub fn try_acquire(data_root: &Path) -> Result<std::result::Result<DataRootLock, Holder>> {
        let path = data_root.join("berthd.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::internal(format!("opening lock file {}: {e}", path.display())))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Ok(Err(Holder {
                    pid: holder.trim().parse().ok(),
                }));
            }
            Err((_, errno)) => {
                return Err(Error::internal(format!(
                    "locking {}: {errno}",
                    path.display()
                )));
            }
        };
        let pid = std::process::id().to_string();
        let written = lock
            .set_len(0)
            .and_then(|_| lock.seek(SeekFrom::Start(0)))
            .and_then(|_| lock.write_all(pid.as_bytes()));
        if let Err(e) = written {
            return Err(Error::internal(format!(
                "writing pid to {}: {e}",
                path.display()
            )));
        }
        Ok(Ok(DataRootLock { _lock: lock }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_holder_is_refused_at_once_and_a_dead_ones_lock_is_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = DataRootLock::acquire(dir.path()).expect("first");
        let Err(refused) = DataRootLock::acquire(dir.path()) else {
            panic!("taken while held by a live pid");
        };
        assert!(refused
            .to_string()
            .contains(&format!("pid {}", std::process::id())));
        // The pid in the file is dead, the lock still held (a forked child
        // that has not exec'd yet): the next berthd waits for it.
        let mut dead = std::process::Command::new("true").spawn().expect("spawn");
        let dead_pid = dead.id();
        dead.wait().expect("wait");
        std::fs::write(dir.path().join("berthd.lock"), dead_pid.to_string()).expect("write");
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        DataRootLock::acquire(dir.path()).expect("taken once the child lets go");
        releaser.join().expect("join");
    }
}
