//! Image formats on disk: archives made by `docker save` (and OCI image layouts).

pub mod archive;
pub mod query;
