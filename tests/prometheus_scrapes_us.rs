//! A real Prometheus scrapes the running agent with the scrape config users
//! copy (`deploy/prometheus/homeostat-scrape.yaml`); through Prometheus's HTTP
//! API, `up{job="homeostat"}` is 1 and every `homeostat_*` family the
//! table of docs/metrics.md documents has samples.
//!
//! The docs/metrics.md table is parsed here, so the documentation and this test cannot
//! drift apart. Families that only get samples after something happens are
//! made to: a rule fires and acts through a webhook (decisions, actions, action
//! duration), the agent scrapes itself and a dead address (scrape families,
//! failures included), and a rule queries the
//! same Prometheus as a remote source (source queries).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PROMETHEUS: &str = "/usr/bin/prometheus";

fn prometheus_or_skip() -> Option<&'static str> {
    if Path::new(PROMETHEUS).exists() {
        return Some(PROMETHEUS);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("prometheus not installed at {PROMETHEUS} (apt-get install prometheus); required under CI=true");
    }
    eprintln!("\n*** SKIPPED: prometheus not installed (apt-get install prometheus) ***\n");
    None
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A child process killed on drop, its stderr kept in a file for failures.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn check_running(&mut self, what: &str) {
        if let Ok(Some(st)) = self.child.try_wait() {
            panic!("{what} exited: {st}\n{}", self.log_text());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every family named in the first column of the table of docs/metrics.md.
fn documented_families() -> Vec<String> {
    // docs/metrics.md is the metrics page: its one table lists every family.
    let section = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    let mut out = Vec::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let first = line.split('|').nth(1).unwrap_or("");
        for (i, part) in first.split('`').enumerate() {
            if i % 2 == 1 && part.starts_with("homeostat_") {
                out.push(part.to_string());
            }
        }
    }
    assert!(
        out.len() >= 10,
        "docs/metrics.md table parsed into too few families: {out:?}"
    );
    out
}

/// A family is present if its name has samples, or (histograms) its
/// `_bucket` and `_count` series do.
fn missing(families: &[String], names: &BTreeSet<String>) -> Vec<String> {
    families
        .iter()
        .filter(|f| {
            !(names.contains(*f)
                || (names.contains(&format!("{f}_bucket"))
                    && names.contains(&format!("{f}_count"))))
        })
        .cloned()
        .collect()
}

/// The deploy scrape config, pointed at `agent` and scraping every second.
fn prometheus_yml(agent: &str) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/homeostat-scrape.yaml"
    ))
    .expect("deploy/prometheus/homeostat-scrape.yaml");
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("scrape config is YAML");
    let jobs = doc
        .get_mut("scrape_configs")
        .and_then(|v| v.as_sequence_mut())
        .expect("scrape_configs: a list");
    let job = jobs
        .iter_mut()
        .find(|j| j.get("job_name").and_then(|n| n.as_str()) == Some("homeostat"))
        .expect("a job named homeostat");
    let m = job.as_mapping_mut().expect("job is a mapping");
    m.insert("scrape_interval".into(), "1s".into());
    m.insert("scrape_timeout".into(), "1s".into());
    let targets: serde_yaml::Value =
        serde_yaml::from_str(&format!("[{{targets: ['{agent}']}}]")).expect("targets");
    m.insert("static_configs".into(), targets);
    let mut out = serde_yaml::to_string(&doc).expect("yaml");
    out.insert_str(0, "global:\n  scrape_interval: 1s\n");
    out
}

