//! process provider (in progress).
