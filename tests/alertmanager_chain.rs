//! The real chain: a real Prometheus scrapes a gauge this test serves and fires
//! an alerting rule; a real Alertmanager routes the alert (redelivering it
//! every couple of seconds) to the real agent binary's `POST /api/v1/alerts`,
//! authenticated with the agent's API bearer token; a trigger rule acts
//! through the webhook provider, whose receiver is this test.
//!
//! Asserted: exactly one delivery (one idempotency key) although Alertmanager
//! delivered the alert many times, also across a `kill -9` and restart of the
//! agent; a resolved alert does not act and clears the rule instance; the same
//! alert firing again later (new `startsAt`) acts once more.
//!
//! Needs `prometheus` and `prometheus-alertmanager` (Debian packages). Without
//! them the test fails under `CI=true` and is skipped loudly otherwise.
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const TOKEN: &str = "chain-test-token-5b1e";
/// Upper bound for any one wait; the test never asserts timing.
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);

/// A child process killed (and reaped) when dropped.
struct Proc {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name,
            child: Some(child),
            log,
        }
    }

    /// SIGKILL and reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- {} (last lines) ---\n{}",
            self.name,
            lines[from..].join("\n")
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Default)]
struct Hook {
    /// Idempotency key of every POST the webhook provider made.
    keys: Mutex<Vec<String>>,
}

async fn hook(State(h): State<Arc<Hook>>, headers: HeaderMap) -> &'static str {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
        .to_string();
    h.keys.lock().unwrap().push(key);
    "ok"
}

