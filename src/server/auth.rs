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
            MutationPolicy::LoopbackOpen => Ok(()),
            MutationPolicy::Disabled => Err(error_response(
                StatusCode::FORBIDDEN,
                "forbidden",
                "mutating endpoints are disabled: no api token is configured and the agent listens on a non-loopback address",
            )),
            MutationPolicy::Token(want) => {
                let offered = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim);
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
        assert!(!constant_time_eq(&[0; 32], &[1; 32]));
    }
}
