//! Tests of writing, reading, rotation, recovery, redaction and open actions.
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::model::{ActionKind, Reason};

const T0: i64 = 1_795_000_000_000;

fn started(id: &str, rule: &str, target: &str) -> AuditEvent {
    AuditEvent {
        action_id: Some(id.into()),
        rule: Some(rule.into()),
        target: Some(target.into()),
        kind: Some(ActionKind::ScaleOut),
        before: Some(json!(2)),
        after: Some(json!(3)),
        ..AuditEvent::new(EventKind::ActionStarted)
    }
}

fn outcome(kind: EventKind, id: &str) -> AuditEvent {
    AuditEvent {
        action_id: Some(id.into()),
        duration_ms: Some(1532),
        ..AuditEvent::new(kind)
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    list_files(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Write `n` simple events at T0, T0+1s, …
fn write_n(log: &AuditLog, n: usize) -> Vec<AuditEvent> {
    (0..n)
        .map(|i| {
            let mut ev = AuditEvent::new(EventKind::Decision);
            ev.rule = Some(format!("rule-{}", i % 3));
            ev.target = Some(if i % 2 == 0 { "web" } else { "db" }.into());
            log.append(ev, T0 + i as i64 * 1000).unwrap()
        })
        .collect()
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn append_fills_chain_fields_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 0).unwrap();
    let mut ev = started("a1", "latency-scale-out", "demo");
    ev.reason = Some(Reason {
        when: "p99 > 0.25".into(),
        values: BTreeMap::from([("p99".to_string(), 0.31), ("rps".to_string(), 12.0)]),
        pending_since: Some(T0 - 30_000),
        for_ms: 30_000,
        ..Reason::default()
    });
    let first = log.append(ev, T0 + 123).unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.ts_ms, T0 + 123);
    assert_eq!(first.ts, crate::clock::rfc3339(T0 + 123));
    assert!(first.ts.ends_with(".123Z"), "{}", first.ts);
    assert_eq!(first.prev_hash, GENESIS_HASH);
    assert_eq!(first.hash.len(), 64);
    let second = log
        .append(outcome(EventKind::ActionSucceeded, "a1"), T0 + 2000)
        .unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!(second.prev_hash, first.hash);
    assert_ne!(second.hash, first.hash);

    let back = read_all(dir.path()).unwrap();
    assert_eq!(back, vec![first, second]);
    assert_eq!(files_in(dir.path()), vec!["audit-000001.jsonl"]);
}

#[test]
fn stored_line_hash_is_sha256_of_line_with_hash_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 0).unwrap();
    let ev = log.append(started("a1", "r", "t"), T0).unwrap();
    let text = std::fs::read_to_string(dir.path().join("audit-000001.jsonl")).unwrap();
    let line = text.strip_suffix('\n').unwrap();
    let suffix = format!(",\"hash\":\"{}\"}}", ev.hash);
    assert!(line.ends_with(&suffix), "{line}");
    // The third-party recipe of the module doc, by hand.
    let body = format!("{},\"hash\":\"\"}}", &line[..line.len() - suffix.len()]);
    assert_eq!(line::sha256_hex(body.as_bytes()), ev.hash);
}

#[test]
fn hash_is_the_last_serialised_field() {
    // Guards the byte-exact hashing rule against a field added after `hash`.
    let full = AuditEvent {
        action_id: Some("x".into()),
        detail: Some(json!({"a": 1})),
        hash: "h".into(),
        ..AuditEvent::new(EventKind::Approved)
    };
    let s = serde_json::to_string(&full).unwrap();
    assert!(s.ends_with(",\"hash\":\"h\"}"), "{s}");
}

#[test]
fn nan_query_values_survive_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 0).unwrap();
    let mut ev = AuditEvent::new(EventKind::Decision);
    ev.reason = Some(Reason {
        when: "p99 > 1".into(),
        values: BTreeMap::from([("p99".to_string(), f64::NAN), ("rps".to_string(), 3.0)]),
        ..Reason::default()
    });
    log.append(ev, T0).unwrap();
    let back = read_all(dir.path()).unwrap();
    let values = &back[0].reason.as_ref().unwrap().values;
    assert!(values["p99"].is_nan());
    assert_eq!(values["rps"], 3.0);
    assert!(verify(dir.path()).unwrap().is_ok());
}

#[test]
fn reopen_continues_seq_and_chain_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let log = AuditLog::open(dir.path(), 0).unwrap();
        write_n(&log, 3)
    };
    let log = AuditLog::open(dir.path(), 0).unwrap();
    assert_eq!(log.last_seq().unwrap(), 3);
    assert_eq!(log.last_hash().unwrap(), written[2].hash);
    let next = log
        .append(AuditEvent::new(EventKind::AgentStarted), T0 + 9000)
        .unwrap();
    assert_eq!(next.seq, 4);
    assert_eq!(next.prev_hash, written[2].hash);
    let all = read_all(dir.path()).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(&all[..3], &written[..]);
    assert_eq!(files_in(dir.path()), vec!["audit-000001.jsonl"]);
    assert!(verify(dir.path()).unwrap().is_ok());
}

