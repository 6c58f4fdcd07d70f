//! What users write for a remote Prometheus source (`sources.<name>` in the
//! agent config) and its validated form.
//!
//! Owns the raw serde struct and its compilation (every error reported with
//! file:line:column through the config's [`SourceFile`]). Secrets are read here
//! once, at load, and kept in [`Secret`], whose `Debug` prints `***`: they must
//! never reach a log line, an error message or the audit log.
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::spec::{parse_duration, SourceFile, YPath};

/// Default per-query timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A remote query source (`sources.<name>`), as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Base URL of a Prometheus-compatible API, e.g. `http://127.0.0.1:9090`
    /// (a path prefix such as `https://host/prometheus` is kept).
    pub url: String,
    /// Per-query timeout, e.g. `5s`. Default `10s`.
    pub timeout: Option<String>,
    /// File holding a bearer token (relative to the config file; trailing newline ignored).
    pub bearer_token_file: Option<String>,
    /// Environment variable holding a bearer token.
    pub bearer_token_env: Option<String>,
    /// HTTP basic authentication.
    pub basic_auth: Option<RawBasicAuth>,
    /// TLS settings for `https://` URLs.
    pub tls: Option<RawTls>,
}

/// `basic_auth:` of a source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    /// User name.
    pub username: String,
    /// File holding the password (relative to the config file; trailing newline ignored).
    pub password_file: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
}

/// `tls:` of a source.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of CA certificates trusted in addition to the system roots
    /// (relative to the config file).
    pub ca_file: Option<String>,
    /// Accept any server certificate. For tests only: it disables server
    /// authentication. Default false.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A secret read from a file or the environment. `Debug` and `Display` print
/// `***`; the value is only reachable through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How the agent authenticates to a source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceAuth {
    #[default]
    None,
    Bearer(Secret),
    Basic {
        username: String,
        password: Secret,
    },
}

/// TLS settings of a source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceTls {
    /// Where the extra CA certificates came from (for messages).
    pub ca_file: Option<PathBuf>,
    /// The PEM text of `ca_file`, read and checked at load.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
}

/// A validated remote source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Base URL without a trailing slash.
    pub url: String,
    pub timeout: Duration,
    pub auth: SourceAuth,
    pub tls: SourceTls,
}

