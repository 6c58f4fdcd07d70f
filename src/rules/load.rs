//! Loading rule files: YAML → validated [`RuleSet`], every error with file:line:column.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::*;
use super::template::Template;
use crate::actions::ActionSpec;
use crate::config::AgentConfig;
use crate::model::{ActionKind, Approval, Mode};
use crate::query::Query;
use crate::spec::{parse_duration, Diagnostic, SourceFile, YPath};

/// Which action kinds each target's provider supports: target name → kinds.
pub type Catalog = BTreeMap<String, &'static [ActionKind]>;

/// The capability catalog for the targets of an agent config.
pub fn catalog_for(cfg: &AgentConfig) -> Catalog {
    cfg.targets
        .iter()
        .map(|(name, t)| (name.clone(), t.provider.kinds()))
        .collect()
}

/// All loaded rules, grouped as the agent schedules them.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub groups: Vec<RuleGroup>,
}

impl RuleSet {
    /// The longest range any query needs (ms), for store retention.
    pub fn max_range_ms(&self) -> i64 {
        self.rules()
            .flat_map(|r| r.queries.iter())
            .filter_map(|q| q.local.as_ref().map(Query::max_range_ms))
            .max()
            .unwrap_or(0)
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.groups.iter().flat_map(|g| g.rules.iter())
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules().find(|r| r.name == name)
    }
}

/// A group: its rules are evaluated together, in order, every `interval`.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub name: String,
    pub file: PathBuf,
    pub interval: Duration,
    pub rules: Vec<Rule>,
}

/// One named query of a rule.
#[derive(Debug, Clone)]
pub struct RuleQuery {
    pub name: String,
    pub expr: String,
    /// Remote source name; `None` means the local store.
    pub source: Option<String>,
    /// Compiled for the local evaluator (`None` for remote queries).
    pub local: Option<Query>,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub group: String,
    pub description: String,
    /// Sorted by name.
    pub queries: Vec<RuleQuery>,
    /// `when` as written.
    pub when_text: String,
    pub(crate) when: evalexpr::Node,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    pub cooldown: Option<Duration>,
    pub on_no_data: OnNoData,
    pub mode: Mode,
    pub approval: Approval,
    pub action: ActionSpec,
    pub labels: BTreeMap<String, String>,
    pub(crate) annotations: Vec<(String, Template)>,
    pub(crate) instance_template: Option<Template>,
    /// Set for an Alertmanager trigger rule (no queries; `when` is unused).
    pub trigger: Option<Trigger>,
}

/// A validated `trigger:`: which Alertmanager alerts a rule acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// Required value of the `alertname` label.
    pub alert: String,
    /// Further labels required with exactly these values.
    pub matchers: BTreeMap<String, String>,
}

impl Trigger {
    /// Whether an alert with these labels is one this trigger acts on.
    pub fn matches(&self, labels: &crate::model::Labels) -> bool {
        labels.get("alertname") == Some(self.alert.as_str())
            && self
                .matchers
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v.as_str()))
    }
}

/// What rule loading needs from the agent config.
pub struct LoadContext<'a> {
    /// Target → kinds its provider supports; also the set of known targets.
    pub catalog: &'a Catalog,
    /// Names under `sources:`.
    pub sources: BTreeSet<String>,
    /// Group interval when a group sets none.
    pub default_interval: Duration,
}

impl<'a> LoadContext<'a> {
    pub fn new(cfg: &AgentConfig, catalog: &'a Catalog) -> Self {
        LoadContext {
            catalog,
            sources: cfg.sources.keys().cloned().collect(),
            default_interval: cfg.scrape.interval,
        }
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
    let ctx = LoadContext::new(cfg, catalog);
    match load_files(&files, &ctx) {
        Ok(set) if diags.is_empty() => Ok(set),
        Ok(_) => Err(diags),
        Err(more) => {
            diags.extend(more);
            Err(diags)
        }
    }
}

/// Load the given rule files.
pub fn load_files(files: &[PathBuf], ctx: &LoadContext<'_>) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut loader = Loader {
        ctx,
        rule_names: BTreeMap::new(),
        group_names: BTreeMap::new(),
        diags: Vec::new(),
    };
    let mut set = RuleSet::default();
    for f in files {
        match SourceFile::read(f) {
            Ok(src) => set.groups.extend(loader.file(src)),
            Err(d) => loader.diags.push(d),
        }
    }
    if loader.diags.is_empty() {
        Ok(set)
    } else {
        let mut d = loader.diags;
        d.sort();
        d.dedup();
        Err(d)
    }
}

