//! `homeostat check`: the config and every rule file (those it names, or the
//! ones given), all errors at once.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::rule_files::{catalog_for, load_rule_files, load_rules};
use crate::config::{self, AgentConfig};
use crate::rules::Catalog;
use crate::spec::Diagnostic;

/// What a successful check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSummary {
    pub rule_files: usize,
    pub groups: usize,
    pub rules: usize,
    pub targets: usize,
}

impl std::fmt::Display for CheckSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "config ok: {} targets; {} rule files, {} groups, {} rules",
            self.targets, self.rule_files, self.groups, self.rules
        )
    }
}

/// Check a config file and the rule files it names, with the built-in
/// providers' capabilities.
pub fn check(config_path: &Path) -> Result<CheckSummary, Vec<Diagnostic>> {
    check_with(config_path, catalog_for)
}

/// Check the rule files `files` (instead of those the config names) against
/// the config's targets and sources, as `promtool check rules FILE…` does.
pub fn check_files(config_path: &Path, files: &[PathBuf]) -> Result<CheckSummary, Vec<Diagnostic>> {
    run(config_path, Some(files), catalog_for)
}

/// As [`check`], with another capability catalog (tests; future providers).
pub fn check_with(
    config_path: &Path,
    catalog: impl FnOnce(&AgentConfig) -> Catalog,
) -> Result<CheckSummary, Vec<Diagnostic>> {
    run(config_path, None, catalog)
}

fn run(
    config_path: &Path,
    files: Option<&[PathBuf]>,
    catalog: impl FnOnce(&AgentConfig) -> Catalog,
) -> Result<CheckSummary, Vec<Diagnostic>> {
    // Rules refer to targets and sources: without a valid config they cannot be checked.
    let cfg = config::load(config_path)?;
    let catalog = catalog(&cfg);
    let set = match files {
        Some(files) => load_rule_files(&cfg, &catalog, files)?,
        None => load_rules(&cfg, &catalog)?,
    };
    let files: BTreeSet<_> = set.groups.iter().map(|g| g.file.clone()).collect();
    Ok(CheckSummary {
        rule_files: files.len(),
        groups: set.groups.len(),
        rules: set.rules().count(),
        targets: cfg.targets.len(),
    })
}
