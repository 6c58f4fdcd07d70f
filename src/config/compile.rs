//! `compile()`: raw config → runtime [`AgentConfig`], collecting every error.
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::raw::*;
use super::secret::ApiToken;
use crate::providers::docker::config::DockerConfig;
use crate::providers::haproxy::config::HaproxyConfig;
use crate::providers::kubernetes::config::KubernetesConfig;
use crate::providers::process::config::ProcessConfig;
use crate::providers::webhook::config::WebhookConfig;
use crate::providers::ProviderBlock;
use crate::spec::{parse_duration, parse_size, Diagnostic, SourceFile, YPath};

/// The validated agent config the rest of the agent runs on.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The config file as given on the command line.
    pub path: PathBuf,
    /// Directory relative paths in the config resolve against.
    pub base_dir: PathBuf,
    pub listen: SocketAddr,
    /// Audit log and state directory, resolved against `base_dir`.
    pub data_dir: PathBuf,
    pub rule_files: Vec<RuleFilePattern>,
    pub scrape: ScrapeConfig,
    pub targets: BTreeMap<String, TargetConfig>,
    pub sources: BTreeMap<String, SourceConfig>,
    pub guard: GuardConfig,
    pub log: LogConfig,
    pub api: ApiConfig,
    /// OTLP trace receiver settings.
    pub otlp: crate::sources::otlp::OtlpConfig,
    /// What one query may cost.
    pub query: crate::query::QueryLimits,
    /// HTTP connection limits.
    pub http: crate::server::HttpLimits,
}

