//! `application/x-www-form-urlencoded` decoding, for query strings and POST forms
//! (Prometheus's API accepts both for `/api/v1/query`).

/// Why a form could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormError {
    #[error("invalid percent-encoding in form data")]
    Percent,
    #[error("form data is not valid UTF-8")]
    Utf8,
}

/// Decode `a=1&b=x+y` into pairs, in order. Empty segments are skipped.
pub fn parse(input: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    input
        .split(|&b| b == b'&')
        .filter(|seg| !seg.is_empty())
        .map(|seg| {
            let (k, v) = match seg.iter().position(|&b| b == b'=') {
                Some(i) => (&seg[..i], &seg[i + 1..]),
                None => (seg, &b""[..]),
            };
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(s: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = s
                    .get(i + 1)
                    .copied()
                    .and_then(hex)
                    .ok_or(FormError::Percent)?;
                let lo = s
                    .get(i + 2)
                    .copied()
                    .and_then(hex)
                    .ok_or(FormError::Percent)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::Utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs() {
        let p = parse(b"query=sum(rate(x%7Bjob%3D%22a%22%7D%5B1m%5D))&time=1700000000.5&&flag")
            .expect("form");
        assert_eq!(
            p,
            vec![
                ("query".into(), "sum(rate(x{job=\"a\"}[1m]))".into()),
                ("time".into(), "1700000000.5".into()),
                ("flag".into(), "".into()),
            ]
        );
        assert_eq!(parse(b"q=a+b%20c").expect("form")[0].1, "a b c");
        assert_eq!(parse(b"q=%C3%A9").expect("form")[0].1, "é");
    }

    #[test]
    fn rejects_bad_encoding() {
        assert_eq!(parse(b"q=%zz"), Err(FormError::Percent));
        assert_eq!(parse(b"q=%4"), Err(FormError::Percent));
        assert_eq!(parse(b"q=%ff"), Err(FormError::Utf8));
    }
}