#[test]
fn rotation_by_size_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 600).unwrap();
    let written = write_n(&log, 20);
    let files = list_files(dir.path()).unwrap();
    assert!(files.len() >= 4, "expected several files, got {files:?}");
    for (i, (idx, path)) in files.iter().enumerate() {
        assert_eq!(*idx, i as u64 + 1);
        let len = std::fs::metadata(path).unwrap().len();
        assert!(len <= 600, "{} is {len} bytes", path.display());
    }
    // Reopen mid-way and keep writing: still one chain.
    drop(log);
    let log = AuditLog::open(dir.path(), 600).unwrap();
    let more = log
        .append(AuditEvent::new(EventKind::AgentStarted), T0)
        .unwrap();
    assert_eq!(more.seq, 21);
    assert_eq!(more.prev_hash, written[19].hash);
    let all = read_all(dir.path()).unwrap();
    assert_eq!(all.len(), 21);
    assert!(all
        .windows(2)
        .all(|w| w[1].seq == w[0].seq + 1 && w[1].prev_hash == w[0].hash));
    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events, 21);
    assert_eq!(report.files, list_files(dir.path()).unwrap().len());
}

#[test]
fn oversized_line_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 100).unwrap();
    write_n(&log, 3);
    // Every decision line is > 100 bytes: one per file, none empty.
    assert_eq!(files_in(dir.path()).len(), 3);
    assert!(verify(dir.path()).unwrap().is_ok());
}

#[test]
fn concurrent_appends_form_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(dir.path(), 2000).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..10 {
                    let mut ev = AuditEvent::new(EventKind::Decision);
                    ev.rule = Some(format!("t{t}-{i}"));
                    log.append(ev, T0 + i).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events, 40);
}

#[test]
fn torn_tail_without_newline_is_skipped_and_writer_starts_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let log = AuditLog::open(dir.path(), 0).unwrap();
        write_n(&log, 3)
    };
    let first = dir.path().join("audit-000001.jsonl");
    append_raw(&first, b"{\"seq\":4,\"ts\":\"2026-");

    let (evs, warnings) = read_all_with_warnings(dir.path()).unwrap();
    assert_eq!(evs, written);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].path, first);
    assert_eq!(warnings[0].line, 4);
    assert!(warnings[0].message.contains("torn tail"), "{}", warnings[0]);

    let log = AuditLog::open(dir.path(), 0).unwrap();
    let next = log
        .append(AuditEvent::new(EventKind::AgentStarted), T0)
        .unwrap();
    assert_eq!(next.seq, 4);
    assert_eq!(next.prev_hash, written[2].hash);
    // The torn file is left as it is; the chain goes on in the next file.
    assert_eq!(
        files_in(dir.path()),
        vec!["audit-000001.jsonl", "audit-000002.jsonl"]
    );
    assert!(std::fs::read_to_string(&first)
        .unwrap()
        .ends_with("\"ts\":\"2026-"));

    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events, 4);
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(
        (report.warnings[0].path.clone(), report.warnings[0].line),
        (first, 4)
    );
    assert_eq!(read_all(dir.path()).unwrap().len(), 4);
}

#[test]
fn torn_tail_of_invalid_json_with_newline_is_also_torn() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = AuditLog::open(dir.path(), 0).unwrap();
        write_n(&log, 2);
    }
    append_raw(&dir.path().join("audit-000001.jsonl"), b"\0\0\0\0\n");
    let log = AuditLog::open(dir.path(), 0).unwrap();
    assert_eq!(
        log.append(AuditEvent::new(EventKind::AgentStarted), T0)
            .unwrap()
            .seq,
        3
    );
    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].line, 3);
}

#[test]
fn torn_only_line_of_newest_file_links_to_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let log = AuditLog::open(dir.path(), 0).unwrap();
        write_n(&log, 2)
    };
    // Crash while writing the first line of a freshly rotated file.
    std::fs::write(dir.path().join("audit-000002.jsonl"), b"{\"seq\":3").unwrap();
    let log = AuditLog::open(dir.path(), 0).unwrap();
    let next = log
        .append(AuditEvent::new(EventKind::AgentStarted), T0)
        .unwrap();
    assert_eq!(
        (next.seq, next.prev_hash.as_str()),
        (3, written[1].hash.as_str())
    );
    assert_eq!(files_in(dir.path()).last().unwrap(), "audit-000003.jsonl");
    assert!(verify(dir.path()).unwrap().is_ok());
}

#[test]
fn invalid_line_in_the_middle_is_an_error_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = AuditLog::open(dir.path(), 0).unwrap();
        write_n(&log, 1);
    }
    let path = dir.path().join("audit-000001.jsonl");
    append_raw(&path, b"garbage\n");
    {
        // A writer that ignored the rule would append here; simulate it.
        let mut text = std::fs::read(&path).unwrap();
        text.extend_from_slice(b"{}\n");
        std::fs::write(&path, text).unwrap();
    }
    match read_all(dir.path()) {
        Err(AuditError::Parse { path: p, line, .. }) => {
            assert_eq!((p, line), (path.clone(), 2));
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let report = verify(dir.path()).unwrap();
    let b = report.first_break.expect("break");
    assert_eq!((b.path.clone(), b.line), (path, 2));
}

#[test]
fn empty_newest_file_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let log = AuditLog::open(dir.path(), 0).unwrap();
        write_n(&log, 2)
    };
    std::fs::write(dir.path().join("audit-000002.jsonl"), b"").unwrap();
    let log = AuditLog::open(dir.path(), 0).unwrap();
    let next = log
        .append(AuditEvent::new(EventKind::AgentStarted), T0)
        .unwrap();
    assert_eq!(next.prev_hash, written[1].hash);
    assert_eq!(files_in(dir.path()).len(), 2);
    assert!(verify(dir.path()).unwrap().is_ok());
}

