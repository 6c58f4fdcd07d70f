//! Masking of secrets in text and JSON shown to people (API answers, error
//! bodies of upstreams, the audit log).
//!
//! Owns what looks secret: names (env variables, header names, JSON keys)
//! by [`is_secret_name`], credentials in free text by [`mask_credentials`]
//! (`Bearer x`, `X-Api-Key: x`, `token=x`, `user:pass@`), and configured
//! secret values by [`Redactor`], which also masks a value cut off by a
//! truncation. A leaf: imports nothing of ours; must not know where a secret
//! came from.
use std::borrow::Cow;

use serde_json::Value;

/// What a masked value becomes.
pub const REDACTED: &str = "***";

/// Parts that make a name secret wherever they appear in it.
const SECRET_NAME_PARTS: &[&str] = &[
    "authorization",
    "secret",
    "token",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "api-key",
];

/// Words (split at `_`, `-`, `.`, and lower-to-upper case changes) that make
/// a name secret: `SMTP_PASS`, `PRIVATE_KEY_PEM`, `DB_PWD`, `SessionCookie`.
const SECRET_NAME_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "passphrase",
    "private",
    "credential",
    "credentials",
    "cookie",
    "dsn",
    "key",
    "pem",
    "auth",
];

/// Shortest configured value [`Redactor`] masks: a shorter one would mask
/// ordinary words in the text around it.
pub const MIN_SECRET_LEN: usize = 4;

/// True when a name (env variable, header, JSON key) says its value is secret.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if SECRET_NAME_PARTS.iter().any(|p| lower.contains(p)) {
        return true;
    }
    words(name).any(|w| SECRET_NAME_WORDS.iter().any(|s| w.eq_ignore_ascii_case(s)))
}

/// `SMTP_PASS` → `SMTP`, `PASS`; `sessionCookie` → `session`, `Cookie`.
fn words(name: &str) -> impl Iterator<Item = &str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = name.as_bytes();
    for i in 0..b.len() {
        let sep = !b[i].is_ascii_alphanumeric();
        let camel = i > start && b[i].is_ascii_uppercase() && b[i - 1].is_ascii_lowercase();
        if sep || camel {
            if i > start {
                out.push(&name[start..i]);
            }
            start = if sep { i + 1 } else { i };
        }
    }
    if start < b.len() {
        out.push(&name[start..]);
    }
    out.into_iter()
}

/// Characters that end a credential inside free text.
fn ends_value(c: char) -> bool {
    c.is_whitespace() || matches!(c, '&' | '"' | '\'' | ')' | ']' | '}' | ',' | ';' | '>')
}

/// A word that is or ends in an authentication scheme (`Bearer`, `"Basic`,
/// `{"Authorization":["Bearer`), punctuation aside.
fn is_scheme(word: &str) -> bool {
    let w = word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let w = w
        .rsplit(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or(w);
    ["bearer", "basic", "token", "digest"]
        .iter()
        .any(|s| w.eq_ignore_ascii_case(s))
}

/// Mask credentials in free text (error messages, echoed headers, URLs):
/// `Bearer x` / `Basic x`, a secret header's value (`Authorization: Bearer
/// x`, `"authorization": "Bearer x"`, `X-Api-Key: v`), `token=x` style parameters and
/// assignments, and the password of `scheme://user:pass@host`. `None` when
/// nothing was masked.
pub fn mask_credentials(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    // Whether the next word is a credential: always after a secret header
    // name (`X-Api-Key:`), only if it looks like one after `Bearer`/`Basic`
    // (so "basic health check" stays readable).
    #[derive(PartialEq)]
    enum Next {
        Plain,
        Credential,
        IfTokenLike,
    }
    let token_like = |w: &str| {
        let w =
            w.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | '[' | ']' | '{' | '}'));
        w.len() >= 8
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c))
    };
    let mut next = Next::Plain;
    let mut rest = s;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        if rest.is_empty() {
            break;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        if next == Next::Credential {
            // A secret header's value: its scheme word stays readable (also
            // quoted, as in an echoed JSON header map), what follows is masked.
            if is_scheme(word) {
                out.push_str(word);
            } else {
                out.push_str(REDACTED);
                changed = true;
                next = Next::Plain;
            }
            continue;
        }
        if is_scheme(word) {
            out.push_str(word);
            next = Next::IfTokenLike;
            continue;
        }
        if next == Next::IfTokenLike && token_like(word) {
            out.push_str(REDACTED);
            changed = true;
            next = Next::Plain;
            continue;
        }
        next = Next::Plain;
        if let Some(key) = word.strip_suffix(':') {
            let key = key.trim_matches(|c: char| matches!(c, '"' | '\'' | '{' | ','));
            if is_secret_name(key) {
                out.push_str(word);
                next = Next::Credential;
                continue;
            }
        }
        out.push_str(word);
    }
    let (out, assigned) = mask_assignments(&out);
    let (out, userinfo) = mask_userinfo(&out);
    (changed || assigned || userinfo).then_some(out)
}

/// `scheme://user:pass@host` → `scheme://user:***@host`, for every URL in `text`.
fn mask_userinfo(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let authority_end = rest
            .find(|c: char| matches!(c, '/' | '?' | '#') || ends_value(c))
            .unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                out.push_str(&rest[..=colon]);
                out.push_str(REDACTED);
                changed = true;
                rest = &rest[at..];
            }
        }
    }
    out.push_str(rest);
    (out, changed)
}

