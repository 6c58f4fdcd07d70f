//! The line parser for both formats: splits the body into lines, parses
//! comments/metadata and sample lines, and reports errors with positions.
//!
//! Both grammars share the sample shape `name{labels} value [timestamp]`; a
//! `strict` flag switches to the OpenMetrics rules (single spaces, no trailing
//! comma, float-second timestamps, exemplars). Label names and values are borrowed
//! from the body until the final [`Labels`] is built, so the only allocations per
//! sample are the ones `Labels` itself needs.

use std::borrow::Cow;

use super::number::{self, NumberError};
use super::{Exemplar, Format, ParseError, ParsedSample};
use crate::model::{Labels, METRIC_NAME};

const TEXT_TYPES: &[&str] = &["counter", "gauge", "histogram", "summary", "untyped"];
const OM_TYPES: &[&str] = &[
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
    "unknown",
];

/// A label of the current line: name, unescaped value, 0-based column of the name.
type RawLabel<'a> = (&'a str, Cow<'a, str>, usize);

pub(super) fn parse(body: &[u8], format: Format) -> Result<Vec<ParsedSample>, ParseError> {
    let om = format == Format::OpenMetrics;
    // Roughly one sample per 100 bytes in real exposition (HELP/TYPE included).
    let mut out = Vec::with_capacity(body.len() / 100 + 4);
    let mut scratch: Vec<RawLabel<'_>> = Vec::with_capacity(16);
    // Validate UTF-8 once for the whole body (the common case) so that label
    // values are then sliced as `str` without a check each.
    let whole = std::str::from_utf8(body).ok();
    let mut start = 0;
    let mut line_no = 0;
    while start < body.len() {
        line_no += 1;
        // A `\r` before the `\n` stays part of the line: Prometheus rejects CRLF
        // on sample lines (the value reads as "1\r") and so do we.
        let mut l = Line {
            b: line_at(body, start),
            body,
            whole,
            abs: start,
            multiline: !om,
            i: 0,
            no: line_no,
        };
        if !om {
            let first_len = l.b.len();
            let r = text_line(&mut l, &mut scratch)?;
            if l.b.len() != first_len {
                // A label value ran over newlines; continue after them.
                line_no += l.b.iter().filter(|&&b| b == b'\n').count();
            }
            start += l.b.len() + 1;
            match r {
                TextLine::Sample(s) => out.push(s),
                TextLine::Skip => {}
                TextLine::End => return Ok(out),
            }
            continue;
        }
        start += l.b.len() + 1;
        match om_line(&mut l, &mut scratch)? {
            OmLine::Sample(s) => out.push(s),
            OmLine::Meta => {}
            OmLine::Eof if start < body.len() => {
                return Err(ParseError {
                    line: line_no + 1,
                    column: 1,
                    message: "unexpected content after # EOF".into(),
                });
            }
            OmLine::Eof => return Ok(out),
        }
    }
    if om {
        let (line, column) = match body.last() {
            None => (1, 1),
            Some(b'\n') => (line_no + 1, 1),
            Some(_) => {
                let last = body.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                (line_no, body.len() - last + 1)
            }
        };
        return Err(ParseError {
            line,
            column,
            message: "missing # EOF at the end of the OpenMetrics body".into(),
        });
    }
    Ok(out)
}

/// The bytes from `start` up to the next `\n` (excluded) or the end.
fn line_at(body: &[u8], start: usize) -> &[u8] {
    let rest = body.get(start..).unwrap_or_default();
    let len = find_newline(rest).unwrap_or(rest.len());
    &rest[..len]
}

/// Position of the first `\n`, eight bytes at a time (this scan touches every
/// byte of the body, so it is worth not doing it byte by byte).
pub(super) fn find_newline(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut chunks = s.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break; // chunks_exact yields 8 bytes; never taken
        };
        // Bytes equal to '\n' become zero; the classic has-zero-byte test
        // flags them, and the lowest flag is always a true zero byte.
        let x = u64::from_le_bytes(bytes) ^ NL;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    s.get(offset..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| offset + p)
}

