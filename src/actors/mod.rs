//! The engine's actors. Each owns its state; messages are the only way in.

pub mod container;
pub mod container_exec;
pub mod container_service;
pub mod event_log;
pub mod image_service;
pub mod network;
pub mod network_controller;
