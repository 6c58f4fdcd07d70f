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
        _ => {}
    }
}

/// Mask `Bearer <credential>` / `Basic <credential>` in free text.
fn redact_text(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    if !lower.contains("bearer ") && !lower.contains("basic ") {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut mask_next = false;
    for (i, word) in s.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if mask_next && !word.is_empty() {
            out.push_str(REDACTED);
            mask_next = false;
            continue;
        }
        out.push_str(word);
        let w = word.to_ascii_lowercase();
        mask_next = w == "bearer" || w == "basic";
    }
    Some(out)
}

/// Remove secrets from `detail`, `before`, `after` (by key) and `error` (by
/// credential scheme) before the event is hashed and written.
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
