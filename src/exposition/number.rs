//! Number syntax of the exposition formats: sample values (Go `strconv.ParseFloat`
//! syntax as Prometheus accepts it), integer millisecond timestamps (0.0.4) and
//! float-second timestamps (OpenMetrics).
//!
//! Prometheus parses values with Go's `ParseFloat` but rejects `p`, `P` and `_`,
//! which rules out hexadecimal floats and digit separators. What remains is
//! `[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?`, plus `Inf`/`Infinity`
//! (any case, optional sign) and `NaN` (any case, no sign). An overflow to ±Inf is
//! an error in Go, so it is one here.

/// Exact powers of ten representable in an f64 (Clinger's fast path).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Largest integer below which every integer is exact in an f64.
const EXACT_MANTISSA: u64 = 1 << 53;

/// Why a number could not be read; turned into a message by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumberError {
    Syntax,
    OutOfRange,
    NotFinite,
}

fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Parse a sample value. Returns the canonical NaN for every NaN spelling.
pub(crate) fn parse_value(tok: &[u8]) -> Result<f64, NumberError> {
    let (neg, signed, rest) = match tok.first() {
        Some(b'-') => (true, true, &tok[1..]),
        Some(b'+') => (false, true, &tok[1..]),
        _ => (false, false, tok),
    };
    match rest.first() {
        Some(b'i' | b'I') => {
            if eq_ignore_case(rest, b"inf") || eq_ignore_case(rest, b"infinity") {
                return Ok(if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                });
            }
            return Err(NumberError::Syntax);
        }
        // Go accepts no sign in front of NaN.
        Some(b'n' | b'N') if !signed && eq_ignore_case(rest, b"nan") => return Ok(f64::NAN),
        _ => {}
    }

    // Validate the decimal grammar and gather a mantissa for the fast path.
    let mut i = 0;
    let mut mantissa: u64 = 0;
    let mut digits = 0usize; // significant digits folded into `mantissa`
    let mut exact = true; // mantissa holds every digit
    let mut frac_digits: i64 = 0;
    let mut saw_digit = false;
    while let Some(&b) = rest.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        saw_digit = true;
        push_digit(&mut mantissa, &mut digits, &mut exact, b);
        i += 1;
    }
    if rest.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&b) = rest.get(i) {
            if !b.is_ascii_digit() {
                break;
            }
            saw_digit = true;
            push_digit(&mut mantissa, &mut digits, &mut exact, b);
            frac_digits += 1;
            i += 1;
        }
    }
    if !saw_digit {
        return Err(NumberError::Syntax);
    }
    let mut exp: i64 = 0;
    if matches!(rest.get(i), Some(b'e' | b'E')) {
        i += 1;
        let eneg = match rest.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while let Some(&b) = rest.get(i) {
            if !b.is_ascii_digit() {
                break;
            }
            // Saturate: anything this large is out of range or zero anyway.
            exp = (exp * 10 + i64::from(b - b'0')).min(1_000_000);
            i += 1;
        }
        if i == start {
            return Err(NumberError::Syntax);
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != rest.len() {
        return Err(NumberError::Syntax);
    }

    let exp10 = exp - frac_digits;
    let magnitude = if exact && mantissa < EXACT_MANTISSA && (-22..=22).contains(&exp10) {
        // Both operands are exact, so one IEEE operation rounds correctly.
        let m = mantissa as f64;
        let p = POW10[exp10.unsigned_abs() as usize];
        if exp10 >= 0 {
            m * p
        } else {
            m / p
        }
    } else if mantissa == 0 && exact {
        0.0
    } else {
        // The grammar above is a subset of what Rust's parser accepts.
        let s = std::str::from_utf8(rest).map_err(|_| NumberError::Syntax)?;
        s.parse::<f64>().map_err(|_| NumberError::Syntax)?
    };
    if magnitude.is_infinite() {
        return Err(NumberError::OutOfRange);
    }
    Ok(if neg { -magnitude } else { magnitude })
}

fn push_digit(mantissa: &mut u64, digits: &mut usize, exact: &mut bool, b: u8) {
    if *digits == 0 && b == b'0' {
        return; // leading zeros carry no information
    }
    if *digits < 19 {
        *mantissa = *mantissa * 10 + u64::from(b - b'0');
        *digits += 1;
    } else {
        *exact = false;
    }
}

/// Parse a text-format 0.0.4 timestamp: decimal digits only, milliseconds.
pub(crate) fn parse_int_timestamp(tok: &[u8]) -> Result<i64, NumberError> {
    if tok.is_empty() {
        return Err(NumberError::Syntax);
    }
    let mut v: i64 = 0;
    for &b in tok {
        if !b.is_ascii_digit() {
            return Err(NumberError::Syntax);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(NumberError::OutOfRange)?;
    }
    Ok(v)
}

/// Parse an OpenMetrics timestamp (seconds, any float syntax) into milliseconds.
///
/// Prometheus computes `int64(seconds * 1000)`, truncating toward zero. For plain
/// decimals we truncate the exact decimal instead, so `1.001` gives 1001 ms and
/// not the 1000 that binary rounding produces (for present-day epoch seconds
/// both agree); other spellings go through the float path.
pub(crate) fn parse_seconds_timestamp(tok: &[u8]) -> Result<i64, NumberError> {
    if let Some(ms) = exact_decimal_ms(tok) {
        return Ok(ms);
    }
    let secs = parse_value(tok)?;
    if !secs.is_finite() {
        return Err(NumberError::NotFinite);
    }
    let ms = secs * 1000.0;
    // i64 bounds as f64; `as` would saturate silently.
    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&ms) {
        return Err(NumberError::OutOfRange);
    }
    Ok(ms as i64)
}

/// `[+-]?digits[.digits]` with at most 15 integer digits, truncated to ms.
fn exact_decimal_ms(tok: &[u8]) -> Option<i64> {
    let (neg, rest) = match tok.first()? {
        b'-' => (true, &tok[1..]),
        b'+' => (false, &tok[1..]),
        _ => (false, tok),
    };
    let (int, frac) = match rest.iter().position(|&b| b == b'.') {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if int.len() > 15 || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let mut ms: i64 = 0;
    for &b in int {
        ms = ms * 10 + i64::from(b - b'0');
    }
    for k in 0..3 {
        ms = ms * 10 + frac.get(k).map_or(0, |&b| i64::from(b - b'0'));
    }
    Some(if neg { -ms } else { ms })
}

/// Write `v` so that [`parse_value`] reads back the same number.
pub(crate) fn write_value(out: &mut String, v: f64) {
    use std::fmt::Write;
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let a = v.abs();
        // Rust prints the shortest digits that round-trip in both notations.
        // Writing to a String cannot fail.
        let _ = if a == 0.0 || (1e-4..1e15).contains(&a) {
            write!(out, "{v}")
        } else {
            write!(out, "{v:e}")
        };
    }
}

/// Write milliseconds as OpenMetrics seconds, exactly (`-1.5`, `1600000000.123`).
pub(crate) fn write_seconds(out: &mut String, ms: i64) {
    use std::fmt::Write;
    let abs = ms.unsigned_abs();
    let sign = if ms < 0 { "-" } else { "" };
    let (s, frac) = (abs / 1000, abs % 1000);
    let _ = if frac == 0 {
        write!(out, "{sign}{s}")
    } else {
        write!(out, "{sign}{s}.{frac:03}")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_syntax() {
        let ok: &[(&str, f64)] = &[
            ("0", 0.0),
            ("1", 1.0),
            ("-1", -1.0),
            ("+1", 1.0),
            ("1e-07", 1e-7),
            ("1.445761e+06", 1_445_761.0),
            ("-9.223372036854776e+18", -9.223_372_036_854_776e18),
            (".5", 0.5),
            ("5.", 5.0),
            ("007", 7.0),
            ("0.1", 0.1),
            ("123456789012345678901234567890", 1.234_567_890_123_456_8e29),
            ("1E3", 1000.0),
            ("4.9e-324", 4.9e-324),
            ("1e-400", 0.0),
            ("Inf", f64::INFINITY),
            ("+Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("inf", f64::INFINITY),
            ("-infinity", f64::NEG_INFINITY),
            ("INFINITY", f64::INFINITY),
        ];
        for (s, want) in ok {
            let got = parse_value(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e:?}"));
            assert_eq!(got, *want, "{s}");
            assert_eq!(
                got.to_bits(),
                s.parse::<f64>().unwrap_or(got).to_bits(),
                "{s}"
            );
        }
        for s in ["NaN", "nan", "NAN"] {
            assert!(parse_value(s.as_bytes()).unwrap().is_nan(), "{s}");
        }
        assert!(parse_value(b"-0").unwrap().is_sign_negative());
    }

    #[test]
    fn rejected_values() {
        for s in [
            "",
            "+",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "0x1",
            "0x1p3",
            "1_000",
            "+NaN",
            "-nan",
            "infin",
            "1.2.3",
            "1,5",
            "1 ",
            " 1",
            "Infinityy",
            "--1",
            "1e5.0",
            "0b1",
            "1f",
        ] {
            assert_eq!(
                parse_value(s.as_bytes()),
                Err(NumberError::Syntax),
                "{s:?} should be a syntax error"
            );
        }
        assert_eq!(parse_value(b"1e400"), Err(NumberError::OutOfRange));
        assert_eq!(parse_value(b"-1e309"), Err(NumberError::OutOfRange));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_int_timestamp(b"1395066363000"), Ok(1_395_066_363_000));
        assert_eq!(parse_int_timestamp(b"-1"), Err(NumberError::Syntax));
        assert_eq!(
            parse_int_timestamp(b"9223372036854775808"),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(
            parse_seconds_timestamp(b"1520879607.789"),
            Ok(1_520_879_607_789)
        );
        assert_eq!(parse_seconds_timestamp(b"1.6e9"), Ok(1_600_000_000_000));
        assert_eq!(parse_seconds_timestamp(b"-1.5"), Ok(-1500));
        assert_eq!(parse_seconds_timestamp(b"0.0019"), Ok(1));
        assert_eq!(parse_seconds_timestamp(b"1.001"), Ok(1001));
        assert_eq!(parse_seconds_timestamp(b"12"), Ok(12_000));
        assert_eq!(parse_seconds_timestamp(b"NaN"), Err(NumberError::NotFinite));
        assert_eq!(
            parse_seconds_timestamp(b"+Inf"),
            Err(NumberError::NotFinite)
        );
        assert_eq!(
            parse_seconds_timestamp(b"1e300"),
            Err(NumberError::OutOfRange)
        );
        assert_eq!(parse_seconds_timestamp(b"."), Err(NumberError::Syntax));
    }

    #[test]
    fn written_values_read_back() {
        for v in [
            0.0, -0.0, 1.0, 0.1, 1e-7, 123.456, 1e15, 1e300, -2.5e-300, 5e-324, 1e-4, 9.99e14,
        ] {
            let mut s = String::new();
            write_value(&mut s, v);
            assert_eq!(
                parse_value(s.as_bytes()).map(f64::to_bits),
                Ok(v.to_bits()),
                "{s}"
            );
        }
        let mut s = String::new();
        write_seconds(&mut s, -1500);
        assert_eq!(s, "-1.500");
        assert_eq!(parse_seconds_timestamp(s.as_bytes()), Ok(-1500));
    }
}
