//! Persistence: the RocksDB event log and the data-root lock.

pub mod blobs;
pub mod envelope;
pub mod eventlog;
pub mod lock;
pub mod retention;
