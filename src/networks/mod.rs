//! Networks, the pure part: what a network is, addresses, published ports,
//! the files a container's resolver reads, the DNS wire format and the names a
//! network's DNS answers (`index`), what the firewall should hold
//! (`firewall_plan`), and how all of it reads in the API. The kernel side is
//! `drivers::network`; the decisions are the NetworkController's.

pub mod dns;
pub mod files;
pub mod firewall_plan;
pub mod index;
pub mod ipam;
pub mod ipam6;
pub mod links;
pub mod ports;
pub mod render;
pub mod resolver;
pub mod spec;

/// The sandbox type is the runtime's (the lower layer); the NetworkController fills it.
pub use crate::drivers::exec::spec::Sandbox;
