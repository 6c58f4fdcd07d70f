//! Loading rule files in a given context: YAML → validated [`RuleSet`], every
//! error in every file at once, each with file:line:column.
//!
//! The context ([`LoadContext`]: targets and the kinds their providers
//! support, source names, the default interval) comes from the caller; this
//! module does not read the agent config. A node with a structural error
//! (unknown field, wrong type) is still checked for everything else, so one
//! typo does not hide the next problem.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::action::{self, known, Catalog};
use super::raw::*;
use super::rule::{Rule, RuleGroup, RuleQuery, RuleSet, Trigger};
use super::template::Template;
use super::when;
use crate::model::is_label_name;
use crate::spec::{parse_duration, Diagnostic, Extracted, Naming, SourceFile, YPath};

/// What rule loading needs to know about the agent it loads for.
pub struct LoadContext<'a> {
    /// Target → kinds its provider supports; also the set of known targets.
    pub catalog: &'a Catalog,
    /// Names under `sources:`.
    pub sources: BTreeSet<String>,
    /// Group interval when a group sets none.
    pub default_interval: Duration,
}

/// Load the given rule files.
pub fn load_files(files: &[PathBuf], ctx: &LoadContext<'_>) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut loader = Loader::new(ctx);
    let mut set = RuleSet::default();
    for f in files {
        match SourceFile::read(f) {
            Ok(src) => set.groups.extend(loader.file(src)),
            Err(d) => loader.diags.push(d),
        }
    }
    loader.finish(set)
}

/// Load rules from text (tests, `POST /-/reload` previews).
pub fn load_str(
    path: &Path,
    text: &str,
    ctx: &LoadContext<'_>,
) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut loader = Loader::new(ctx);
    let groups = loader.file(SourceFile::new(path, text));
    loader.finish(RuleSet { groups })
}

struct Loader<'a> {
    ctx: &'a LoadContext<'a>,
    /// Rule name → where first defined (for duplicates across files).
    rule_names: BTreeMap<String, String>,
    group_names: BTreeMap<String, String>,
    diags: Vec<Diagnostic>,
}

impl<'a> Loader<'a> {
    fn new(ctx: &'a LoadContext<'a>) -> Self {
        Loader {
            ctx,
            rule_names: BTreeMap::new(),
            group_names: BTreeMap::new(),
            diags: Vec::new(),
        }
    }

    fn finish(self, set: RuleSet) -> Result<RuleSet, Vec<Diagnostic>> {
        if self.diags.is_empty() {
            return Ok(set);
        }
        let mut d = self.diags;
        d.sort();
        d.dedup();
        Err(d)
    }

    fn file(&mut self, mut src: SourceFile) -> Vec<RuleGroup> {
        let groups = self.file_groups(&mut src);
        self.diags.append(&mut src.diags);
        groups
    }

    fn file_groups(&mut self, src: &mut SourceFile) -> Vec<RuleGroup> {
        let root = YPath::root();
        let doc: Value = match serde_yaml::from_str(&src.text) {
            Ok(v) => v,
            Err(e) => {
                src.yaml_error(&e, &root, "");
                return Vec::new();
            }
        };
        if doc.is_null() {
            return Vec::new(); // an empty rule file is allowed
        }
        let top = Naming { what: "", base: "" };
        let Some(file) = src
            .extract_all::<RawRuleFile>(&doc, &root, top, |_, _, _| {})
            .value
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for gi in 0..file.groups.len() {
            let gp = root.key("groups").idx(gi);
            if let Some(g) = self.group(src, &doc, &gp, gi) {
                out.push(g);
            }
        }
        out
    }

