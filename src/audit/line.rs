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

/// Secret-looking keys lose their values; strings lose their credentials
/// (the patterns live in [`crate::redact`], shared with the API).
fn redact_value(v: &mut Value) {
    crate::redact::mask_json_by_name(v)
}

fn redact_text(s: &str) -> Option<String> {
    crate::redact::mask_credentials(s)
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
