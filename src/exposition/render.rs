//! Rendering samples back to exposition text, the inverse of [`super::parse`].
//!
//! Output is one line per sample, no HELP/TYPE metadata (every family reads back
//! as untyped/unknown). Values are written so that they parse back to the same
//! f64; OpenMetrics timestamps are written as exact decimal seconds.

use std::fmt::Write;

use super::number::{write_seconds, write_value};
use super::{Format, ParsedSample};
use crate::model::{Labels, METRIC_NAME};

/// Render samples in `format`. Text 0.0.4 cannot carry exemplars, so they are
/// left out there. A sample without `__name__` renders with an empty name, which
/// does not parse back.
pub fn render(samples: &[ParsedSample], format: Format) -> String {
    let mut out = String::with_capacity(samples.len() * 64 + 8);
    for s in samples {
        out.push_str(s.labels.metric_name().unwrap_or_default());
        write_labels(&mut out, &s.labels, true);
        out.push(' ');
        write_value(&mut out, s.value);
        match format {
            Format::Text004 => {
                if let Some(ts) = s.timestamp_ms {
                    // Writing to a String cannot fail.
                    let _ = write!(out, " {ts}");
                }
            }
            Format::OpenMetrics => {
                if let Some(ts) = s.timestamp_ms {
                    out.push(' ');
                    write_seconds(&mut out, ts);
                }
                if let Some(e) = &s.exemplar {
                    out.push_str(" # ");
                    write_labels(&mut out, &e.labels, false);
                    if e.labels.is_empty() {
                        out.push_str("{}");
                    }
                    out.push(' ');
                    write_value(&mut out, e.value);
                    if let Some(ts) = e.timestamp_ms {
                        out.push(' ');
                        write_seconds(&mut out, ts);
                    }
                }
            }
        }
        out.push('\n');
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// `{a="1",b="2"}` (nothing when there are no labels), `__name__` skipped when
/// `skip_name`.
fn write_labels(out: &mut String, labels: &Labels, skip_name: bool) {
    let mut first = true;
    for (k, v) in labels.iter() {
        if skip_name && k == METRIC_NAME {
            continue;
        }
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_into(out, v);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