/// One `rule_files` entry, with where it was written (for "matches nothing").
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFilePattern {
    /// As written in the config.
    pub written: String,
    /// Joined with the config's directory.
    pub resolved: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl RuleFilePattern {
    /// Files matching the pattern, sorted. Unreadable directory entries are skipped.
    pub fn expand(&self) -> Result<Vec<PathBuf>, String> {
        let pat = self.resolved.to_string_lossy();
        let paths = glob::glob(&pat)
            .map_err(|e| format!("rule_files: invalid pattern {:?}: {e}", self.written))?;
        let mut out: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        out.sort();
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    pub interval: Duration,
    pub timeout: Duration,
    /// Bytes.
    pub body_size_limit: u64,
    pub jobs: Vec<ScrapeJob>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeJob {
    pub name: String,
    pub targets: JobTargets,
    pub metrics_path: String,
    pub scheme: Scheme,
    pub labels: BTreeMap<String, String>,
}

/// Where a job's instances come from.
#[derive(Debug, Clone, PartialEq)]
pub enum JobTargets {
    /// The instances the named target's provider reports.
    Target(String),
    /// Fixed `host:port` addresses.
    Static(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    pub name: String,
    pub min: u32,
    pub max: u32,
    pub cooldown_up: Duration,
    pub cooldown_down: Duration,
    pub provider: ProviderConfig,
}

/// The provider block of a target; exactly one is present.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderConfig {
    Process(ProcessConfig),
    Webhook(WebhookConfig),
    Docker(DockerConfig),
    Haproxy(HaproxyConfig),
    Kubernetes(KubernetesConfig),
}

impl ProviderConfig {
    /// Every provider name `provider:` accepts.
    pub const NAMES: [&'static str; 5] = ["process", "webhook", "docker", "haproxy", "kubernetes"];

    /// The provider's name as written in `provider:`.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderConfig::Process(_) => "process",
            ProviderConfig::Webhook(_) => "webhook",
            ProviderConfig::Docker(_) => "docker",
            ProviderConfig::Haproxy(_) => "haproxy",
            ProviderConfig::Kubernetes(_) => "kubernetes",
        }
    }

    /// Whether this binary contains the adapter `name` (its Cargo feature is on).
    // With every feature on the arms agree, which clippy mistakes for a `matches!`.
    #[allow(clippy::match_like_matches_macro)]
    pub fn built(name: &str) -> bool {
        match name {
            "process" | "webhook" => true,
            "docker" => cfg!(feature = "docker"),
            "haproxy" => cfg!(feature = "haproxy"),
            "kubernetes" => cfg!(feature = "kubernetes"),
            _ => false,
        }
    }

    /// The action kinds the adapter can carry out (`homeostat check` rejects others).
    pub fn kinds(&self) -> &'static [crate::model::ActionKind] {
        use crate::providers::{docker, haproxy, kubernetes};
        match self {
            ProviderConfig::Process(_) | ProviderConfig::Webhook(_) => {
                &crate::model::ActionKind::ALL
            }
            ProviderConfig::Docker(_) => docker::KINDS,
            ProviderConfig::Haproxy(_) => haproxy::KINDS,
            ProviderConfig::Kubernetes(_) => kubernetes::KINDS,
        }
    }

    fn implied_max(&self) -> Option<u32> {
        match self {
            ProviderConfig::Process(_) | ProviderConfig::Webhook(_) => None,
            ProviderConfig::Docker(c) => c.implied_max(),
            ProviderConfig::Haproxy(c) => c.implied_max(),
            ProviderConfig::Kubernetes(c) => c.implied_max(),
        }
    }
}

/// A validated remote source (defined with the source).
pub use crate::sources::prometheus::config::SourceConfig;

#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    pub max_actions_per_target_per_hour: u32,
    pub max_open_share: f64,
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive.
    pub level: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Bearer token required on mutating endpoints; `None` means they are refused.
    pub token: Option<ApiToken>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9798";
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 16 * 1024 * 1024;
pub const DEFAULT_COOLDOWN_UP: Duration = Duration::from_secs(60);
pub const DEFAULT_COOLDOWN_DOWN: Duration = Duration::from_secs(300);
pub const DEFAULT_SOURCE_TIMEOUT: Duration = crate::sources::prometheus::config::DEFAULT_TIMEOUT;

/// Read and compile a config file.
pub fn load(path: &Path) -> Result<AgentConfig, Vec<Diagnostic>> {
    let src = SourceFile::read(path).map_err(|d| vec![d])?;
    compile_source(src)
}

/// Compile config text that came from `path` (used for positions and relative paths).
pub fn compile(path: &Path, text: &str) -> Result<AgentConfig, Vec<Diagnostic>> {
    compile_source(SourceFile::new(path, text))
}

fn root() -> YPath {
    YPath::root()
}

/// Extract an optional section: absent → default, broken → error + default.
fn section<T: DeserializeOwned + Default>(
    src: &mut SourceFile,
    doc: &serde_yaml::Value,
    key: &str,
) -> T {
    if doc.get(key).is_none_or(|v| v.is_null()) {
        return T::default();
    }
    src.extract_or_report(&root().key(key), "")
        .unwrap_or_default()
}

/// Duration at `path`, default when absent; reports a bad one.
fn duration(src: &mut SourceFile, path: &YPath, v: &Option<String>, default: Duration) -> Duration {
    match v {
        None => default,
        Some(s) => parse_duration(s).unwrap_or_else(|e| {
            src.error(path, format!("{path}: {e}"));
            default
        }),
    }
}

fn compile_source(mut src: SourceFile) -> Result<AgentConfig, Vec<Diagnostic>> {
    let doc: serde_yaml::Value = match serde_yaml::from_str(&src.text) {
        Ok(v) => v,
        Err(e) => {
            src.yaml_error(&e, &root(), "");
            return Err(src.diags);
        }
    };
    if !doc.is_null() {
        if !doc.is_mapping() {
            src.error(&root(), "the config must be a mapping of settings");
            return Err(src.diags);
        }
        // Unknown top-level keys.
        let _ = src.extract_or_report::<RawTop>(&root(), "");
    }
    let base_dir = match src.path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    let raw_listen: Option<String> = section::<Option<String>>(&mut src, &doc, "listen");
    let listen_text = raw_listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            src.error(
                &root().key("listen"),
                format!("listen: {listen_text:?} is not an address such as 127.0.0.1:9798"),
            );
            SocketAddr::from(([127, 0, 0, 1], 9798))
        }
    };

    let data_dir_raw: Option<String> = section(&mut src, &doc, "data_dir");
    let data_dir = base_dir.join(data_dir_raw.unwrap_or_else(|| "./data".to_string()));

    let rule_files_raw: Vec<String> = section(&mut src, &doc, "rule_files");
    let mut rule_files = Vec::new();
    for (i, written) in rule_files_raw.into_iter().enumerate() {
        let path = root().key("rule_files").idx(i);
        let resolved = base_dir.join(&written);
        if let Err(e) = glob::Pattern::new(&resolved.to_string_lossy()) {
            src.error(
                &path,
                format!("rule_files: invalid pattern {written:?}: {e}"),
            );
            continue;
        }
        let (line, column) = src.locate(&path);
        rule_files.push(RuleFilePattern {
            written,
            resolved,
            line,
            column,
        });
    }

    // Targets first: scrape jobs refer to them.
    let mut targets = BTreeMap::new();
    if let Some(map) = doc.get("targets").and_then(|v| v.as_mapping()) {
        for key in map.keys() {
            let Some(name) = key.as_str() else {
                src.error(
                    &root().key("targets"),
                    "targets: target names must be strings",
                );
                continue;
            };
            let path = root().key("targets").key(name);
            let Some(raw) = src.extract_or_report::<RawTarget>(&path, &format!("target {name:?}"))
            else {
                continue;
            };
            if let Some(t) = compile_target(&mut src, &path, name, raw, &base_dir) {
                targets.insert(name.to_string(), t);
            }
        }
    } else if doc.get("targets").is_some_and(|v| !v.is_null()) {
        src.error(
            &root().key("targets"),
            "targets: must be a mapping of target name to settings",
        );
    }

    let scrape = compile_scrape(&mut src, &doc, &targets);

    let mut sources = BTreeMap::new();
    if let Some(map) = doc.get("sources").and_then(|v| v.as_mapping()) {
        for key in map.keys() {
            let Some(name) = key.as_str() else {
                src.error(
                    &root().key("sources"),
                    "sources: source names must be strings",
                );
                continue;
            };
            let path = root().key("sources").key(name);
            let Some(raw) = src.extract_or_report::<RawSource>(&path, &format!("source {name:?}"))
            else {
                continue;
            };
            if let Some(c) =
                crate::sources::prometheus::config::compile(&mut src, &path, name, raw, &base_dir)
            {
                sources.insert(name.to_string(), c);
            }
        }
    } else if doc.get("sources").is_some_and(|v| !v.is_null()) {
        src.error(
            &root().key("sources"),
            "sources: must be a mapping of source name to settings",
        );
    }

    let g: RawGuard = section(&mut src, &doc, "guard");
    let max_open_share = g.max_open_share.unwrap_or(0.5);
    if !(max_open_share > 0.0 && max_open_share <= 1.0) {
        src.error(
            &root().key("guard").key("max_open_share"),
            format!("guard.max_open_share: {max_open_share} is not in (0, 1]"),
        );
    }
    let guard = GuardConfig {
        max_actions_per_target_per_hour: g.max_actions_per_target_per_hour.unwrap_or(30),
        max_open_share,
        paused: g.paused.unwrap_or(false),
    };

    let l: RawLog = section(&mut src, &doc, "log");
    let format = match l.format.as_deref() {
        None | Some("pretty") => LogFormat::Pretty,
        Some("json") => LogFormat::Json,
        Some(other) => {
            src.error(
                &root().key("log").key("format"),
                format!("log.format: {other:?} is not one of pretty, json"),
            );
            LogFormat::Pretty
        }
    };
    let level = l.level.unwrap_or_else(|| "info".to_string());
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        src.error(
            &root().key("log").key("level"),
            format!("log.level: {level:?}: {e}"),
        );
    }
    let log = LogConfig { format, level };

    let a: RawApi = section(&mut src, &doc, "api");
    let token = match (a.token_file, a.token_env) {
        (Some(_), Some(_)) => {
            src.error(
                &root().key("api").key("token_env"),
                "api: set token_file or token_env, not both",
            );
            None
        }
        (Some(file), None) => {
            let p = base_dir.join(&file);
            match std::fs::read_to_string(&p) {
                Ok(s) if !s.trim().is_empty() => {
                    Some(ApiToken::new(s.trim_end_matches(['\n', '\r'])))
                }
                Ok(_) => {
                    src.error(
                        &root().key("api").key("token_file"),
                        format!("api.token_file: {file:?} is empty"),
                    );
                    None
                }
                Err(e) => {
                    src.error(
                        &root().key("api").key("token_file"),
                        format!("api.token_file: cannot read {}: {e}", p.display()),
                    );
                    None
                }
            }
        }
        (None, Some(var)) => match std::env::var(&var) {
            Ok(s) if !s.is_empty() => Some(ApiToken::new(s)),
            _ => {
                src.error(
                    &root().key("api").key("token_env"),
                    format!("api.token_env: environment variable {var} is not set"),
                );
                None
            }
        },
        (None, None) => None,
    };

    let o: crate::sources::otlp::config::RawOtlp = section(&mut src, &doc, "otlp");
    let otlp = crate::sources::otlp::config::compile(o).unwrap_or_else(|errs| {
        for (field, msg) in errs {
            src.error(&root().key("otlp").key(field), msg);
        }
        Default::default()
    });

    let q: crate::query::limits::RawQueryLimits = section(&mut src, &doc, "query");
    let query = crate::query::limits::compile_limits(q).unwrap_or_else(|errs| {
        for (field, msg) in errs {
            src.error(&root().key("query").key(field), msg);
        }
        Default::default()
    });
    let h: crate::server::conn::RawHttpLimits = section(&mut src, &doc, "http");
    let http = crate::server::conn::compile_limits(h).unwrap_or_else(|errs| {
        for (field, msg) in errs {
            src.error(&root().key("http").key(field), msg);
        }
        Default::default()
    });

    if !src.diags.is_empty() {
        src.diags.sort();
        src.diags.dedup();
        return Err(src.diags);
    }
    Ok(AgentConfig {
        path: src.path.clone(),
        base_dir,
        listen,
        data_dir,
        rule_files,
        scrape,
        targets,
        sources,
        guard,
        log,
        api: ApiConfig { token },
        otlp,
        query,
        http,
    })
}