/// Compile `sources.<name>` at `path`, reporting every problem to `src`.
/// Relative files resolve against `base_dir`. `None` if it cannot be used.
pub fn compile(
    src: &mut SourceFile,
    path: &YPath,
    name: &str,
    raw: RawSource,
    base_dir: &Path,
) -> Option<SourceConfig> {
    let mut ok = true;
    let what = format!("source {name:?}");
    if !(raw.url.starts_with("http://") || raw.url.starts_with("https://")) {
        src.error(
            &path.key("url"),
            format!(
                "{what}: url {:?} must start with http:// or https://",
                raw.url
            ),
        );
        ok = false;
    } else if raw
        .url
        .split_once("://")
        .is_some_and(|(_, rest)| rest.split('/').next().unwrap_or("").contains('@'))
    {
        // Credentials in the URL would end up in every error message, log
        // line and audit reason that names the endpoint.
        src.error(
            &path.key("url"),
            format!("{what}: url must not carry credentials; use basic_auth or a bearer token"),
        );
        ok = false;
    } else if raw.url.contains(['?', '#']) {
        src.error(
            &path.key("url"),
            format!(
                "{what}: url {:?} must not have a query or fragment",
                raw.url
            ),
        );
        ok = false;
    }
    let timeout = match &raw.timeout {
        None => DEFAULT_TIMEOUT,
        Some(s) => match parse_duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                src.error(
                    &path.key("timeout"),
                    format!("{what}: timeout must be above 0"),
                );
                ok = false;
                DEFAULT_TIMEOUT
            }
            Err(e) => {
                src.error(&path.key("timeout"), format!("{what}: timeout: {e}"));
                ok = false;
                DEFAULT_TIMEOUT
            }
        },
    };

    let bearer = read_secret(
        src,
        path,
        &what,
        ("bearer_token_file", raw.bearer_token_file.as_deref()),
        ("bearer_token_env", raw.bearer_token_env.as_deref()),
        base_dir,
        &mut ok,
    );
    let basic = raw.basic_auth.map(|b| {
        let bp = path.key("basic_auth");
        if b.password_file.is_none() && b.password_env.is_none() {
            src.error(
                &bp,
                format!("{what}: basic_auth needs password_file or password_env"),
            );
            ok = false;
        }
        let pw = read_secret(
            src,
            &bp,
            &format!("{what}: basic_auth"),
            ("password_file", b.password_file.as_deref()),
            ("password_env", b.password_env.as_deref()),
            base_dir,
            &mut ok,
        );
        (b.username, pw)
    });
    let auth = match (bearer, basic) {
        (Some(_), Some(_)) => {
            src.error(
                &path.key("basic_auth"),
                format!("{what}: set a bearer token or basic_auth, not both"),
            );
            ok = false;
            SourceAuth::None
        }
        (Some(t), None) => SourceAuth::Bearer(t),
        (None, Some((username, Some(password)))) => SourceAuth::Basic { username, password },
        (None, Some((_, None))) | (None, None) => SourceAuth::None,
    };

    let mut tls = SourceTls::default();
    if let Some(t) = raw.tls {
        tls.insecure_skip_verify = t.insecure_skip_verify;
        if let Some(ca) = t.ca_file {
            let p = base_dir.join(&ca);
            match std::fs::read(&p) {
                Ok(pem) => {
                    let parsed = reqwest::Certificate::from_pem_bundle(&pem)
                        .map_err(|e| e.to_string())
                        .and_then(|v| {
                            if v.is_empty() {
                                Err("no certificate found".to_string())
                            } else {
                                Ok(v)
                            }
                        });
                    if let Err(e) = parsed {
                        src.error(
                            &path.key("tls").key("ca_file"),
                            format!(
                                "{what}: tls.ca_file {}: not PEM certificates: {e}",
                                p.display()
                            ),
                        );
                        ok = false;
                    }
                    tls.ca_pem = Some(pem);
                }
                Err(e) => {
                    src.error(
                        &path.key("tls").key("ca_file"),
                        format!("{what}: tls.ca_file: cannot read {}: {e}", p.display()),
                    );
                    ok = false;
                }
            }
            tls.ca_file = Some(p);
        }
    }
    ok.then(|| SourceConfig {
        url: raw.url.trim_end_matches('/').to_string(),
        timeout,
        auth,
        tls,
    })
}

/// A secret from `file` xor `env` (each `(key, value)`); errors name the key,
/// never the value.
fn read_secret(
    src: &mut SourceFile,
    path: &YPath,
    what: &str,
    file: (&str, Option<&str>),
    env: (&str, Option<&str>),
    base_dir: &Path,
    ok: &mut bool,
) -> Option<Secret> {
    match (file.1, env.1) {
        (Some(_), Some(_)) => {
            src.error(
                &path.key(env.0),
                format!("{what}: set {} or {}, not both", file.0, env.0),
            );
            *ok = false;
            None
        }
        (Some(f), None) => {
            let p = base_dir.join(f);
            match std::fs::read_to_string(&p) {
                Ok(s) if !s.trim().is_empty() => {
                    Some(Secret::new(s.trim_end_matches(['\n', '\r'])))
                }
                Ok(_) => {
                    src.error(
                        &path.key(file.0),
                        format!("{what}: {}: {f:?} is empty", file.0),
                    );
                    *ok = false;
                    None
                }
                Err(e) => {
                    src.error(
                        &path.key(file.0),
                        format!("{what}: {}: cannot read {}: {e}", file.0, p.display()),
                    );
                    *ok = false;
                    None
                }
            }
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(s) if !s.is_empty() => Some(Secret::new(s)),
            _ => {
                src.error(
                    &path.key(env.0),
                    format!("{what}: {}: environment variable {var} is not set", env.0),
                );
                *ok = false;
                None
            }
        },
        (None, None) => None,
    }
}