    fn group(
        &mut self,
        src: &mut SourceFile,
        doc: &Value,
        gp: &YPath,
        gi: usize,
    ) -> Option<RuleGroup> {
        let what = match name_at(doc, gp) {
            Some(name) => format!("group {name:?}"),
            None => format!("groups[{gi}]"),
        };
        let naming = Naming {
            what: &what,
            base: "",
        };
        let g = src
            .extract_all::<RawGroup>(doc, gp, naming, |_, _, _| {})
            .value?;
        let here = position(src, &gp.key("name"));
        if let Some(first) = self.group_names.get(&g.name) {
            src.error(
                &gp.key("name"),
                format!(
                    "group {:?}: duplicate group name (first defined at {first})",
                    g.name
                ),
            );
        } else {
            self.group_names.insert(g.name.clone(), here);
        }
        let interval = match &g.interval {
            None => self.ctx.default_interval,
            Some(s) => match parse_duration(s) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    src.error(
                        &gp.key("interval"),
                        format!("group {:?}: interval must be > 0s", g.name),
                    );
                    self.ctx.default_interval
                }
                Err(e) => {
                    src.error(
                        &gp.key("interval"),
                        format!("group {:?}: interval: {e}", g.name),
                    );
                    self.ctx.default_interval
                }
            },
        };
        let mut rules = Vec::new();
        for ri in 0..g.rules.len() {
            let rp = gp.key("rules").idx(ri);
            let what = match name_at(doc, &rp) {
                Some(name) => format!("rule {name:?}"),
                None => format!("groups[{gi}].rules[{ri}]"),
            };
            let read = read_rule(src, doc, &rp, &what);
            let Some(raw) = read.value else { continue };
            if let Some(r) = self.rule(src, &rp, &g.name, raw, read.clean, &read.reported) {
                rules.push(r);
            }
        }
        Some(RuleGroup {
            name: g.name,
            file: src.path.clone(),
            interval,
            rules,
        })
    }

    fn rule(
        &mut self,
        src: &mut SourceFile,
        rp: &YPath,
        group: &str,
        raw: RawRule,
        clean: bool,
        reported: &BTreeSet<String>,
    ) -> Option<Rule> {
        let errors_before = src.diags.len();
        let what = format!("rule {:?}", raw.name);
        let here = position(src, &rp.key("name"));
        if raw.name.trim().is_empty() {
            src.error(&rp.key("name"), "rule name is empty");
        } else if let Some(first) = self.rule_names.get(&raw.name) {
            src.error(
                &rp.key("name"),
                format!("{what}: duplicate rule name (first defined at {first})"),
            );
        } else {
            self.rule_names.insert(raw.name.clone(), here);
        }
        let trigger = raw
            .trigger
            .as_ref()
            .map(|t| self.trigger(src, rp, &what, t, &raw));
        let triggered = raw.trigger.is_some() || reported.contains("trigger");

        if raw.queries.is_empty() && !triggered && !reported.contains("queries") {
            src.error(
                rp,
                format!("{what}: queries: at least one query is required (or a trigger:)"),
            );
        }
        let queries = self.queries(src, rp, &what, &raw.queries);
        // Queries refused for their shape still count as names: `when` and
        // the templates are checked as if they were there.
        let query_names: Vec<&str> = raw
            .queries
            .keys()
            .map(String::as_str)
            .chain(reported.iter().filter_map(|r| r.strip_prefix("queries.")))
            .collect();

        let when_text = match (&raw.trigger, &raw.when) {
            (Some(t), None) => format!("alert {}", t.alert),
            _ => raw.when.clone().unwrap_or_default(),
        };
        let when = match &raw.when {
            // A trigger rule has no condition of its own: the alert is it.
            None if triggered => evalexpr::build_operator_tree("true").ok(),
            None => {
                if !reported.contains("when") {
                    src.error(rp, format!("{what}: when is required (or a trigger:)"));
                }
                None
            }
            Some(text) => match when::compile(text, &query_names) {
                Ok(node) => Some(node),
                Err(problems) => {
                    let wp = rp.key("when");
                    for p in problems {
                        let message = format!("{what}: when: {}", p.message);
                        match &p.word {
                            Some(w) => {
                                let (line, column) = src.locate_word(&wp, w);
                                src.error_at(line, column, message);
                            }
                            None => src.error(&wp, message),
                        }
                    }
                    None
                }
            },
        };

        let mut dur = |key: &str, v: &Option<String>| -> Option<Duration> {
            let s = v.as_ref()?;
            match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    src.error(&rp.key(key), format!("{what}: {key}: {e}"));
                    None
                }
            }
        };
        let for_ = dur("for", &raw.for_).unwrap_or(Duration::ZERO);
        let keep_firing_for =
            dur("keep_firing_for", &raw.keep_firing_for).unwrap_or(Duration::ZERO);
        let cooldown = dur("cooldown", &raw.cooldown);

        for k in raw.labels.keys() {
            if !is_label_name(k) {
                src.key_error(
                    &rp.key("labels").key(k),
                    format!("{what}: label name {k:?} is not valid"),
                );
            }
        }
        let mut annotations = Vec::new();
        for (k, text) in &raw.annotations {
            match Template::parse(text, query_names.iter().copied()) {
                Ok(t) => annotations.push((k.clone(), t)),
                Err(e) => src.error(
                    &rp.key("annotations").key(k),
                    format!("{what}: annotations.{k}: {e}"),
                ),
            }
        }

        let action = match raw.action {
            None => {
                if !reported.contains("action") {
                    src.error(rp, format!("{what}: action is required"));
                }
                None
            }
            Some(a) => Some(action::validate(
                src,
                &rp.key("action"),
                &what,
                a,
                self.ctx.catalog,
                &query_names,
            )),
        };

        if !clean || src.diags.len() > errors_before {
            return None;
        }
        let (action, instance_template) = action?;
        Some(Rule {
            name: raw.name,
            group: group.to_string(),
            description: raw.description,
            queries,
            when_text,
            when: when?,
            for_,
            keep_firing_for,
            cooldown,
            on_no_data: raw.on_no_data.unwrap_or_default(),
            mode: raw.mode.unwrap_or_default(),
            approval: raw.approval.unwrap_or_default(),
            action,
            labels: raw.labels,
            annotations,
            instance_template,
            trigger,
        })
    }

    /// Compile each query: local ones for the evaluator, remote ones checked
    /// for syntax (their source evaluates them) and for a known source.
    fn queries(
        &self,
        src: &mut SourceFile,
        rp: &YPath,
        what: &str,
        raw: &BTreeMap<String, RawQuery>,
    ) -> Vec<RuleQuery> {
        let mut queries = Vec::new();
        for (name, q) in raw {
            let qp = rp.key("queries").key(name);
            if !is_label_name(name) {
                src.key_error(
                    &qp,
                    format!(
                        "{what}: query name {name:?} is not an identifier ([A-Za-z_][A-Za-z0-9_]*)"
                    ),
                );
                continue;
            }
            match q {
                RawQuery::Local(expr) => match instant_type(expr)
                    .and_then(|()| crate::query::compile(expr).map_err(|e| e.to_string()))
                {
                    Ok(c) => queries.push(RuleQuery {
                        name: name.clone(),
                        expr: expr.clone(),
                        source: None,
                        local: Some(c),
                    }),
                    Err(e) => src.error(&qp, format!("{what}: query {name}: {}", one_line(&e))),
                },
                RawQuery::Remote(r) => {
                    if !self.ctx.sources.contains(&r.source) {
                        src.error(
                            &qp.key("source"),
                            format!(
                                "{what}: query {name}: unknown source {:?} ({})",
                                r.source,
                                known(&self.ctx.sources)
                            ),
                        );
                    }
                    match instant_type(&r.expr) {
                        Ok(()) => queries.push(RuleQuery {
                            name: name.clone(),
                            expr: r.expr.clone(),
                            source: Some(r.source.clone()),
                            local: None,
                        }),
                        Err(e) => src.error(
                            &qp.key("expr"),
                            format!("{what}: query {name}: {}", one_line(&e)),
                        ),
                    }
                }
            }
        }
        queries
    }

    /// Validate `trigger:` and the fields that cannot go with it. Alertmanager
    /// (and the Prometheus alerting rule's own `for`) decide when the alert
    /// fires, so `for`, `keep_firing_for` and `on_no_data` are refused rather
    /// than silently ignored.
    fn trigger(
        &self,
        src: &mut SourceFile,
        rp: &YPath,
        what: &str,
        t: &RawTrigger,
        raw: &RawRule,
    ) -> Trigger {
        let tp = rp.key("trigger");
        let clashes = [
            ("queries", !raw.queries.is_empty()),
            ("when", raw.when.is_some()),
            ("for", raw.for_.is_some()),
            ("keep_firing_for", raw.keep_firing_for.is_some()),
            ("on_no_data", raw.on_no_data.is_some()),
        ];
        for (key, present) in clashes {
            if present {
                src.key_error(
                    &rp.key(key),
                    format!("{what}: {key} cannot be used with trigger: (the alert decides when the rule fires; put `for` in the Prometheus alerting rule)"),
                );
            }
        }
        if t.alert.trim().is_empty() {
            src.error(&tp.key("alert"), format!("{what}: trigger: alert is empty"));
        }
        for k in t.matchers.keys() {
            if !is_label_name(k) {
                src.key_error(
                    &tp.key("matchers").key(k),
                    format!("{what}: trigger: matcher label name {k:?} is not valid"),
                );
            }
        }
        Trigger {
            alert: t.alert.clone(),
            matchers: t.matchers.clone(),
        }
    }
}

