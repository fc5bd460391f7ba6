//! What this build is, as /version and `berthd --version` report it.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("BERTH_GIT_COMMIT");
pub const RUSTC_VERSION: &str = env!("BERTH_RUSTC_VERSION");
pub const BUILD_TIME: &str = env!("BERTH_BUILD_TIME");
