//! Tests of the exposition parser: format features, the malformed-input table
//! with error positions, OpenMetrics specifics, and property tests (round trip,
//! no panic on arbitrary bytes).

use super::*;
use crate::model::Labels;
use proptest::prelude::*;

fn text(body: &str) -> Vec<ParsedSample> {
    parse(body.as_bytes(), Format::Text004).unwrap_or_else(|e| panic!("{e}\n---\n{body}"))
}

fn om(body: &str) -> Vec<ParsedSample> {
    parse(body.as_bytes(), Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}\n---\n{body}"))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}

fn sample(pairs: &[(&str, &str)], value: f64, ts: Option<i64>) -> ParsedSample {
    ParsedSample {
        labels: labels(pairs),
        value,
        timestamp_ms: ts,
        exemplar: None,
    }
}

// ------------------------------------------------------------ text 0.0.4

#[test]
fn text_basic_families_comments_and_blank_lines() {
    let body = "# HELP http_requests_total The total number of HTTP requests.\n\
                # TYPE http_requests_total counter\n\
                http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
                \n\
                # A normal comment\n\
                #no space comment\n\
                # HELPFUL is not HELP\n\
                metric_without_timestamp_and_labels 12.47\n\
                # TYPE rpc_duration_seconds summary\n\
                rpc_duration_seconds{quantile=\"0.01\"} 3102\n\
                rpc_duration_seconds_sum 1.7560473e+07\n\
                rpc_duration_seconds_count 2693\n\
                untyped_metric 1\n";
    let got = text(body);
    assert_eq!(
        got,
        vec![
            sample(
                &[
                    ("__name__", "http_requests_total"),
                    ("method", "post"),
                    ("code", "200")
                ],
                1027.0,
                Some(1_395_066_363_000)
            ),
            sample(
                &[
                    ("__name__", "http_requests_total"),
                    ("method", "post"),
                    ("code", "400")
                ],
                3.0,
                Some(1_395_066_363_000)
            ),
            sample(
                &[("__name__", "metric_without_timestamp_and_labels")],
                12.47,
                None
            ),
            sample(
                &[("__name__", "rpc_duration_seconds"), ("quantile", "0.01")],
                3102.0,
                None
            ),
            sample(
                &[("__name__", "rpc_duration_seconds_sum")],
                1.756_047_3e7,
                None
            ),
            sample(&[("__name__", "rpc_duration_seconds_count")], 2693.0, None),
            sample(&[("__name__", "untyped_metric")], 1.0, None),
        ]
    );
}

#[test]
fn text_escapes_in_label_values() {
    let got = text(
        "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n",
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels.get("path"), Some("C:\\DIR\\FILE.TXT"));
    assert_eq!(
        got[0].labels.get("error"),
        Some("Cannot find file:\n\"FILE.TXT\"")
    );
    assert_eq!(got[0].value, 1.458_255_915e9);
}

#[test]
fn unknown_escapes_are_kept_verbatim_as_prometheus_does() {
    // Prometheus 2.42 ingests `a{x="a\tb"}` with the value backslash-t.
    let body = "a{x=\"a\\tb\",y=\"\\\\n\",z=\"\\é\"} 1\n";
    let got = text(body);
    assert_eq!(got[0].labels.get("x"), Some("a\\tb"));
    assert_eq!(got[0].labels.get("y"), Some("\\n"));
    assert_eq!(got[0].labels.get("z"), Some("\\é"));
    let got = om(&format!("{body}# EOF\n"));
    assert_eq!(got[0].labels.get("x"), Some("a\\tb"));
}

#[test]
fn text_quirks_prometheus_accepts() {
    // Value glued to the name, and an empty value deleting a duplicate name.
    assert_eq!(
        text("foo-1\nbar+2\n"),
        vec![
            sample(&[("__name__", "foo")], -1.0, None),
            sample(&[("__name__", "bar")], 2.0, None),
        ]
    );
    assert_eq!(
        text("a{x=\"\",x=\"1\",y=\"2\"} 1\n"),
        vec![sample(&[("__name__", "a"), ("y", "2")], 1.0, None)]
    );
}

#[test]
fn text_label_values_may_span_lines_as_in_prometheus() {
    let got = text("a{x=\"one\ntwo\",y=\"z\"} 1\nb 2\n");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels.get("x"), Some("one\ntwo"));
    assert_eq!(got[1].labels.metric_name(), Some("b"));
    // Positions after such a value count the physical lines.
    let e = parse(b"ok 1\na{x=\"one\ntwo\"} nope\n", Format::Text004).expect_err("bad value");
    assert_eq!((e.line, e.column), (3, 7), "{e}");
    let e = parse(b"ok 1\na{x=\"one\ntwo\"} 1\nc x\n", Format::Text004).expect_err("bad value");
    assert_eq!((e.line, e.column), (4, 3), "{e}");
    // OpenMetrics does not allow it.
    assert!(parse(b"a{x=\"one\ntwo\"} 1\n# EOF\n", Format::OpenMetrics).is_err());
}

#[test]
fn text_help_takes_any_text_and_nul_ends_the_body() {
    // Prometheus accepts junk after a HELP name, and reads NUL at a line
    // start as the end of input.
    assert_eq!(text("# HELP a-b text\n# HELP c\na 1\n").len(), 1);
    assert_eq!(text("a 1\n  \0b 2\nc 3\n").len(), 1);
}

#[test]
fn text_special_values() {
    let got = text("a NaN\nb +Inf\nc -Inf\nd Inf\ne 1e-07\nf -0\ng .5\nh nan\n");
    assert!(got[0].value.is_nan());
    assert_eq!(got[1].value, f64::INFINITY);
    assert_eq!(got[2].value, f64::NEG_INFINITY);
    assert_eq!(got[3].value, f64::INFINITY);
    assert_eq!(got[4].value, 1e-7);
    assert!(got[5].value == 0.0 && got[5].value.is_sign_negative());
    assert_eq!(got[6].value, 0.5);
    assert!(got[7].value.is_nan());
}

#[test]
fn text_whitespace_tolerance_and_missing_final_newline() {
    // Each of these was checked against a Prometheus 2.42 scrape.
    let body = "  # TYPE a gauge\na { x = \"1\" , y=\"2\", } 1 \t\n   \nb\t2  123  \n\t\nc{}3\nd{x=\"1\"}4";
    let got = text(body);
    assert_eq!(
        got,
        vec![
            sample(&[("__name__", "a"), ("x", "1"), ("y", "2")], 1.0, None),
            sample(&[("__name__", "b")], 2.0, Some(123)),
            sample(&[("__name__", "c")], 3.0, None),
            sample(&[("__name__", "d"), ("x", "1")], 4.0, None),
        ]
    );
}

#[test]
fn text_names_with_colons_and_empty_label_values_dropped() {
    let got = text("job:http_requests:rate5m{a=\"\",b=\"x\"} 5\n");
    assert_eq!(
        got,
        vec![sample(
            &[("__name__", "job:http_requests:rate5m"), ("b", "x")],
            5.0,
            None
        )]
    );
}

#[test]
fn text_labels_without_commas_as_prometheus_accepts() {
    let got = text("m{a=\"1\" b=\"2\"} 1\n");
    assert_eq!(
        got[0].labels,
        labels(&[("__name__", "m"), ("a", "1"), ("b", "2")])
    );
}

#[test]
fn text_every_type_accepted() {
    for ty in ["counter", "gauge", "histogram", "summary", "untyped"] {
        assert!(text(&format!("# TYPE m {ty}\nm 1\n")).len() == 1);
    }
    // OpenMetrics-only types are not text 0.0.4 types.
    assert!(parse(b"# TYPE m stateset\nm 1\n", Format::Text004).is_err());
}

#[test]
fn text_empty_body_is_no_samples() {
    assert!(text("").is_empty());
    assert!(text("\n\n# just comments\n").is_empty());
}

#[test]
fn text_utf8_label_values() {
    let got = text("m{city=\"Zürich\",emoji=\"🦀\"} 1\n");
    assert_eq!(got[0].labels.get("city"), Some("Zürich"));
    assert_eq!(got[0].labels.get("emoji"), Some("🦀"));
}

#[test]
fn content_type_selects_format() {
    assert_eq!(
        Format::from_content_type(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type(Some("Application/OpenMetrics-Text")),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type(Some("text/plain; version=0.0.4")),
        Format::Text004
    );
    assert_eq!(Format::from_content_type(None), Format::Text004);
    assert_eq!(
        Format::from_content_type(Some("text/plain; x=application/openmetrics-text")),
        Format::Text004
    );
    assert_eq!(
        Format::from_content_type(Some(" application/openmetrics-text ;version=0.0.1")),
        Format::OpenMetrics
    );
}

// ------------------------------------------------------------ OpenMetrics

#[test]
fn om_exemplars_with_and_without_timestamp() {
    let body = "# TYPE foo histogram\n\
                foo_bucket{le=\"0.01\"} 0\n\
                foo_bucket{le=\"0.1\"} 8 # {} 0.054\n\
                foo_bucket{le=\"1\"} 11 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
                foo_bucket{le=\"10\"} 17 # {trace_id=\"oHg5SJYRHA0\",span_id=\"a\"} 9.8 1520879607.789\n\
                foo_bucket{le=\"+Inf\"} 17 1520879607.8 # {trace_id=\"x\"} 0.5 1.6e9\n\
                foo_count 17\n\
                foo_sum 324789.3\n\
                foo_created 1520430000.123\n\
                # EOF\n";
    let got = om(body);
    assert_eq!(got.len(), 8);
    assert_eq!(got[0].exemplar, None);
    let e1 = got[1].exemplar.as_ref().expect("exemplar on le=0.1");
    assert_eq!(
        (e1.labels.clone(), e1.value, e1.timestamp_ms),
        (Labels::empty(), 0.054, None)
    );
    let e2 = got[2].exemplar.as_ref().expect("exemplar on le=1");
    assert_eq!(e2.labels, labels(&[("trace_id", "KOO5S4vxi0o")]));
    assert_eq!(e2.value, 0.67);
    let e3 = got[3].exemplar.as_ref().expect("exemplar on le=10");
    assert_eq!(
        e3.labels,
        labels(&[("trace_id", "oHg5SJYRHA0"), ("span_id", "a")])
    );
    assert_eq!(e3.timestamp_ms, Some(1_520_879_607_789));
    assert_eq!(got[3].timestamp_ms, None);
    assert_eq!(got[4].timestamp_ms, Some(1_520_879_607_800));
    let e4 = got[4].exemplar.as_ref().expect("exemplar on +Inf");
    assert_eq!((e4.value, e4.timestamp_ms), (0.5, Some(1_600_000_000_000)));
    assert_eq!(got[4].labels.get("le"), Some("+Inf"));
    // The exemplar labels never leak into the series labels.
    assert_eq!(got[4].labels.get("trace_id"), None);
}

#[test]
fn om_duplicate_exemplar_labels_last_wins_as_prometheus_accepts_them() {
    let got = om("a_total 1 # {t=\"x\",t=\"y\"} 1\n# EOF\n");
    let e = got[0].exemplar.as_ref().expect("exemplar");
    assert_eq!(e.labels, labels(&[("t", "y")]));
}

#[test]
fn om_created_total_and_gcount_are_their_own_series() {
    let body = "# TYPE req counter\n\
                # HELP req Requests.\n\
                req_total{path=\"/\"} 5\n\
                req_created{path=\"/\"} 1.6e9\n\
                # TYPE q gaugehistogram\n\
                q_bucket{le=\"+Inf\"} 3\n\
                q_gcount 3\n\
                q_gsum 9\n\
                # TYPE s stateset\n\
                s{s=\"a\"} 1\n\
                s{s=\"b\"} 0\n\
                # TYPE b info\n\
                b_info{version=\"1.2\"} 1\n\
                # TYPE u unknown\n\
                u 7\n\
                # EOF\n";
    let names: Vec<String> = om(body)
        .iter()
        .map(|s| s.labels.metric_name().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "req_total",
            "req_created",
            "q_bucket",
            "q_gcount",
            "q_gsum",
            "s",
            "s",
            "b_info",
            "u"
        ]
    );
    let got = om(body);
    assert_eq!(got[1].value, 1.6e9);
    assert_eq!(got[1].labels.get("path"), Some("/"));
}

#[test]
fn om_timestamps_are_float_seconds() {
    let got = om("a 1 1520879607.789\nb 2 -1.5\nc 3 1.6e9\nd 4 12\ne 5 0.0005\n# EOF\n");
    let ts: Vec<_> = got.iter().map(|s| s.timestamp_ms).collect();
    assert_eq!(
        ts,
        [
            Some(1_520_879_607_789),
            Some(-1500),
            Some(1_600_000_000_000),
            Some(12_000),
            Some(0)
        ]
    );
}

#[test]
fn om_eof_rules() {
    assert!(om("# EOF\n").is_empty());
    assert!(om("# EOF").is_empty());
    let e = parse(b"a 1\n", Format::OpenMetrics).expect_err("missing EOF");
    assert_eq!((e.line, e.column), (2, 1));
    assert!(e.message.contains("missing # EOF"), "{e}");
    let e = parse(b"a 1", Format::OpenMetrics).expect_err("missing EOF");
    assert_eq!((e.line, e.column), (1, 4));
    let e = parse(b"", Format::OpenMetrics).expect_err("empty body");
    assert_eq!((e.line, e.column), (1, 1));
    let e = parse(b"# EOF\n\n", Format::OpenMetrics).expect_err("blank after EOF");
    assert_eq!((e.line, e.column), (2, 1));
    assert!(e.message.contains("after # EOF"), "{e}");
    // In text format `# EOF` is only a comment.
    assert_eq!(text("# EOF\na 1\n").len(), 1);
}

#[test]
fn om_unit_must_be_a_suffix() {
    assert!(om("# UNIT req_seconds seconds\n# UNIT x \n# EOF\n").is_empty());
    let e = parse(b"# UNIT req_bytes seconds\n# EOF\n", Format::OpenMetrics)
        .expect_err("unit not a suffix");
    assert_eq!((e.line, e.column), (1, 18));
    assert!(e.message.contains("not a suffix"), "{e}");
}

#[test]
fn om_is_strict_about_whitespace() {
    for body in [
        "a  1\n# EOF\n",
        "a 1 \n# EOF\n",
        "a{x=\"1\", y=\"2\"} 1\n# EOF\n",
        "a{x=\"1\",} 1\n# EOF\n",
        " a 1\n# EOF\n",
        "a\t1\n# EOF\n",
        "a 1\r\n# EOF\r\n",
        "\n# EOF\n",
        "# a free comment\n# EOF\n",
    ] {
        assert!(
            parse(body.as_bytes(), Format::OpenMetrics).is_err(),
            "accepted {body:?}"
        );
        // ... while the text parser is lenient about most of them.
    }
    assert!(parse(b"a{x=\"1\", y=\"2\"} 1\n", Format::Text004).is_ok());
}

// ------------------------------------------------------------ malformed table

/// (format, body, line, column, message fragment)
#[rustfmt::skip]
const MALFORMED: &[(Format, &[u8], usize, usize, &str)] = &[
    (Format::Text004, b"a{b=\"1\" 1\n", 1, 9, "expected label name"),
    (Format::Text004, b"a{b=\"1\"\n", 1, 8, "unterminated label set"),
    (Format::Text004, b"a{b=\"unterminated} 1\n", 1, 5, "unterminated label value"),
    (Format::Text004, b"ok 1\na{b=\"x\\\n\"} 1\n", 2, 7, "bad escape"),
    (Format::Text004, b"a{b=\"x\\\"} 1\n", 1, 5, "unterminated label value"),
    (Format::Text004, b"a{b:c=\"1\"} 1\n", 1, 4, "expected '='"),
    (Format::Text004, b"a{b=1} 1\n", 1, 5, "expected '\"'"),
    (Format::Text004, b"a{1b=\"1\"} 1\n", 1, 3, "expected label name"),
    (Format::Text004, b"a{,b=\"1\"} 1\n", 1, 3, "expected label name"),
    (Format::Text004, b"a{b=\"1\",,c=\"2\"} 1\n", 1, 9, "expected label name"),
    (Format::Text004, b"a 0x1F\n", 1, 3, "not a valid float"),
    (Format::Text004, b"a 1_000\n", 1, 3, "not a valid float"),
    (Format::Text004, b"a one\n", 1, 3, "not a valid float"),
    (Format::Text004, b"a +NaN\n", 1, 3, "not a valid float"),
    (Format::Text004, b"a 1e999\n", 1, 3, "out of range"),
    (Format::Text004, b"a\n", 1, 2, "expected value"),
    (Format::Text004, b"a{b=\"1\"}\n", 1, 9, "expected value"),
    (Format::Text004, b"a 1 1.5\n", 1, 5, "timestamp"),
    (Format::Text004, b"a 1 -5\n", 1, 5, "timestamp"),
    (Format::Text004, b"a 1 99999999999999999999\n", 1, 5, "out of range"),
    (Format::Text004, b"a 1 2 3\n", 1, 7, "after timestamp"),
    (Format::Text004, b"a 1 # {t=\"x\"} 1\n", 1, 5, "only allowed in OpenMetrics"),
    (Format::Text004, b"a{b=\"1\",b=\"2\"} 1\n", 1, 9, "duplicate label name \"b\""),
    (Format::Text004, b"a{__name__=\"x\"} 1\n", 1, 3, "duplicate label name \"__name__\""),
    (Format::Text004, b"# TYPE a gauges\na 1\n", 1, 10, "invalid metric type"),
    (Format::Text004, b"# TYPE a\n", 1, 9, "invalid metric type"),
    (Format::Text004, b"# TYPE a  gauge\n", 1, 10, "invalid metric type \" gauge\""),
    (Format::Text004, b"# TYPE a gauge \n", 1, 10, "invalid metric type \"gauge \""),
    (Format::Text004, b"# TYPE a unknown\n", 1, 10, "invalid metric type \"unknown\""),
    (Format::Text004, b"# TYPE 1a gauge\n", 1, 8, "invalid metric name"),
    (Format::Text004, b"# HELP a \xff\n", 1, 10, "HELP text is not valid UTF-8"),
    (Format::Text004, b"1abc 1\n", 1, 1, "cannot start a metric name"),
    (Format::Text004, b"{a=\"b\"} 1\n", 1, 1, "cannot start a metric name"),
    (Format::Text004, b"  a 1\n", 1, 1, "whitespace before the metric name"),
    (Format::Text004, b"http-requests 1\n", 1, 5, "invalid character '-'"),
    (Format::Text004, b"a{b=\"\xff\"} 1\n", 1, 6, "not valid UTF-8"),
    (Format::Text004, b"ok 1\n\na{b=\"1\"} 1 2 x\n", 3, 14, "after timestamp"),
    (Format::Text004, b"a 1\r\n", 1, 3, "CRLF line endings are not accepted"),
    (Format::Text004, b"a 1\n\r\n", 2, 1, "CRLF"),
    (Format::OpenMetrics, b"a 1\n", 2, 1, "missing # EOF"),
    (Format::OpenMetrics, b"a 1\n# EOF\nb 2\n", 3, 1, "after # EOF"),
    (Format::OpenMetrics, b"# EOF trailing\n", 1, 6, "after # EOF"),
    (Format::OpenMetrics, b"a_total 1 # {t=\"x\" 1\n# EOF\n", 1, 19, "expected ',' or '}'"),
    (Format::OpenMetrics, b"a_total 1 # {t=\"x\"}\n# EOF\n", 1, 20, "exemplar value"),
    (Format::OpenMetrics, b"a_total 1 # {t=\"x\"} abc\n# EOF\n", 1, 21, "exemplar value \"abc\""),
    (Format::OpenMetrics, b"a_total 1 # {t=\"x\"} 1 NaN\n# EOF\n", 1, 23, "must be finite"),
    (Format::OpenMetrics, b"a_total 1 # {t=\"x\"} 1 2 3\n# EOF\n", 1, 24, "after the exemplar timestamp"),
    (Format::OpenMetrics, b"a_bucket 1 #{t=\"x\"} 1\n# EOF\n", 1, 12, "timestamp \"#{t=\\\"x\\\"}\""),
    (Format::OpenMetrics, b"a 1 # {t=\"x\"} 1\n# EOF\n", 1, 5, "does not support exemplars"),
    (Format::OpenMetrics, b"a 1 1.5 x\n# EOF\n", 1, 9, "expected an exemplar"),
    (Format::OpenMetrics, b"a 1 +Inf\n# EOF\n", 1, 5, "timestamp \"+Inf\" must be finite"),
    (Format::OpenMetrics, b"a -NaN\n# EOF\n", 1, 3, "not a valid float"),
    (Format::OpenMetrics, b"a  1\n# EOF\n", 1, 3, "expected value"),
    (Format::OpenMetrics, b"a 1 \n# EOF\n", 1, 4, "trailing whitespace"),
    (Format::OpenMetrics, b" a 1\n# EOF\n", 1, 1, "cannot start a metric name"),
    (Format::OpenMetrics, b"a{x=\"1\",} 1\n# EOF\n", 1, 8, "trailing ','"),
    (Format::OpenMetrics, b"a{x=\"1\", y=\"2\"} 1\n# EOF\n", 1, 9, "expected label name"),
    (Format::OpenMetrics, b"a{x=\"1\" y=\"2\"} 1\n# EOF\n", 1, 8, "expected ',' or '}'"),
    (Format::OpenMetrics, b"# TYPE a untyped\n# EOF\n", 1, 10, "invalid metric type"),
    (Format::OpenMetrics, b"# TYPE a\n# EOF\n", 1, 9, "expected a space"),
    (Format::OpenMetrics, b"# HELP a\n# EOF\n", 1, 9, "expected a space"),
    (Format::OpenMetrics, b"# UNIT a_bytes seconds\n# EOF\n", 1, 16, "not a suffix"),
    (Format::OpenMetrics, b"# comment\n# EOF\n", 1, 1, "invalid comment"),
    (Format::OpenMetrics, b"a 1\n\n# EOF\n", 2, 1, "blank lines"),
    (Format::OpenMetrics, b"a 1 x\n# EOF\n", 1, 5, "timestamp \"x\""),
    (Format::OpenMetrics, b"a{b=\"x\\", 1, 7, "bad escape"),
    (Format::OpenMetrics, b"a_total 1\r\n# EOF\r\n", 1, 9, "CRLF"),
];

#[test]
fn malformed_inputs_report_line_and_column() {
    let mut failures = Vec::new();
    for (i, (format, body, line, column, fragment)) in MALFORMED.iter().enumerate() {
        let shown = String::from_utf8_lossy(body);
        match parse(body, *format) {
            Ok(s) => failures.push(format!("#{i} {shown:?}: parsed to {} samples", s.len())),
            Err(e) => {
                if (e.line, e.column) != (*line, *column) || !e.message.contains(fragment) {
                    failures.push(format!(
                        "#{i} {shown:?}: got {e}, want line {line}, column {column}: …{fragment}…"
                    ));
                }
            }
        }
    }
    assert!(MALFORMED.len() >= 20);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn error_display_names_line_and_column() {
    let e = parse(b"a 1\nb x\n", Format::Text004).expect_err("bad value");
    assert_eq!(
        e.to_string(),
        "line 2, column 3: value \"x\" is not a valid float (e.g. 1, -2.5e-3, NaN, +Inf)"
    );
}

// ------------------------------------------------------------ properties

proptest! {
    #[test]
    fn newline_search_matches_the_naive_one(s in prop::collection::vec(prop_oneof![Just(b'\n'), Just(0x8a_u8), Just(0x0b_u8), any::<u8>()], 0..40)) {
        prop_assert_eq!(super::parser::find_newline(&s), s.iter().position(|&b| b == b'\n'));
    }
}

fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,8}".prop_filter("reserved", |n| n != "__name__")
}

fn label_value() -> impl Strategy<Value = String> {
    // Escapable characters, non-ASCII and the odd '#', '{', '}' or ','.
    prop::collection::vec(
        prop_oneof![
            4 => "[a-z0-9 ._/:-]",
            1 => Just("\\".to_string()),
            1 => Just("\"".to_string()),
            1 => Just("\n".to_string()),
            1 => Just("é".to_string()),
            1 => "[#{},=]",
        ],
        0..8,
    )
    .prop_map(|v| v.concat())
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        2 => (-1000i64..1000).prop_map(|v| v as f64),
        2 => (0u32..100_000).prop_map(|v| f64::from(v) / 1000.0),
    ]
}