#[test]
fn secrets_in_detail_before_after_and_errors_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 0).unwrap();
    let mut ev = AuditEvent::new(EventKind::ActionFailed);
    ev.detail = Some(json!({
        "url": "http://hook",
        "headers": {"Authorization": "Bearer abc123", "X-Api-Key": "k1", "accept": "json"},
        "nested": [{"client_secret": {"v": "s3"}, "ok": 1}],
        "Password": "hunter2",
        "refresh_TOKEN": "t0k",
        "api_key": "k2"
    }));
    ev.before = Some(json!({"replicas": 2, "token": "x"}));
    ev.after = Some(json!({"replicas": 3, "secret": ["a"]}));
    ev.error = Some("401 from api: Authorization: Bearer abc123 rejected".into());
    let stored = log.append(ev, T0).unwrap();

    let text = std::fs::read_to_string(dir.path().join("audit-000001.jsonl")).unwrap();
    for secret in [
        "abc123", "k1", "s3", "hunter2", "t0k", "k2", "\"x\"", "[\"a\"]",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let d = stored.detail.as_ref().unwrap();
    assert_eq!(d["headers"]["Authorization"], "***");
    assert_eq!(d["headers"]["X-Api-Key"], "***");
    assert_eq!(d["headers"]["accept"], "json");
    assert_eq!(d["nested"][0]["client_secret"], "***");
    assert_eq!(d["nested"][0]["ok"], 1);
    assert_eq!(d["Password"], "***");
    assert_eq!(d["refresh_TOKEN"], "***");
    assert_eq!(d["url"], "http://hook");
    assert_eq!(stored.before.as_ref().unwrap()["replicas"], 2);
    assert_eq!(stored.before.as_ref().unwrap()["token"], "***");
    assert_eq!(stored.after.as_ref().unwrap()["secret"], "***");
    assert_eq!(
        stored.error.as_deref(),
        Some("401 from api: Authorization: Bearer *** rejected")
    );
    // What was stored (redacted) is what was hashed.
    assert_eq!(read_all(dir.path()).unwrap(), vec![stored]);
    assert!(verify(dir.path()).unwrap().is_ok());
}

#[test]
fn filters_select_by_time_rule_target_event_action_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 500).unwrap();
    log.append(started("a1", "r1", "web"), T0).unwrap();
    log.append(outcome(EventKind::ActionSucceeded, "a1"), T0 + 1000)
        .unwrap();
    log.append(started("a2", "r2", "db"), T0 + 2000).unwrap();
    log.append(outcome(EventKind::ActionFailed, "a2"), T0 + 3000)
        .unwrap();
    let mut sup = AuditEvent::new(EventKind::Suppressed);
    sup.rule = Some("r1".into());
    sup.target = Some("web".into());
    sup.cause = Some("cooldown".into());
    log.append(sup, T0 + 4000).unwrap();

    let seqs = |f: AuditFilter| -> Vec<u64> {
        query(dir.path(), &f)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    };
    assert_eq!(seqs(AuditFilter::default()), vec![1, 2, 3, 4, 5]);
    assert_eq!(
        seqs(AuditFilter {
            since: Some(T0 + 2000),
            ..Default::default()
        }),
        vec![3, 4, 5]
    );
    assert_eq!(
        seqs(AuditFilter {
            until: Some(T0 + 2000),
            ..Default::default()
        }),
        vec![1, 2]
    );
    assert_eq!(
        seqs(AuditFilter {
            rule: Some("r1".into()),
            ..Default::default()
        }),
        vec![1, 5]
    );
    assert_eq!(
        seqs(AuditFilter {
            target: Some("db".into()),
            ..Default::default()
        }),
        vec![3]
    );
    assert_eq!(
        seqs(AuditFilter {
            event: Some(vec![EventKind::ActionSucceeded, EventKind::ActionFailed]),
            ..Default::default()
        }),
        vec![2, 4]
    );
    assert_eq!(
        seqs(AuditFilter {
            action_id: Some("a2".into()),
            ..Default::default()
        }),
        vec![3, 4]
    );
    assert_eq!(
        seqs(AuditFilter {
            limit: Some(2),
            ..Default::default()
        }),
        vec![4, 5]
    );
    assert_eq!(
        seqs(AuditFilter {
            limit: Some(0),
            ..Default::default()
        }),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(AuditFilter {
            rule: Some("r1".into()),
            event: Some(vec![EventKind::Suppressed]),
            since: Some(T0),
            ..Default::default()
        }),
        vec![5]
    );
}

#[test]
fn open_actions_are_starts_without_outcome() {
    let evs: Vec<AuditEvent> = vec![
        started("a1", "r", "t"),
        started("a2", "r", "t"),
        outcome(EventKind::ActionSucceeded, "a1"),
        started("a3", "r", "t"),
        started("a4", "r", "t"),
        outcome(EventKind::ActionFailed, "a3"),
        started("a5", "r", "t"),
        outcome(EventKind::ActionReconciled, "a5"),
        // An outcome before a (retried) start does not close it.
        outcome(EventKind::ActionSucceeded, "a6"),
        started("a6", "r", "t"),
        AuditEvent::new(EventKind::AgentStopped),
    ];
    let open: Vec<_> = open_actions(&evs)
        .into_iter()
        .map(|e| e.action_id.unwrap())
        .collect();
    assert_eq!(open, vec!["a2", "a4", "a6"]);
}

