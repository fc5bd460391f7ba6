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

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "berthd (pid {pid})"),
            None => f.write_str("another berthd"),
        }
    }
}

impl DataRootLock {
    /// Takes the lock or fails at once, naming the pid that holds it.
    pub fn acquire(data_root: &Path) -> Result<DataRootLock> {
        Self::try_acquire(data_root)?.map_err(|holder| {
            Error::conflict(format!(
                "data root {} is in use by {holder}: only one berthd can use a data root; stop it or choose another --data-root",
                data_root.display()
            ))
        })
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
