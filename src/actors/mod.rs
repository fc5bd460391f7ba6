//! The engine's actors. Each owns its state; messages are the only way in.
//! An actor's file (or folder) holds its messages and their handlers; the work
//! they call lives in the domain modules (containers, images, networks,
//! registry) and the drivers below them. Actors never import the facade.

pub mod builder;
pub mod container;
pub mod container_exec;
pub mod container_service;
pub mod event_feed;
pub mod event_log;
pub mod image_service;
pub mod network;
pub mod network_controller;
pub mod volume_service;
