//! Prometheus text format 0.0.4 and OpenMetrics 1.0 text parser (own, byte level).
//!
//! This module owns turning a scrape body into samples, and back ([`render`]).
//! Each sample line becomes one [`ParsedSample`] whose labels include `__name__`,
//! exactly as Prometheus 2.42 ingests it: histogram `_bucket`/`_sum`/`_count`,
//! OpenMetrics `_created`, `_total`, `_gcount` … are ordinary series under their
//! own names. HELP/TYPE/UNIT lines are validated, not returned.
//!
//! The reference is what a Prometheus 2.42 scrape accepts and stores, checked
//! probe by probe against a real 2.42.0 (see `prometheus_verdicts.rs`). So the
//! text format is as lenient as Prometheus (free blanks between tokens, optional
//! and trailing commas in label sets, missing final newline, a value glued to
//! the name, raw newlines inside label values, unknown escapes such as `\t`
//! kept verbatim) and as strict (no CRLF on sample lines, no blanks before a
//! metric name, `# TYPE` text taken literally, duplicate label names).
//! OpenMetrics is strict like Prometheus's OpenMetrics parser: single spaces, no
//! blank lines or free comments, `# EOF` last, exemplars only on `_total` and
//! `_bucket` series. One deliberate difference: OpenMetrics float-second
//! timestamps are truncated to milliseconds from the exact decimal, not via a
//! binary float (`1.001` is 1001 ms, where `int64(1.001*1000)` gives 1000);
//! for epoch seconds of 2017–2036 with up to 3 decimals both agree.
//!
//! Malformed input yields a [`ParseError`] with a 1-based line and byte column;
//! no input makes the parser panic (property-tested on arbitrary bytes).

mod number;
mod parser;
#[cfg(test)]
mod prometheus_verdicts;
mod render;
#[cfg(test)]
mod tests;

use crate::model::Labels;

pub use render::render;

/// Which exposition format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text004,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// The format announced by a response `Content-Type`; text 0.0.4 when absent
    /// or unknown, as Prometheus falls back.
    pub fn from_content_type(ct: Option<&str>) -> Format {
        // As Prometheus: the media type (before any parameters), case-insensitive.
        let media = ct.and_then(|c| c.split(';').next()).map(str::trim);
        match media {
            Some(m) if m.eq_ignore_ascii_case("application/openmetrics-text") => {
                Format::OpenMetrics
            }
            _ => Format::Text004,
        }
    }

    /// The `Accept` header value a scraper should send to get either format.
    pub const ACCEPT_HEADER: &'static str =
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
}

/// An OpenMetrics exemplar attached to a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// One sample line: labels (with `__name__`), value, optional timestamp in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub labels: Labels,
    /// Every NaN spelling is returned as `f64::NAN`.
    pub value: f64,
    pub timestamp_ms: Option<i64>,
    /// Only OpenMetrics carries exemplars.
    pub exemplar: Option<Exemplar>,
}

/// Why a body could not be parsed, and where (1-based line, 1-based byte column).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parse a whole scrape body. Any malformed line fails the whole body, as a
/// Prometheus scrape fails.
pub fn parse(body: &[u8], format: Format) -> Result<Vec<ParsedSample>, ParseError> {
    parser::parse(body, format)
}