/// One line (without its line ending) and a cursor into it.
struct Line<'a> {
    /// The line: `body[abs..abs + b.len()]`.
    b: &'a [u8],
    body: &'a [u8],
    /// The whole body as `str`, when it is valid UTF-8.
    whole: Option<&'a str>,
    abs: usize,
    /// Text format: a quoted label value may contain raw newlines, as
    /// Prometheus's lexer allows; the line then grows to the next line end.
    multiline: bool,
    i: usize,
    no: usize,
}

impl<'a> Line<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.b.get(self.i..).unwrap_or_default()
    }

    /// Bytes `start..end` of the line as `str`, or the offset of the first
    /// invalid UTF-8 byte.
    fn str_at(&self, start: usize, end: usize) -> Result<&'a str, usize> {
        if let Some(t) = self
            .whole
            .and_then(|s| s.get(self.abs + start..self.abs + end))
        {
            return Ok(t);
        }
        let raw = self.b.get(start..end).unwrap_or_default();
        std::str::from_utf8(raw).map_err(|e| start + e.valid_up_to())
    }

    /// A name just consumed from `start` to the cursor; names are ASCII by
    /// construction, so this never falls back to "".
    fn name_from(&self, start: usize) -> &'a str {
        self.str_at(start, self.i).unwrap_or_default()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i.min(self.b.len());
        let len = self.b[start..]
            .iter()
            .position(|&b| !f(b))
            .unwrap_or(self.b.len() - start);
        self.i = start + len;
        &self.b[start..start + len]
    }

    /// An error at 0-based byte offset `at` of this line.
    fn err(&self, at: usize, message: impl Into<String>) -> ParseError {
        let mut message = message.into();
        if self.b.last() == Some(&b'\r') {
            message.push_str(
                " (the line ends with \\r: CRLF line endings are not accepted, as in Prometheus)",
            );
        }
        // Only a multi-line label value puts newlines inside `b`.
        let before = self.b.get(..at).unwrap_or(self.b);
        let newlines = before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        ParseError {
            line: self.no + newlines,
            column: at - line_start + 1,
            message,
        }
    }

    /// What is at the cursor, for messages.
    fn found(&self) -> String {
        match self.peek() {
            None => "end of line".into(),
            Some(b) => show_byte(b),
        }
    }
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// A token for an error message: lossy UTF-8, shortened.
fn show_token(t: &[u8]) -> String {
    let s = String::from_utf8_lossy(t);
    if s.chars().count() > 40 {
        format!("{:?}…", s.chars().take(40).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

const NAME_START: u8 = 1;
const NAME_CHAR: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CHAR: u8 = 8;

/// Character classes of names, one table lookup per byte on the hot path.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        let mut v = 0;
        if alpha || c == b':' {
            v |= NAME_START | NAME_CHAR;
        }
        if digit {
            v |= NAME_CHAR | LABEL_CHAR;
        }
        if alpha {
            v |= LABEL_START | LABEL_CHAR;
        }
        t[b] = v;
        b += 1;
    }
    t
};

fn is_name_start(b: u8) -> bool {
    CLASS[b as usize] & NAME_START != 0
}

fn is_name_char(b: u8) -> bool {
    CLASS[b as usize] & NAME_CHAR != 0
}

fn is_label_start(b: u8) -> bool {
    CLASS[b as usize] & LABEL_START != 0
}

fn is_label_char(b: u8) -> bool {
    CLASS[b as usize] & LABEL_CHAR != 0
}

fn metric_name<'a>(l: &mut Line<'a>, context: &str) -> Result<&'a str, ParseError> {
    match l.peek() {
        Some(b) if is_name_start(b) => {
            let start = l.i;
            l.take_while(is_name_char);
            Ok(l.name_from(start))
        }
        None => Err(l.err(l.i, format!("expected metric name{context}"))),
        Some(b) => Err(l.err(
            l.i,
            format!(
                "invalid metric name{context}: {} cannot start a metric name (allowed: [a-zA-Z_:])",
                show_byte(b)
            ),
        )),
    }
}

