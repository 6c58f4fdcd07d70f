//! Sources that write the store besides the scraper (DESIGN.md §1).

pub mod otlp;
