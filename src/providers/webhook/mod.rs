//! webhook provider (in progress).
