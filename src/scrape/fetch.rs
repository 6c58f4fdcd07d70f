//! One HTTP scrape: request with Prometheus's headers, body streamed under a limit.
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::ScrapeError;

/// What Prometheus 2.x sends: OpenMetrics first, then text 0.0.4, then anything.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

pub const USER_AGENT: &str = concat!("homeostat/", env!("CARGO_PKG_VERSION"));

/// GET `url`; returns the (decompressed) body and its content type. Aborts as soon
/// as more than `limit` bytes arrived (0 = no limit), so an oversized body is never
/// held in memory.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    limit: u64,
) -> Result<(Vec<u8>, Option<String>), ScrapeError> {
    let mut resp = client
        .get(url)
        .header(ACCEPT, ACCEPT_HEADER)
        // Lets exporters that do expensive work bound it to our deadline.
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", timeout.as_secs_f64()),
        )
        .send()
        .await
        .map_err(|e| ScrapeError::Http(error_chain(&e)))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(ScrapeError::Status(resp.status().to_string()));
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ScrapeError::Http(error_chain(&e)))?
    {
        if limit > 0 && (body.len() + chunk.len()) as u64 > limit {
            return Err(ScrapeError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, content_type))
}

/// reqwest's top-level message hides the cause ("error sending request"); the
/// target page needs the cause ("connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg.push_str(": ");
            msg.push_str(&s_msg);
        }
        src = s.source();
    }
    msg
}