// ---------------------------------------------------------------- text 0.0.4

enum TextLine {
    Sample(ParsedSample),
    /// Blank line or comment.
    Skip,
    /// A NUL byte where a line starts: Prometheus's lexer reads it as the end
    /// of the input and ignores the rest.
    End,
}

fn text_line<'a>(
    l: &mut Line<'a>,
    scratch: &mut Vec<RawLabel<'a>>,
) -> Result<TextLine, ParseError> {
    l.skip_ws();
    match l.peek() {
        None => Ok(TextLine::Skip),
        Some(b'#') => text_comment(l).map(|()| TextLine::Skip),
        Some(0) => Ok(TextLine::End),
        // Prometheus folds leading blanks into the metric name and rejects it.
        Some(_) if l.i > 0 => Err(l.err(
            0,
            "whitespace before the metric name is not allowed (Prometheus rejects it too)",
        )),
        Some(_) => sample(l, scratch, false).map(TextLine::Sample),
    }
}

/// `# HELP name text` and `# TYPE name type` are checked; other comments ignored.
fn text_comment(l: &mut Line<'_>) -> Result<(), ParseError> {
    l.i += 1;
    if !matches!(l.peek(), Some(b' ' | b'\t')) {
        return Ok(());
    }
    l.skip_ws();
    let rest = l.rest();
    let keyword = match rest.get(..4) {
        Some(b"HELP") => "HELP",
        Some(b"TYPE") => "TYPE",
        _ => return Ok(()),
    };
    // `# HELPFUL note` is a plain comment, as in Prometheus.
    if !matches!(rest.get(4), Some(b' ' | b'\t')) {
        return Ok(());
    }
    l.i += 4;
    l.skip_ws();
    let context = if keyword == "HELP" {
        " after # HELP"
    } else {
        " after # TYPE"
    };
    let name = metric_name(l, context)?;
    // Like Prometheus: the one byte after the name separates it from the text,
    // which runs to the end of the line (`# TYPE a  gauge` has type " gauge").
    if !l.at_end() {
        l.i += 1;
    }
    let text = l.rest();
    if keyword == "HELP" {
        if let Err(e) = std::str::from_utf8(text) {
            return Err(l.err(l.i + e.valid_up_to(), "HELP text is not valid UTF-8"));
        }
        return Ok(());
    }
    let ty = text;
    if TEXT_TYPES.iter().any(|t| t.as_bytes() == ty) {
        Ok(())
    } else {
        Err(l.err(
            l.i,
            format!(
                "invalid metric type {} for {name} (expected counter, gauge, histogram, summary or untyped)",
                show_token(ty)
            ),
        ))
    }
}

// ---------------------------------------------------------------- OpenMetrics

enum OmLine {
    Sample(ParsedSample),
    Meta,
    Eof,
}

fn om_line<'a>(l: &mut Line<'a>, scratch: &mut Vec<RawLabel<'a>>) -> Result<OmLine, ParseError> {
    match l.peek() {
        None => Err(l.err(0, "blank lines are not allowed in OpenMetrics")),
        Some(b'#') => om_comment(l),
        Some(_) => sample(l, scratch, true).map(OmLine::Sample),
    }
}