#[test]
fn missing_dir_reads_as_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(read_all(&missing).unwrap().is_empty());
    let report = verify(&missing).unwrap();
    assert!(report.is_ok());
    assert_eq!(report.events, 0);
}

#[test]
fn io_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = AuditLog::open(&file, 0).unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

mod verify_tests {
    use super::*;

    /// A rotated log of 12 events in files of a few lines each.
    fn rotated_log() -> (tempfile::TempDir, Vec<AuditEvent>) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), 1000).unwrap();
        let evs = write_n(&log, 12);
        let files = list_files(dir.path()).unwrap();
        assert!(files.len() >= 3, "{files:?}");
        // Every file but the last holds at least three lines.
        for (_, f) in &files[..files.len() - 1] {
            assert!(lines_of(f).len() >= 3, "{}", f.display());
        }
        assert!(verify(dir.path()).unwrap().is_ok());
        (dir, evs)
    }

    fn lines_of(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    fn first_break(dir: &Path) -> (VerifyReport, ChainBreak) {
        let report = verify(dir).unwrap();
        let b = report
            .first_break
            .clone()
            .expect("verify must report a break");
        (report, b)
    }

    #[test]
    fn intact_log_reports_last_seq_and_hash() {
        let (dir, evs) = rotated_log();
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.events, 12);
        assert_eq!(report.last_seq, Some(12));
        assert_eq!(report.last_hash.as_deref(), Some(evs[11].hash.as_str()));
        assert!(report.warnings.is_empty());
        assert!(report.to_string().starts_with("OK: 12 events"), "{report}");
    }

    #[test]
    fn modified_field_is_a_hash_mismatch_at_its_line() {
        let (dir, _) = rotated_log();
        let path = list_files(dir.path()).unwrap()[1].1.clone();
        let mut lines = lines_of(&path);
        assert!(lines[1].contains("\"target\":\"web\"") || lines[1].contains("\"target\":\"db\""));
        lines[1] = lines[1]
            .replace("\"target\":\"web\"", "\"target\":\"XXX\"")
            .replace("\"target\":\"db\"", "\"target\":\"XXX\"");
        write_lines(&path, &lines);
        let (report, b) = first_break(dir.path());
        assert_eq!((b.path.clone(), b.line), (path.clone(), 2));
        assert!(b.problem.contains("hash mismatch"), "{b}");
        assert!(!report.is_ok());
        assert!(
            report
                .to_string()
                .contains(&format!("{}:2:", path.display())),
            "{report}"
        );
    }

    #[test]
    fn modified_and_rehashed_line_breaks_the_next_link() {
        let (dir, _) = rotated_log();
        let path = list_files(dir.path()).unwrap()[0].1.clone();
        let mut lines = lines_of(&path);
        // Forge line 1 with a valid hash of its own.
        let mut ev: AuditEvent = serde_json::from_str(&lines[0]).unwrap();
        ev.rule = Some("forged".into());
        let (bytes, _) = line::encode(&ev).unwrap();
        lines[0] = String::from_utf8(bytes).unwrap();
        write_lines(&path, &lines);
        let (_, b) = first_break(dir.path());
        assert_eq!((b.path.clone(), b.line, b.seq), (path, 2, Some(2)));
        assert!(b.problem.contains("prev_hash"), "{b}");
    }

    #[test]
    fn deleted_line_is_a_seq_gap_at_the_following_line() {
        let (dir, evs) = rotated_log();
        let path = list_files(dir.path()).unwrap()[1].1.clone();
        let mut lines = lines_of(&path);
        let removed: AuditEvent = serde_json::from_str(&lines[1]).unwrap();
        lines.remove(1);
        write_lines(&path, &lines);
        let (report, b) = first_break(dir.path());
        assert_eq!((b.path.clone(), b.line), (path, 2));
        assert_eq!(b.expected, format!("seq {}", removed.seq));
        assert_eq!(b.found, format!("seq {}", removed.seq + 1));
        assert!(b.problem.contains("missing"), "{b}");
        assert_eq!(
            report.last_hash.as_deref(),
            Some(evs[removed.seq as usize - 2].hash.as_str())
        );
    }

    #[test]
    fn deleted_last_line_of_a_middle_file_is_detected_in_the_next_file() {
        let (dir, _) = rotated_log();
        let files = list_files(dir.path()).unwrap();
        let mut lines = lines_of(&files[0].1);
        lines.pop();
        write_lines(&files[0].1, &lines);
        let (_, b) = first_break(dir.path());
        assert_eq!((b.path, b.line), (files[1].1.clone(), 1));
    }

    #[test]
    fn reordered_lines_are_detected() {
        let (dir, _) = rotated_log();
        let path = list_files(dir.path()).unwrap()[0].1.clone();
        let mut lines = lines_of(&path);
        lines.swap(1, 2);
        write_lines(&path, &lines);
        let (_, b) = first_break(dir.path());
        assert_eq!((b.path.clone(), b.line), (path, 2));
        assert_eq!((b.expected.as_str(), b.found.as_str()), ("seq 2", "seq 3"));
    }

    #[test]
    fn removed_middle_file_is_detected_at_the_next_file() {
        let (dir, _) = rotated_log();
        let files = list_files(dir.path()).unwrap();
        let first_of_third: AuditEvent = serde_json::from_str(&lines_of(&files[2].1)[0]).unwrap();
        let first_of_second: AuditEvent = serde_json::from_str(&lines_of(&files[1].1)[0]).unwrap();
        std::fs::remove_file(&files[1].1).unwrap();
        let (_, b) = first_break(dir.path());
        assert_eq!((b.path, b.line), (files[2].1.clone(), 1));
        assert_eq!(b.expected, format!("seq {}", first_of_second.seq));
        assert_eq!(b.found, format!("seq {}", first_of_third.seq));
        // read_all does not check the chain; verify is the judge.
        assert!(read_all(dir.path()).is_ok());
    }

    #[test]
    fn removed_first_file_is_detected() {
        let (dir, _) = rotated_log();
        let files = list_files(dir.path()).unwrap();
        std::fs::remove_file(&files[0].1).unwrap();
        let (_, b) = first_break(dir.path());
        assert_eq!((b.path, b.line), (files[1].1.clone(), 1));
        assert_eq!(b.expected, "seq 1");
    }

    #[test]
    fn torn_tail_in_an_older_file_cannot_hide_a_deleted_event() {
        let (dir, _) = rotated_log();
        let files = list_files(dir.path()).unwrap();
        // Cut the newline off the last line of file 1: it now looks torn, but
        // file 2 links to it, so the chain breaks there.
        let mut text = std::fs::read(&files[0].1).unwrap();
        text.pop();
        std::fs::write(&files[0].1, text).unwrap();
        let (report, b) = first_break(dir.path());
        assert_eq!(report.warnings.len(), 1);
        assert_eq!((b.path, b.line), (files[1].1.clone(), 1));
    }

    #[test]
    fn hash_member_moved_or_missing_is_a_break() {
        let (dir, _) = rotated_log();
        let path = list_files(dir.path()).unwrap()[0].1.clone();
        let mut lines = lines_of(&path);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        // serde_json::Value sorts keys: `hash` is no longer last.
        lines[0] = v.to_string();
        write_lines(&path, &lines);
        let (_, b) = first_break(dir.path());
        assert_eq!(b.line, 1);
        assert!(b.problem.contains("\"hash\""), "{b}");
    }
}

