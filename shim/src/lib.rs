//! Berth's per-container shim (`shim`, the `berth-shim` binary; `init` when it
//! runs as a container's docker-init), the protocol
//! the daemon speaks with it (`proto`), the exec it does itself for the
//! built-in runtime (`exec`), and the time format both write (`time`).

pub mod exec;
pub mod init;
pub mod pages;
pub mod proto;
pub mod shim;
pub mod signals;
pub mod time;