fn om_comment(l: &mut Line<'_>) -> Result<OmLine, ParseError> {
    if l.b == b"# EOF" {
        return Ok(OmLine::Eof);
    }
    if l.b.starts_with(b"# EOF") {
        return Err(l.err(5, "unexpected content after # EOF"));
    }
    let keyword =
        match l.b.get(..7) {
            Some(b"# HELP ") => "HELP",
            Some(b"# TYPE ") => "TYPE",
            Some(b"# UNIT ") => "UNIT",
            _ => return Err(l.err(
                0,
                "invalid comment: OpenMetrics allows only '# HELP', '# TYPE', '# UNIT' and '# EOF'",
            )),
        };
    l.i = 7;
    let context = match keyword {
        "HELP" => " after # HELP",
        "TYPE" => " after # TYPE",
        _ => " after # UNIT",
    };
    let name = metric_name(l, context)?;
    match l.peek() {
        Some(b' ') => l.i += 1,
        None => {
            return Err(l.err(
                l.i,
                format!("expected a space and the {keyword} text after metric name {name}"),
            ))
        }
        Some(b) => {
            return Err(l.err(
                l.i,
                format!("invalid character {} in metric name {name}", show_byte(b)),
            ))
        }
    }
    let text = l.rest();
    match keyword {
        "HELP" => {
            if let Err(e) = std::str::from_utf8(text) {
                return Err(l.err(l.i + e.valid_up_to(), "HELP text is not valid UTF-8"));
            }
        }
        "TYPE" => {
            if !OM_TYPES.iter().any(|t| t.as_bytes() == text) {
                return Err(l.err(
                    l.i,
                    format!(
                        "invalid metric type {} for {name} (expected counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown)",
                        show_token(text)
                    ),
                ));
            }
        }
        _ => {
            // The unit must be a suffix of the family name, as Prometheus checks.
            let suffix_ok = text.is_empty()
                || (name.len() > text.len()
                    && name.as_bytes().ends_with(text)
                    && name.as_bytes()[name.len() - text.len() - 1] == b'_');
            if !suffix_ok {
                return Err(l.err(
                    l.i,
                    format!(
                        "unit {} is not a suffix of metric name {name}",
                        show_token(text)
                    ),
                ));
            }
        }
    }
    Ok(OmLine::Meta)
}

// ---------------------------------------------------------------- samples

/// `name[{labels}] value [timestamp] [# {exemplar labels} value [timestamp]]`.
fn sample<'a>(
    l: &mut Line<'a>,
    scratch: &mut Vec<RawLabel<'a>>,
    strict: bool,
) -> Result<ParsedSample, ParseError> {
    let name_at = l.i;
    let name = metric_name(l, "")?;
    scratch.clear();
    scratch.push((METRIC_NAME, Cow::Borrowed(name), name_at));

    // Prometheus's text lexer lets the value follow the name directly
    // (`foo-1` is foo = -1); if such a value does not parse, the byte is more
    // likely a typo in the name, and the message says so.
    let glued = match l.peek() {
        Some(b'{' | b' ') => false,
        None => return Err(l.err(l.i, format!("expected value after metric name {name}"))),
        Some(b'\t') if !strict => false,
        Some(_) if !strict => true,
        Some(b) => {
            return Err(l.err(
                l.i,
                format!("invalid character {} in metric name {name}", show_byte(b)),
            ))
        }
    };
    if !strict {
        l.skip_ws();
    }
    if l.eat(b'{') {
        if strict {
            label_set_strict(l, scratch)?;
        } else {
            label_set_text(l, scratch)?;
        }
    }
    let labels = build_labels(l, scratch)?;

    if strict {
        if !l.eat(b' ') {
            return Err(l.err(
                l.i,
                format!("expected a single space and the value, found {}", l.found()),
            ));
        }
    } else {
        l.skip_ws();
    }
    let at = l.i;
    let tok = if strict {
        l.take_while(|b| b != b' ')
    } else {
        l.take_while(|b| !matches!(b, b' ' | b'\t' | b'{'))
    };
    if tok.is_empty() {
        return Err(l.err(at, format!("expected value, found {}", l.found())));
    }
    let value = number::parse_value(tok).map_err(|e| match tok.first() {
        Some(&b) if glued => l.err(
            at,
            format!("invalid character {} in metric name {name}", show_byte(b)),
        ),
        _ => value_error(l, at, tok, e, "value"),
    })?;

    let mut s = ParsedSample {
        labels,
        value,
        timestamp_ms: None,
        exemplar: None,
    };
    if strict {
        om_tail(l, scratch, &mut s)?;
    } else {
        l.skip_ws();
        if !l.at_end() {
            let at = l.i;
            let tok = l.take_while(|b| !matches!(b, b' ' | b'\t'));
            if tok.first() == Some(&b'#') {
                return Err(l.err(
                    at,
                    "exemplars are only allowed in OpenMetrics, not in text format 0.0.4",
                ));
            }
            s.timestamp_ms = Some(number::parse_int_timestamp(tok).map_err(|e| {
                let why = match e {
                    NumberError::OutOfRange => "is out of range",
                    _ => "is not an integer number of milliseconds",
                };
                l.err(at, format!("timestamp {} {why}", show_token(tok)))
            })?);
            l.skip_ws();
            if !l.at_end() {
                return Err(l.err(l.i, format!("unexpected {} after timestamp", l.found())));
            }
        }
    }
    Ok(s)
}

