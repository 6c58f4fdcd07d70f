//! Poison-tolerant locking for the agent's plain-data mutexes.
//!
//! Owns one rule: a panic in a holder must not stop the agent. What these
//! mutexes guard is plain data (caches, maps, counters) that a panicking
//! holder cannot leave worse than unusable, so a poisoned lock is taken anyway.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, taking it over if a panicking holder poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
