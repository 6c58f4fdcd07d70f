//! What a real Prometheus 2.42.0 scrape (honor_labels: true) did with 107
//! small bodies, probing the edges of both formats: accepted with these
//! samples (labels without job/instance, values as Prometheus printed them),
//! or failed the scrape (`None`, its error in the comment). The parser must
//! agree on every one. Recorded by serving each body to a local Prometheus
//! 2.42.0 and reading the TSDB back through its query API.

use super::*;

/// (probe, format, body, samples Prometheus stored or None if the scrape failed)
type Verdict = (
    &'static str,
    Format,
    &'static [u8],
    Option<&'static [(&'static [(&'static str, &'static str)], &'static str)]>,
);

#[rustfmt::skip]
const VERDICTS: &[Verdict] = &[
    ("bigexp", Format::Text004, b"a 1e400\n", None),  // strconv.ParseFloat: parsing "1e400": value out of range
    ("blank_ws_line", Format::Text004, b"a 1\n   \nb 2\n", Some(&[(&[("__name__", "a")], "1"), (&[("__name__", "b")], "2")])),
    ("bs_eol", Format::Text004, b"a{x=\"a\\\n\"} 1\n", None),  // expected label value, got "INVALID"
    ("comment_badutf8", Format::Text004, b"# hello \xff\na 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("crlf", Format::Text004, b"a 1\r\nb{x=\"y\"} 2\r\n", None),  // strconv.ParseFloat: parsing "1\r": invalid syntax
    ("dashname", Format::Text004, b"a-b 1\n", None),  // strconv.ParseFloat: parsing "-b": invalid syntax
    ("duplabel", Format::Text004, b"a{x=\"1\",x=\"2\"} 1\n", None),  // label name "x" is not unique: invalid sample
    ("dupname", Format::Text004, b"a{__name__=\"b\"} 1\n", None),  // label name "__name__" is not unique: invalid sample
    ("emptylabelset", Format::Text004, b"a{} 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("emptyval", Format::Text004, b"a{x=\"\"} 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("exemplar_txt", Format::Text004, b"a 1 # {x=\"y\"} 1\n", None),  // expected timestamp or new record, got "INVALID"
    ("hashnospace", Format::Text004, b"#TYPE a foo\na 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("help_badutf8", Format::Text004, b"# HELP a \xff\na 1\n", None),  // help text is not a valid utf8 string
    ("help_name_dash", Format::Text004, b"# HELP a-b text\na 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("helpnotext", Format::Text004, b"# HELP a\na 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("helpnotext_sp", Format::Text004, b"# HELP a \na 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("hexvalue", Format::Text004, b"a 0x1p3\n", None),  // unsupported character in float
    ("infinity", Format::Text004, b"a Infinity\nb -inf\nc nan\n", Some(&[(&[("__name__", "a")], "+Inf"), (&[("__name__", "b")], "-Inf"), (&[("__name__", "c")], "NaN")])),
    ("label_colon", Format::Text004, b"a{x:y=\"1\"} 1\n", None),  // expected equal, got "INVALID"
    ("leadingws", Format::Text004, b"  a 1\n", None),  // invalid metric name or label names: {__name__="  a", instance="127.0.0
    ("lv_badutf8", Format::Text004, b"a{x=\"\xff\"} 1\n", None),  // invalid UTF-8 label value
    ("multiline_lv", Format::Text004, b"a{x=\"a\nb\"} 1\n", Some(&[(&[("__name__", "a"), ("x", "a\nb")], "1")])),
    ("nocomma", Format::Text004, b"a{x=\"1\" y=\"2\"} 1\n", Some(&[(&[("__name__", "a"), ("x", "1"), ("y", "2")], "1")])),
    ("nocomma_nospace", Format::Text004, b"a{x=\"1\"y=\"2\"} 1\n", Some(&[(&[("__name__", "a"), ("x", "1"), ("y", "2")], "1")])),
    ("nofinalnl", Format::Text004, b"a 1\nb 2", Some(&[(&[("__name__", "a")], "1"), (&[("__name__", "b")], "2")])),
    ("nospacevalue", Format::Text004, b"a{x=\"1\"}1\n", Some(&[(&[("__name__", "a"), ("x", "1")], "1")])),
    ("nul", Format::Text004, b"a 1\n\x00garbage\n", Some(&[(&[("__name__", "a")], "1")])),
    ("nul_mid", Format::Text004, b"a 1\n  \x00b 2\nc 3\n", Some(&[(&[("__name__", "a")], "1")])),
    ("om_after_eof", Format::OpenMetrics, b"a 1\n# EOF\nb 2\n", None),  // unexpected data after # EOF
    ("om_bigexp", Format::OpenMetrics, b"a 1e400\n# EOF\n", None),  // strconv.ParseFloat: parsing "1e400": value out of range
    ("om_blank", Format::OpenMetrics, b"a 1\n\n# EOF\n", None),  // "INVALID" "\n" is not a valid start token
    ("om_comment", Format::OpenMetrics, b"# hello\na 1\n# EOF\n", None),  // "INVALID" "h" is not a valid start token
    ("om_created_only", Format::OpenMetrics, b"# TYPE a counter\na_created 1\n# EOF\n", Some(&[(&[("__name__", "a_created")], "1")])),
    ("om_crlf", Format::OpenMetrics, b"a 1\r\n# EOF\r\n", None),  // strconv.ParseFloat: parsing "1\r": invalid syntax
    ("om_dup", Format::OpenMetrics, b"a{x=\"1\",x=\"2\"} 1\n# EOF\n", None),  // label name "x" is not unique: invalid sample
    ("om_empty", Format::OpenMetrics, b"", None),  // data does not end with # EOF
    ("om_empty_labels", Format::OpenMetrics, b"a{} 1\n# EOF\n", Some(&[(&[("__name__", "a")], "1")])),
    ("om_eof_nonl", Format::OpenMetrics, b"a 1\n# EOF", Some(&[(&[("__name__", "a")], "1")])),
    ("om_eof_only", Format::OpenMetrics, b"# EOF\n", Some(&[])),
    ("om_eof_space", Format::OpenMetrics, b"a 1\n# EOF \n", None),  // unexpected data after # EOF
    ("om_ex_after_ts_no_space", Format::OpenMetrics, b"a_total 1 1795406747# {} 1\n# EOF\n", None),  // strconv.ParseFloat: parsing "1795406747#": invalid syntax
    ("om_ex_dup", Format::OpenMetrics, b"a_total 1 # {t=\"x\",t=\"y\"} 1\n# EOF\n", Some(&[(&[("__name__", "a_total")], "1")])),
    ("om_ex_empty", Format::OpenMetrics, b"a 1 # {} 1\n# EOF\n", None),  // metric name a does not support exemplars
    ("om_ex_emptylabels", Format::OpenMetrics, b"a_total 1 # {} 1\n# EOF\n", Some(&[(&[("__name__", "a_total")], "1")])),
    ("om_ex_notsbad", Format::OpenMetrics, b"a 1 # {t=\"x\"} 1 NaN\n# EOF\n", None),  // metric name a does not support exemplars
    ("om_ex_space", Format::OpenMetrics, b"a_total 1 # {t=\"x\"}  1\n# EOF\n", None),  // expected value after exemplar labels, got "INVALID"
    ("om_ex_ts", Format::OpenMetrics, b"a_bucket{le=\"1\"} 1 1795406747.5 # {t=\"x\"} 0.5 1795406747.25\n# EOF\n", Some(&[(&[("__name__", "a_bucket"), ("le", "1")], "1")])),
    ("om_exemplar", Format::OpenMetrics, b"a_bucket{le=\"1\"} 1 # {t=\"x\"} 0.5 1.6e9\n# EOF\n", Some(&[(&[("__name__", "a_bucket"), ("le", "1")], "1")])),
    ("om_exemplar_name_label", Format::OpenMetrics, b"a_total 1 # {__name__=\"x\"} 1\n# EOF\n", Some(&[(&[("__name__", "a_total")], "1")])),
    ("om_exemplar_on_gauge", Format::OpenMetrics, b"# TYPE a gauge\na 1 # {t=\"x\"} 1\n# EOF\n", None),  // metric name a does not support exemplars
    ("om_gaugehist", Format::OpenMetrics, b"# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 1\na_gcount 1\na_gsum 2\n# EOF\n", Some(&[(&[("__name__", "a_bucket"), ("le", "+Inf")], "1"), (&[("__name__", "a_gcount")], "1"), (&[("__name__", "a_gsum")], "2")])),
    ("om_hash_nospace", Format::OpenMetrics, b"#TYPE a gauge\na 1\n# EOF\n", None),  // "INVALID" "T" is not a valid start token
    ("om_help_empty", Format::OpenMetrics, b"# HELP a \na 1\n# EOF\n", Some(&[(&[("__name__", "a")], "1")])),
    ("om_help_nosp", Format::OpenMetrics, b"# HELP a\na 1\n# EOF\n", None),  // expected text in HELP
    ("om_inf_val", Format::OpenMetrics, b"a +Inf\nb Infinity\n# EOF\n", Some(&[(&[("__name__", "a")], "+Inf"), (&[("__name__", "b")], "+Inf")])),
    ("om_leadingzero_ts", Format::OpenMetrics, b"a 1 01795406747\n# EOF\n", Some(&[(&[("__name__", "a")], "1")])),
    ("om_nanneg", Format::OpenMetrics, b"a -NaN\n# EOF\n", None),  // strconv.ParseFloat: parsing "-NaN": invalid syntax
    ("om_noeof", Format::OpenMetrics, b"a 1\n", None),  // data does not end with # EOF
    ("om_ok", Format::OpenMetrics, b"# TYPE a counter\na_total 1\na_created 1.6e9\n# EOF\n", Some(&[(&[("__name__", "a_created")], "1600000000"), (&[("__name__", "a_total")], "1")])),
    ("om_space_labels", Format::OpenMetrics, b"a{x=\"1\", y=\"2\"} 1\n# EOF\n", None),  // expected label name, got "INVALID"
    ("om_stateset", Format::OpenMetrics, b"# TYPE a stateset\na{a=\"x\"} 1\n# EOF\n", Some(&[(&[("__name__", "a"), ("a", "x")], "1")])),
    ("om_tab", Format::OpenMetrics, b"a{x=\"a\\tb\"} 1\n# EOF\n", Some(&[(&[("__name__", "a"), ("x", "a\\tb")], "1")])),
    ("om_trailing_comma", Format::OpenMetrics, b"a{x=\"1\",} 1\n# EOF\n", None),  // expected label name, got "BCLOSE"
    ("om_ts_nan", Format::OpenMetrics, b"a 1 NaN\n# EOF\n", None),  // invalid timestamp
    ("om_ts_trailing", Format::OpenMetrics, b"a 1 1795406747 \n# EOF\n", None),  // expected next entry after timestamp, got "INVALID"
    ("om_two_eof", Format::OpenMetrics, b"# EOF\n# EOF\n", None),  // unexpected data after # EOF
    ("om_type_trail", Format::OpenMetrics, b"# TYPE a gauge \na 1\n# EOF\n", None),  // invalid metric type "gauge "
    ("om_unit_bad", Format::OpenMetrics, b"# UNIT a_bytes seconds\na_bytes 1\n# EOF\n", None),  // unit not a suffix of metric "a_bytes"
    ("om_unit_ok", Format::OpenMetrics, b"# UNIT a_seconds seconds\na_seconds 1\n# EOF\n", Some(&[(&[("__name__", "a_seconds")], "1")])),
    ("om_untyped", Format::OpenMetrics, b"# TYPE a untyped\na 1\n# EOF\n", None),  // invalid metric type "untyped"
    ("om_value_nospace_brace", Format::OpenMetrics, b"a{x=\"1\"}1\n# EOF\n", None),  // expected value after metric, got "INVALID"
    ("om_ws_start", Format::OpenMetrics, b" a 1\n# EOF\n", None),  // "INVALID" " " is not a valid start token
    ("plusnan", Format::Text004, b"a +NaN\n", None),  // strconv.ParseFloat: parsing "+NaN": invalid syntax
    ("plusvalue", Format::Text004, b"foo+1\n", Some(&[(&[("__name__", "foo")], "1")])),
    ("spacebrace", Format::Text004, b"a {x=\"1\"} 1\n", Some(&[(&[("__name__", "a"), ("x", "1")], "1")])),
    ("tab_hash", Format::Text004, b"#\tTYPE a\tgauge\na 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("tabescape", Format::Text004, b"a{x=\"a\\tb\"} 1\n", Some(&[(&[("__name__", "a"), ("x", "a\\tb")], "1")])),
    ("tabsep", Format::Text004, b"a\t1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("trailingws", Format::Text004, b"a 1  \n", Some(&[(&[("__name__", "a")], "1")])),
    ("ts_om", Format::OpenMetrics, b"a 1 1795406747.789\nb 1 1795406747.1\nc 1 1795406747.005\n# EOF\n", Some(&[(&[("__name__", "a")], "1"), (&[("__name__", "b")], "1"), (&[("__name__", "c")], "1")])),
    ("ts_om_exp", Format::OpenMetrics, b"a 1 1.795406747e9\n# EOF\n", Some(&[(&[("__name__", "a")], "1")])),
    ("ts_txt", Format::Text004, b"a 1 1795406747123\n", Some(&[(&[("__name__", "a")], "1")])),
    ("txt_brace_twice", Format::Text004, b"a{x=\"1\"}{y=\"2\"} 1\n", None),  // expected value after metric, got "BOPEN"
    ("txt_cr_blank", Format::Text004, b"a 1\n\r\n", None),  // "INVALID" is not a valid start token
    ("txt_empty", Format::Text004, b"", Some(&[])),
    ("txt_escape_utf8", Format::Text004, b"a{x=\"\\\xc3\xa9\"} 1\n", Some(&[(&[("__name__", "a"), ("x", "\\é")], "1")])),
    ("txt_escapes", Format::Text004, b"a{x=\"q\\\"\\\\\\n\\\\n\"} 1\n", Some(&[(&[("__name__", "a"), ("x", "q\"\\\n\\n")], "1")])),
    ("txt_help_cr", Format::Text004, b"# HELP a x\r\na 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("txt_help_only", Format::Text004, b"# HELP a\n", Some(&[])),
    ("txt_label_dup_empty", Format::Text004, b"a{x=\"\",x=\"1\"} 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("txt_minusvalue", Format::Text004, b"foo-1\n", Some(&[(&[("__name__", "foo")], "-1")])),
    ("txt_only_nl", Format::Text004, b"\n\n", Some(&[])),
    ("txt_tab_type", Format::Text004, b"# TYPE a\tgauge\na 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("txt_ts_neg", Format::Text004, b"a 1 -1\n", None),  // expected timestamp or new record, got "INVALID"
    ("txt_ts_ws", Format::Text004, b"a 1 1795406747000 \n", Some(&[(&[("__name__", "a")], "1")])),
    ("txt_unicode_name", Format::Text004, b"\xc3\xa9 1\n", None),  // "INVALID" is not a valid start token
    ("txt_us_label", Format::Text004, b"a{_x=\"1\",__y=\"2\"} 1\n", Some(&[(&[("__name__", "a"), ("__y", "2"), ("_x", "1")], "1")])),
    ("txt_val_dot", Format::Text004, b"a .\n", None),  // strconv.ParseFloat: parsing ".": invalid syntax
    ("txt_val_lead_dot", Format::Text004, b"a .5e1\n", Some(&[(&[("__name__", "a")], "5")])),
    ("type2space", Format::Text004, b"# TYPE a  gauge\na 1\n", None),  // invalid metric type " gauge"
    ("type_after", Format::Text004, b"a 1\n# TYPE a gauge\n", Some(&[(&[("__name__", "a")], "1")])),
    ("type_twice", Format::Text004, b"# TYPE a gauge\n# TYPE a counter\na 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("typetrail", Format::Text004, b"# TYPE a gauge \na 1\n", None),  // invalid metric type "gauge "
    ("typeunknown", Format::Text004, b"# TYPE a unknown\na 1\n", None),  // invalid metric type "unknown"
    ("ws_before_badtype", Format::Text004, b"  # TYPE a gaugeX\na 1\n", None),  // invalid metric type "gaugeX"
    ("ws_before_hash", Format::Text004, b"  # TYPE a gauge\na 1\n", Some(&[(&[("__name__", "a")], "1")])),
    ("ws_eq", Format::Text004, b"a{ x = \"1\" , } 1\n", Some(&[(&[("__name__", "a"), ("x", "1")], "1")])),
];

fn prom_value(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or_else(|e| panic!("{s}: {e}")),
    }
}

#[test]
fn parser_agrees_with_prometheus_2_42_on_every_probe() {
    let mut failures = Vec::new();
    for (name, format, body, verdict) in VERDICTS {
        let got = parse(body, *format);
        match (verdict, got) {
            (None, Ok(s)) => {
                failures.push(format!("{name}: Prometheus rejected it, we parsed {s:?}"))
            }
            (None, Err(_)) => {}
            (Some(_), Err(e)) => {
                failures.push(format!("{name}: Prometheus accepted it, we failed: {e}"))
            }
            (Some(want), Ok(got)) => {
                let mut want: Vec<(Labels, f64)> = want
                    .iter()
                    .map(|(l, v)| (Labels::new(l.iter().copied()), prom_value(v)))
                    .collect();
                let mut got: Vec<(Labels, f64)> =
                    got.into_iter().map(|s| (s.labels, s.value)).collect();
                want.sort_by(|a, b| a.0.cmp(&b.0));
                got.sort_by(|a, b| a.0.cmp(&b.0));
                let same = want.len() == got.len()
                    && want
                        .iter()
                        .zip(&got)
                        .all(|(w, g)| w.0 == g.0 && ((w.1.is_nan() && g.1.is_nan()) || w.1 == g.1));
                if !same {
                    failures.push(format!(
                        "{name}: Prometheus stored {want:?}, we parsed {got:?}"
                    ));
                }
            }
        }
    }
    assert!(VERDICTS.len() >= 100);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