/// Read the rule at `rp`. When it has a structural error, its nested blocks
/// (`action`, `trigger`, each `{source, expr}` query) are read on their own
/// first, so an error in one does not hide the others.
fn read_rule(src: &mut SourceFile, doc: &Value, rp: &YPath, what: &str) -> Extracted<RawRule> {
    let naming = Naming { what, base: "" };
    src.extract_all::<RawRule>(doc, rp, naming, |src, map, reported| {
        nested::<RawAction>(src, doc, rp, what, "action", map, reported);
        nested::<RawTrigger>(src, doc, rp, what, "trigger", map, reported);
        if let Some(Value::Mapping(queries)) = map.get_mut("queries") {
            let names: Vec<String> = queries
                .iter()
                .filter(|(_, q)| q.is_mapping())
                .filter_map(|(k, _)| k.as_str().map(str::to_string))
                .collect();
            let qp = rp.key("queries");
            for name in names {
                let base = format!("queries.{name}");
                let naming = Naming { what, base: &base };
                let got =
                    src.extract_all::<RawRemoteQuery>(doc, &qp.key(&name), naming, |_, _, _| {});
                match (got.clean, got.value, got.node) {
                    (true, ..) => {}
                    (false, Some(_), Some(node)) => {
                        queries.insert(Value::String(name), node);
                    }
                    _ => {
                        queries.shift_remove(name.as_str());
                        reported.insert(base);
                    }
                }
            }
        }
    })
}