/// Load rules from text (tests, `POST /-/reload` previews).
pub fn load_str(
    path: &Path,
    text: &str,
    ctx: &LoadContext<'_>,
) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut loader = Loader {
        ctx,
        rule_names: BTreeMap::new(),
        group_names: BTreeMap::new(),
        diags: Vec::new(),
    };
    let groups = loader.file(SourceFile::new(path, text));
    if loader.diags.is_empty() {
        Ok(RuleSet { groups })
    } else {
        let mut d = loader.diags;
        d.sort();
        Err(d)
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: usable as an evalexpr variable and a label name.
pub fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

struct Loader<'a> {
    ctx: &'a LoadContext<'a>,
    /// Rule name → where first defined (for duplicates across files).
    rule_names: BTreeMap<String, String>,
    group_names: BTreeMap<String, String>,
    diags: Vec<Diagnostic>,
}

impl Loader<'_> {
    fn file(&mut self, mut src: SourceFile) -> Vec<RuleGroup> {
        let groups = self.file_groups(&mut src);
        self.diags.append(&mut src.diags);
        groups
    }

    fn file_groups(&mut self, src: &mut SourceFile) -> Vec<RuleGroup> {
        let root = YPath::root();
        let doc: serde_yaml::Value = match serde_yaml::from_str(&src.text) {
            Ok(v) => v,
            Err(e) => {
                src.yaml_error(&e, &root, "");
                return Vec::new();
            }
        };
        if doc.is_null() {
            return Vec::new(); // an empty rule file is allowed
        }
        let Some(file) = src.extract_or_report::<RawRuleFile>(&root, "") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for gi in 0..file.groups.len() {
            let gp = root.key("groups").idx(gi);
            let what = match src.extract::<String>(&gp.key("name")) {
                Ok(name) => format!("group {name:?}"),
                Err(_) => format!("groups[{gi}]"),
            };
            let Some(g) = src.extract_or_report::<RawGroup>(&gp, &what) else {
                continue;
            };
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
                let what = match src.extract::<String>(&rp.key("name")) {
                    Ok(name) => format!("rule {name:?}"),
                    Err(_) => format!("groups[{gi}].rules[{ri}]"),
                };
                let Some(raw) = src.extract_or_report::<RawRule>(&rp, &what) else {
                    continue;
                };
                if let Some(r) = self.rule(src, &rp, &g.name, raw) {
                    rules.push(r);
                }
            }
            out.push(RuleGroup {
                name: g.name,
                file: src.path.clone(),
                interval,
                rules,
            });
        }
        out
    }

    fn rule(
        &mut self,
        src: &mut SourceFile,
        rp: &YPath,
        group: &str,
        raw: RawRule,
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

        // Queries.
        let mut queries = Vec::new();
        if raw.queries.is_empty() && raw.trigger.is_none() {
            src.error(
                rp,
                format!("{what}: queries: at least one query is required (or a trigger:)"),
            );
        }
        for (name, q) in &raw.queries {
            let qp = rp.key("queries").key(name);
            if !is_identifier(name) {
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
                    // The remote server evaluates it; we only check the syntax.
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
        let query_names: Vec<&str> = raw.queries.keys().map(String::as_str).collect();

        // when
        let when_text = match (&raw.trigger, &raw.when) {
            (Some(t), None) => format!("alert {}", t.alert),
            _ => raw.when.clone().unwrap_or_default(),
        };
        let when = match &raw.when {
            // A trigger rule has no condition of its own: the alert is it.
            None if raw.trigger.is_some() => evalexpr::build_operator_tree("true").ok(),
            None => {
                src.error(rp, format!("{what}: when is required (or a trigger:)"));
                None
            }
            Some(text) => match condition_tree(text) {
                Ok(mut node) => {
                    ints_to_floats(&mut node);
                    let mut unknown: Vec<&str> = node
                        .iter_variable_identifiers()
                        .filter(|v| !query_names.contains(v))
                        .collect();
                    unknown.sort();
                    unknown.dedup();
                    for v in &unknown {
                        let (line, column) = src.locate_word(&rp.key("when"), v);
                        src.error_at(
                            line,
                            column,
                            format!(
                                "{what}: when: unknown variable {v:?} (queries are: {})",
                                if query_names.is_empty() {
                                    "none".to_string()
                                } else {
                                    query_names.join(", ")
                                }
                            ),
                        );
                    }
                    Some(node)
                }
                Err(e) => {
                    src.error(&rp.key("when"), format!("{what}: when: {e}"));
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
            if !is_identifier(k) {
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
                src.error(rp, format!("{what}: action is required"));
                None
            }
            Some(a) => self.action(src, &rp.key("action"), &what, a, &query_names),
        };

        if src.diags.len() > errors_before {
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
            if !is_identifier(k) {
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

    fn action(
        &self,
        src: &mut SourceFile,
        ap: &YPath,
        what: &str,
        a: RawAction,
        query_names: &[&str],
    ) -> Option<(ActionSpec, Option<Template>)> {
        use ActionKind::*;
        let kind = a.kind;
        match self.ctx.catalog.get(&a.target) {
            None => {
                let targets: BTreeSet<String> = self.ctx.catalog.keys().cloned().collect();
                src.error(
                    &ap.key("target"),
                    format!("{what}: action: unknown target {:?} ({})", a.target, known(&targets)),
                );
            }
            Some(kinds) if !kinds.contains(&kind) => src.error(
                &ap.key("kind"),
                format!(
                    "{what}: action: target {:?}'s provider does not support {kind} (supported: {})",
                    a.target,
                    kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ),
            Some(_) => {}
        }

        // Fields that only make sense for some kinds: reject the rest, so a
        // misplaced setting is not silently ignored.
        let set: [(&str, bool, &[ActionKind]); 12] = [
            ("step", a.step.is_some(), &[ScaleOut, ScaleIn]),
            ("factor", a.factor.is_some(), &[ScaleOut, ScaleIn]),
            ("metric", a.metric.is_some(), &[Scale]),
            ("target_value", a.target_value.is_some(), &[Scale]),
            ("tolerance", a.tolerance.is_some(), &[Scale]),
            (
                "stabilization_window",
                a.stabilization_window.is_some(),
                &[Scale],
            ),
            ("instance", a.instance.is_some(), &[Failover, CircuitBreak]),
            ("open_for", a.open_for.is_some(), &[CircuitBreak]),
            (
                "max_open_share",
                a.max_open_share.is_some(),
                &[CircuitBreak],
            ),
            ("version", a.version.is_some(), &[Redeploy]),
            ("command", a.command.is_some(), &[Redeploy]),
            ("env", !a.env.is_empty(), &[Redeploy]),
        ];
        for (field, present, kinds) in set {
            if present && !kinds.contains(&kind) {
                src.error(
                    &ap.key(field),
                    format!("{what}: action: {field} does not apply to {kind}"),
                );
            }
        }
        if a.rollback && kind != Redeploy {
            src.error(
                &ap.key("rollback"),
                format!("{what}: action: rollback does not apply to {kind}"),
            );
        }

        let mut spec = ActionSpec::new(kind, a.target.clone());
        let mut instance_template = None;
        match kind {
            ScaleOut | ScaleIn => {
                if a.step == Some(0) {
                    src.error(&ap.key("step"), format!("{what}: action: step must be ≥ 1"));
                }
                if let Some(f) = a.factor {
                    if !(f > 1.0 && f.is_finite()) {
                        src.error(
                            &ap.key("factor"),
                            format!("{what}: action: factor must be > 1 (got {f})"),
                        );
                    }
                }
                if a.step.is_some() && a.factor.is_some() {
                    src.error(
                        &ap.key("factor"),
                        format!("{what}: action: set step or factor, not both"),
                    );
                }
                spec.step = a.step;
                spec.factor = a.factor;
            }
            Scale => {
                match &a.metric {
                    None => src.error(ap, format!("{what}: action: scale needs metric (a query name)")),
                    Some(m) if !query_names.contains(&m.as_str()) => src.error(
                        &ap.key("metric"),
                        format!("{what}: action: metric {m:?} is not a query of this rule (queries are: {})", query_names.join(", ")),
                    ),
                    Some(_) => {}
                }
                match a.target_value {
                    None => src.error(ap, format!("{what}: action: scale needs target_value")),
                    Some(v) if !(v > 0.0 && v.is_finite()) => src.error(
                        &ap.key("target_value"),
                        format!("{what}: action: target_value must be > 0 (got {v})"),
                    ),
                    Some(_) => {}
                }
                if let Some(t) = a.tolerance {
                    if !(0.0..1.0).contains(&t) {
                        src.error(
                            &ap.key("tolerance"),
                            format!("{what}: action: tolerance must be in [0, 1) (got {t})"),
                        );
                    }
                }
                spec.metric = a.metric.clone();
                spec.target_value = a.target_value;
                spec.tolerance = a.tolerance;
                if let Some(s) = &a.stabilization_window {
                    match parse_duration(s) {
                        Ok(d) => spec.stabilization_window = Some(d),
                        Err(e) => src.error(
                            &ap.key("stabilization_window"),
                            format!("{what}: action: stabilization_window: {e}"),
                        ),
                    }
                }
            }
            Failover | CircuitBreak => {
                match &a.instance {
                    None => src.error(
                        ap,
                        format!("{what}: action: {kind} needs instance (e.g. \"{{{{ labels.instance }}}}\")"),
                    ),
                    Some(text) => match Template::parse(text, query_names.iter().copied()) {
                        Ok(t) => instance_template = Some(t),
                        Err(e) => src.error(&ap.key("instance"), format!("{what}: action: instance: {e}")),
                    },
                }
                spec.instance = a.instance.clone();
                if let Some(s) = &a.open_for {
                    match parse_duration(s) {
                        Ok(d) if !d.is_zero() => spec.open_for = Some(d),
                        Ok(_) => src.error(
                            &ap.key("open_for"),
                            format!("{what}: action: open_for must be > 0s"),
                        ),
                        Err(e) => src.error(
                            &ap.key("open_for"),
                            format!("{what}: action: open_for: {e}"),
                        ),
                    }
                }
                if let Some(s) = a.max_open_share {
                    if !(s > 0.0 && s <= 1.0) {
                        src.error(
                            &ap.key("max_open_share"),
                            format!("{what}: action: max_open_share must be in (0, 1] (got {s})"),
                        );
                    }
                    spec.max_open_share = Some(s);
                }
            }
            Redeploy => {
                if a.rollback && (a.version.is_some() || a.command.is_some() || !a.env.is_empty()) {
                    src.error(
                        &ap.key("rollback"),
                        format!("{what}: action: rollback takes no version, command or env"),
                    );
                }
                for name in a.env.keys() {
                    if name.is_empty() || name.contains('=') || name.contains('\0') {
                        src.error(
                            &ap.key("env").key(name),
                            format!("{what}: action: env: {name:?} is not a variable name"),
                        );
                    }
                }
                if a.command.as_ref().is_some_and(|c| c.is_empty()) {
                    src.error(
                        &ap.key("command"),
                        format!("{what}: action: command is empty"),
                    );
                }
                spec.version = a.version.clone();
                spec.command = a.command.clone();
                spec.env = a.env.clone();
                spec.rollback = a.rollback;
            }
        }
        Some((spec, instance_template))
    }
}

/// Query values are floats, and evalexpr's `==` does not equate `Float(0.0)`
/// with `Int(0)`: `up == 0` would never hold. Integer literals become floats.
fn ints_to_floats(node: &mut evalexpr::Node) {
    if let evalexpr::Operator::Const { value } = node.operator_mut() {
        if let evalexpr::Value::Int(i) = value {
            *value = evalexpr::Value::Float(*i as f64);
        }
    }
    for c in node.children_mut() {
        ints_to_floats(c);
    }
}

fn position(src: &SourceFile, p: &YPath) -> String {
    let (l, c) = src.locate(p);
    format!("{}:{l}:{c}", src.path.display())
}

fn known(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        "none are declared".to_string()
    } else {
        format!(
            "known: {}",
            names.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    }
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

/// Parse a `when:` condition, after bounding its length and depth as a
/// query's (evalexpr recurses in parsing and evaluating).
fn condition_tree(text: &str) -> Result<evalexpr::Node, String> {
    use crate::query::limits::{MAX_NESTING_DEPTH, MAX_QUERY_BYTES};
    use crate::spec::nesting::{nesting_bound, Syntax};
    if text.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "the condition is {} bytes long; at most {MAX_QUERY_BYTES} are accepted",
            text.len()
        ));
    }
    if let Err(e) = nesting_bound(text, MAX_NESTING_DEPTH, Syntax::Condition) {
        let (line, column) = e.line_column(text);
        return Err(format!(
            "the condition nests too deeply: past {MAX_NESTING_DEPTH} levels of brackets and operators at line {line}, column {column} of the condition"
        ));
    }
    evalexpr::build_operator_tree(text).map_err(|e| e.to_string())
}

/// PromQL parser errors span lines; a diagnostic is one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
