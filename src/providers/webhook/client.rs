//! HTTP side of the webhook provider: signed JSON POSTs.
//!
//! Owns the wire contract: `Content-Type: application/json`,
//! `Idempotency-Key: <action_id>` (the same on every retry, so the receiver can
//! deduplicate), `X-Homeostat-Signature: sha256=<hex HMAC-SHA256 of the exact
//! body bytes, keyed with the shared secret>`, and how HTTP results map to
//! [`ProviderError`] (5xx and 429 retryable, other 4xx not). Must not retry
//! (the executor does) and must never log or print the secret.
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use sha2::Sha256;

use super::WebhookError;
use crate::model::ProviderError;

/// Header carrying the action id; receivers deduplicate on it.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Header carrying `sha256=<hex>` over the request body.
pub const SIGNATURE_HEADER: &str = "x-homeostat-signature";
/// Default per-request timeout when the config sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Response bodies longer than this are cut before they reach the audit log.
const MAX_ERROR_BODY: usize = 512;
/// At most this much of a response is read; a larger JSON answer is not kept
/// (it would end up in the audit log's `after`).
const MAX_RESPONSE_BYTES: usize = 16 * 1024;

const PROVIDER: &str = "webhook";

/// The shared HMAC secret. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wrap a secret; empty secrets are refused (they would sign nothing).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, WebhookError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(WebhookError::EmptySecret);
        }
        Ok(Secret(bytes))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&secret.0) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Map an HTTP status to success or a typed provider error.
pub fn classify(status: u16, body: &str) -> Result<(), ProviderError> {
    let provider = PROVIDER.to_string();
    let mut text: String = body.chars().take(MAX_ERROR_BODY).collect();
    if text.len() < body.len() {
        text.push('…');
    }
    let message = if text.trim().is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", text.trim())
    };
    match status {
        200..=299 => Ok(()),
        // Rate-limited or server trouble: worth another try with the same key.
        429 | 500..=599 => Err(ProviderError::Unavailable { provider, message }),
        401 | 403 => Err(ProviderError::PermissionDenied { provider, message }),
        404 => Err(ProviderError::NotFound { provider, message }),
        // Other 4xx (409 included): the receiver refused this request as sent.
        _ => Err(ProviderError::Rejected { provider, message }),
    }
}

/// A reqwest client bound to one receiver.
#[derive(Debug)]
pub struct WebhookClient {
    http: reqwest::Client,
    url: reqwest::Url,
    secret: Secret,
    headers: HeaderMap,
    timeout: Duration,
}

impl WebhookClient {
    /// `extra_headers` may not override the content type, idempotency or
    /// signature headers.
    pub fn new(
        url: &str,
        secret: Secret,
        timeout: Option<Duration>,
        extra_headers: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, WebhookError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| WebhookError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(WebhookError::BadUrl {
                url: url.to_string(),
                reason: "scheme must be http or https".into(),
            });
        }
        let mut headers = HeaderMap::new();
        for (name, value) in extra_headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| WebhookError::BadHeader { name: name.clone() })?;
            if n == CONTENT_TYPE
                || n.as_str() == IDEMPOTENCY_HEADER
                || n.as_str() == SIGNATURE_HEADER
            {
                return Err(WebhookError::ReservedHeader { name: name.clone() });
            }
            let mut v = HeaderValue::from_str(value)
                .map_err(|_| WebhookError::BadHeader { name: name.clone() })?;
            // Extra headers often carry tokens: keep them out of debug output.
            v.set_sensitive(true);
            headers.insert(n, v);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("homeostat/", env!("CARGO_PKG_VERSION")))
            // A redirected POST may turn into a GET without the signed body:
            // treat 3xx as the failure it is instead of following it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(WebhookError::Client)?;
        Ok(Self {
            http,
            url: parsed,
            secret,
            headers,
            timeout,
        })
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// POST `body` signed, with `action_id` as idempotency key. On 2xx returns
    /// the status and the response body parsed as JSON (if it is JSON).
    pub async fn post(
        &self,
        action_id: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Option<serde_json::Value>), ProviderError> {
        let signature = sign(&self.secret, &body);
        let mut headers = self.headers.clone();
        let key = HeaderValue::from_str(action_id).map_err(|_| ProviderError::Rejected {
            provider: PROVIDER.into(),
            message: "action id is not a valid header value".into(),
        })?;
        headers.insert(HeaderName::from_static(IDEMPOTENCY_HEADER), key);
        if let Ok(v) = HeaderValue::from_str(&signature) {
            headers.insert(HeaderName::from_static(SIGNATURE_HEADER), v);
        }
        let resp = self
            .http
            .post(self.url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = resp.status().as_u16();
        let mut resp = resp;
        let mut bytes = Vec::new();
        let mut complete = true;
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(e))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                bytes.extend_from_slice(&chunk[..MAX_RESPONSE_BYTES - bytes.len()]);
                complete = false;
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&bytes);
        classify(status, &text)?;
        let json = if complete {
            serde_json::from_slice(&bytes).ok()
        } else {
            None
        };
        Ok((status, json))
    }

    fn transport_error(&self, e: reqwest::Error) -> ProviderError {
        if e.is_timeout() {
            ProviderError::Timeout {
                provider: PROVIDER.into(),
                after_ms: self.timeout.as_millis() as u64,
            }
        } else {
            // Connection refused/reset and the like: the receiver may come back,
            // and the idempotency key makes a re-send safe.
            ProviderError::Unavailable {
                provider: PROVIDER.into(),
                message: format!("{}: {}", self.url, error_chain(&e.without_url())),
            }
        }
    }
}

/// An error with its causes, `a: b: c` (reqwest's own message is often generic).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
