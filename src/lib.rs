//! Berth: a container engine for Linux that speaks the Docker Engine API.
//! The map of the code is DESIGN.md (README's "Layout" says where each thing
//! lives); each module says what it owns. Imports point one way: api -> actors
//! -> domain (containers, images, networks, registry) -> drivers -> store and
//! events, with leaf helpers (clock, error, chan, spool, config, hostinfo, paths)
//! usable from all; `tests/layering.rs` keeps it so.

pub mod actors;
pub mod api;
pub mod builder;
pub mod buildinfo;
pub mod chan;
pub mod clock;
pub mod config;
pub mod containers;
pub mod daemon;
pub mod decompress;
pub mod drivers;
pub mod error;
pub mod events;
pub mod go_json;
pub mod hostinfo;
pub mod images;
pub mod logging;
pub mod metrics;
pub mod networks;
pub mod paths;
pub mod random;
pub mod registry;
pub mod spool;
pub mod store;
pub mod volumes;
