//! Handlers. Every JSON answer uses Prometheus's envelope:
//! `{"status":"success","data":...}` or
//! `{"status":"error","errorType":"...","error":"..."}`.
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{form, AppState, AuditFilter, ControlError, MAX_AUDIT_LIMIT};
use crate::audit::EventKind;

pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn success(data: serde_json::Value) -> Response {
    Json(json!({ "status": "success", "data": data })).into_response()
}

pub(crate) fn error_response(status: StatusCode, error_type: &str, error: &str) -> Response {
    (
        status,
        Json(json!({ "status": "error", "errorType": error_type, "error": error })),
    )
        .into_response()
}

fn bad_data(msg: impl std::fmt::Display) -> Response {
    error_response(StatusCode::BAD_REQUEST, "bad_data", &msg.to_string())
}

/// The answer when something failed inside the agent: never the failure's
/// own text (a panic message may hold anything).
pub(crate) fn internal_error() -> Response {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error (the agent's log has the details)",
    )
}

/// Which bodies a POST endpoint takes besides a form.
#[derive(Clone, Copy, PartialEq)]
enum Body {
    /// `/api/v1/query`: forms only, as Prometheus.
    Form,
    /// Mutating endpoints: a form or a JSON object of strings
    /// (`{"actor": "alice"}`), since loopback callers must send JSON.
    FormOrJson,
}

/// Parameters from the query string and, for a POST, the body (body first,
/// as Go's `FormValue` does).
#[allow(clippy::result_large_err)] // the Err is the response itself; a cold path
fn params(
    method: &Method,
    headers: &HeaderMap,
    raw: Option<&str>,
    body: &[u8],
    accepts: Body,
) -> Result<Vec<(String, String)>, Response> {
    let mut out = Vec::new();
    if *method == Method::POST && !body.is_empty() {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ct.starts_with("application/x-www-form-urlencoded") {
            out.extend(form::parse(body).map_err(bad_data)?);
        } else if accepts == Body::FormOrJson && ct.starts_with("application/json") {
            out.extend(json_params(body).map_err(bad_data)?);
        } else {
            return Err(error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_data",
                match accepts {
                    Body::Form => "POST body must be application/x-www-form-urlencoded",
                    Body::FormOrJson => {
                        "POST body must be application/json or application/x-www-form-urlencoded"
                    }
                },
            ));
        }
    }
    if let Some(q) = raw {
        out.extend(form::parse(q.as_bytes()).map_err(bad_data)?);
    }
    Ok(out)
}

/// `{"actor": "alice", "comment": "..."}` → pairs; values must be strings.
fn json_params(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("malformed JSON body: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("the JSON body must be an object".into());
    };
    obj.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(format!("JSON body: {k:?} must be a string")),
        })
        .collect()
}

fn param<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub(crate) async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    {
        let store = st.store.read().unwrap_or_else(|p| p.into_inner());
        st.metrics
            .set_store_size(store.series_count(), store.sample_count());
    }
    // Content negotiation as Prometheus client libraries do: OpenMetrics for
    // scrapers that ask for it, text 0.0.4 for everyone else (curl, promtool).
    let wants_om = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (body, ct) = if wants_om {
        (st.metrics.encode(), OPENMETRICS_CONTENT_TYPE)
    } else {
        (st.metrics.encode_text004(), TEXT_CONTENT_TYPE)
    };
    ([(header::CONTENT_TYPE, HeaderValue::from_static(ct))], body).into_response()
}

pub(crate) async fn healthy() -> &'static str {
    "homeostat is Healthy.\n"
}

pub(crate) async fn ready(State(st): State<AppState>) -> Response {
    if st.control.ready() {
        (StatusCode::OK, "homeostat is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

/// The on-call page: one static HTML page that reads the JSON API.
pub(crate) async fn oncall_page() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("oncall.html"),
    )
        .into_response()
}

pub(crate) async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

pub(crate) async fn reload(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(resp) = st.policy.check(&headers) {
        return resp;
    }
    let control = st.control.clone();
    // Spawned: a client that disconnects or times out must not cancel a reload halfway.
    match tokio::spawn(async move { control.reload().await }).await {
        Ok(Ok(msg)) => {
            tracing::info!(%msg, "reload via HTTP API");
            (StatusCode::OK, format!("{msg}\n")).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reload via HTTP API rejected; previous rules keep running");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to reload config: {e}\n"),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "reload task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "reload task failed\n").into_response()
        }
    }
}

