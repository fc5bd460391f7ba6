//! Berth: a container engine for Linux that speaks the Docker Engine API.
//! The map of the code is DESIGN.md; each module says what it owns.

pub mod actors;
pub mod api;
pub mod buildinfo;
pub mod chan;
pub mod config;
pub mod containers;
pub mod daemon;
pub mod drivers;
pub mod error;
pub mod events;
pub mod hostinfo;
pub mod images;
pub mod logging;
pub mod networks;
pub mod registry;
pub mod store;
