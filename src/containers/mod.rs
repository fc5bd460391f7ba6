//! Containers: their configuration (checks, image defaults, names) and, in
//! `summary`, how `docker ps` and `inspect` render them from the projection.

pub mod archive;
pub mod config;
pub mod diff;
pub mod exec;
pub mod logs;
pub mod names;
pub mod render;
pub mod restart;
pub mod stats;
pub mod top;
pub mod update;