mod cli_tests {
    use super::*;
    use crate::model::Mode;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn decision(rule: &str, id: &str) -> AuditEvent {
        AuditEvent {
            action_id: Some(id.into()),
            rule: Some(rule.into()),
            target: Some("demo".into()),
            kind: Some(ActionKind::ScaleOut),
            reason: Some(Reason {
                when: "p99 > 0.25 && rps > 5".into(),
                values: BTreeMap::from([("p99".to_string(), 0.3127), ("rps".to_string(), 12.0)]),
                for_ms: 30_000,
                ..Reason::default()
            }),
            ..AuditEvent::new(EventKind::Decision)
        }
    }

    /// The demo's story: a scale-out, a failover that failed, a circuit still
    /// in progress, an approved redeploy and a suppression.
    fn story(log: &AuditLog) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        let mut push = |ev: AuditEvent, t: i64| out.push(log.append(ev, T0 + t).unwrap());
        push(decision("latency-scale-out", "a1"), 0);
        let mut st = started("a1", "latency-scale-out", "demo");
        (st.before, st.after) = (None, None);
        push(st, 10);
        let mut ok = outcome(EventKind::ActionSucceeded, "a1");
        ok.kind = Some(ActionKind::ScaleOut);
        ok.target = Some("demo".into());
        ok.rule = Some("latency-scale-out".into());
        // What the process provider reports (ActionOutcome.before/after).
        let inst = |port: u16, pid: u32, version: &str| json!({"id": port.to_string(), "in_traffic": true, "pid": pid, "version": version});
        ok.before = Some(
            json!({"instances": [inst(18100, 4242, "v1"), inst(18101, 4250, "v1")],
            "replicas": 2, "version": "v1"}),
        );
        ok.after = Some(
            json!({"instances": [inst(18100, 4242, "v1"), inst(18101, 4250, "v1"),
            inst(18102, 4377, "v1")], "replicas": 3, "version": "v1"}),
        );
        push(ok, 1542);
        let mut fo = started("a2", "replica-dead", "demo");
        fo.kind = Some(ActionKind::Failover);
        fo.instance = Some("127.0.0.1:18101".into());
        fo.before = None;
        fo.after = None;
        push(fo, 5000);
        let mut failed = outcome(EventKind::ActionFailed, "a2");
        failed.error = Some("health check timed out after 10s".into());
        failed.duration_ms = Some(10_020);
        push(failed, 15_020);
        let mut cb = started("a3", "errors-circuit", "demo");
        cb.kind = Some(ActionKind::CircuitBreak);
        cb.instance = Some("127.0.0.1:18100".into());
        (cb.before, cb.after) = (None, None);
        cb.detail =
            Some(json!({"circuit": {"from": "closed", "to": "open", "open_for_ms": 30_000}}));
        push(cb, 20_000);
        let mut rd = started("a4", "new-version", "demo");
        rd.kind = Some(ActionKind::Redeploy);
        (rd.before, rd.after) = (None, None);
        push(rd, 30_000);
        let mut ap = AuditEvent::new(EventKind::Approved);
        ap.action_id = Some("a4".into());
        ap.approved_by = Some("alice".into());
        push(ap, 30_500);
        let mut rb = outcome(EventKind::ActionSucceeded, "a4");
        rb.before = Some(
            json!({"instances": [inst(18100, 4242, "v1"), inst(18101, 4250, "v1")],
            "replicas": 2, "version": "v1"}),
        );
        rb.after = Some(
            json!({"instances": [inst(18103, 5001, "v2"), inst(18104, 5010, "v2")],
            "replicas": 2, "version": "v2"}),
        );
        rb.duration_ms = Some(850);
        push(rb, 31_350);
        let mut sup = AuditEvent::new(EventKind::Suppressed);
        sup.action_id = Some("a5".into());
        sup.rule = Some("latency-scale-out".into());
        sup.target = Some("demo".into());
        sup.kind = Some(ActionKind::ScaleOut);
        sup.cause = Some("cooldown".into());
        sup.mode = Some(Mode::Enforce);
        push(sup, 40_000);
        push(AuditEvent::new(EventKind::AgentStopped), 50_000);
        out
    }

    #[test]
    fn human_lines_show_what_on_call_needs() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), 0).unwrap();
        let evs = story(&log);
        let mut out = Vec::new();
        cli::print_events(&evs, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), evs.len());
        assert!(lines[0].starts_with(&evs[0].ts), "{}", lines[0]);
        assert!(lines[0].contains("decision"), "{}", lines[0]);
        assert!(lines[0].contains("  p99=0.3127 rps=12  "), "{}", lines[0]);
        assert!(
            lines[0].contains("when=\"p99 > 0.25 && rps > 5\""),
            "{}",
            lines[0]
        );
        assert!(
            lines[2].contains(
                "action_succeeded    scale_out  demo  rule=latency-scale-out  replicas 2→3 (+18102)  (1532 ms)"
            ),
            "{}",
            lines[2]
        );
        assert!(
            lines[4].contains("error=\"health check timed out after 10s\""),
            "{}",
            lines[4]
        );
        assert!(lines[7].contains("approved_by=alice"), "{}", lines[7]);
        assert!(lines[9].contains("cause=cooldown"), "{}", lines[9]);
        assert!(lines[10].ends_with("agent_stopped"), "{:?}", lines[10]);
    }

    #[test]
    fn json_output_is_the_stored_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), 0).unwrap();
        let mut evs = story(&log);
        let mut nan = decision("r", "a9");
        nan.reason
            .as_mut()
            .unwrap()
            .values
            .insert("p50".into(), f64::NAN);
        evs.push(log.append(nan, T0).unwrap());
        let back = read_all(dir.path()).unwrap();
        let mut out = Vec::new();
        cli::print_events(&back, true, &mut out).unwrap();
        let stored = std::fs::read(dir.path().join("audit-000001.jsonl")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(stored).unwrap()
        );
    }

    #[test]
    fn summary_table_has_one_row_per_action() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), 0).unwrap();
        story(&log);
        let table = cli::summary_table(&read_all(dir.path()).unwrap());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 1 + 5 + 1, "{table}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["TIME", "RULE", "KIND", "TARGET", "INSTANCE", "CHANGE", "OUTCOME", "DURATION"]
        );
        let time = crate::clock::rfc3339(T0)[..19].replace('T', " ");
        assert!(lines[1].starts_with(&time), "{table}");
        let cols = |l: &str| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cols(lines[1])[1..],
            [
                "latency-scale-out",
                "scale_out",
                "demo",
                "-",
                "replicas 2→3 (+18102)",
                "succeeded",
                "1.532s"
            ]
        );
        assert_eq!(
            cols(lines[2])[1..],
            [
                "replica-dead",
                "failover",
                "demo",
                "127.0.0.1:18101",
                "-",
                "failed: health check timed out after 10s",
                "10.02s"
            ]
        );
        assert_eq!(
            cols(lines[3])[1..],
            [
                "errors-circuit",
                "circuit_break",
                "demo",
                "127.0.0.1:18100",
                "closed→open (planned)",
                "in progress",
                "-"
            ]
        );
        assert_eq!(
            cols(lines[4])[1..],
            [
                "new-version",
                "redeploy",
                "demo",
                "-",
                "version v1→v2",
                "succeeded (approved by alice)",
                "850 ms"
            ]
        );
        assert_eq!(
            cols(lines[5])[1..],
            [
                "latency-scale-out",
                "scale_out",
                "demo",
                "-",
                "-",
                "suppressed: cooldown",
                "-"
            ]
        );
        assert_eq!(
            lines[6],
            "5 actions: 2 succeeded, 1 failed, 1 in progress, 1 suppressed"
        );
        // Columns line up: every row has CHANGE at the same character offset.
        let at = lines[0].find("CHANGE").unwrap();
        assert_eq!(
            lines[1].chars().skip(at).take(12).collect::<String>(),
            "replicas 2→3"
        );
    }

    #[test]
    fn summary_of_no_actions() {
        assert_eq!(
            cli::summary_table(&[AuditEvent::new(EventKind::AgentStarted)]),
            "TIME  RULE  KIND  TARGET  INSTANCE  CHANGE  OUTCOME  DURATION\n0 actions\n"
        );
    }

    #[test]
    fn since_accepts_durations_ago_and_rfc3339() {
        let now = T0;
        assert_eq!(cli::parse_since("10m", now).unwrap(), now - 600_000);
        assert_eq!(cli::parse_since("1h30m", now).unwrap(), now - 5_400_000);
        assert_eq!(
            cli::parse_since("2026-11-23T04:10:02.123Z", now).unwrap(),
            crate::clock::parse_time("2026-11-23T04:10:02.123Z").unwrap()
        );
        assert_eq!(
            cli::parse_since(&crate::clock::rfc3339(T0 - 5), now).unwrap(),
            T0 - 5
        );
        let err = cli::parse_since("yesterday", now).unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
    }

    /// A `Write` the test thread can read while the follower writes.
    #[derive(Clone, Default)]
    struct SharedBuf(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl SharedBuf {
        fn seqs(&self) -> Vec<u64> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<AuditEvent>(l).unwrap().seq)
                .collect()
        }

        /// Wait (up to 20 s, a generous bound for a loaded machine) until
        /// `n` events have been printed.
        fn wait_for(&self, n: usize) -> Vec<u64> {
            for _ in 0..400 {
                if self.seqs().len() >= n {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            self.seqs()
        }
    }

    #[test]
    fn follow_prints_backlog_then_new_events_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(dir.path(), 800).unwrap());
        write_n(&log, 5);
        let stop = Arc::new(AtomicBool::new(false));
        let buf = SharedBuf::default();
        let follower = {
            let dir = dir.path().to_path_buf();
            let stop = Arc::clone(&stop);
            let mut out = buf.clone();
            std::thread::spawn(move || {
                let filter = AuditFilter {
                    target: Some("web".into()),
                    limit: Some(2),
                    ..Default::default()
                };
                cli::follow(&dir, &filter, true, &mut out, || {
                    stop.load(Ordering::SeqCst)
                })
            })
        };
        // Backlog: web events were seq 1, 3, 5 → the newest two.
        assert_eq!(buf.wait_for(2), vec![3, 5]);
        let mut expected = vec![3, 5];
        // Three batches, each waited for, so the follower picks up new lines
        // and crosses into newly rotated files while it runs.
        for batch in 0..3 {
            for i in 0..5 {
                let n = 5 + batch * 5 + i;
                let mut ev = AuditEvent::new(EventKind::Decision);
                ev.target = Some(if n % 2 == 0 { "web" } else { "db" }.into());
                let stored = log.append(ev, T0 + n * 1000).unwrap();
                if n % 2 == 0 {
                    expected.push(stored.seq);
                }
            }
            assert_eq!(buf.wait_for(expected.len()), expected);
        }
        stop.store(true, Ordering::SeqCst);
        follower.join().unwrap().unwrap();
        assert!(list_files(dir.path()).unwrap().len() >= 3);
        assert_eq!(buf.seqs(), expected);
    }

    #[test]
    fn follow_skips_a_torn_tail_and_continues_in_the_next_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(dir.path(), 0).unwrap();
            write_n(&log, 2);
        }
        append_raw(&dir.path().join("audit-000001.jsonl"), b"{\"seq\":3,");
        let log = AuditLog::open(dir.path(), 0).unwrap();
        log.append(AuditEvent::new(EventKind::AgentStarted), T0)
            .unwrap();
        let mut out = Vec::new();
        cli::follow(dir.path(), &AuditFilter::default(), false, &mut out, || {
            true
        })
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.lines().nth(2).unwrap().contains("agent_started"));
    }
}

