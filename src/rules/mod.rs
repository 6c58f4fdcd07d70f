//! rules (in progress).
