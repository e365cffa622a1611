//! The model of the system explored by `model_check.rs`.

pub mod pg;
pub mod world;
