//! scrape (in progress).
