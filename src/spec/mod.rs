//! What config and rule files are made of, below their meaning: positioned
//! YAML (file:line:column for every diagnostic) and the units users write
//! (durations, sizes, port ranges), and the depth bound that expression texts
//! must pass before any parser sees them.
//!
//! A leaf: imports nothing of ours. Must not know what any field means; the
//! modules that own a file format (config, rules, each provider) do.
pub mod fields;
pub mod nesting;
pub mod units;
pub mod yaml;

pub use fields::{did_you_mean, Extracted, Naming};
pub use units::{format_duration, opt_duration, parse_duration, parse_port_range, parse_size};
pub use yaml::{Diagnostic, SourceFile, YPath};
