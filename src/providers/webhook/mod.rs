//! webhook provider (in progress).
pub mod config;
