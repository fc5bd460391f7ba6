//! Containers: their configuration (checks, image defaults, names) and, in
//! `summary`, how `docker ps` and `inspect` render them from the projection.

pub mod config;
pub mod exec;
pub mod logs;
pub mod names;
pub mod render;
pub mod stats;
pub mod top;
