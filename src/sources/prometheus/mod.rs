//! Remote Prometheus sources: rule queries that name a source (`{source, expr}`)
//! are evaluated by that Prometheus server at the rule's evaluation time.
//!
//! Owns the per-source clients ([`Sources`]), running a rule's remote queries
//! concurrently, and mapping each answer onto the rule engine's
//! [`QueryOutcome`]: samples → `Ok`, no series → `Empty`, and an HTTP error, a
//! PromQL error or a timeout → `SourceFailed` with that kind. The rule engine
//! treats the last two as no-data, which never scales in. Must not read the
//! clock (the evaluation time is an argument), decide, or log secrets.
pub mod client;
pub mod config;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use client::{ClientError, PrometheusClient, QueryResult};
pub use config::{RawSource, Secret, SourceAuth, SourceConfig, SourceTls};

pub use crate::model::RemoteQuery;
use crate::model::{QueryOutcome, SourceFailure, TimestampMs};

/// A client per configured source.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    clients: BTreeMap<String, Arc<PrometheusClient>>,
}

/// The answer to a [`RemoteQuery`].
#[derive(Debug, Clone)]
pub struct RemoteAnswer {
    pub name: String,
    pub source: String,
    pub result: QueryResult,
}

impl RemoteAnswer {
    /// What the rule engine sees.
    pub fn outcome(&self) -> QueryOutcome {
        to_outcome(&self.source, self.result.clone())
    }
}

/// Map a source's answer onto the rule engine's outcome.
pub fn to_outcome(source: &str, r: QueryResult) -> QueryOutcome {
    match r {
        QueryResult::Samples(v) => QueryOutcome::Ok(v),
        QueryResult::Empty => QueryOutcome::Empty {
            source: source.to_string(),
        },
        QueryResult::Failed { kind, error } => QueryOutcome::SourceFailed {
            source: source.to_string(),
            kind,
            error,
        },
    }
}

/// Why the sources could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("source {name}: {source}")]
pub struct SourcesError {
    pub name: String,
    #[source]
    pub source: ClientError,
}

impl Sources {
    /// Build a client for every source of the config.
    pub fn new(cfg: &BTreeMap<String, SourceConfig>) -> Result<Self, SourcesError> {
        let mut clients = BTreeMap::new();
        for (name, c) in cfg {
            if c.tls.insecure_skip_verify {
                tracing::warn!(
                    source = %name, url = %c.url,
                    "tls.insecure_skip_verify: the server's certificate is not checked"
                );
            }
            let client = PrometheusClient::new(c).map_err(|source| SourcesError {
                name: name.clone(),
                source,
            })?;
            clients.insert(name.clone(), Arc::new(client));
        }
        Ok(Self { clients })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<PrometheusClient>> {
        self.clients.get(name)
    }

    /// Run `queries` concurrently at `at`, each within its source's timeout.
    /// Answers come back in the order of `queries`.
    pub async fn run(&self, queries: Vec<RemoteQuery>, at: TimestampMs) -> Vec<RemoteAnswer> {
        if queries.is_empty() {
            return Vec::new();
        }
        let mut set = tokio::task::JoinSet::new();
        let n = queries.len();
        for (i, q) in queries.into_iter().enumerate() {
            let client = self.clients.get(&q.source).cloned();
            set.spawn(async move {
                let result = match client {
                    Some(c) => {
                        // The client's own timeout bounds the request; this
                        // bounds everything else (DNS, a stuck body) as well.
                        let limit = c.timeout() + std::time::Duration::from_millis(250);
                        match tokio::time::timeout(limit, c.query(&q.expr, at)).await {
                            Ok(r) => r,
                            Err(_) => QueryResult::Failed {
                                kind: SourceFailure::Timeout,
                                error: format!("no answer within {:?}", c.timeout()),
                            },
                        }
                    }
                    None => QueryResult::Failed {
                        kind: SourceFailure::HttpError,
                        error: format!("source {:?} is not configured", q.source),
                    },
                };
                (
                    i,
                    RemoteAnswer {
                        name: q.name,
                        source: q.source,
                        result,
                    },
                )
            });
        }
        let mut out: Vec<Option<RemoteAnswer>> = vec![None; n];
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, a)) => out[i] = Some(a),
                Err(e) => tracing::error!(error = %e, "remote query task failed"),
            }
        }
        // A query whose task panicked has no answer: the rule engine counts an
        // absent outcome as failed.
        out.into_iter().flatten().collect()
    }
}