#[test]
fn reopen_finds_the_last_line_of_large_files_and_large_torn_tails() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(100_000);
    let written: Vec<AuditEvent> = {
        let log = AuditLog::open(dir.path(), 0).unwrap();
        (0..3)
            .map(|i| {
                let mut ev = AuditEvent::new(EventKind::RulesReloaded);
                ev.detail = Some(json!({ "blob": big }));
                log.append(ev, T0 + i).unwrap()
            })
            .collect()
    };
    {
        // Lines longer than the first backwards read: the chunk has to grow.
        let log = AuditLog::open(dir.path(), 0).unwrap();
        assert_eq!(log.last_seq().unwrap(), 3);
        assert_eq!(log.last_hash().unwrap(), written[2].hash);
    }
    let torn = format!("{{\"seq\":4,\"detail\":\"{}", "y".repeat(150_000));
    append_raw(&dir.path().join("audit-000001.jsonl"), torn.as_bytes());
    let log = AuditLog::open(dir.path(), 0).unwrap();
    let next = log
        .append(AuditEvent::new(EventKind::AgentStarted), T0)
        .unwrap();
    assert_eq!(
        (next.seq, next.prev_hash.as_str()),
        (4, written[2].hash.as_str())
    );
    assert_eq!(files_in(dir.path()).len(), 2);
    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.warnings.len(), 1);
}

