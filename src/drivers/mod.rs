//! Drivers: how the engine's abstractions meet the kernel.

pub mod exec;
pub mod network;
pub mod storage;
pub mod userns;
pub mod volumes;