async fn api(http: &reqwest::Client, prom: &str, path: &str) -> Option<serde_json::Value> {
    let r = http.get(format!("{prom}{path}")).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_documented_family() {
    let Some(bin) = prometheus_or_skip() else {
        return;
    };
    let families = documented_families();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // The webhook the firing rule acts through.
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_addr = hook.local_addr().expect("addr");
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move {
        let _ = axum::serve(hook, app).await;
    });

    let agent_addr = format!("127.0.0.1:{}", free_port());
    let prom_url = format!("http://127.0.0.1:{}", free_port());
    let dead_addr = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        d.join("rules.yaml"),
        r#"groups:
  - name: scrapes-us
    interval: 1s
    rules:
      - name: always-out
        queries: { one: 'vector(1)' }
        when: one > 0
        action: { kind: scale_out, target: hook, step: 1 }
      - name: remote
        queries:
          v: { source: prom, expr: 'vector(2)' }
        when: v > 5
        action: { kind: scale_out, target: hook, step: 1 }
      # A source nobody serves: an HTTP error, visible in /api/v1/rules and the
      # metrics, and never a scale-in even with on_no_data: fire.
      - name: remote-dead
        queries:
          v: { source: dead, expr: 'vector(0)' }
        when: v < 1
        on_no_data: fire
        action: { kind: scale_in, target: hook, step: 1 }
"#,
    )
    .expect("rules");
    // Absolute: the webhook provider resolves secret_file against the working
    // directory, not the config file's.
    let secret = d.join("hook.secret").display().to_string();
    std::fs::write(&secret, "test-secret\n").expect("secret");
    std::fs::write(
        d.join("homeostat.yaml"),
        format!(
            r#"listen: {agent_addr}
data_dir: ./data
rule_files: [rules.yaml]
scrape:
  interval: 1s
  timeout: 1s
  jobs:
    - name: self
      static_targets: [{agent_addr}]
    # Nobody listens here: homeostat_scrape_failures_total gets samples.
    - name: dead
      static_targets: [{dead_addr}]
targets:
  hook:
    provider: webhook
    max: 10
    webhook: {{ url: "http://{hook_addr}/hook", secret_file: "{secret}" }}
sources:
  prom: {{ url: "{prom_url}", timeout: 2s }}
  dead: {{ url: "http://{dead_addr}", timeout: 2s }}
"#
        ),
    )
    .expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_homeostat"));
    cmd.arg("run").arg("-c").arg(d.join("homeostat.yaml"));
    let mut agent = Proc::spawn(cmd, d.join("agent.log"));

    std::fs::write(d.join("prometheus.yml"), prometheus_yml(&agent_addr)).expect("prometheus.yml");
    let mut cmd = Command::new(bin);
    cmd.arg(format!(
        "--config.file={}",
        d.join("prometheus.yml").display()
    ))
    .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
    .arg(format!(
        "--web.listen-address={}",
        prom_url.trim_start_matches("http://")
    ));
    let mut prom = Proc::spawn(cmd, d.join("prometheus.log"));

    let http = reqwest::Client::new();
    let mut up = None;
    let mut names = BTreeSet::new();
    let mut miss = families.clone();
    for _ in 0..300 {
        agent.check_running("agent");
        prom.check_running("prometheus");
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(v) = api(
            &http,
            &prom_url,
            "/api/v1/query?query=up%7Bjob%3D%22homeostat%22%7D",
        )
        .await
        {
            up = v["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_string);
        }
        if let Some(v) = api(
            &http,
            &prom_url,
            "/api/v1/label/__name__/values?match[]=%7Bjob%3D%22homeostat%22%7D",
        )
        .await
        {
            names = v["data"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
        }
        miss = missing(&families, &names);
        if up.as_deref() == Some("1") && miss.is_empty() {
            break;
        }
    }
    assert_eq!(
        up.as_deref(),
        Some("1"),
        "up{{job=\"homeostat\"}}\nprometheus log:\n{}",
        prom.log_text()
    );
    assert!(
        miss.is_empty(),
        "documented families without samples in Prometheus: {miss:?}\nseen: {names:?}\nagent log:\n{}",
        agent.log_text()
    );
    // The remote-source rule's queries reached this Prometheus and succeeded.
    let ok_count = metric_value(
        &http,
        &prom_url,
        "homeostat_source_queries_total%7Bsource%3D%22prom%22%2Coutcome%3D%22ok%22%7D",
    )
    .await;
    assert!(
        ok_count > 0.0,
        "homeostat_source_queries_total{{source=\"prom\",outcome=\"ok\"}} never above 0\nagent log:\n{}",
        agent.log_text()
    );

    let dead = metric_value(
        &http,
        &prom_url,
        "homeostat_source_queries_total%7Bsource%3D%22dead%22%2Coutcome%3D%22http_error%22%7D",
    )
    .await;
    assert!(dead > 0.0, "no http_error counted for source dead");

    // The agent's own API shows the kind; the audit log has no scale-in.
    let agent_url = format!("http://{agent_addr}");
    let rules = api(&http, &agent_url, "/api/v1/rules")
        .await
        .expect("/api/v1/rules");
    let status = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .find(|r| r["name"] == "remote-dead")
        .map(|r| r["status"].clone())
        .expect("remote-dead in /api/v1/rules");
    assert_eq!(status["no_data_kind"], "http_error", "{status}");
    let text = status["no_data"].as_str().unwrap_or("");
    assert!(
        text.starts_with("http_error: query v (source dead): "),
        "{text}"
    );
    let audit = api(
        &http,
        &agent_url,
        "/api/v1/audit?rule=remote-dead&limit=1000",
    )
    .await
    .expect("/api/v1/audit");
    let audit_text = audit["data"].to_string();
    assert!(!audit_text.contains("\"scale_in\""), "{audit_text}");
    // The control: the always-firing rule's decisions are in the same log.
    let audit = api(
        &http,
        &agent_url,
        "/api/v1/audit?rule=always-out&limit=1000",
    )
    .await
    .expect("/api/v1/audit");
    assert!(
        audit["data"].to_string().contains("\"decision\""),
        "{audit}"
    );
}

/// The value of an instant query's first sample, polled for up to 10 s
/// (0 when it never appears).
async fn metric_value(http: &reqwest::Client, prom: &str, encoded_query: &str) -> f64 {
    for _ in 0..50 {
        let v = api(http, prom, &format!("/api/v1/query?query={encoded_query}")).await;
        let x = v
            .as_ref()
            .and_then(|v| v["data"]["result"][0]["value"][1].as_str())
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
        if x > 0.0 {
            return x;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    0.0
}
