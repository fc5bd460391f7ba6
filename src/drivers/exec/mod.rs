//! The runtime: the OCI spec written for a container (`spec`), its bundle and
//! rootfs (`bundle`), the built-in OCI runtime behind runc's command line
//! (`runtime`), and the daemon's side of a shim's socket (`client`). The shim
//! itself, and the protocol (`proto`), are the `berth-shim` crate (`shim/`):
//! a binary of its own, linked statically, one per running container.

pub mod bundle;
pub mod client;
pub mod runtime;
pub mod seccomp;
pub mod seccomp_bpf;
pub mod spec;

pub use berth_shim::proto;
