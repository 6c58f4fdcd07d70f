//! Who may call the mutating endpoints (policy in the module doc of `server`).
use std::net::SocketAddr;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::api::error_response;
use super::ServerError;

/// The decision, made once when the router is built.
pub enum MutationPolicy {
    /// Bearer token required; only its SHA-256 is kept, so comparisons take the
    /// same time whatever the length or content of the offered token.
    Token([u8; 32]),
    /// No token, loopback listener: allowed.
    LoopbackOpen,
    /// No token, reachable from the network: refused.
    Disabled,
}

impl MutationPolicy {
    pub fn new(token: Option<&str>, listen: SocketAddr) -> Result<Self, ServerError> {
        match token {
            Some(t) if t.is_empty() || t.chars().any(char::is_whitespace) => {
                Err(ServerError::BadToken)
            }
            Some(t) => Ok(MutationPolicy::Token(Sha256::digest(t.as_bytes()).into())),
            None if listen.ip().is_loopback() => Ok(MutationPolicy::LoopbackOpen),
            None => Ok(MutationPolicy::Disabled),
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            MutationPolicy::Token(_) => "bearer token required",
            MutationPolicy::LoopbackOpen => "open (no token, loopback listener)",
            MutationPolicy::Disabled => {
                "disabled (no token configured and listener not on loopback)"
            }
        }
    }

    /// `Ok` if the request may mutate; otherwise the response to send.
    #[allow(clippy::result_large_err)] // the Err is the response itself; a cold path
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Response> {
        match self {
            MutationPolicy::LoopbackOpen => same_site_json(headers),
            MutationPolicy::Disabled => Err(error_response(
                StatusCode::FORBIDDEN,
                "forbidden",
                "mutating endpoints are disabled: no api token is configured and the agent listens on a non-loopback address",
            )),
            MutationPolicy::Token(want) => {
                let offered = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(bearer_token);
                let ok = offered.is_some_and(|t| {
                    let got: [u8; 32] = Sha256::digest(t.as_bytes()).into();
                    constant_time_eq(&got, want)
                });
                if ok {
                    Ok(())
                } else {
                    let mut resp = error_response(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "missing or invalid bearer token",
                    );
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        header::HeaderValue::from_static("Bearer realm=\"homeostat\""),
                    );
                    Err(resp.into_response())
                }
            }
        }
    }
}