pub(crate) async fn query(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    // From here on, a client hanging up or the request timeout (both drop this
    // future) cancels the evaluation.
    let cancel = crate::query::CancelFlag::new();
    let _cancel_on_drop = cancel.on_drop();
    let limits = st.query_limits.start().with_cancel(cancel);
    let p = match params(&method, &headers, raw.as_deref(), &body, Body::Form) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(text) = param(&p, "query").filter(|q| !q.trim().is_empty()) else {
        return bad_data("invalid parameter \"query\": missing query expression");
    };
    let at = match param(&p, "time") {
        None | Some("") => st.clock.now_ms(),
        Some(t) => match crate::clock::parse_time(t) {
            Some(t) => t,
            None => {
                return bad_data(format!(
                    "invalid parameter \"time\": cannot parse {t:?} to a valid timestamp (RFC 3339 or Unix seconds, years 0001 to 9999)"
                ))
            }
        },
    };
    let q = match crate::query::compile(text) {
        Ok(q) => q,
        Err(e) => return bad_data(format!("invalid parameter \"query\": {e}")),
    };
    // API queries run on their own bounded pool: at most max_concurrency on
    // blocking threads, never on the async workers that serve health checks,
    // scrapes and rules. Waiting for a slot counts against the timeout.
    let max = st.query_limits.max_concurrency;
    let waited = tokio::time::timeout(
        st.query_limits.timeout,
        st.query_slots.clone().acquire_owned(),
    )
    .await;
    let Ok(Ok(slot)) = waited else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &format!(
                "too many queries at once: at most {max} run concurrently (query.max_concurrency) and none finished within query.timeout"
            ),
        );
    };
    let store = st.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        // Held until the evaluation really ends, even if the client is gone.
        let _slot = slot;
        // The store is locked per selector, so scrapes and rules wait for
        // at most one selection, however long the query runs.
        q.eval_shared(&store, at, &limits)
            .map(|v| crate::query::api_json(&v, at))
    })
    .await;
    use crate::query::EvalError;
    match result {
        Ok(Ok(data)) => success(data),
        Ok(Err(e @ (EvalError::Timeout { .. } | EvalError::Cancelled))) => {
            error_response(StatusCode::SERVICE_UNAVAILABLE, "timeout", &e.to_string())
        }
        Ok(Err(e)) => error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "execution",
            &e.to_string(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "query evaluation failed");
            internal_error()
        }
    }
}

/// `data` as the API shows it: configured secret values, secret-looking keys
/// (a redeploy's `SMTP_PASS`) and credentials in text (an upstream's error
/// body echoing `Authorization: Bearer …`) masked.
fn shown(st: &AppState, mut data: serde_json::Value) -> Response {
    st.secrets.mask_json(&mut data);
    success(data)
}

pub(crate) async fn rules(State(st): State<AppState>) -> Response {
    shown(&st, st.control.rules())
}

pub(crate) async fn targets(State(st): State<AppState>) -> Response {
    shown(&st, st.control.targets())
}

fn audit_filter(p: &[(String, String)], now: i64) -> Result<AuditFilter, String> {
    let mut f = AuditFilter {
        limit: 100,
        ..AuditFilter::default()
    };
    if let Some(s) = param(p, "since").filter(|s| !s.is_empty()) {
        // An absolute time (RFC 3339 or Unix seconds) or a duration back from now ("1h").
        let t = crate::clock::parse_time(s).or_else(|| {
            let d = crate::spec::parse_duration(s).ok()?;
            now.checked_sub(i64::try_from(d.as_millis()).ok()?)
                .filter(|t| *t >= crate::clock::MIN_TIME_MS)
        });
        f.since = Some(t.ok_or_else(|| {
            format!("invalid parameter \"since\": {s:?} is neither a time (years 0001 to 9999) nor a duration back from now")
        })?);
    }
    f.rule = param(p, "rule")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    f.target = param(p, "target")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(e) = param(p, "event").filter(|s| !s.is_empty()) {
        let ev: EventKind = serde_json::from_value(json!(e))
            .map_err(|_| format!("invalid parameter \"event\": unknown event {e:?}"))?;
        f.event = Some(ev);
    }
    if let Some(l) = param(p, "limit").filter(|s| !s.is_empty()) {
        let n: usize = l.parse().map_err(|_| {
            format!("invalid parameter \"limit\": {l:?} is not a non-negative integer")
        })?;
        if n == 0 || n > MAX_AUDIT_LIMIT {
            return Err(format!(
                "invalid parameter \"limit\": must be between 1 and {MAX_AUDIT_LIMIT}"
            ));
        }
        f.limit = n;
    }
    Ok(f)
}

pub(crate) async fn audit(State(st): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let p = match params(
        &Method::GET,
        &HeaderMap::new(),
        raw.as_deref(),
        &[],
        Body::Form,
    ) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let f = match audit_filter(&p, st.clock.now_ms()) {
        Ok(f) => f,
        Err(e) => return bad_data(e),
    };
    match st.control.audit(f).await {
        Ok(data) => shown(&st, data),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &st.secrets.mask_text(&e),
        ),
    }
}

