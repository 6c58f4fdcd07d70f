//! `homeostat test`: rule unit tests in promtool's format, plus action tests.
//!
//! Owns reading test files ([`format`]), the expanding notation
//! ([`notation`]), running `promql_expr_test` cases on our evaluator the way
//! `promtool test rules` (2.42) runs them ([`promql`]), and simulating the rule
//! engine and guard over the input series for `action_tests` ([`simulate`]).
//! Must not read the clock, the network or a real audit log: time is the
//! simulated evaluation time, and the guard state is fed with the events a
//! real run would write.
//!
//! Where we differ from promtool 2.42 on purpose: floats compare with a
//! relative tolerance of 1e-6 and NaN equals NaN (as newer promtool does;
//! 2.42 compares exactly and never matches NaN); `alert_rule_test`,
//! `external_labels`, `external_url` and non-empty Prometheus `rule_files`
//! are rejected with an error instead of being run.
use std::path::{Path, PathBuf};

pub mod format;
pub mod notation;
pub mod promql;
pub mod simulate;
#[cfg(test)]
mod tests;

pub use notation::{expand, parse_labels, NotationError};

/// Why a test file could not be run at all (as opposed to a failing case).
#[derive(Debug, thiserror::Error)]
pub enum RuleTestError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {msg}")]
    Yaml { file: PathBuf, msg: String },
    #[error("{file}: test group {group}: {source}")]
    Notation {
        file: PathBuf,
        group: usize,
        #[source]
        source: NotationError,
    },
    #[error("{file}: {msg}")]
    Invalid { file: PathBuf, msg: String },
    #[error("{file}: rule files do not load:\n{}", .diagnostics.join("\n"))]
    Rules {
        file: PathBuf,
        diagnostics: Vec<String>,
    },
}

/// What one file's tests gave.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub file: PathBuf,
    /// Cases run (each `promql_expr_test`, each expected action or suppression,
    /// and one per simulation for unexpected actions).
    pub cases: usize,
    /// One readable message per failing case.
    pub failures: Vec<String>,
}

impl FileReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A promtool-only field is set to something (not null, not empty).
fn present(v: &serde_yaml::Value) -> bool {
    match v {
        serde_yaml::Value::Null => false,
        serde_yaml::Value::Sequence(s) => !s.is_empty(),
        serde_yaml::Value::Mapping(m) => !m.is_empty(),
        serde_yaml::Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// Read and run one test file.
pub fn run_file(path: &Path) -> Result<FileReport, RuleTestError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuleTestError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    run_str(path, &text)
}

/// Run a test file's text; `path` names it in messages and anchors its
/// relative `rule_files`.
pub fn run_str(path: &Path, text: &str) -> Result<FileReport, RuleTestError> {
    let file = path.to_path_buf();
    let raw: format::RawFile = serde_yaml::from_str(text).map_err(|e| RuleTestError::Yaml {
        file: file.clone(),
        msg: e.to_string(),
    })?;
    let invalid = |msg: String| RuleTestError::Invalid {
        file: file.clone(),
        msg,
    };
    let eval_interval_ms = match &raw.evaluation_interval {
        Some(s) => notation::duration_ms(s).map_err(|e| invalid(e.to_string()))?,
        None => 60_000,
    };
    if eval_interval_ms <= 0 {
        return Err(invalid("evaluation_interval must be positive".into()));
    }
    let homeostat_ext =
        !raw.targets.is_empty() || raw.tests.iter().any(|g| g.action_tests.is_some());
    if !raw.rule_files.is_empty() && !homeostat_ext {
        return Err(invalid(
            "rule_files names Prometheus rule files, which homeostat cannot run (it has no \
             recording or alerting rules); remediation rules are tested with `targets` and \
             `action_tests` (see docs/testing-rules.md)"
                .into(),
        ));
    }
    let mut report = FileReport {
        file: file.clone(),
        ..FileReport::default()
    };
    let mut sim = None;
    if homeostat_ext {
        sim = Some(simulate::Setup::new(path, &raw).map_err(|e| match e {
            simulate::SetupError::Rules(d) => RuleTestError::Rules {
                file: file.clone(),
                diagnostics: d,
            },
            simulate::SetupError::Invalid(m) => invalid(m),
        })?);
    }
    for (gi, g) in raw.tests.iter().enumerate() {
        if g.alert_rule_test.as_ref().is_some_and(present) {
            return Err(invalid(format!(
                "test group {gi}: alert_rule_test is not supported (homeostat has no Prometheus \
                 alert rules); use action_tests for remediation rules"
            )));
        }
        if g.external_labels.as_ref().is_some_and(present)
            || g.external_url.as_ref().is_some_and(present)
        {
            return Err(invalid(format!(
                "test group {gi}: external_labels / external_url are not supported"
            )));
        }
        let group =
            promql::Group::new(g, eval_interval_ms).map_err(|source| RuleTestError::Notation {
                file: file.clone(),
                group: gi,
                source,
            })?;
        let name = g
            .name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let prefix = format!("{}: test group {gi}{name}", file.display());
        for case in &g.promql_expr_test {
            report.cases += 1;
            if let Err(msg) = group.run_case(case, eval_interval_ms) {
                report.failures.push(format!("{prefix}: {msg}"));
            }
        }
        if let Some(at) = &g.action_tests {
            let Some(setup) = &sim else {
                return Err(invalid("action_tests need `targets`".into()));
            };
            let (n, failures) = setup
                .run(&group, at)
                .map_err(|m| invalid(format!("test group {gi}: {m}")))?;
            report.cases += n;
            report
                .failures
                .extend(failures.into_iter().map(|m| format!("{prefix}: {m}")));
        }
    }
    Ok(report)
}

/// `homeostat test FILE...`: run every file, print one block per file
/// (promtool-like: `SUCCESS`, or `FAILED:` and each failure), and return
/// whether everything passed.
pub fn run_cli(files: &[PathBuf], out: &mut impl std::io::Write) -> bool {
    let mut ok = true;
    for f in files {
        let _ = writeln!(out, "Unit Testing:  {}", f.display());
        match run_file(f) {
            Ok(r) if r.passed() => {
                let _ = writeln!(out, "  SUCCESS ({} cases)\n", r.cases);
            }
            Ok(r) => {
                ok = false;
                let _ = writeln!(out, "  FAILED: {} of {} cases", r.failures.len(), r.cases);
                for m in &r.failures {
                    let _ = writeln!(out, "    {}", m.replace('\n', "\n    "));
                }
                let _ = writeln!(out);
            }
            Err(e) => {
                ok = false;
                let _ = writeln!(out, "  FAILED:\n    {e}\n");
            }
        }
    }
    ok
}