#[test]
fn credentials_in_free_text_are_masked() {
    let cases = [
        (
            "POST http://hook.local/h?token=abc123&x=1 failed",
            "POST http://hook.local/h?token=***&x=1 failed",
        ),
        (
            "connect to https://svc:hunter2@db.local:5432/x",
            "connect to https://svc:***@db.local:5432/x",
        ),
        (
            "header X-Api-Key: k1 rejected",
            "header X-Api-Key: *** rejected",
        ),
        ("Authorization: Bearer abc", "Authorization: Bearer ***"),
        (
            "upstream said Bearer eyJhbGciOi.x-y_z ok",
            "upstream said Bearer *** ok",
        ),
        (
            "got (password=pw1) and secret=\"s\"",
            "got (password=***) and secret=\"***\"",
        ),
        ("client_secret=s2;", "client_secret=***;"),
        ("token='a b'", "token='***'"),
    ];
    for (input, want) in cases {
        let mut ev = AuditEvent::new(EventKind::ActionFailed);
        ev.error = Some(input.to_string());
        ev.detail = Some(json!({ "msg": input, "n": 1 }));
        redact_event(&mut ev);
        assert_eq!(ev.error.as_deref(), Some(want), "{input}");
        assert_eq!(ev.detail.as_ref().unwrap()["msg"], want, "{input}");
    }
    // Text without credentials is left exactly as it was.
    for plain in [
        "replica 127.0.0.1:18101 exited (code=1)",
        "p99=0.3 rps=12",
        "  two  spaces  ",
    ] {
        let mut ev = AuditEvent::new(EventKind::ActionFailed);
        ev.error = Some(plain.to_string());
        redact_event(&mut ev);
        assert_eq!(ev.error.as_deref(), Some(plain));
    }
}