fn timestamp() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        Just(None),
        (0i64..4_000_000_000_000).prop_map(Some),
        any::<i64>().prop_map(|t| Some(t / 1000)),
    ]
}

fn label_set(extra: usize) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map(label_name(), label_value(), 0..extra)
        .prop_map(|m| m.into_iter().collect())
}

fn gen_sample(om: bool) -> impl Strategy<Value = ParsedSample> {
    let exemplar = if om {
        prop::option::of((label_set(3), float(), timestamp()))
            .prop_map(|e| {
                e.map(|(l, value, ts)| Exemplar {
                    labels: Labels::new(l),
                    value,
                    timestamp_ms: ts,
                })
            })
            .boxed()
    } else {
        Just(None).boxed()
    };
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        label_set(5),
        float(),
        if om {
            timestamp().boxed()
        } else {
            // Text 0.0.4 timestamps are unsigned integers.
            prop_oneof![Just(None), (0i64..i64::MAX).prop_map(Some)].boxed()
        },
        exemplar,
    )
        .prop_map(|(mut name, mut l, value, timestamp_ms, exemplar)| {
            if exemplar.is_some() {
                // Prometheus accepts exemplars only on these series.
                name.push_str(if value > 0.0 { "_total" } else { "_bucket" });
            }
            l.push(("__name__".to_string(), name));
            ParsedSample {
                labels: Labels::new(l),
                value,
                timestamp_ms,
                exemplar,
            }
        })
}