fn compile_target(
    src: &mut SourceFile,
    path: &YPath,
    name: &str,
    raw: RawTarget,
    base_dir: &Path,
) -> Option<TargetConfig> {
    let what = format!("target {name:?}");
    let min = raw.min.unwrap_or(1);
    let cooldown_up = duration(
        src,
        &path.key("cooldown_up"),
        &raw.cooldown_up,
        DEFAULT_COOLDOWN_UP,
    );
    let cooldown_down = duration(
        src,
        &path.key("cooldown_down"),
        &raw.cooldown_down,
        DEFAULT_COOLDOWN_DOWN,
    );
    // Exactly the block named by `provider:`; any other block is a mistake.
    let provider_name = raw.provider.as_str();
    for (block, present) in [
        ("process", raw.process.is_some()),
        ("webhook", raw.webhook.is_some()),
        ("docker", raw.docker.is_some()),
        ("haproxy", raw.haproxy.is_some()),
        ("kubernetes", raw.kubernetes.is_some()),
    ] {
        if present && block != provider_name {
            src.error(
                &path.key(block),
                format!("{what}: a {block} block on a {provider_name} target"),
            );
        }
    }
    if ProviderConfig::NAMES.contains(&provider_name) && !ProviderConfig::built(provider_name) {
        src.error(
            &path.key("provider"),
            format!(
                "{what}: provider {provider_name} is not built into this homeostat (rebuild with cargo feature `{provider_name}`)"
            ),
        );
    }
    let provider = match provider_name {
        "process" => {
            let mut p = provider_block(src, path, &what, "process", raw.process)?;
            if let Err(e) = crate::spec::parse_port_range(&p.ports) {
                src.error(
                    &path.key("process").key("ports"),
                    format!("{what}: process.ports: {e}"),
                );
            }
            if p.command.is_empty() {
                src.error(
                    &path.key("process").key("command"),
                    format!("{what}: process.command is empty"),
                );
            }
            // Paths in the config are relative to the config file.
            p.workdir = p.workdir.map(|d| base_dir.join(d));
            p.discovery_file = p.discovery_file.map(|f| base_dir.join(f));
            ProviderConfig::Process(p)
        }
        "webhook" => {
            let mut w = provider_block(src, path, &what, "webhook", raw.webhook)?;
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                src.error(
                    &path.key("webhook").key("url"),
                    format!(
                        "{what}: webhook.url {:?} must start with http:// or https://",
                        w.url
                    ),
                );
            }
            if w.secret_file.is_some() && w.secret_env.is_some() {
                src.error(
                    &path.key("webhook").key("secret_env"),
                    format!("{what}: set webhook.secret_file or webhook.secret_env, not both"),
                );
            }
            w.secret_file = w.secret_file.map(|f| base_dir.join(f));
            ProviderConfig::Webhook(w)
        }
        "docker" => ProviderConfig::Docker(checked_block(
            src, path, &what, "docker", raw.docker, base_dir,
        )?),
        "haproxy" => ProviderConfig::Haproxy(checked_block(
            src,
            path,
            &what,
            "haproxy",
            raw.haproxy,
            base_dir,
        )?),
        "kubernetes" => ProviderConfig::Kubernetes(checked_block(
            src,
            path,
            &what,
            "kubernetes",
            raw.kubernetes,
            base_dir,
        )?),
        other => {
            src.error(
                &path.key("provider"),
                format!(
                    "{what}: unknown provider {other:?} (known: {})",
                    ProviderConfig::NAMES.join(", ")
                ),
            );
            return None;
        }
    };
    let max = match (raw.max, &provider) {
        (Some(max), _) => max,
        // A webhook receiver owns its replica count; bounds only if given.
        (None, ProviderConfig::Webhook(_)) => u32::MAX,
        (None, p) => match p.implied_max() {
            Some(max) => max,
            None => {
                src.error(
                    path,
                    format!("{what}: max is required for a {provider_name} target"),
                );
                return None;
            }
        },
    };
    if min > max {
        src.error(
            &path.key("min"),
            format!("{what}: min ({min}) is greater than max ({max})"),
        );
    }
    if let ProviderConfig::Process(p) = &provider {
        if let Some(n) = p.initial_replicas {
            if n < min || n > max {
                src.error(
                    &path.key("process").key("initial_replicas"),
                    format!(
                        "{what}: process.initial_replicas ({n}) is outside min..max ({min}..{max})"
                    ),
                );
            }
        }
    }
    Some(TargetConfig {
        name: name.to_string(),
        min,
        max,
        cooldown_up,
        cooldown_down,
        provider,
    })
}

