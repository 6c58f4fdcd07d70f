//! The summary table of `homeostat audit --summary` and of the demo's end:
//! one row per action id, what it changed, its outcome, then a count of
//! outcomes. Must not print or read: it returns the table as text.
use std::collections::HashMap;

use serde_json::Value;

use super::change::{describe_change, ChangeFacts};
use super::event::{AuditEvent, EventKind};
use super::render::{circuit_of, describe_op, op_of, rolled_back_of};
use super::words::{fmt_duration, short_value, truncate, MAX_CHANGE, MAX_ERROR};
use crate::model::Mode;

/// One row of the summary table: everything known about one action id.
#[derive(Debug, Default)]
struct Row<'a> {
    ts: &'a str,
    rule: Option<&'a str>,
    kind: Option<&'a str>,
    target: Option<&'a str>,
    instance: Option<&'a str>,
    /// Provider state before (first known) and after (last known).
    before: Option<&'a Value>,
    after: Option<&'a Value>,
    circuit: Option<(&'a str, &'a str)>,
    /// The op a decision or start recorded, for actions with no outcome yet.
    op: Option<&'a Value>,
    rolled_back: Option<&'a str>,
    /// An `action_succeeded`/`action_failed`/`action_reconciled` was seen.
    settled: bool,
    failed: bool,
    outcome: String,
    approved_by: Option<&'a str>,
    duration_ms: Option<u64>,
}

impl Row<'_> {
    /// The CHANGE cell. An action that has not run (dry run, awaiting
    /// approval, in progress) shows what it would do, marked `(planned)`; a
    /// failed circuit action did not change the circuit.
    fn change(&self) -> String {
        let circuit = self.circuit.filter(|_| !self.failed);
        if !self.settled && self.before.is_none() && self.after.is_none() {
            let planned = circuit.map(|(a, b)| format!("{a}→{b}")).or_else(|| {
                self.op
                    .map(|op| match op.get("op").and_then(Value::as_str) {
                        Some("set_replicas") => format!(
                            "replicas {}→{}",
                            op.get("from").map_or("?".into(), short_value),
                            op.get("to").map_or("?".into(), short_value)
                        ),
                        _ => describe_op(op, self.instance),
                    })
            });
            return planned.map_or_else(
                || "-".into(),
                |p| truncate(&format!("{p} (planned)"), MAX_CHANGE),
            );
        }
        describe_change(&ChangeFacts {
            instance: self.instance,
            before: self.before,
            after: self.after,
            circuit,
            rolled_back: self.rolled_back,
        })
        .unwrap_or_else(|| "-".into())
    }
}

fn outcome_of(ev: &AuditEvent) -> Option<String> {
    let s = match ev.event? {
        EventKind::ActionSucceeded => "succeeded".to_string(),
        // The CHANGE column says what it was rolled back to.
        EventKind::ActionFailed if rolled_back_of(ev).is_some() => "failed".into(),
        EventKind::ActionFailed => match &ev.error {
            Some(e) => format!("failed: {}", truncate(e, MAX_ERROR)),
            None => "failed".into(),
        },
        EventKind::ActionReconciled => {
            match ev
                .detail
                .as_ref()
                .and_then(|d| d.get("result"))
                .and_then(Value::as_str)
            {
                Some(r) => format!("reconciled: {r}"),
                None => "reconciled".into(),
            }
        }
        EventKind::ActionStarted => "in progress".into(),
        EventKind::Suppressed => format!("suppressed: {}", ev.cause.as_deref().unwrap_or("?")),
        EventKind::ApprovalRequested => "awaiting approval".into(),
        EventKind::Approved => "approved".into(),
        EventKind::Rejected => "rejected".into(),
        EventKind::ApprovalExpired => "approval expired".into(),
        EventKind::Decision if ev.mode == Some(Mode::DryRun) => "dry run".into(),
        EventKind::Decision => "decided".into(),
        _ => return None,
    };
    Some(s)
}

/// Widest cell of each column (TIME, KIND and DURATION are short by nature);
/// longer cells end in `…` so a row stays on one terminal line.
const MAX_WIDTHS: [usize; 8] = [19, 24, 13, 16, 21, MAX_CHANGE, 40, 8];

