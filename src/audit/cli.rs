//! Library half of `homeostat audit`: printing, following, the summary table.
//!
//! Owns the human rendering of events. The clap wiring lives in main.rs.
