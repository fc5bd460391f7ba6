//! The pure parts of the classic image builder (`POST /build`, what
//! `DOCKER_BUILDKIT=0 docker build` talks to), written to behave as dockerd
//! 20.10's classic builder: the same Dockerfiles accepted, the same ones
//! refused, with dockerd's words.
//!
//! - [`dockerfile`]: parse a Dockerfile into stages and typed instructions
//!   (directives, continuations, JSON and shell forms, flags).
//! - [`expand`]: `$VAR` substitution and word splitting, and which
//!   instructions dockerd expands.
//! - [`ignore`]: `.dockerignore` rules.
//!
//! Everything here is pure: no file system, no network, no clock; the
//! caller hands in text and lookups and gets values or typed errors whose
//! `Display` is dockerd's message. Running the steps (containers, layers,
//! the cache, the output stream) is not here.

pub mod dockerfile;
pub mod expand;
pub mod ignore;

mod flags;
pub mod glob;
mod gocompat;
mod json;
mod model;
mod parser;
mod words;
