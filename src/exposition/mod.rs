//! Prometheus text format 0.0.4 and OpenMetrics 1.0 text parser (own, byte level).
//!
//! This module owns turning a scrape body into samples, and back ([`render`]).
//! Each sample line becomes one [`ParsedSample`] whose labels include `__name__`,
//! exactly as Prometheus 2.42 ingests it: histogram `_bucket`/`_sum`/`_count`,
//! OpenMetrics `_created`, `_total`, `_gcount` … are ordinary series under their
//! own names. HELP/TYPE/UNIT lines are validated, not returned.
//!
//! Where Prometheus is lenient we are too (text format: free whitespace, trailing
//! comma in label sets, missing final newline). Deliberate differences: `\r\n`
//! line endings are accepted in both formats, unknown escapes in label values
//! (`\t`) are errors as in the reference Go text parser, and a duplicate label
//! name is a parse error. OpenMetrics is parsed as strictly as Prometheus's
//! OpenMetrics parser (single spaces, no blank lines, no free comments, `# EOF`).
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

use crate::labels::Labels;

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
        const OM: &[u8] = b"application/openmetrics-text";
        match ct {
            Some(c)
                if c.as_bytes()
                    .windows(OM.len())
                    .any(|w| w.eq_ignore_ascii_case(OM)) =>
            {
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