/// Read the block `key` of the mapping on its own; keep what can be read of
/// it, or drop it (reported) when nothing can.
fn nested<T: serde::de::DeserializeOwned>(
    src: &mut SourceFile,
    doc: &Value,
    rp: &YPath,
    what: &str,
    key: &str,
    map: &mut Mapping,
    reported: &mut BTreeSet<String>,
) {
    if !map.contains_key(key) {
        return;
    }
    let naming = Naming { what, base: key };
    let got = src.extract_all::<T>(doc, &rp.key(key), naming, |_, _, _| {});
    match (got.clean, got.value, got.node) {
        (true, ..) => {}
        (false, Some(_), Some(node)) => {
            map.insert(Value::String(key.to_string()), node);
        }
        _ => {
            map.shift_remove(key);
            reported.insert(key.to_string());
        }
    }
}

/// The `name` of the mapping at `p`, as written (for naming it in errors).
fn name_at(doc: &Value, p: &YPath) -> Option<String> {
    match crate::spec::fields::node_at(doc, &p.key("name"))? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn position(src: &SourceFile, p: &YPath) -> String {
    let (l, c) = src.locate(p);
    format!("{}:{l}:{c}", src.path.display())
}

/// A rule needs one value per label set: the expression must be an instant
/// vector or a scalar, which the parser knows without evaluating.
fn instant_type(expr: &str) -> Result<(), String> {
    use promql_parser::parser::value::ValueType;
    let ast = crate::query::parse(expr).map_err(|e| e.to_string())?;
    match ast.value_type() {
        ValueType::Vector | ValueType::Scalar => Ok(()),
        t => Err(format!(
            "the expression is a {t}; a rule query must give an instant vector or a scalar"
        )),
    }
}

/// PromQL parser errors span lines; a diagnostic is one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