/// `api` or `api:<name>` from an optional `actor` parameter, kept short and printable
/// because it lands in the audit log.
fn actor(p: &[(String, String)]) -> String {
    match param(p, "actor") {
        Some(a) if !a.trim().is_empty() => {
            let clean: String = a.chars().filter(|c| !c.is_control()).take(64).collect();
            format!("api:{}", clean.trim())
        }
        _ => "api".to_string(),
    }
}

async fn set_paused(
    st: AppState,
    method: Method,
    headers: HeaderMap,
    raw: Option<String>,
    body: Bytes,
    paused: bool,
) -> Response {
    if let Err(resp) = st.policy.check(&headers) {
        return resp;
    }
    let p = match params(&method, &headers, raw.as_deref(), &body, Body::FormOrJson) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let who = actor(&p);
    let control = st.control.clone();
    let who2 = who.clone();
    // Spawned: the audit write behind it must complete even if the client goes away.
    match tokio::spawn(async move { control.set_paused(paused, &who2).await }).await {
        Ok(Ok(data)) => {
            tracing::info!(actor = %who, paused, "pause state changed via HTTP API");
            success(data)
        }
        Ok(Err(e)) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e),
        Err(e) => {
            tracing::error!(error = %e, "pause task failed");
            internal_error()
        }
    }
}

pub(crate) async fn pause(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    set_paused(st, method, headers, raw, body, true).await
}

pub(crate) async fn resume(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    set_paused(st, method, headers, raw, body, false).await
}

pub(crate) async fn approvals(State(st): State<AppState>) -> Response {
    shown(&st, st.control.approvals())
}

async fn decide(
    st: AppState,
    id: String,
    method: Method,
    headers: HeaderMap,
    raw: Option<String>,
    body: Bytes,
    approve: bool,
) -> Response {
    if let Err(resp) = st.policy.check(&headers) {
        return resp;
    }
    let p = match params(&method, &headers, raw.as_deref(), &body, Body::FormOrJson) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let who = actor(&p);
    let control = st.control.clone();
    let who2 = who.clone();
    let id2 = id.clone();
    // Spawned for the same reason as pause: the audit write must complete.
    match tokio::spawn(async move { control.decide_approval(&id2, approve, &who2).await }).await {
        Ok(Ok(data)) => {
            tracing::info!(actor = %who, %id, approve, "approval decided via HTTP API");
            success(data)
        }
        Ok(Err(ControlError::NotFound(e))) => {
            error_response(StatusCode::NOT_FOUND, "not_found", &e)
        }
        Ok(Err(ControlError::Conflict(e))) => error_response(StatusCode::CONFLICT, "conflict", &e),
        Ok(Err(ControlError::Internal(e))) => {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e)
        }
        Err(e) => {
            tracing::error!(error = %e, "approval task failed");
            internal_error()
        }
    }
}

pub(crate) async fn approve(
    State(st): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    decide(st, id, method, headers, raw, body, true).await
}

pub(crate) async fn reject(
    State(st): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    decide(st, id, method, headers, raw, body, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn audit_filter_parsing() {
        let now = 1_700_000_000_000;
        let f = audit_filter(
            &p(&[
                ("since", "1h"),
                ("rule", "r"),
                ("event", "action_started"),
                ("limit", "5"),
            ]),
            now,
        )
        .expect("filter");
        assert_eq!(f.since, Some(now - 3_600_000));
        assert_eq!(f.rule.as_deref(), Some("r"));
        assert_eq!(f.event, Some(EventKind::ActionStarted));
        assert_eq!(f.limit, 5);
        let f = audit_filter(&p(&[("since", "1700000000")]), now).expect("filter");
        assert_eq!(f.since, Some(1_700_000_000_000));
        assert_eq!(f.limit, 100);
        assert!(audit_filter(&p(&[("event", "nope")]), now).is_err());
        assert!(audit_filter(&p(&[("limit", "0")]), now).is_err());
        assert!(audit_filter(&p(&[("limit", "-1")]), now).is_err());
        assert!(audit_filter(&p(&[("since", "yesterday")]), now).is_err());
    }

    #[test]
    fn actor_is_sanitised() {
        assert_eq!(actor(&p(&[])), "api");
        assert_eq!(actor(&p(&[("actor", "alice")])), "api:alice");
        assert_eq!(actor(&p(&[("actor", "bob\n\u{7}")])), "api:bob");
        assert_eq!(actor(&p(&[("actor", &"x".repeat(200))])).len(), 4 + 64);
    }
}