/// The credentials of `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Without a token, only requests a web page of another site cannot forge
/// (DESIGN.md §4a): a JSON body type (a cross-site form or `fetch` cannot
/// send one without a CORS preflight, which is never granted), no
/// cross-site `Origin` or `Sec-Fetch-Site`, and no other `Host` than a loopback one (a page
/// whose name was rebound to 127.0.0.1 is same-origin to the browser, but
/// its `Host` is its own name).
#[allow(clippy::result_large_err)] // as `check`
fn same_site_json(headers: &HeaderMap) -> Result<(), Response> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let media = text(header::CONTENT_TYPE)
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/json") {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_data",
            "without an api token, a mutating request must have Content-Type: application/json (a web page of another site cannot send one)",
        ));
    }
    let refuse = |why: &str| {
        Err(error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("cross-site request refused: {why}"),
        ))
    };
    // Browsers always send Host; only a local non-browser client may omit it.
    let host = text(header::HOST);
    if let Some(host) = host.filter(|h| !is_loopback_host(h)) {
        return refuse(&format!("Host {host:?} is not a loopback address"));
    }
    let host = host.unwrap_or("");
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
            return refuse(&format!("Sec-Fetch-Site is {site:?}"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return refuse(&format!("Origin {origin:?} is not this agent"));
        }
    }
    Ok(())
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compare without an early exit, so timing does not reveal how much matched.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_from_token_and_address() {
        let lo: SocketAddr = "127.0.0.1:9798".parse().expect("addr");
        let v6lo: SocketAddr = "[::1]:9798".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:9798".parse().expect("addr");
        assert!(matches!(
            MutationPolicy::new(None, lo),
            Ok(MutationPolicy::LoopbackOpen)
        ));
        assert!(matches!(
            MutationPolicy::new(None, v6lo),
            Ok(MutationPolicy::LoopbackOpen)
        ));
        assert!(matches!(
            MutationPolicy::new(None, any),
            Ok(MutationPolicy::Disabled)
        ));
        assert!(matches!(
            MutationPolicy::new(Some("s3cret"), any),
            Ok(MutationPolicy::Token(_))
        ));
        assert!(MutationPolicy::new(Some(""), lo).is_err());
        assert!(MutationPolicy::new(Some("a b"), lo).is_err());
    }

    #[test]
    fn token_check() {
        let p = MutationPolicy::new(Some("s3cret"), "0.0.0.0:1".parse().expect("addr"))
            .expect("policy");
        let mut h = HeaderMap::new();
        assert_eq!(
            p.check(&h).err().map(|r| r.status()),
            Some(StatusCode::UNAUTHORIZED)
        );
        h.insert(header::AUTHORIZATION, "Bearer s3cre".parse().expect("hv"));
        assert_eq!(
            p.check(&h).err().map(|r| r.status()),
            Some(StatusCode::UNAUTHORIZED)
        );
        h.insert(header::AUTHORIZATION, "Basic s3cret".parse().expect("hv"));
        assert_eq!(
            p.check(&h).err().map(|r| r.status()),
            Some(StatusCode::UNAUTHORIZED)
        );
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().expect("hv"));
        assert!(p.check(&h).is_ok());
        // RFC 9110: the scheme is case-insensitive.
        for v in ["bearer s3cret", "BEARER s3cret", "Bearer  s3cret "] {
            h.insert(header::AUTHORIZATION, v.parse().expect("hv"));
            assert!(p.check(&h).is_ok(), "{v}");
        }
        h.insert(header::AUTHORIZATION, "Bearers3cret".parse().expect("hv"));
        assert!(p.check(&h).is_err());
        assert!(!constant_time_eq(&[0; 32], &[1; 32]));
    }

    #[test]
    fn loopback_without_token_needs_json_from_this_host() {
        let p = MutationPolicy::new(None, "127.0.0.1:9798".parse().expect("addr")).expect("policy");
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(
                    header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    v.parse().expect("value"),
                );
            }
            h
        };
        let status = |pairs: &[(&str, &str)]| p.check(&headers(pairs)).err().map(|r| r.status());
        let json = ("content-type", "application/json");
        let host = ("host", "127.0.0.1:9798");
        assert_eq!(status(&[json, host]), None);
        assert_eq!(
            status(&[
                ("content-type", "application/json; charset=utf-8"),
                ("host", "localhost:9798")
            ]),
            None
        );
        assert_eq!(
            status(&[
                json,
                ("host", "[::1]:9798"),
                ("origin", "http://[::1]:9798")
            ]),
            None
        );
        assert_eq!(
            status(&[
                json,
                host,
                ("origin", "http://127.0.0.1:9798"),
                ("sec-fetch-site", "same-origin")
            ]),
            None
        );
        assert_eq!(status(&[host]), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        assert_eq!(
            status(&[("content-type", "text/plain"), host]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            status(&[json, host, ("origin", "https://evil.example")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&[json, host, ("origin", "null")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&[json, host, ("sec-fetch-site", "cross-site")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&[json, host, ("sec-fetch-site", "same-site")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(&[json, ("host", "evil.example:9798")]),
            Some(StatusCode::FORBIDDEN)
        );
        // No Host (HTTP/1.0 from a local tool; browsers always send one), no Origin.
        assert_eq!(status(&[json]), None);
        assert_eq!(
            status(&[json, ("origin", "http://127.0.0.1:9798")]),
            Some(StatusCode::FORBIDDEN)
        );
    }
}
