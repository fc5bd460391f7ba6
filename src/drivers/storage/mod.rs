//! The layer store: image layers on disk, identified by ChainID and shared between
//! images. overlay2 keeps each layer's own diff; `mount` stacks them.

pub mod extract;
pub mod overlay2;
pub mod vfs;

pub use overlay2::{Driver, LayerStore};