/// OpenMetrics: `[ timestamp][ # {labels} value[ timestamp]]` after the value.
fn om_tail<'a>(
    l: &mut Line<'a>,
    scratch: &mut Vec<RawLabel<'a>>,
    s: &mut ParsedSample,
) -> Result<(), ParseError> {
    if l.at_end() {
        return Ok(());
    }
    l.i += 1; // the value token stopped at a space
    if l.at_end() {
        return Err(l.err(l.i - 1, "trailing whitespace is not allowed in OpenMetrics"));
    }
    if !l.rest().starts_with(b"# {") {
        s.timestamp_ms = Some(om_timestamp(l, "timestamp")?);
        if l.at_end() {
            return Ok(());
        }
        l.i += 1;
        if !l.rest().starts_with(b"# {") {
            return Err(l.err(
                l.i,
                "expected an exemplar ('# {...}') or end of line after the timestamp",
            ));
        }
    }
    // Prometheus 2.42 accepts exemplars only on `_total` and `_bucket` series.
    let name = s.labels.metric_name().unwrap_or_default();
    if !(name.ends_with("_total") || name.ends_with("_bucket")) {
        return Err(l.err(
            l.i,
            format!("metric {name} does not support exemplars (only *_total and *_bucket do)"),
        ));
    }
    l.i += 3;
    scratch.clear();
    label_set_strict(l, scratch)?;
    // Prometheus 2.42 accepts duplicate exemplar label names; the last one wins.
    let labels = Labels::new(scratch.drain(..).map(|(n, v, _)| (n, v.into_owned())));
    if !l.eat(b' ') {
        return Err(l.err(
            l.i,
            format!(
                "expected a single space and the exemplar value, found {}",
                l.found()
            ),
        ));
    }
    let at = l.i;
    let tok = l.take_while(|b| b != b' ');
    if tok.is_empty() {
        return Err(l.err(at, format!("expected exemplar value, found {}", l.found())));
    }
    let value =
        number::parse_value(tok).map_err(|e| value_error(l, at, tok, e, "exemplar value"))?;
    let mut timestamp_ms = None;
    if !l.at_end() {
        l.i += 1;
        timestamp_ms = Some(om_timestamp(l, "exemplar timestamp")?);
        if !l.at_end() {
            return Err(l.err(
                l.i,
                format!("unexpected {} after the exemplar timestamp", l.found()),
            ));
        }
    }
    s.exemplar = Some(Exemplar {
        labels,
        value,
        timestamp_ms,
    });
    Ok(())
}

