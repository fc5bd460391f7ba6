//! Images, the domain: archives made by `docker save` (and OCI image layouts),
//! tarballs for `docker import`, `docker commit`, the Dockerfile changes both
//! import and commit apply to a config, what image inspect adds by API
//! version (`inspect`), queries over the projection, and
//! (`files`) where an image's config and layers are on the host.

pub mod archive;
pub mod build;
pub mod build_cache;
pub mod changes;
pub mod commit;
pub mod context;
pub mod files;
pub mod import;
pub mod inspect;
pub mod query;
