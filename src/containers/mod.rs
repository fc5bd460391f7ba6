//! Containers, the domain: their configuration (checks, image defaults,
//! names), how `docker ps` and `inspect` render them from the projection
//! (`render`), their files (`archive`, `diff`, and `storage`: where they are on
//! the host), logs, mounts (`-v`, `--mount`), stats, top, updates, restart policy and exec records.
//! Pure where it can be; no actor and no part of the facade is imported here.

pub mod archive;
pub mod config;
pub mod diff;
pub mod exec;
pub mod health;
pub mod logs;
pub mod mounts;
pub mod names;
pub mod namespaces;
pub mod render;
pub mod restart;
pub mod stats;
pub mod storage;
pub mod top;
pub mod update;