fn om_timestamp(l: &mut Line<'_>, what: &str) -> Result<i64, ParseError> {
    let at = l.i;
    let tok = l.take_while(|b| b != b' ');
    if tok.is_empty() {
        let msg = if l.at_end() {
            "trailing whitespace is not allowed in OpenMetrics".to_string()
        } else {
            format!("expected {what} after a single space, found {}", l.found())
        };
        return Err(l.err(at, msg));
    }
    number::parse_seconds_timestamp(tok).map_err(|e| {
        let why = match e {
            NumberError::Syntax => "is not a number of seconds",
            NumberError::OutOfRange => "is out of range",
            NumberError::NotFinite => "must be finite",
        };
        l.err(at, format!("{what} {} {why}", show_token(tok)))
    })
}

fn value_error(l: &Line<'_>, at: usize, tok: &[u8], e: NumberError, what: &str) -> ParseError {
    let why = match e {
        NumberError::OutOfRange => "is out of range for a float64",
        _ => "is not a valid float (e.g. 1, -2.5e-3, NaN, +Inf)",
    };
    l.err(at, format!("{what} {} {why}", show_token(tok)))
}

// ---------------------------------------------------------------- labels

/// Text 0.0.4 label set after `{`: free whitespace, optional commas between
/// pairs and a trailing comma, as Prometheus's lexer allows.
fn label_set_text<'a>(l: &mut Line<'a>, out: &mut Vec<RawLabel<'a>>) -> Result<(), ParseError> {
    let open = l.i - 1;
    loop {
        l.skip_ws();
        match l.peek() {
            Some(b'}') => {
                l.i += 1;
                return Ok(());
            }
            Some(b) if is_label_start(b) => {}
            None => return Err(unclosed(l, open)),
            Some(_) => {
                return Err(l.err(
                    l.i,
                    format!("expected label name or '}}', found {}", l.found()),
                ))
            }
        }
        label_pair(l, out, false)?;
        l.skip_ws();
        l.eat(b',');
    }
}

/// OpenMetrics label set after `{`: `}` or `name="value"(,name="value")*}`.
fn label_set_strict<'a>(l: &mut Line<'a>, out: &mut Vec<RawLabel<'a>>) -> Result<(), ParseError> {
    let open = l.i - 1;
    if l.eat(b'}') {
        return Ok(());
    }
    loop {
        match l.peek() {
            Some(b) if is_label_start(b) => {}
            None => return Err(unclosed(l, open)),
            Some(_) => return Err(l.err(l.i, format!("expected label name, found {}", l.found()))),
        }
        label_pair(l, out, true)?;
        match l.peek() {
            Some(b',') => {
                l.i += 1;
                if l.peek() == Some(b'}') {
                    return Err(l.err(
                        l.i - 1,
                        "trailing ',' in a label set is not allowed in OpenMetrics",
                    ));
                }
            }
            Some(b'}') => {
                l.i += 1;
                return Ok(());
            }
            None => return Err(unclosed(l, open)),
            Some(_) => {
                return Err(l.err(
                    l.i,
                    format!(
                        "expected ',' or '}}' after label value, found {}",
                        l.found()
                    ),
                ))
            }
        }
    }
}

fn unclosed(l: &Line<'_>, open: usize) -> ParseError {
    l.err(
        l.i,
        format!(
            "unterminated label set: '{{' at column {} is never closed",
            open + 1
        ),
    )
}

/// `name="value"`; the cursor is on the first byte of the name.
fn label_pair<'a>(
    l: &mut Line<'a>,
    out: &mut Vec<RawLabel<'a>>,
    strict: bool,
) -> Result<(), ParseError> {
    let at = l.i;
    l.take_while(is_label_char);
    let name = l.name_from(at);
    if !strict {
        l.skip_ws();
    }
    if !l.eat(b'=') {
        return Err(l.err(
            l.i,
            format!("expected '=' after label name {name}, found {}", l.found()),
        ));
    }
    if !strict {
        l.skip_ws();
    }
    let open = l.i;
    if !l.eat(b'"') {
        return Err(l.err(
            l.i,
            format!(
                "expected '\"' to start the value of label {name}, found {}",
                l.found()
            ),
        ));
    }
    let value = quoted(l, open)?;
    out.push((name, value, at));
    Ok(())
}