/// Equality with NaN equal to NaN and -0 distinct from +0 (bit-exact values).
fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn same(a: &ParsedSample, b: &ParsedSample) -> bool {
    let ex = match (&a.exemplar, &b.exemplar) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            x.labels == y.labels && same_value(x.value, y.value) && x.timestamp_ms == y.timestamp_ms
        }
        _ => false,
    };
    a.labels == b.labels && same_value(a.value, b.value) && a.timestamp_ms == b.timestamp_ms && ex
}

fn assert_round_trip(samples: &[ParsedSample], format: Format) -> Result<(), TestCaseError> {
    let body = render(samples, format);
    let back = parse(body.as_bytes(), format)
        .map_err(|e| TestCaseError::fail(format!("{e}\n---\n{body}")))?;
    prop_assert_eq!(back.len(), samples.len(), "{}", body);
    for (want, got) in samples.iter().zip(&back) {
        prop_assert!(
            same(want, got),
            "want {:?}\n got {:?}\n---\n{}",
            want,
            got,
            body
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn text_render_parse_round_trips(samples in prop::collection::vec(gen_sample(false), 0..20)) {
        assert_round_trip(&samples, Format::Text004)?;
    }

    #[test]
    fn openmetrics_render_parse_round_trips(samples in prop::collection::vec(gen_sample(true), 0..20)) {
        assert_round_trip(&samples, Format::OpenMetrics)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        for format in [Format::Text004, Format::OpenMetrics] {
            if let Err(e) = parse(&body, format) {
                // Positions always point into (or just past) the body.
                prop_assert!(e.line >= 1 && e.column >= 1);
                prop_assert!(e.line <= body.iter().filter(|&&b| b == b'\n').count() + 2);
            }
        }
    }

    #[test]
    fn mutated_valid_bodies_never_panic(
        samples in prop::collection::vec(gen_sample(true), 1..6),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        // Near-valid input reaches deeper into the grammar than random bytes do.
        for format in [Format::Text004, Format::OpenMetrics] {
            let mut body = render(&samples, format).into_bytes();
            for (at, byte, op) in &edits {
                if body.is_empty() {
                    break;
                }
                let i = at.index(body.len());
                match op {
                    0 => body[i] = *byte,
                    1 => { body.remove(i); }
                    _ => body.insert(i, *byte),
                }
            }
            let _ = parse(&body, format);
        }
    }
}
