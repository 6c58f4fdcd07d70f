//! What the HTTP server may see and do: the agent's side of
//! [`crate::server::AgentControl`]. Read-only views are built from the same
//! state the loops use; mutations go through the journal so they are audited.
use std::sync::Arc;

use serde_json::{json, Value};

use super::{read, Agent, AgentError};
use crate::actions::Decision;
use crate::model::{Labels, Reason, TimestampMs};
use crate::server::{AgentControl, AuditFilter, ServerConfig};

/// The agent as the server sees it.
pub struct Control(pub Arc<Agent>);

impl Agent {
    /// The HTTP API over this agent.
    pub(super) fn router(self: &Arc<Self>) -> Result<axum::Router, AgentError> {
        let mut cfg = ServerConfig::new(self.cfg.listen);
        if let Some(t) = &self.cfg.api.token {
            cfg = cfg.with_token(t.expose());
        }
        cfg.query = self.cfg.query.clone();
        cfg.secrets = crate::redact::Redactor::new(secret_values(&self.cfg));
        let alerts = crate::sources::alertmanager::router(
            Arc::new(Control(self.clone())),
            crate::server::MutationPolicy::new(cfg.api_token.as_deref(), cfg.listen)?,
            self.clock,
        );
        let traces = match &self.otlp {
            Some(rx) => rx.router(),
            None => axum::Router::new(),
        };
        Ok(crate::server::router_with(
            &cfg,
            Arc::new(Control(self.clone())),
            self.store.clone(),
            self.metrics.clone(),
            self.clock,
            alerts.merge(traces),
        )?)
    }

    /// `data` of `/api/v1/rules`: per group and rule, state, instances with their
    /// last values, and when the rule may act next (cooldowns).
    pub fn rules_json(&self) -> Value {
        let rules = self.rules_snapshot();
        let status = super::lock(&self.engine).status(&rules);
        let state = self.journal.state();
        let mut by_rule: std::collections::HashMap<_, _> =
            status.into_iter().map(|s| (s.rule.clone(), s)).collect();
        let groups: Vec<Value> = rules
            .groups
            .iter()
            .map(|g| {
                let rs: Vec<Value> = g
                    .rules
                    .iter()
                    .map(|r| {
                        let target = &r.action.target;
                        let last = state.last_rule_action(&r.name, target, r.action.kind, None);
                        // The guard's own cooldowns, for a decision this rule would make now.
                        let now = self.clock.now_ms();
                        let probe = Decision {
                            rule: r.name.clone(),
                            group: r.group.clone(),
                            action: r.action.clone(),
                            labels: Labels::empty(),
                            instance: None,
                            mode: r.mode,
                            approval: r.approval,
                            cooldown: r.cooldown,
                            reason: Reason::default(),
                            annotations: Default::default(),
                            at: now,
                        };
                        let next = self
                            .limits
                            .get(target)
                            .and_then(|l| self.guard.cooldown_until(&probe, l, &state, now));
                        let s = by_rule.remove(&r.name);
                        json!({
                            "name": r.name,
                            "description": r.description,
                            "queries": r.queries.iter().map(|q| json!({"name": q.name, "expr": q.expr, "source": q.source})).collect::<Vec<_>>(),
                            "when": r.when_text,
                            "trigger": r.trigger.as_ref().map(|t| json!({"alert": t.alert, "matchers": t.matchers})),
                            "for": crate::spec::format_duration(r.for_),
                            "keep_firing_for": crate::spec::format_duration(r.keep_firing_for),
                            "mode": r.mode,
                            "action": r.action,
                            "status": s,
                            "last_action_at": last.map(crate::clock::rfc3339),
                            "next_action_not_before": next.map(crate::clock::rfc3339),
                        })
                    })
                    .collect();
                json!({
                    "name": g.name,
                    "file": g.file.display().to_string(),
                    "interval": crate::spec::format_duration(g.interval),
                    "rules": rs,
                })
            })
            .collect();
        json!({ "groups": groups, "paused": state.paused() })
    }
}

/// Every secret value the config holds (API token, source credentials,
/// webhook secrets and secret-looking headers), for the API to mask wherever
/// it could appear (an upstream's error body echoing its request, say).
fn secret_values(cfg: &crate::config::AgentConfig) -> Vec<String> {
    use crate::sources::prometheus::config::SourceAuth;
    let mut out = Vec::new();
    if let Some(t) = &cfg.api.token {
        out.push(t.expose().to_string());
    }
    for s in cfg.sources.values() {
        match &s.auth {
            SourceAuth::None => {}
            SourceAuth::Bearer(t) => out.push(t.expose().to_string()),
            SourceAuth::Basic { password, .. } => out.push(password.expose().to_string()),
        }
    }
    for t in cfg.targets.values() {
        if let crate::config::ProviderConfig::Webhook(w) = &t.provider {
            out.extend(
                w.headers
                    .iter()
                    .filter(|(name, _)| crate::redact::is_secret_name(name))
                    .map(|(_, v)| v.clone()),
            );
            if let Some(v) = w.secret_env.as_deref().and_then(|e| std::env::var(e).ok()) {
                out.push(v);
            }
            if let Some(v) = w
                .secret_file
                .as_deref()
                .and_then(|f| std::fs::read_to_string(f).ok())
            {
                out.push(v.trim_end_matches(['\n', '\r']).to_string());
            }
        }
    }
    out
}

impl crate::sources::alertmanager::AlertReceiver for Control {
    fn receive(
        &self,
        alerts: Vec<crate::model::AlertInput>,
        now: TimestampMs,
    ) -> crate::sources::alertmanager::Receipt {
        self.0.receive_alerts(&alerts, now)
    }
}

#[async_trait::async_trait]
impl AgentControl for Control {
    fn ready(&self) -> bool {
        self.0.is_ready()
    }

    fn rules(&self) -> Value {
        self.0.rules_json()
    }

    fn targets(&self) -> Value {
        let mut v = crate::scrape::targets_api_json(&self.0.scrape.targets());
        let providers: serde_json::Map<String, Value> = read(&self.0.target_states)
            .iter()
            .map(|(name, s)| (name.clone(), json!(s)))
            .collect();
        v["providers"] = Value::Object(providers);
        v
    }

    async fn audit(&self, filter: AuditFilter) -> Result<Value, String> {
        let dir = self.0.audit_dir();
        let f = crate::audit::AuditFilter {
            since: filter.since,
            rule: filter.rule,
            target: filter.target,
            event: filter.event.map(|e| vec![e]),
            limit: Some(filter.limit),
            ..Default::default()
        };
        tokio::task::spawn_blocking(move || crate::audit::query(&dir, &f))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "audit query task failed");
                "reading the audit log failed (the agent's log has the details)".to_string()
            })?
            .map(|events| json!(events))
            .map_err(|e| e.to_string())
    }

    async fn reload(&self) -> Result<String, String> {
        self.0.reload("api").await
    }

    async fn set_paused(&self, paused: bool, actor: &str) -> Result<Value, String> {
        let now = self.0.clock.now_ms();
        let r = if paused {
            self.0.journal.pause(actor, now)
        } else {
            self.0.journal.resume(actor, now)
        };
        r.map_err(|e| e.to_string())?;
        self.0.metrics.set_paused(paused);
        Ok(json!({ "paused": paused }))
    }
}
