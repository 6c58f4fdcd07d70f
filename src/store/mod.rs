//! In-memory time-series store: interned label sets, numeric series ids,
//! per-series ring buffers.
//!
//! Owns retention (derived from the longest range any loaded rule needs, plus the
//! 5m lookback), staleness markers (Prometheus's special NaN) and dropping of
//! series that have not been written for longer than retention. Must not know
//! PromQL: selection is by label matchers only.
// API CONTRACT (filled in by the store/query work):
//   Store::new() -> Store
//   Store::set_retention_ms(&mut self, ms: i64)
//   Store::append(&mut self, labels: &Labels, t: TimestampMs, v: f64) -> SeriesId
//   Store::append_id(&mut self, id: SeriesId, t: TimestampMs, v: f64)
//   Store::mark_stale(&mut self, id: SeriesId, t: TimestampMs)
//   Store::select(&self, matchers: &[Matcher], start: TimestampMs, end: TimestampMs) -> Vec<SeriesView<'_>>
//   Store::labels(&self, id) -> Option<&Labels>
//   Store::gc(&mut self, now: TimestampMs) -> usize        (series dropped)
//   Store::series_count(&self) -> usize
//   SharedStore = Arc<RwLock<Store>>
//   STALE_NAN_BITS, is_stale_nan(f64)
