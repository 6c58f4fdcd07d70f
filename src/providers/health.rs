//! The HTTP health probe every adapter and `homeostat healthcheck` use.
//!
//! Owns one question: does `GET <path>` on an address answer 2xx in time?
//! Must not retry or decide what an unhealthy instance means.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET http://<host>:<port><path>` answers 2xx within `timeout`. A minimal
/// HTTP/1.1 exchange on purpose: no TLS stack (and no crypto provider) involved.
pub async fn probe(host: &str, port: u16, path: &str, timeout: Duration) -> bool {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: homeostat-health\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = [0u8; 32];
        let mut n = 0;
        while n < 12 {
            let k = stream.read(&mut buf[n..]).await.ok()?;
            if k == 0 {
                break;
            }
            n += k;
        }
        status_code(&buf[..n])
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .ok()
        .flatten()
        .is_some_and(|code| (200..300).contains(&code))
}

/// The status code of an HTTP/1.x status line prefix (`HTTP/1.1 200 OK`).
pub fn status_code(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503 Service"), Some(503));
        assert_eq!(status_code(b"HTTP/1.1 20"), None);
        assert_eq!(status_code(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(b""), None);
    }
}
