//! Corpus test for the exposition parser: every `*.prom` in the shared corpus
//! must yield exactly the samples Prometheus 2.42 ingested from it
//! (`*.expected.json`), after adding the `job`/`instance` labels the scraper adds.
//!
//! The corpus lives in `$CARGO_MANIFEST_DIR/../shared/corpus/exposition` (CI
//! clones `shared/` beside the repository). `HOMEOSTAT_CORPUS_DIR` overrides the
//! location, e.g. when working from a nested git worktree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use homeostat::exposition::{parse, Format};
use homeostat::model::Labels;

fn corpus_dir() -> PathBuf {
    match std::env::var_os("HOMEOSTAT_CORPUS_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/exposition"),
    }
}

#[derive(serde::Deserialize)]
struct Expected {
    samples: Vec<ExpectedSample>,
}

#[derive(serde::Deserialize)]
struct ExpectedSample {
    labels: BTreeMap<String, String>,
    value: String,
}

fn parse_expected_value(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s
            .parse()
            .unwrap_or_else(|e| panic!("expected value {s:?} is not a float: {e}")),
    }
}

/// Values keyed by series; a series may legitimately appear more than once.
type Multiset = BTreeMap<Labels, Vec<f64>>;

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

/// Returns a human-readable description of the first differences, if any.
fn diff(expected: &Multiset, got: &Multiset) -> Vec<String> {
    let mut out = Vec::new();
    let keys: BTreeSet<&Labels> = expected.keys().chain(got.keys()).collect();
    for k in keys {
        let mut want = expected.get(k).cloned().unwrap_or_default();
        let mut have = got.get(k).cloned().unwrap_or_default();
        // Drop values present on both sides; what is left differs.
        want.retain(|w| match have.iter().position(|h| same_value(*h, *w)) {
            Some(p) => {
                have.remove(p);
                false
            }
            None => true,
        });
        if !want.is_empty() || !have.is_empty() {
            out.push(format!(
                "  {k}\n      expected values {want:?}\n      parsed values   {have:?}"
            ));
        }
    }
    out
}

fn check_file(prom: &Path) -> Result<usize, String> {
    let expected_path = prom.with_extension("expected.json");
    let body = std::fs::read(prom).map_err(|e| format!("{}: {e}", prom.display()))?;
    let expected: Expected = serde_json::from_slice(
        &std::fs::read(&expected_path).map_err(|e| format!("{}: {e}", expected_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", expected_path.display()))?;

    let parsed = parse(&body, Format::Text004).map_err(|e| format!("{}: {e}", prom.display()))?;

    // The scraper's job/instance: the values in the expected file that the
    // exposition itself does not carry (honor_labels keeps the file's own).
    let mut added = Vec::new();
    for name in ["job", "instance"] {
        let own: BTreeSet<&str> = parsed.iter().filter_map(|s| s.labels.get(name)).collect();
        let scraper: BTreeSet<&str> = expected
            .samples
            .iter()
            .filter_map(|s| s.labels.get(name).map(String::as_str))
            .filter(|v| !own.contains(v))
            .collect();
        match scraper.len() {
            0 => {}
            1 => added.extend(scraper.into_iter().map(|v| (name, v.to_string()))),
            _ => {
                return Err(format!(
                    "{name}: several scraper values {scraper:?} in expected file"
                ))
            }
        }
    }

    let mut got: Multiset = BTreeMap::new();
    for s in &parsed {
        let mut labels = s.labels.clone();
        for (name, value) in &added {
            if labels.get(name).is_none() {
                labels.set(name, value);
            }
        }
        got.entry(labels).or_default().push(s.value);
    }
    let mut want: Multiset = BTreeMap::new();
    for s in &expected.samples {
        want.entry(Labels::new(s.labels.clone()))
            .or_default()
            .push(parse_expected_value(&s.value));
    }

    let differences = diff(&want, &got);
    if !differences.is_empty() || parsed.len() != expected.samples.len() {
        let shown: Vec<&str> = differences.iter().take(10).map(String::as_str).collect();
        return Err(format!(
            "{}: parsed {} samples, expected {}; {} series differ, first ones:\n{}",
            prom.display(),
            parsed.len(),
            expected.samples.len(),
            differences.len(),
            shown.join("\n")
        ));
    }
    Ok(parsed.len())
}

#[test]
fn corpus_files_parse_to_what_prometheus_ingested() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        let msg = format!(
            "corpus not found at {} (set HOMEOSTAT_CORPUS_DIR or clone shared/ beside the repo)",
            dir.display()
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "prom"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.prom files in {}", dir.display());

    let mut failures = Vec::new();
    for f in &files {
        match check_file(f) {
            Ok(n) => eprintln!("ok   {} ({n} samples)", f.display()),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn the_comparison_detects_a_changed_value() {
    // Guards the comparison itself: one differing value must be reported.
    let l = Labels::new([("__name__", "a")]);
    let want: Multiset = BTreeMap::from([(l.clone(), vec![1.0, f64::NAN])]);
    let same: Multiset = BTreeMap::from([(l.clone(), vec![f64::NAN, 1.0])]);
    let other: Multiset = BTreeMap::from([(l, vec![2.0, f64::NAN])]);
    assert!(diff(&want, &same).is_empty());
    assert_eq!(diff(&want, &other).len(), 1);
}