/// Distinct idempotency keys (a provider retry repeats its key).
fn distinct(keys: &[String]) -> usize {
    keys.iter().collect::<std::collections::BTreeSet<_>>().len()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn serve(app: Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

async fn get_text(client: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let r = client.get(url).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// Sum of a metric family's samples whose line contains `filter`.
fn metric_sum(text: &str, family: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(family) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Chain {
    client: reqwest::Client,
    am_url: String,
    agent_url: String,
    procs: Vec<Proc>,
}

impl Chain {
    /// Notifications Alertmanager delivered successfully to the agent.
    async fn delivered(&self) -> f64 {
        let Some((_, text)) = get_text(&self.client, &format!("{}/metrics", self.am_url)).await
        else {
            return 0.0;
        };
        metric_sum(&text, "alertmanager_notifications_total", "webhook")
            - metric_sum(&text, "alertmanager_notifications_failed_total", "webhook")
    }

    async fn wait_for<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        // Polls, not a clock: each check is at most a few local HTTP calls.
        for _ in 0..WAIT.as_millis() / POLL.as_millis() {
            if check().await {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        let logs: Vec<String> = self.procs.iter().map(Proc::log_tail).collect();
        panic!("timed out waiting for {what}\n{}", logs.join("\n"));
    }

    async fn wait_delivered(&self, at_least: f64, what: &str) {
        self.wait_for(what, || async { self.delivered().await >= at_least })
            .await;
    }

    /// Instances of the trigger rule the agent shows in `/api/v1/rules`.
    async fn rule_instances(&self) -> Option<usize> {
        let (_, text) = get_text(&self.client, &format!("{}/api/v1/rules", self.agent_url)).await?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let rules = v["data"]["groups"][0]["rules"].as_array()?;
        let r = rules.iter().find(|r| r["name"] == "control-alert-notify")?;
        Some(
            r["status"]["instances"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0),
        )
    }
}

fn start_agent(cfg: &Path, log: PathBuf) -> Proc {
    Proc::spawn(
        "agent",
        Command::new(env!("CARGO_BIN_EXE_homeostat"))
            .arg("run")
            .arg("-c")
            .arg(cfg)
            // Relative paths in the config (data_dir, secret files) land in the tempdir.
            .current_dir(cfg.parent().unwrap())
            .env("RUST_LOG", "info"),
        log,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alertmanager_agent_webhook_acts_exactly_once() {
    let missing: Vec<&str> = [PROMETHEUS, ALERTMANAGER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        let msg = format!(
            "SKIPPED: alertmanager_chain needs {} (apt-get install prometheus prometheus-alertmanager)",
            missing.join(", ")
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("\n*** {msg} ***\n");
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The gauge Prometheus alerts on.
    let control = Arc::new(AtomicI64::new(0));
    let c2 = control.clone();
    let exporter = serve(Router::new().route(
        "/metrics",
        get(move || {
            let v = c2.load(Ordering::SeqCst);
            async move { format!("# TYPE control_value gauge\ncontrol_value {v}\n") }
        }),
    ))
    .await;

    // The webhook provider's receiver.
    let h = Arc::new(Hook::default());
    let hook_addr = serve(
        Router::new()
            .route("/hook", post(hook))
            .with_state(h.clone()),
    )
    .await;

    let agent_port = free_port();
    let am_port = free_port();
    let prom_port = free_port();

    // The agent.
    write(&d.join("hook.secret"), "chain-secret\n");
    write(&d.join("api.token"), &format!("{TOKEN}\n"));
    write(
        &d.join("rules.yaml"),
        r#"groups:
  - name: alerts
    interval: 1s
    rules:
      - name: control-alert-notify
        description: Tell the receiver when the control alert fires.
        trigger:
          alert: ControlHigh
          matchers: { severity: page }
        action: { kind: scale_out, target: notify, step: 1 }
        annotations: { summary: "control on {{ labels.instance }}" }
"#,
    );
    // No cooldowns: only the alert dedup stands between a redelivery and a
    // second action.
    write(
        &d.join("homeostat.yaml"),
        &format!(
            r#"listen: 127.0.0.1:{agent_port}
data_dir: ./data
rule_files: [rules.yaml]
scrape: {{ interval: 1s, timeout: 1s, jobs: [] }}
targets:
  notify:
    provider: webhook
    min: 0
    max: 1000
    cooldown_up: 0s
    cooldown_down: 0s
    webhook: {{ url: "http://{hook_addr}/hook", secret_file: hook.secret }}
guard:
  max_actions_per_target_per_hour: 1000
api:
  token_file: api.token
"#
        ),
    );

    // Alertmanager: redeliver every couple of seconds, with the bearer token.
    write(
        &d.join("alertmanager.yml"),
        &format!(
            r#"route:
  receiver: homeostat
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: homeostat
    webhook_configs:
      - url: http://127.0.0.1:{agent_port}/api/v1/alerts
        send_resolved: true
        http_config:
          authorization: {{ type: Bearer, credentials: {TOKEN} }}
"#
        ),
    );

    // Prometheus: scrape the gauge every second, alert at once.
    write(
        &d.join("alert.rules.yml"),
        r#"groups:
  - name: control
    interval: 1s
    rules:
      - alert: ControlHigh
        expr: control_value > 0
        for: 0s
        labels: { severity: page }
        annotations: { summary: control is high }
"#,
    );
    write(
        &d.join("prometheus.yml"),
        &format!(
            r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alert.rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
  - job_name: control
    static_configs:
      - targets: ["{exporter}"]
"#
        ),
    );

    let mut chain = Chain {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
        am_url: format!("http://127.0.0.1:{am_port}"),
        agent_url: format!("http://127.0.0.1:{agent_port}"),
        procs: Vec::new(),
    };
    chain
        .procs
        .push(start_agent(&d.join("homeostat.yaml"), d.join("agent.log")));
    chain.procs.push(Proc::spawn(
        "alertmanager",
        Command::new(ALERTMANAGER)
            .arg(format!(
                "--config.file={}",
                d.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", d.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address="),
        d.join("alertmanager.log"),
    ));
    chain.procs.push(Proc::spawn(
        "prometheus",
        Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                d.join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
        d.join("prometheus.log"),
    ));

    let ready = |url: String| {
        let client = chain.client.clone();
        async move { matches!(get_text(&client, &url).await, Some((200, _))) }
    };
    chain
        .wait_for("the agent to be ready", || {
            ready(format!("{}/-/ready", chain.agent_url))
        })
        .await;
    chain
        .wait_for("alertmanager to be ready", || {
            ready(format!("{}/-/ready", chain.am_url))
        })
        .await;
    chain
        .wait_for("prometheus to be ready", || {
            ready(format!("http://127.0.0.1:{prom_port}/-/ready"))
        })
        .await;

    // The rules API shows the trigger.
    let (_, rules) = get_text(&chain.client, &format!("{}/api/v1/rules", chain.agent_url))
        .await
        .unwrap();
    let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
    let r = &rules["data"]["groups"][0]["rules"][0];
    assert_eq!(r["trigger"]["alert"], "ControlHigh", "{rules}");
    assert_eq!(r["trigger"]["matchers"]["severity"], "page", "{rules}");

    // Without the token the receiver refuses (the same policy as /-/reload).
    let unauth = chain
        .client
        .post(format!("{}/api/v1/alerts", chain.agent_url))
        .body(r#"{"version":"4","alerts":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status().as_u16(), 401);

    // Fire: exactly one action although Alertmanager keeps redelivering.
    control.store(1, Ordering::SeqCst);
    chain
        .wait_for("the first webhook delivery", || async {
            !h.keys.lock().unwrap().is_empty()
        })
        .await;
    let first = chain.delivered().await;
    chain
        .wait_delivered(first + 3.0, "three Alertmanager redeliveries")
        .await;
    assert_eq!(chain.rule_instances().await, Some(1));

    // kill -9 the agent while Alertmanager keeps redelivering; after the
    // restart the audit log tells it the alert was already acted on.
    chain.procs[0].kill();
    chain.procs[0] = start_agent(&d.join("homeostat.yaml"), d.join("agent2.log"));
    chain
        .wait_for("the restarted agent to be ready", || {
            ready(format!("{}/-/ready", chain.agent_url))
        })
        .await;
    let before = chain.delivered().await;
    chain
        .wait_delivered(before + 3.0, "three redeliveries to the restarted agent")
        .await;
    {
        let keys = h.keys.lock().unwrap().clone();
        assert_eq!(distinct(&keys), 1, "one action expected, got keys {keys:?}");
    }
    // The restarted agent saw the alert (its rule instance is firing) but did
    // not act.
    assert_eq!(chain.rule_instances().await, Some(1));

    // Resolve: the instance goes away, nothing more is delivered.
    control.store(0, Ordering::SeqCst);
    chain
        .wait_for(
            "the resolved notification to clear the rule instance",
            || async { chain.rule_instances().await == Some(0) },
        )
        .await;
    // (A resolved alert that acted would also show up below as a third
    // acting decision in the audit log.)
    {
        let keys = h.keys.lock().unwrap().clone();
        assert_eq!(
            distinct(&keys),
            1,
            "resolved must not act, got keys {keys:?}"
        );
    }

    // The alert firing again is a new alert (new startsAt): one more action.
    control.store(1, Ordering::SeqCst);
    chain
        .wait_for("a second action for the re-fired alert", || async {
            distinct(&h.keys.lock().unwrap()) >= 2
        })
        .await;
    let before = chain.delivered().await;
    chain
        .wait_delivered(before + 3.0, "redeliveries of the re-fired alert")
        .await;
    let keys = h.keys.lock().unwrap().clone();
    assert_eq!(
        distinct(&keys),
        2,
        "one action per firing, got keys {keys:?}"
    );

    // The audit log agrees: two acting decisions, each naming the alert.
    let (_, audit) = get_text(
        &chain.client,
        &format!("{}/api/v1/audit?event=decision&limit=1000", chain.agent_url),
    )
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let decisions: Vec<&serde_json::Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["rule"] == "control-alert-notify")
        .collect();
    assert_eq!(decisions.len(), 2, "{audit}");
    for e in &decisions {
        assert_eq!(e["reason"]["when"], "alert ControlHigh");
        assert_eq!(e["reason"]["alert"]["name"], "ControlHigh");
        assert!(e["reason"]["alert"]["fingerprint"]
            .as_str()
            .is_some_and(|f| !f.is_empty()));
        assert!(e["reason"]["alert"]["generatorURL"]
            .as_str()
            .is_some_and(|u| u.contains(&prom_port.to_string()) || u.starts_with("http")));
    }
    assert_ne!(
        decisions[0]["reason"]["alert"]["startsAt"],
        decisions[1]["reason"]["alert"]["startsAt"]
    );
}
