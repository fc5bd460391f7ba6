//! Berth's per-container shim (`shim`, the `berth-shim` binary), the protocol
//! the daemon speaks with it (`proto`), and the time format both write (`time`).

pub mod proto;
pub mod shim;
pub mod time;