/// A table of actions, one row per `action_id` in order of first appearance:
/// time, rule, kind, target, instance, what changed, outcome, duration; then a
/// count of outcomes. Events without an `action_id` are not actions.
///
/// CHANGE is one short phrase (see `describe_change`): `replicas 1→2
/// (+18101)`, `replaced (pid 28465→28474)`, `closed→open, in traffic yes→no`,
/// `rolled back to v1`, … so the table stays narrow (about 140 columns).
pub fn summary_table(events: &[AuditEvent]) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut rows: HashMap<&str, Row> = HashMap::new();
    for ev in events {
        let Some(id) = ev.action_id.as_deref() else {
            continue;
        };
        let row = rows.entry(id).or_insert_with(|| {
            order.push(id);
            Row {
                ts: &ev.ts,
                ..Row::default()
            }
        });
        row.rule = row.rule.or(ev.rule.as_deref());
        row.kind = row.kind.or(ev.kind.map(|k| k.as_str()));
        row.target = row.target.or(ev.target.as_deref());
        row.instance = row.instance.or(ev.instance.as_deref());
        if ev.event == Some(EventKind::CircuitChanged) {
            // Its before/after are the circuit's states, not the provider's.
            row.circuit = circuit_of(ev).or(row.circuit);
        } else {
            row.before = row.before.or(ev.before.as_ref());
            // The outcome's `after` is what really happened; later wins.
            row.after = ev.after.as_ref().or(row.after);
            row.circuit = row.circuit.or(circuit_of(ev));
        }
        row.op = row.op.or(op_of(ev.detail.as_ref()));
        row.rolled_back = rolled_back_of(ev).or(row.rolled_back);
        match ev.event {
            Some(EventKind::ActionSucceeded | EventKind::ActionReconciled) => {
                row.settled = true;
                row.failed = false;
            }
            Some(EventKind::ActionFailed) => {
                row.settled = true;
                row.failed = true;
            }
            _ => {}
        }
        row.approved_by = ev.approved_by.as_deref().or(row.approved_by);
        row.duration_ms = ev.duration_ms.or(row.duration_ms);
        if let Some(o) = outcome_of(ev) {
            row.outcome = o;
        }
    }

    let header = [
        "TIME", "RULE", "KIND", "TARGET", "INSTANCE", "CHANGE", "OUTCOME", "DURATION",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(String::from)];
    let mut counts: Vec<(String, usize)> = Vec::new();
    for id in &order {
        let Some(r) = rows.get(id) else { continue };
        let mut outcome = r.outcome.clone();
        if let Some(by) = r.approved_by {
            outcome.push_str(&format!(" (approved by {by})"));
        }
        let bucket = r.outcome.split(':').next().unwrap_or("").to_string();
        match counts.iter_mut().find(|(k, _)| *k == bucket) {
            Some((_, n)) => *n += 1,
            None => counts.push((bucket, 1)),
        }
        // `2026-11-23T04:10:02.123Z` → `2026-11-23 04:10:02`
        let time = r.ts.get(..19).unwrap_or(r.ts).replacen('T', " ", 1);
        let cells = [
            time,
            r.rule.unwrap_or("-").to_string(),
            r.kind.unwrap_or("-").to_string(),
            r.target.unwrap_or("-").to_string(),
            r.instance.unwrap_or("-").to_string(),
            r.change(),
            outcome,
            r.duration_ms.map_or("-".into(), fmt_duration),
        ];
        let mut row = cells.clone();
        for ((cell, full), max) in row.iter_mut().zip(cells).zip(MAX_WIDTHS) {
            *cell = truncate(&full, max);
        }
        table.push(row);
    }
    let mut widths = [0usize; 8];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &table {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let total = order.len();
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    out.push_str(&format!(
        "{total} action{}{}{}\n",
        if total == 1 { "" } else { "s" },
        if summary.is_empty() { "" } else { ": " },
        summary.join(", ")
    ));
    out
}

#[cfg(test)]
mod tests {
    //! The rendering of real events: those below are what `homeostat demo`
    //! wrote (hashes, reasons and repeated fields left out), plus the shapes
    //! of other providers and of actions that did not run.
    use super::*;
    use crate::audit::change::{describe_change, ChangeFacts};
    use crate::audit::render::format_event;
    use crate::audit::words::MAX_CHANGE;
    use crate::model::ActionKind;
    use serde_json::json;

