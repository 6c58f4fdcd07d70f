//! Discovery from Prometheus `file_sd` JSON files (what the process provider writes
//! and what Prometheus itself reads): `[{"targets": ["host:port"], "labels": {}}]`.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{Discovery, DiscoveryError, ScrapeTarget};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads the files on every discovery round. A missing file contributes no
/// targets (it was removed on purpose); an unreadable or invalid one is an error,
/// so the scraper keeps the previous targets rather than dropping them all
/// because of a half-written file.
pub struct FileSd {
    pub paths: Vec<PathBuf>,
}

impl FileSd {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self { paths }
    }
}

/// Parse one file_sd JSON document.
pub fn parse_file_sd(json: &[u8]) -> Result<Vec<ScrapeTarget>, String> {
    let groups: Vec<Group> = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(groups
        .into_iter()
        .flat_map(|g| {
            let labels = g.labels;
            g.targets.into_iter().map(move |address| ScrapeTarget {
                address,
                labels: labels.clone(),
            })
        })
        .collect())
}

#[async_trait::async_trait]
impl Discovery for FileSd {
    async fn discover(&self) -> Result<Vec<ScrapeTarget>, DiscoveryError> {
        let mut out = Vec::new();
        for p in &self.paths {
            match tokio::fs::read(p).await {
                Ok(bytes) => out.extend(
                    parse_file_sd(&bytes)
                        .map_err(|e| DiscoveryError(format!("{}: {e}", p.display())))?,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DiscoveryError(format!("{}: {e}", p.display()))),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_groups_skips_missing_rejects_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.json");
        std::fs::write(
            &a,
            r#"[{"targets": ["127.0.0.1:18100", "127.0.0.1:18101"], "labels": {"target": "checkout"}}, {"targets": ["127.0.0.1:9100"]}]"#,
        )
        .expect("write");
        let sd = FileSd::new(vec![a.clone(), dir.path().join("missing.json")]);
        let t = sd.discover().await.expect("discover");
        assert_eq!(
            t,
            vec![
                ScrapeTarget::new("127.0.0.1:18100").with_label("target", "checkout"),
                ScrapeTarget::new("127.0.0.1:18101").with_label("target", "checkout"),
                ScrapeTarget::new("127.0.0.1:9100"),
            ]
        );
        std::fs::write(&a, r#"[{"targets": ["127.0.0.1:18100"#).expect("write");
        let e = sd.discover().await.expect_err("half-written file");
        assert!(e.to_string().contains("a.json"), "{e}");
        std::fs::write(&a, r#"[{"targets": [], "lables": {}}]"#).expect("write");
        assert!(sd.discover().await.is_err(), "unknown fields are typos");
    }
}