/// `secret_key=value` (query parameters, assignments) → `secret_key=***`;
/// a quoted value keeps its quotes.
fn mask_assignments(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        out.push_str(&rest[..=eq]);
        let mut value = &rest[eq + 1..];
        let secret = is_secret_name(&rest[key_start..eq]);
        // A quoted value: keep the quotes, mask what is between them.
        if let Some(q) = value.chars().next().filter(|c| *c == '"' || *c == '\'') {
            if secret {
                out.push(q);
                value = &value[1..];
                let close = value.find(q).unwrap_or(value.len());
                out.push_str(REDACTED);
                changed = true;
                rest = &value[close..];
                continue;
            }
        }
        let value_end = value.find(ends_value).unwrap_or(value.len());
        if secret && value_end > 0 {
            out.push_str(REDACTED);
            changed = true;
            rest = &value[value_end..];
        } else {
            rest = value;
        }
    }
    out.push_str(rest);
    (out, changed)
}

/// Mask in a JSON value: the value of every secret-looking key (at any
/// depth) becomes [`REDACTED`], and credentials in every string are masked.
pub fn mask_json_by_name(v: &mut Value) {
    Redactor::default().mask_json(v)
}

/// Masks configured secret values (and whatever [`mask_credentials`] and
/// [`is_secret_name`] catch) in text and JSON.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a value containing another is masked whole.
    values: Vec<String>,
}

impl Redactor {
    /// Values shorter than [`MIN_SECRET_LEN`] are left out (see there).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Redactor { values }
    }

    /// `text` with every known value, a known value's beginning cut off at
    /// the end of the text (a truncated body), and credentials masked.
    pub fn mask_text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out: Cow<'t, str> = Cow::Borrowed(text);
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = Cow::Owned(out.replace(v.as_str(), REDACTED));
            }
        }
        if let Some(cut) = self.truncated_tail(&out) {
            let mut s = out.into_owned();
            s.replace_range(cut, REDACTED);
            out = Cow::Owned(s);
        }
        match mask_credentials(&out) {
            Some(masked) => Cow::Owned(masked),
            None => out,
        }
    }

    /// The byte range of a known value's beginning (at least
    /// [`MIN_SECRET_LEN`] bytes) that ends the text, before an optional `…`.
    fn truncated_tail(&self, text: &str) -> Option<std::ops::Range<usize>> {
        let body = text.strip_suffix('…').unwrap_or(text);
        let mut best: Option<usize> = None;
        for v in &self.values {
            for len in (MIN_SECRET_LEN..v.len()).rev() {
                if !v.is_char_boundary(len) {
                    continue;
                }
                if body.ends_with(&v[..len]) {
                    best = Some(best.map_or(len, |b| b.max(len)));
                    break;
                }
            }
        }
        best.map(|len| body.len() - len..body.len())
    }

    /// [`Redactor::mask_text`] on every string of `v`, and [`REDACTED`] for
    /// the value of every key [`is_secret_name`] flags.
    pub fn mask_json(&self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, val) in map.iter_mut() {
                    if is_secret_name(k) && !val.is_null() {
                        *val = Value::String(REDACTED.to_string());
                    } else {
                        self.mask_json(val);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.mask_json(i)),
            Value::String(text) => {
                if let Cow::Owned(masked) = self.mask_text(text) {
                    *text = masked;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "DB_PASSWORD",
            "SMTP_PASS",
            "PRIVATE_KEY_PEM",
            "api_token",
            "X-Api-Key",
            "Authorization",
            "AWS_SECRET_ACCESS_KEY",
            "sessionCookie",
            "DATABASE_DSN",
            "LICENSE_KEY",
            "db_pwd",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "LOG_LEVEL",
            "PORT",
            "version",
            "keep_firing_for",
            "monkey",
            "compass",
            "instance",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn credentials_in_text_are_masked_whole() {
        let m = |s: &str| mask_credentials(s).unwrap_or_else(|| s.to_string());
        assert_eq!(
            m("Authorization: Bearer hdr-SECRET-1"),
            "Authorization: Bearer ***"
        );
        // Quoted, as an upstream echoing its request headers writes them.
        assert_eq!(
            m(r#"{"authorization": "Bearer hdr-SECRET-1", "x": 1}"#),
            r#"{"authorization": "Bearer *** "x": 1}"#
        );
        assert!(!m(r#"{"Authorization":["Bearer hdr-SECRET-1"]}"#).contains("SECRET"));
        assert_eq!(m("X-Api-Key: k-123 rest"), "X-Api-Key: *** rest");
        assert_eq!(m("sent Bearer abcdefgh12345"), "sent Bearer ***");
        assert_eq!(m("a basic health check"), "a basic health check");
        assert_eq!(m("GET /q?token=abc&x=1"), "GET /q?token=***&x=1");
        assert_eq!(m("http://u:pw@host/x"), "http://u:***@host/x");
        assert_eq!(mask_credentials("nothing to see"), None);
    }

    #[test]
    fn configured_values_are_masked_also_when_cut_off() {
        let r = Redactor::new(["tok-SECRET-123456".to_string(), "ab".to_string()]);
        assert_eq!(r.mask_text("echo tok-SECRET-123456 done"), "echo *** done");
        assert_eq!(r.mask_text("body: ...tok-SEC…"), "body: ...***…");
        assert_eq!(r.mask_text("body ends tok-SECRET"), "body ends ***");
        // Too short to mask safely: left alone.
        assert_eq!(r.mask_text("about"), "about");
        let mut v = serde_json::json!({
            "env": {"SMTP_PASS": "p", "LOG_LEVEL": "debug"},
            "error": "upstream said: tok-SECRET-123456",
            "list": ["x tok-SECRET-123456"],
        });
        r.mask_json(&mut v);
        assert_eq!(v["env"]["SMTP_PASS"], REDACTED);
        assert_eq!(v["env"]["LOG_LEVEL"], "debug");
        assert_eq!(v["error"], "upstream said: ***");
        assert_eq!(v["list"][0], "x ***");
    }
}