    /// One `homeostat demo` run: scale-out, failover of a killed replica, a
    /// circuit that opens, half-opens, re-opens, half-opens and closes, a
    /// redeploy of a bad version that rolls back, and a scale-in.
    const DEMO_LOG: &str = r#"{"seq":2,"ts":"2026-11-23T04:26:01.512Z","event":"decision","action_id":"1a206a75da8-5684c84446779d4c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"op":{"from":1,"op":"set_replicas","to":2},"verdict":"act"}}
{"seq":3,"ts":"2026-11-23T04:26:01.514Z","event":"action_started","action_id":"1a206a75da8-5684c84446779d4c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"direction":"up","origin":"rule","request":{"action_id":"1a206a75da8-5684c84446779d4c","kind":"scale_out","op":{"from":1,"op":"set_replicas","to":2},"rule":"demo-latency-scale-out","target":"demo"},"timeout_ms":60000}}
{"seq":4,"ts":"2026-11-23T04:26:01.650Z","event":"action_succeeded","action_id":"1a206a75da8-5684c84446779d4c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","before":{"instances":[{"id":"18100","in_traffic":true,"pid":1045,"version":"v1"}],"replicas":1,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":1045,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"}],"replicas":2,"version":"v1"},"duration_ms":136,"detail":{"attempts":1,"direction":"up","op":{"from":1,"op":"set_replicas","to":2},"origin":"rule"}}
{"seq":7,"ts":"2026-11-23T04:26:09.512Z","event":"decision","action_id":"1a206a77ce8-2bef8d561d4a37bb","rule":"demo-replica-down","target":"demo","instance":"127.0.0.1:18100","kind":"failover","detail":{"op":{"instance":"127.0.0.1:18100","op":"replace"},"verdict":"act"}}
{"seq":8,"ts":"2026-11-23T04:26:09.518Z","event":"action_started","action_id":"1a206a77ce8-2bef8d561d4a37bb","rule":"demo-replica-down","target":"demo","instance":"127.0.0.1:18100","kind":"failover","detail":{"origin":"rule","request":{"action_id":"1a206a77ce8-2bef8d561d4a37bb","kind":"failover","op":{"instance":"127.0.0.1:18100","op":"replace"},"rule":"demo-replica-down","target":"demo"},"timeout_ms":60000}}
{"seq":9,"ts":"2026-11-23T04:26:09.647Z","event":"action_succeeded","action_id":"1a206a77ce8-2bef8d561d4a37bb","rule":"demo-replica-down","target":"demo","instance":"127.0.0.1:18100","kind":"failover","before":{"instances":[{"id":"18100","in_traffic":true,"pid":1045,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"}],"replicas":2,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"}],"replicas":2,"version":"v1"},"duration_ms":129,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"replace"},"origin":"rule"}}
{"seq":10,"ts":"2026-11-23T04:26:17.511Z","event":"decision","action_id":"1a206a79c27-f0c756460392428c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"op":{"from":2,"op":"set_replicas","to":3},"verdict":"act"}}
{"seq":11,"ts":"2026-11-23T04:26:17.514Z","event":"action_started","action_id":"1a206a79c27-f0c756460392428c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"direction":"up","origin":"rule","request":{"action_id":"1a206a79c27-f0c756460392428c","kind":"scale_out","op":{"from":2,"op":"set_replicas","to":3},"rule":"demo-latency-scale-out","target":"demo"},"timeout_ms":60000}}
{"seq":12,"ts":"2026-11-23T04:26:17.534Z","event":"action_succeeded","action_id":"1a206a79c27-f0c756460392428c","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"}],"replicas":2,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"}],"replicas":3,"version":"v1"},"duration_ms":20,"detail":{"attempts":1,"direction":"up","op":{"from":2,"op":"set_replicas","to":3},"origin":"rule"}}
{"seq":15,"ts":"2026-11-23T04:26:31.511Z","event":"decision","action_id":"1a206a7d2d7-38416b5b34bab4af","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"op":{"instance":"127.0.0.1:18100","op":"circuit_open"},"verdict":"act"}}
{"seq":16,"ts":"2026-11-23T04:26:31.515Z","event":"action_started","action_id":"1a206a7d2d7-38416b5b34bab4af","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"circuit":{"from":"closed","open_for_ms":15000,"to":"open"},"origin":"rule","request":{"action_id":"1a206a7d2d7-38416b5b34bab4af","kind":"circuit_break","op":{"instance":"127.0.0.1:18100","op":"circuit_open"},"rule":"demo-replica-errors","target":"demo"},"timeout_ms":60000}}
{"seq":17,"ts":"2026-11-23T04:26:31.527Z","event":"action_succeeded","action_id":"1a206a7d2d7-38416b5b34bab4af","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"}],"replicas":3,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"}],"replicas":3,"version":"v1"},"duration_ms":12,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"circuit_open"},"origin":"rule"}}
{"seq":18,"ts":"2026-11-23T04:26:31.527Z","event":"circuit_changed","action_id":"1a206a7d2d7-38416b5b34bab4af","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":"closed","after":"open","detail":{"from":"closed","open_for_ms":15000,"to":"open"}}
{"seq":19,"ts":"2026-11-23T04:26:33.513Z","event":"decision","action_id":"1a206a7daa9-de50b02a349d822f","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"op":{"from":3,"op":"set_replicas","to":4},"verdict":"act"}}
{"seq":20,"ts":"2026-11-23T04:26:33.516Z","event":"action_started","action_id":"1a206a7daa9-de50b02a349d822f","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","detail":{"direction":"up","origin":"rule","request":{"action_id":"1a206a7daa9-de50b02a349d822f","kind":"scale_out","op":{"from":3,"op":"set_replicas","to":4},"rule":"demo-latency-scale-out","target":"demo"},"timeout_ms":60000}}
{"seq":23,"ts":"2026-11-23T04:26:33.643Z","event":"action_succeeded","action_id":"1a206a7daa9-de50b02a349d822f","rule":"demo-latency-scale-out","target":"demo","kind":"scale_out","before":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"}],"replicas":3,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":127,"detail":{"attempts":1,"direction":"up","op":{"from":3,"op":"set_replicas","to":4},"origin":"rule"}}
{"seq":24,"ts":"2026-11-23T04:26:47.514Z","event":"action_started","action_id":"1a206a8115a-d45417537c6de31d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"circuit":{"from":"open","open_for_ms":15000,"to":"half_open"},"origin":"circuit","request":{"action_id":"1a206a8115a-d45417537c6de31d","kind":"circuit_break","op":{"instance":"127.0.0.1:18100","op":"circuit_half_open"},"rule":"demo-replica-errors","target":"demo"},"timeout_ms":60000}}
{"seq":25,"ts":"2026-11-23T04:26:47.542Z","event":"action_succeeded","action_id":"1a206a8115a-d45417537c6de31d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":28,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"circuit_half_open"},"origin":"circuit"}}
{"seq":26,"ts":"2026-11-23T04:26:47.542Z","event":"circuit_changed","action_id":"1a206a8115a-d45417537c6de31d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":"open","after":"half_open","detail":{"from":"open","open_for_ms":15000,"to":"half_open"}}
{"seq":27,"ts":"2026-11-23T04:26:49.514Z","event":"action_started","action_id":"1a206a8192a-9cd7a322c8f4cafa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"circuit":{"from":"half_open","open_for_ms":30000,"to":"open"},"origin":"circuit","request":{"action_id":"1a206a8192a-9cd7a322c8f4cafa","kind":"circuit_break","op":{"instance":"127.0.0.1:18100","op":"circuit_open"},"rule":"demo-replica-errors","target":"demo"},"timeout_ms":60000}}
{"seq":28,"ts":"2026-11-23T04:26:49.541Z","event":"action_succeeded","action_id":"1a206a8192a-9cd7a322c8f4cafa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":27,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"circuit_open"},"origin":"circuit"}}
{"seq":29,"ts":"2026-11-23T04:26:49.541Z","event":"circuit_changed","action_id":"1a206a8192a-9cd7a322c8f4cafa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":"half_open","after":"open","detail":{"from":"half_open","open_for_ms":30000,"to":"open"}}
{"seq":30,"ts":"2026-11-23T04:27:20.513Z","event":"action_started","action_id":"1a206a89241-f04f514d3074969d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"circuit":{"from":"open","open_for_ms":30000,"to":"half_open"},"origin":"circuit","request":{"action_id":"1a206a89241-f04f514d3074969d","kind":"circuit_break","op":{"instance":"127.0.0.1:18100","op":"circuit_half_open"},"rule":"demo-replica-errors","target":"demo"},"timeout_ms":60000}}
{"seq":31,"ts":"2026-11-23T04:27:20.526Z","event":"action_succeeded","action_id":"1a206a89241-f04f514d3074969d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":{"instances":[{"id":"18100","in_traffic":false,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":13,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"circuit_half_open"},"origin":"circuit"}}
{"seq":32,"ts":"2026-11-23T04:27:20.526Z","event":"circuit_changed","action_id":"1a206a89241-f04f514d3074969d","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":"open","after":"half_open","detail":{"from":"open","open_for_ms":30000,"to":"half_open"}}
{"seq":33,"ts":"2026-11-23T04:27:22.511Z","event":"action_started","action_id":"1a206a89a0f-549aa0711deec2aa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","detail":{"circuit":{"from":"half_open","open_for_ms":0,"to":"closed"},"origin":"circuit","request":{"action_id":"1a206a89a0f-549aa0711deec2aa","kind":"circuit_break","op":{"instance":"127.0.0.1:18100","op":"circuit_close"},"rule":"demo-replica-errors","target":"demo"},"timeout_ms":60000}}
{"seq":34,"ts":"2026-11-23T04:27:22.515Z","event":"action_succeeded","action_id":"1a206a89a0f-549aa0711deec2aa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":4,"detail":{"attempts":1,"op":{"instance":"127.0.0.1:18100","op":"circuit_close"},"origin":"circuit"}}
{"seq":35,"ts":"2026-11-23T04:27:22.515Z","event":"circuit_changed","action_id":"1a206a89a0f-549aa0711deec2aa","rule":"demo-replica-errors","target":"demo","instance":"127.0.0.1:18100","kind":"circuit_break","before":"half_open","after":"closed","detail":{"from":"half_open","open_for_ms":0,"to":"closed"}}
{"seq":36,"ts":"2026-11-23T04:27:22.885Z","event":"decision","action_id":"1a206a89b85-a04080c45e54ab19","rule":"manual:demo","target":"demo","kind":"redeploy","detail":{"op":{"command":null,"op":"redeploy","version":"v2-bad"},"verdict":"act"}}
{"seq":37,"ts":"2026-11-23T04:27:22.886Z","event":"action_started","action_id":"1a206a89b85-a04080c45e54ab19","rule":"manual:demo","target":"demo","kind":"redeploy","detail":{"origin":"rule","request":{"action_id":"1a206a89b85-a04080c45e54ab19","kind":"redeploy","op":{"command":null,"op":"redeploy","version":"v2-bad"},"rule":"manual:demo","target":"demo"},"timeout_ms":600000}}
{"seq":38,"ts":"2026-11-23T04:27:30.916Z","event":"action_failed","action_id":"1a206a89b85-a04080c45e54ab19","rule":"manual:demo","target":"demo","kind":"redeploy","cause":"rolled_back","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"duration_ms":8030,"error":"rolled back: new replica of version v2-bad failed: process: timed out after 8000 ms; rolled back to v1","detail":{"attempts":1,"op":{"command":null,"op":"redeploy","version":"v2-bad"},"origin":"rule","rolled_back":"new replica of version v2-bad failed: process: timed out after 8000 ms; rolled back to v1"}}
{"seq":39,"ts":"2026-11-23T04:28:11.512Z","event":"decision","action_id":"1a206a95978-8a265695d6aa0f11","rule":"demo-scale-in","target":"demo","kind":"scale_in","detail":{"op":{"from":4,"op":"set_replicas","to":3},"verdict":"act"}}
{"seq":40,"ts":"2026-11-23T04:28:11.514Z","event":"action_started","action_id":"1a206a95978-8a265695d6aa0f11","rule":"demo-scale-in","target":"demo","kind":"scale_in","detail":{"direction":"down","origin":"rule","request":{"action_id":"1a206a95978-8a265695d6aa0f11","kind":"scale_in","op":{"from":4,"op":"set_replicas","to":3},"rule":"demo-scale-in","target":"demo"},"timeout_ms":60000}}
{"seq":41,"ts":"2026-11-23T04:28:11.524Z","event":"action_succeeded","action_id":"1a206a95978-8a265695d6aa0f11","rule":"demo-scale-in","target":"demo","kind":"scale_in","before":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"},{"id":"18103","in_traffic":true,"pid":3453,"version":"v1"}],"replicas":4,"version":"v1"},"after":{"instances":[{"id":"18100","in_traffic":true,"pid":2459,"version":"v1"},{"id":"18101","in_traffic":true,"pid":1917,"version":"v1"},{"id":"18102","in_traffic":true,"pid":2844,"version":"v1"}],"replicas":3,"version":"v1"},"duration_ms":10,"detail":{"attempts":1,"direction":"down","op":{"from":4,"op":"set_replicas","to":3},"origin":"rule"}}
"#;

    fn demo_events() -> Vec<AuditEvent> {
        DEMO_LOG
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The table the demo ends with, in full: one phrase per change, aligned.
    #[test]
    fn demo_summary_table() {
        let table = summary_table(&demo_events());
        let want = "\
TIME                 RULE                    KIND           TARGET  INSTANCE         CHANGE                             OUTCOME    DURATION
2026-11-23 04:26:01  demo-latency-scale-out  scale_out      demo    -                replicas 1→2 (+18101)              succeeded  136 ms
2026-11-23 04:26:09  demo-replica-down       failover       demo    127.0.0.1:18100  replaced (pid 1045→2459)           succeeded  129 ms
2026-11-23 04:26:17  demo-latency-scale-out  scale_out      demo    -                replicas 2→3 (+18102)              succeeded  20 ms
2026-11-23 04:26:31  demo-replica-errors     circuit_break  demo    127.0.0.1:18100  closed→open, in traffic yes→no     succeeded  12 ms
2026-11-23 04:26:33  demo-latency-scale-out  scale_out      demo    -                replicas 3→4 (+18103)              succeeded  127 ms
2026-11-23 04:26:47  demo-replica-errors     circuit_break  demo    127.0.0.1:18100  open→half_open, in traffic no→yes  succeeded  28 ms
2026-11-23 04:26:49  demo-replica-errors     circuit_break  demo    127.0.0.1:18100  half_open→open, in traffic yes→no  succeeded  27 ms
2026-11-23 04:27:20  demo-replica-errors     circuit_break  demo    127.0.0.1:18100  open→half_open, in traffic no→yes  succeeded  13 ms
2026-11-23 04:27:22  demo-replica-errors     circuit_break  demo    127.0.0.1:18100  half_open→closed                   succeeded  4 ms
2026-11-23 04:27:22  manual:demo             redeploy       demo    -                rolled back to v1                  failed     8.03s
2026-11-23 04:28:11  demo-scale-in           scale_in       demo    -                replicas 4→3 (-18103)              succeeded  10 ms
11 actions: 10 succeeded, 1 failed
";
        assert_eq!(table, want, "\n{table}");
    }

    #[test]
    fn demo_table_is_narrow_and_aligned() {
        let table = summary_table(&demo_events());
        let lines: Vec<&str> = table.lines().collect();
        let width = |l: &str| l.chars().count();
        assert!(lines.iter().all(|l| width(l) <= 140), "{table}");
        // Every column starts at the header's offset on every row.
        let header = lines[0];
        for name in ["RULE", "KIND", "INSTANCE", "CHANGE", "OUTCOME", "DURATION"] {
            let at = header.find(name).unwrap();
            let col = header[..at].chars().count();
            for l in &lines[1..lines.len() - 1] {
                let before: Vec<char> = l.chars().take(col).collect();
                assert_eq!(before[col - 2..], [' ', ' '], "{name} in {l:?}");
                assert_ne!(l.chars().nth(col), Some(' '), "{name} in {l:?}");
            }
        }
        assert!(
            !table.contains('{') && !table.contains("instances"),
            "{table}"
        );
    }

    #[test]
    fn demo_lines_show_before_after_compactly() {
        let lines: Vec<String> = demo_events().iter().map(format_event).collect();
        let find = |seq: u64| {
            let i = demo_events().iter().position(|e| e.seq == seq).unwrap();
            lines[i].clone()
        };
        // No provider JSON in any line, and no line is a screen wide.
        // (The error text is printed whole: it is what on-call reads first.)
        for l in &lines {
            assert!(!l.contains("\"instances\"") && !l.contains('{'), "{l}");
            let without_error = match l.split_once("error=\"") {
                Some((head, tail)) => {
                    format!("{head}{}", tail.split_once("\"  ").map_or("", |t| t.1))
                }
                None => l.clone(),
            };
            let n = without_error.chars().count();
            assert!(n <= 200, "{n} chars: {l}");
        }
        let want = [
            (3, "2026-11-23T04:26:01.514Z  action_started      scale_out  demo  rule=demo-latency-scale-out  op=set_replicas 1→2 timeout=60s  id=1a206a75da8-5684c84446779d4c"),
            (4, "2026-11-23T04:26:01.650Z  action_succeeded    scale_out  demo  rule=demo-latency-scale-out  replicas 1→2 (+18101)  (136 ms)  id=1a206a75da8-5684c84446779d4c"),
            (9, "2026-11-23T04:26:09.647Z  action_succeeded    failover  demo  instance=127.0.0.1:18100  rule=demo-replica-down  replaced (pid 1045→2459)  (129 ms)  id=1a206a77ce8-2bef8d561d4a37bb"),
            // The start of a circuit action names the transition, its outcome
            // what the provider did to traffic, circuit_changed the transition once.
            (16, "2026-11-23T04:26:31.515Z  action_started      circuit_break  demo  instance=127.0.0.1:18100  rule=demo-replica-errors  closed→open  timeout=60s  id=1a206a7d2d7-38416b5b34bab4af"),
            (17, "2026-11-23T04:26:31.527Z  action_succeeded    circuit_break  demo  instance=127.0.0.1:18100  rule=demo-replica-errors  in traffic yes→no  (12 ms)  id=1a206a7d2d7-38416b5b34bab4af"),
            (18, "2026-11-23T04:26:31.527Z  circuit_changed     circuit_break  demo  instance=127.0.0.1:18100  rule=demo-replica-errors  closed→open  open_for=15s  id=1a206a7d2d7-38416b5b34bab4af"),
            // The agent's own transitions say so.
            (24, "2026-11-23T04:26:47.514Z  action_started      circuit_break  demo  instance=127.0.0.1:18100  rule=demo-replica-errors  open→half_open  origin=circuit timeout=60s  id=1a206a8115a-d45417537c6de31d"),
            (36, "2026-11-23T04:27:22.885Z  decision            redeploy  demo  rule=manual:demo  op=redeploy v2-bad verdict=act  id=1a206a89b85-a04080c45e54ab19"),
            // Where the rollback went, the cause, the whole error (once).
            (38, "2026-11-23T04:27:30.916Z  action_failed       redeploy  demo  rule=manual:demo  rolled back to v1  (8030 ms)  cause=rolled_back  error=\"rolled back: new replica of version v2-bad failed: process: timed out after 8000 ms; rolled back to v1\"  id=1a206a89b85-a04080c45e54ab19"),
        ];
        for (seq, line) in want {
            assert_eq!(find(seq), line, "seq {seq}");
        }
    }

    /// `instances` as the process provider reports them: (port, pid, version, in_traffic).
    fn replica_set(version: &str, instances: &[(u16, u32, &str, bool)]) -> Value {
        let list: Vec<Value> = instances
            .iter()
            .map(|(port, pid, v, t)| {
                json!({"id": port.to_string(), "in_traffic": t, "pid": pid, "version": v})
            })
            .collect();
        json!({"instances": list, "replicas": instances.len(), "version": version})
    }

    fn ev(event: EventKind, id: &str, kind: ActionKind) -> AuditEvent {
        AuditEvent {
            ts: "2026-11-23T05:00:00.000Z".into(),
            action_id: Some(id.into()),
            rule: Some("r".into()),
            target: Some("web".into()),
            kind: Some(kind),
            ..AuditEvent::new(event)
        }
    }

    /// The CHANGE and OUTCOME cells of a one-action table.
    fn cells(events: &[AuditEvent]) -> (String, String) {
        let table = summary_table(events);
        let header = table.lines().next().unwrap();
        let row = table.lines().nth(1).unwrap();
        let col = |name: &str| header[..header.find(name).unwrap()].chars().count();
        let text: Vec<char> = row.chars().collect();
        let cut = |a: usize, b: usize| {
            text[a..b.min(text.len())]
                .iter()
                .collect::<String>()
                .trim()
                .to_string()
        };
        (
            cut(col("CHANGE"), col("OUTCOME")),
            cut(col("OUTCOME"), col("DURATION")),
        )
    }

    fn change_of(before: Option<Value>, after: Option<Value>, instance: Option<&str>) -> String {
        describe_change(&ChangeFacts {
            instance,
            before: before.as_ref(),
            after: after.as_ref(),
            ..ChangeFacts::default()
        })
        .unwrap_or_else(|| "-".into())
    }

    #[test]
    fn replica_set_changes() {
        let v1 = |ports: &[(u16, u32)]| {
            let list: Vec<(u16, u32, &str, bool)> = ports
                .iter()
                .map(|(p, pid)| (*p, *pid, "v1", true))
                .collect();
            replica_set("v1", &list)
        };
        let three = v1(&[(18100, 10), (18101, 11), (18102, 12)]);
        // Scale out by more than two: the count only.
        let six = v1(&[
            (18100, 10),
            (18101, 11),
            (18102, 12),
            (18103, 13),
            (18104, 14),
            (18105, 15),
        ]);
        assert_eq!(
            change_of(Some(three.clone()), Some(six), None),
            "replicas 3→6"
        );
        // Scale in by two names both.
        let one = v1(&[(18100, 10)]);
        assert_eq!(
            change_of(Some(three.clone()), Some(one), None),
            "replicas 3→1 (-18101 -18102)"
        );
        // A successful redeploy: new version (and new ports).
        let v2 = replica_set("v2", &[(18103, 20, "v2", true), (18104, 21, "v2", true)]);
        let two = v1(&[(18100, 10), (18101, 11)]);
        assert_eq!(
            change_of(Some(two.clone()), Some(v2), None),
            "version v1→v2"
        );
        // A rolling restart of the same version: new processes.
        let restarted = v1(&[(18100, 30), (18101, 31)]);
        assert_eq!(
            change_of(Some(two.clone()), Some(restarted), None),
            "2 instances replaced"
        );
        // Nothing changed.
        assert_eq!(
            change_of(Some(two.clone()), Some(two.clone()), None),
            "no change"
        );
        // One instance: traffic, replacement, removal; the id matches host:port.
        let out = replica_set("v1", &[(18100, 10, "v1", false), (18101, 11, "v1", true)]);
        assert_eq!(
            change_of(
                Some(two.clone()),
                Some(out.clone()),
                Some("127.0.0.1:18100")
            ),
            "in traffic yes→no"
        );
        assert_eq!(
            change_of(Some(two.clone()), Some(out), Some("127.0.0.1:18101")),
            "no change"
        );
        let gone = v1(&[(18101, 11)]);
        assert_eq!(
            change_of(Some(two.clone()), Some(gone), Some("127.0.0.1:18100")),
            "removed, replicas 2→1"
        );
        // A replaced instance whose circuit was open stays out of traffic.
        let b = replica_set("v1", &[(18100, 28465, "v1", false)]);
        let a = replica_set("v1", &[(18100, 28474, "v1", false)]);
        assert_eq!(
            change_of(Some(b), Some(a), Some("18100")),
            "replaced (pid 28465→28474)"
        );
    }

    #[test]
    fn other_shapes_get_a_short_key_diff() {
        // A load balancer backend: only what changed, nested keys dotted.
        let b = json!({"backend": {"addr": "10.0.0.7:8080", "state": "UP"}, "weight": 100,
            "servers": ["a", "b"]});
        let a = json!({"backend": {"addr": "10.0.0.7:8080", "state": "MAINT"}, "weight": 0,
            "servers": ["a", "b"]});
        assert_eq!(
            change_of(Some(b), Some(a), None),
            "backend.state UP→MAINT, weight 100→0"
        );
        // Long values are cut; more than three keys are counted.
        let b = json!({"a": 1, "b": 1, "c": 1, "d": 1, "image": "registry.example.com/team/checkout:2026.11.1"});
        let a = json!({"a": 2, "b": 2, "c": 2, "d": 2, "image": "registry.example.com/team/checkout:2026.11.2"});
        assert_eq!(
            change_of(Some(b), Some(a), None),
            "a 1→2, b 1→2, c 1→2, +2 more"
        );
        let b = json!({"image": "registry.example.com/team/checkout:2026.11.1"});
        let a = json!({"image": "registry.example.com/team/checkout:2026.11.2"});
        assert_eq!(
            change_of(Some(b), Some(a), None),
            "image registry.exampl…→registry.exampl…"
        );
        // Scalars, as older logs and tests wrote them.
        assert_eq!(change_of(Some(json!(2)), Some(json!(3)), None), "2→3");
        // Webhook: nothing before, the receiver's answer after; or nothing at all.
        assert_eq!(
            change_of(
                Some(Value::Null),
                Some(json!({"status": 202, "response": "queued"})),
                None
            ),
            "response=queued, status=202"
        );
        assert_eq!(change_of(Some(Value::Null), Some(json!({})), None), "-");
        assert_eq!(change_of(None, None, None), "-");
        // The whole phrase is bounded.
        let b = json!({"note": "x".repeat(200), "other": "y".repeat(200), "third": 1});
        let a = json!({"note": "z".repeat(200), "other": "w".repeat(200), "third": 2});
        assert!(change_of(Some(b), Some(a), None).chars().count() <= MAX_CHANGE);
    }

    #[test]
    fn webhook_actions_in_the_table() {
        let mut ok = ev(EventKind::ActionSucceeded, "w1", ActionKind::ScaleOut);
        ok.provider = Some("webhook".into());
        ok.before = Some(Value::Null);
        ok.after = Some(json!({"response": "", "status": 200}));
        ok.duration_ms = Some(45);
        assert_eq!(cells(&[ok]), ("status=200".into(), "succeeded".into()));
        let mut started = ev(EventKind::ActionStarted, "w2", ActionKind::ScaleOut);
        started.detail =
            Some(json!({"request": {"op": {"op": "set_replicas", "from": 2, "to": 3}}}));
        let mut failed = ev(EventKind::ActionFailed, "w2", ActionKind::ScaleOut);
        failed.cause = Some("unavailable".into());
        failed.error = Some(
            "webhook: POST http://127.0.0.1:9000/hook returned 503 Service Unavailable".into(),
        );
        assert_eq!(
            cells(&[started, failed]),
            (
                "-".into(),
                "failed: webhook: POST http://127.0.0.1:…".into()
            )
        );
    }

    #[test]
    fn actions_that_did_not_run_show_what_they_would_do() {
        let mut dry = ev(EventKind::Decision, "d1", ActionKind::ScaleOut);
        dry.mode = Some(Mode::DryRun);
        dry.detail = Some(
            json!({"op": {"from": 2, "op": "set_replicas", "to": 4}, "verdict": "suppressed"}),
        );
        assert_eq!(
            cells(&[dry]),
            ("replicas 2→4 (planned)".into(), "dry run".into())
        );
        let mut sup = ev(EventKind::Suppressed, "d2", ActionKind::Redeploy);
        sup.cause = Some("approval".into());
        sup.detail = Some(json!({"message": "needs approval",
            "would": {"op": {"op": "redeploy", "version": "v3", "command": null}}}));
        let mut req = ev(EventKind::ApprovalRequested, "d2", ActionKind::Redeploy);
        req.detail = None;
        assert_eq!(
            cells(&[sup, req]),
            ("redeploy v3 (planned)".into(), "awaiting approval".into())
        );
        // A circuit action under way; then the same one failing: the circuit
        // did not change.
        let mut st = ev(EventKind::ActionStarted, "c1", ActionKind::CircuitBreak);
        st.instance = Some("127.0.0.1:18102".into());
        st.detail = Some(
            json!({"circuit": {"from": "closed", "open_for_ms": 30000, "to": "open"},
            "request": {"op": {"instance": "127.0.0.1:18102", "op": "circuit_open"}}}),
        );
        assert_eq!(
            cells(&[st.clone()]),
            ("closed→open (planned)".into(), "in progress".into())
        );
        let mut failed = ev(EventKind::ActionFailed, "c1", ActionKind::CircuitBreak);
        failed.error = Some("process: no replica on port 18102".into());
        assert_eq!(
            cells(&[st, failed]),
            (
                "-".into(),
                "failed: process: no replica on port 181…".into()
            )
        );
    }

    #[test]
    fn rollback_without_an_after_state_reads_the_message() {
        let mut failed = ev(EventKind::ActionFailed, "r1", ActionKind::Redeploy);
        failed.cause = Some("rolled_back".into());
        failed.error = Some(
            "rolled back: new replica of version v7 failed: process: timed out after 8000 ms; rolled back to v6".into(),
        );
        assert_eq!(
            cells(&[failed.clone()]),
            ("rolled back to v6".into(), "failed".into())
        );
        failed.error = Some("rolled back: health check failed".into());
        assert_eq!(cells(&[failed]), ("rolled back".into(), "failed".into()));
    }

    #[test]
    fn reconciled_actions_say_how() {
        let mut st = ev(EventKind::ActionStarted, "x1", ActionKind::ScaleIn);
        st.detail = Some(json!({"request": {"op": {"op": "set_replicas", "from": 3, "to": 2}}}));
        let mut rec = ev(EventKind::ActionReconciled, "x1", ActionKind::ScaleIn);
        rec.detail = Some(json!({"result": "applied"}));
        let table = summary_table(&[st, rec]);
        assert!(table.contains("reconciled: applied"), "{table}");
        assert!(table.ends_with("1 action: 1 reconciled\n"), "{table}");
    }

    #[test]
    fn long_cells_are_cut_to_keep_rows_on_one_line() {
        let mut e = ev(EventKind::ActionSucceeded, "l1", ActionKind::Failover);
        e.rule = Some("checkout-latency-scale-out-when-p99-is-high-in-eu-west".into());
        e.target = Some("checkout-eu-west-1-production".into());
        e.instance = Some("[2001:db8:1234:5678::42]:18100".into());
        e.before = Some(json!({"x": "a"}));
        e.after = Some(json!({"x": "b"}));
        let table = summary_table(&[e]);
        let row = table.lines().nth(1).unwrap();
        assert!(row.contains("checkout-latency-scale-…"), "{row}");
        assert!(row.contains("checkout-eu-wes…"), "{row}");
        assert!(row.contains("[2001:db8:1234:5678:…"), "{row}");
        assert!(row.chars().count() <= 140, "{row}");
    }
}
