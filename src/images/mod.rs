//! Image formats on disk: archives made by `docker save` (and OCI image layouts),
//! tarballs for `docker import`, and the Dockerfile changes both import and
//! commit apply to a config.

pub mod archive;
pub mod changes;
pub mod commit;
pub mod import;
pub mod query;
