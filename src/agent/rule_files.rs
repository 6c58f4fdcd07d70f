//! The rules an agent config names, loaded in the context that config gives:
//! its targets (and the kinds their providers support), its sources and its
//! scrape interval. The rule module loads files; this says which, and for what.
use std::path::PathBuf;

use crate::config::AgentConfig;
use crate::rules::{load_files, Catalog, LoadContext, RuleSet};
use crate::spec::Diagnostic;

/// The capability catalog for the targets of an agent config.
pub fn catalog_for(cfg: &AgentConfig) -> Catalog {
    cfg.targets
        .iter()
        .map(|(name, t)| (name.clone(), t.provider.kinds()))
        .collect()
}

/// What rule loading needs from the agent config.
pub fn load_context<'a>(cfg: &AgentConfig, catalog: &'a Catalog) -> LoadContext<'a> {
    LoadContext {
        catalog,
        sources: cfg.sources.keys().cloned().collect(),
        default_interval: cfg.scrape.interval,
    }
}

/// Load every rule file the config names. A pattern matching no file is an
/// error in the config file (a typo there would otherwise silently load nothing).
pub fn load_rules(cfg: &AgentConfig, catalog: &Catalog) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut files = Vec::new();
    for p in &cfg.rule_files {
        match p.expand() {
            Ok(list) if list.is_empty() => diags.push(Diagnostic {
                file: cfg.path.clone(),
                line: p.line,
                column: p.column,
                message: format!("rule_files: {:?} matches no files", p.written),
            }),
            Ok(list) => files.extend(list),
            Err(e) => diags.push(Diagnostic {
                file: cfg.path.clone(),
                line: p.line,
                column: p.column,
                message: e,
            }),
        }
    }
    files.dedup();
    match load_rule_files(cfg, catalog, &files) {
        Ok(set) if diags.is_empty() => Ok(set),
        Ok(_) => Err(diags),
        Err(more) => {
            diags.extend(more);
            Err(diags)
        }
    }
}

/// Load the given rule files against the config's targets and sources.
pub fn load_rule_files(
    cfg: &AgentConfig,
    catalog: &Catalog,
    files: &[PathBuf],
) -> Result<RuleSet, Vec<Diagnostic>> {
    load_files(files, &load_context(cfg, catalog))
}
