//! process provider (in progress).
pub mod config;
