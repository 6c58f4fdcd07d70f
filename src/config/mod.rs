//! The agent's config file: raw serde structs → `compile()` → runtime config.
//!
//! Owns parsing and validation of `homeostat.yaml` (DESIGN.md §6); every error
//! carries file:line:column. Must not start anything, open sockets or read
//! the clock; the only I/O is reading the config file and the API token file.
mod compile;
pub mod raw;
mod secret;

pub use compile::*;
pub use secret::ApiToken;

#[cfg(test)]
mod tests_config;
