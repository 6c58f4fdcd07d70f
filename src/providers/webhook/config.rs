//! What users write for a `provider: webhook` target.
use std::path::PathBuf;

use serde::Deserialize;

/// Every action kind is delivered as a signed JSON POST.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Receiver URL (http or https).
    pub url: String,
    /// File holding the HMAC-SHA256 secret (trailing newline ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the secret (instead of `secret_file`).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Per-request timeout (default 10s).
    #[serde(default, with = "crate::spec::opt_duration")]
    pub timeout: Option<std::time::Duration>,
    /// Extra headers sent with each request.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}
