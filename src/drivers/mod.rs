//! Drivers: how the engine's abstractions meet the kernel.

pub mod storage;
