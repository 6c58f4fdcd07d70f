//! Encoding and decoding of one log line: serialisation, the hash, redaction.
//!
//! Owns the byte-exact rule of the chain (see the module doc of `audit`): the
//! hash covers the stored line with the value of its last member, `hash`,
//! emptied. Must stay in step with the field order of [`AuditEvent`].
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::event::AuditEvent;

/// `prev_hash` of the very first event of a log.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the line of an event with an emptied hash ends with.
const EMPTY_HASH_SUFFIX: &[u8] = b",\"hash\":\"\"}";

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Serialise `ev` (whose `hash` is ignored) into its stored line (without the
/// newline) and return the line and its hash.
pub(crate) fn encode(ev: &AuditEvent) -> Result<(Vec<u8>, String), serde_json::Error> {
    let mut unhashed = ev.clone();
    unhashed.hash = String::new();
    let mut body = serde_json::to_vec(&unhashed)?;
    if !body.ends_with(EMPTY_HASH_SUFFIX) {
        // `hash` must be the last field of AuditEvent; a test guards this, so
        // this is a programming error, reported rather than written wrongly.
        return Err(serde::ser::Error::custom(
            "AuditEvent must serialise `hash` as its last member",
        ));
    }
    let hash = sha256_hex(&body);
    // Put the digest between the two quotes of `"hash":""`.
    let insert_at = body.len() - 2;
    body.splice(insert_at..insert_at, hash.bytes());
    Ok((body, hash))
}

/// The hash a stored line should carry: sha-256 over the line with the value of
/// its trailing `"hash":"…"` emptied. `None` if the line does not end in a
/// `"hash"` member holding a plain string.
pub(crate) fn recompute_hash(line: &[u8], stored_hash: &str) -> Option<String> {
    let mut suffix = Vec::with_capacity(stored_hash.len() + 12);
    suffix.extend_from_slice(b",\"hash\":\"");
    suffix.extend_from_slice(stored_hash.as_bytes());
    suffix.extend_from_slice(b"\"}");
    if !line.ends_with(&suffix) {
        return None;
    }
    let mut body = Vec::with_capacity(line.len());
    body.extend_from_slice(&line[..line.len() - stored_hash.len() - 2]);
    body.extend_from_slice(b"\"}");
    Some(sha256_hex(&body))
}

/// Decode a stored line into an event, turning `null` query values (NaN at
/// write time: JSON has no NaN) back into NaN.
pub(crate) fn decode(line: &[u8]) -> Result<AuditEvent, serde_json::Error> {
    match serde_json::from_slice::<AuditEvent>(line) {
        Ok(ev) => Ok(ev),
        Err(first) => {
            let mut v: Value = serde_json::from_slice(line)?;
            let mut nan_keys = Vec::new();
            if let Some(values) = v
                .get_mut("reason")
                .and_then(|r| r.get_mut("values"))
                .and_then(Value::as_object_mut)
            {
                values.retain(|k, val| {
                    let keep = !val.is_null();
                    if !keep {
                        nan_keys.push(k.clone());
                    }
                    keep
                });
            }
            if nan_keys.is_empty() {
                return Err(first);
            }
            let mut ev: AuditEvent = serde_json::from_value(v)?;
            if let Some(reason) = ev.reason.as_mut() {
                for k in nan_keys {
                    reason.values.insert(k, f64::NAN);
                }
            }
            Ok(ev)
        }
    }
}

const SECRET_KEY_PARTS: &[&str] = &[
    "authorization",
    "secret",
    "token",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "api-key",
];

const REDACTED: &str = "***";

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|p| k.contains(p))
}

fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_secret_key(k) {
                    *val = Value::String(REDACTED.to_string());
                } else {
                    redact_value(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(text) => {
            if let Some(masked) = redact_text(text) {
                *text = masked;
            }
        }
        _ => {}
    }
}

/// Characters that end a credential inside free text.
fn ends_value(c: char) -> bool {
    c.is_whitespace() || matches!(c, '&' | '"' | '\'' | ')' | ']' | '}' | ',' | ';' | '>')
}

/// Mask credentials in free text (error messages, URLs in details):
/// `Bearer x` / `Basic x`, `token=x` style query parameters and assignments,
/// `X-Api-Key: x` style headers, and the password of `scheme://user:pass@host`.
/// Returns `None` when nothing was masked.
fn redact_text(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    // Whether the next word is a credential: always after a secret header name
    // (`X-Api-Key:`), only if it looks like one after `Bearer`/`Basic` (so
    // "basic health check" stays readable).
    #[derive(PartialEq)]
    enum Next {
        Plain,
        Credential,
        IfTokenLike,
    }
    let token_like = |w: &str| {
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
        let lower = word.to_ascii_lowercase();
        if lower == "bearer" || lower == "basic" {
            out.push_str(word);
            if next == Next::Plain {
                next = Next::IfTokenLike;
            }
            continue;
        }
        let mask = match next {
            Next::Credential => true,
            Next::IfTokenLike => token_like(word),
            Next::Plain => false,
        };
        next = Next::Plain;
        if mask {
            out.push_str(REDACTED);
            changed = true;
            continue;
        }
        if let Some(key) = word.strip_suffix(':') {
            if is_secret_key(key) {
                out.push_str(word);
                next = Next::Credential;
                continue;
            }
        }
        out.push_str(word);
    }
    let (out, assigned) = redact_assignments(&out);
    let (out, userinfo) = redact_userinfo(&out);
    (changed || assigned || userinfo).then_some(out)
}

/// `scheme://user:pass@host` → `scheme://user:***@host`, for every URL in `text`.
fn redact_userinfo(text: &str) -> (String, bool) {
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
fn redact_assignments(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        out.push_str(&rest[..=eq]);
        let mut value = &rest[eq + 1..];
        let secret = is_secret_key(&rest[key_start..eq]);
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

/// Remove secrets before the event is hashed and written: in `detail`,
/// `before`, `after`, the value of any secret-looking key, and credentials in
/// their strings; in `error`, credentials in the text (see `redact_text`).
pub fn redact_event(ev: &mut AuditEvent) {
    for v in [&mut ev.detail, &mut ev.before, &mut ev.after]
        .into_iter()
        .flatten()
    {
        redact_value(v);
    }
    if let Some(err) = ev.error.as_deref().and_then(redact_text) {
        ev.error = Some(err);
    }
}
