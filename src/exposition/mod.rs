//! Prometheus text format 0.0.4 and OpenMetrics 1.0 text parser (own, byte level).
// API CONTRACT (being implemented):
//   parse(body: &[u8], format: Format) -> Result<Vec<ParsedSample>, ParseError>
//   Format::from_content_type(Option<&str>) -> Format   (Text004 | OpenMetrics)
//   ParsedSample { labels: Labels /* incl __name__ */, value: f64, timestamp_ms: Option<i64>, exemplar: Option<Exemplar> }
//   ParseError { line: usize, column: usize, message: String }  (Display: "line L, column C: msg")
use crate::labels::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text004,
    OpenMetrics,
}

impl Format {
    pub fn from_content_type(ct: Option<&str>) -> Format {
        match ct {
            Some(c) if c.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text004,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
    pub exemplar: Option<Exemplar>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

pub fn parse(_body: &[u8], _format: Format) -> Result<Vec<ParsedSample>, ParseError> {
    Err(ParseError {
        line: 1,
        column: 1,
        message: "parser not implemented yet".into(),
    })
}