/// A quoted label value; the cursor is just past the opening quote at `open`.
/// Borrowed unless it contains escapes.
fn quoted<'a>(l: &mut Line<'a>, open: usize) -> Result<Cow<'a, str>, ParseError> {
    let mut b = l.b;
    let start = l.i;
    let mut i = start;
    let mut escaped = false;
    loop {
        // Jump to the next quote or backslash.
        i += b
            .get(i..)
            .unwrap_or_default()
            .iter()
            .position(|&c| c == b'"' || c == b'\\')
            .unwrap_or(b.len().saturating_sub(i));
        match b.get(i) {
            None if l.multiline && l.abs + b.len() < l.body.len() => {
                // Take in the next line; `i` now points at the newline.
                let end = l.abs + b.len() + 1 + line_at(l.body, l.abs + b.len() + 1).len();
                b = l.body.get(l.abs..end).unwrap_or_default();
                l.b = b;
            }
            None => return Err(l.err(open, "unterminated label value: missing closing '\"'")),
            Some(b'"') => break,
            Some(b'\\') => {
                if i + 1 >= b.len() || b.get(i + 1) == Some(&b'\n') {
                    return Err(l.err(
                        i,
                        "bad escape: a backslash at the end of the line escapes nothing (unterminated label value)",
                    ));
                }
                escaped = true;
                // Any byte may be escaped; see `unescape` for what it means.
                i += 2;
            }
            Some(_) => i += 1,
        }
    }
    l.i = i + 1;
    // Escapes are ASCII, so the raw bytes are valid UTF-8 iff the value is.
    let text = l
        .str_at(start, i)
        .map_err(|at| l.err(at, "label value is not valid UTF-8"))?;
    if !escaped {
        return Ok(Cow::Borrowed(text));
    }
    Ok(Cow::Owned(unescape(text)))
}

/// `\\`, `\"` and `\n` are the escapes of both formats. Prometheus 2.42 keeps
/// any other escape verbatim (`\t` stays backslash-t) instead of failing the
/// scrape, and so do we.
fn unescape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            s.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => s.push('\n'),
            Some(c @ ('\\' | '"')) => s.push(c),
            Some(other) => {
                s.push('\\');
                s.push(other);
            }
            None => s.push('\\'),
        }
    }
    s
}

/// Reject duplicate label names, then build the sorted label set.
///
/// Prometheus 2.42 quirk, reproduced: an empty value deletes every label of
/// that name before the duplicate check, so `{x="",x="1"}` is accepted and has
/// no `x` at all. `__name__` is never deleted that way.
fn build_labels<'a>(l: &Line<'a>, scratch: &mut Vec<RawLabel<'a>>) -> Result<Labels, ParseError> {
    if scratch.len() > 1 {
        scratch.sort_unstable_by(|a, b| a.0.cmp(b.0).then(a.2.cmp(&b.2)));
        let has_dup = scratch.windows(2).any(|w| w[0].0 == w[1].0);
        if has_dup {
            let emptied = |name: &str| {
                name != METRIC_NAME && scratch.iter().any(|(n, v, _)| *n == name && v.is_empty())
            };
            // Report the duplicate that appears first on the line.
            let dup = scratch
                .windows(2)
                .filter(|w| w[0].0 == w[1].0 && !emptied(w[0].0))
                .map(|w| (w[1].2, w[1].0))
                .min();
            if let Some((at, name)) = dup {
                return Err(l.err(at, format!("duplicate label name {name:?}")));
            }
            let names: Vec<&str> = scratch
                .iter()
                .filter(|(n, v, _)| v.is_empty() && *n != METRIC_NAME)
                .map(|(n, _, _)| *n)
                .collect();
            scratch.retain(|(n, _, _)| !names.contains(n));
        }
    }
    Ok(Labels::new(
        scratch.drain(..).map(|(n, v, _)| (n, v.into_owned())),
    ))
}