#[test]
fn cli_flags_become_a_filter() {
    let f = cli::filter_from_args(
        Some("10m"),
        Some("r1"),
        None,
        &["action_started,action_failed", "decision", "action_failed"],
        Some(5),
        T0,
    )
    .unwrap();
    assert_eq!(
        f,
        AuditFilter {
            since: Some(T0 - 600_000),
            rule: Some("r1".into()),
            event: Some(vec![
                EventKind::ActionStarted,
                EventKind::ActionFailed,
                EventKind::Decision
            ]),
            limit: Some(5),
            ..AuditFilter::default()
        }
    );
    let none: [&str; 0] = [];
    assert_eq!(
        cli::filter_from_args(None, None, Some("web"), &none, None, T0).unwrap(),
        AuditFilter {
            target: Some("web".into()),
            ..AuditFilter::default()
        }
    );
    let err = cli::filter_from_args(None, None, None, &["action_start"], None, T0).unwrap_err();
    assert!(err.to_string().contains("action_start"), "{err}");
    assert!(matches!(
        cli::filter_from_args(Some("soon"), None, None, &none, None, T0),
        Err(AuditError::BadSince { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 0).unwrap();
    write_n(&log, 4);
    let mut out = Vec::new();
    let f = AuditFilter {
        target: Some("db".into()),
        ..AuditFilter::default()
    };
    assert_eq!(cli::show(dir.path(), &f, false, &mut out).unwrap(), 2);
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
}

#[test]
fn after_a_failed_write_the_writer_rederives_its_position_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 0).unwrap();
    let written = write_n(&log, 2);
    let first = dir.path().join("audit-000001.jsonl");

    // A write that failed half-way: a torn line, then an error to the caller.
    append_raw(&first, b"{\"seq\":3,\"ts\":");
    log.simulate_failed_write().unwrap();
    let third = log
        .append(AuditEvent::new(EventKind::AgentStarted), T0)
        .unwrap();
    assert_eq!(
        (third.seq, third.prev_hash.as_str()),
        (3, written[1].hash.as_str())
    );
    assert_eq!(
        files_in(dir.path()).len(),
        2,
        "must not append after the torn line"
    );

    // A write that landed but whose fsync failed: the line is on disk although
    // the caller saw an error, so the chain continues after it.
    let mut landed = AuditEvent::new(EventKind::Decision);
    landed.seq = 4;
    landed.prev_hash = third.hash.clone();
    let (mut bytes, landed_hash) = line::encode(&landed).unwrap();
    bytes.push(b'\n');
    append_raw(&dir.path().join("audit-000002.jsonl"), &bytes);
    log.simulate_failed_write().unwrap();
    let fifth = log
        .append(AuditEvent::new(EventKind::AgentStopped), T0)
        .unwrap();
    assert_eq!(
        (fifth.seq, fifth.prev_hash.as_str()),
        (5, landed_hash.as_str())
    );
    assert_eq!(files_in(dir.path()).len(), 2);

    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.events, report.warnings.len()), (5, 1));
}

#[test]
fn query_since_skips_files_that_end_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 700).unwrap();
    let written = write_n(&log, 12);
    let files = list_files(dir.path()).unwrap();
    assert!(files.len() >= 3);
    // Corrupt the first line of the first file: only a reader that opens the
    // file notices.
    let text = std::fs::read_to_string(&files[0].1).unwrap();
    std::fs::write(&files[0].1, text.replacen('{', "#", 1)).unwrap();
    assert!(matches!(
        query(dir.path(), &AuditFilter::default()),
        Err(AuditError::Parse { .. })
    ));
    let last_of_first: AuditEvent = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let since = last_of_first.ts_ms + 1;
    let got = query(
        dir.path(),
        &AuditFilter {
            since: Some(since),
            ..Default::default()
        },
    )
    .unwrap();
    let want: Vec<AuditEvent> = written.into_iter().filter(|e| e.ts_ms >= since).collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}
