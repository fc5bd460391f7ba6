//! The runtime: the OCI spec written for a container (`spec`), its bundle and
//! rootfs (`bundle`), and the per-container shim that runs it (`shim`).

pub mod bundle;
pub mod shim;
pub mod spec;