/// The provider block `name` of a target, or an error at `provider:` if it is missing.
fn provider_block<T>(
    src: &mut SourceFile,
    path: &YPath,
    what: &str,
    name: &str,
    block: Option<T>,
) -> Option<T> {
    if block.is_none() {
        src.error(
            &path.key("provider"),
            format!("{what}: provider {name} needs a {name} block"),
        );
    }
    block
}

/// A provider block that checks itself ([`ProviderBlock`]): its problems are
/// reported with positions and its relative paths resolved.
fn checked_block<T: ProviderBlock>(
    src: &mut SourceFile,
    path: &YPath,
    what: &str,
    name: &str,
    block: Option<T>,
    base_dir: &Path,
) -> Option<T> {
    let mut b = provider_block(src, path, what, name, block)?;
    for (at, message) in b.check(&path.key(name)) {
        src.error(&at, format!("{what}: {message}"));
    }
    b.resolve_paths(base_dir);
    Some(b)
}

fn compile_scrape(
    src: &mut SourceFile,
    doc: &serde_yaml::Value,
    targets: &BTreeMap<String, TargetConfig>,
) -> ScrapeConfig {
    let s: RawScrape = section(src, doc, "scrape");
    let p = root().key("scrape");
    let interval = duration(
        src,
        &p.key("interval"),
        &s.interval,
        DEFAULT_SCRAPE_INTERVAL,
    );
    let timeout = duration(src, &p.key("timeout"), &s.timeout, DEFAULT_SCRAPE_TIMEOUT);
    if interval.is_zero() {
        src.error(
            &p.key("interval"),
            "scrape.interval: must be greater than 0s",
        );
    }
    if timeout > interval {
        src.error(
            &p.key("timeout"),
            format!(
                "scrape.timeout ({}) must not exceed scrape.interval ({})",
                crate::spec::format_duration(timeout),
                crate::spec::format_duration(interval)
            ),
        );
    }
    let body_size_limit = match &s.body_size_limit {
        None => DEFAULT_BODY_SIZE_LIMIT,
        Some(v) => parse_size(v).unwrap_or_else(|e| {
            src.error(
                &p.key("body_size_limit"),
                format!("scrape.body_size_limit: {e}"),
            );
            DEFAULT_BODY_SIZE_LIMIT
        }),
    };
    let mut names = BTreeSet::new();
    let mut jobs = Vec::new();
    for (i, j) in s.jobs.into_iter().enumerate() {
        let jp = p.key("jobs").idx(i);
        let what = format!("scrape job {:?}", j.name);
        if !names.insert(j.name.clone()) {
            src.error(&jp.key("name"), format!("{what}: duplicate job name"));
        }
        let job_targets = match (j.target, j.static_targets) {
            (Some(t), None) => {
                if !targets.contains_key(&t) {
                    src.error(&jp.key("target"), format!("{what}: unknown target {t:?}"));
                }
                JobTargets::Target(t)
            }
            (None, Some(list)) => {
                for (k, addr) in list.iter().enumerate() {
                    if !valid_host_port(addr) {
                        src.error(
                            &jp.key("static_targets").idx(k),
                            format!("{what}: {addr:?} is not host:port"),
                        );
                    }
                }
                JobTargets::Static(list)
            }
            (Some(_), Some(_)) => {
                src.error(
                    &jp.key("static_targets"),
                    format!("{what}: set target or static_targets, not both"),
                );
                continue;
            }
            (None, None) => {
                src.error(&jp, format!("{what}: needs target or static_targets"));
                continue;
            }
        };
        let scheme = match j.scheme.as_deref() {
            None | Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => {
                src.error(
                    &jp.key("scheme"),
                    format!("{what}: scheme {other:?} is not http or https"),
                );
                Scheme::Http
            }
        };
        let metrics_path = j.metrics_path.unwrap_or_else(|| "/metrics".to_string());
        if !metrics_path.starts_with('/') {
            src.error(
                &jp.key("metrics_path"),
                format!("{what}: metrics_path must start with /"),
            );
        }
        jobs.push(ScrapeJob {
            name: j.name,
            targets: job_targets,
            metrics_path,
            scheme,
            labels: j.labels,
        });
    }
    ScrapeConfig {
        interval,
        timeout,
        body_size_limit,
        jobs,
    }
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}
