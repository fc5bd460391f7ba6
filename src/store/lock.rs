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

impl DataRootLock {
    /// Takes the lock or fails at once, naming the pid that holds it.
    pub fn acquire(data_root: &Path) -> Result<DataRootLock> {
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
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    String::from("another berthd")
                } else {
                    format!("berthd (pid {holder})")
                };
                return Err(Error::conflict(format!(
                    "data root {} is in use by {who}: only one berthd can use a data root; stop it or choose another --data-root",
                    data_root.display()
                )));
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
        Ok(DataRootLock { _lock: lock })
    }
}
