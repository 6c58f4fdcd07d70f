//! Sources other than the scrape loop: data the agent receives or fetches.
//!
//! Each source owns its wire format and validation and hands plain values to
//! the agent; none of them reads or writes agent state directly.
pub mod alertmanager;
