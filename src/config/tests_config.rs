//! Config compile tests: the good path and one test per kind of error, with positions.
use std::path::Path;
use std::time::Duration;

use super::*;

const GOOD: &str = r#"listen: 0.0.0.0:9900
data_dir: state
rule_files: [rules/*.yaml]
scrape:
  interval: 15s
  timeout: 3s
  body_size_limit: 8MiB
  jobs:
    - name: checkout
      target: checkout
    - name: edge
      static_targets: [127.0.0.1:9100]
      scheme: https
      labels: { zone: a }
targets:
  checkout:
    provider: process
    min: 1
    max: 8
    cooldown_up: 1m
    cooldown_down: 5m
    process:
      command: [homeostat, demo-service, --port, "{{port}}"]
      ports: 18100-18199
      health: /healthz
  notify:
    provider: webhook
    webhook: { url: "http://127.0.0.1:9000/hook", secret_file: hook.secret }
sources:
  prom-main: { url: "http://127.0.0.1:9090" }
guard:
  max_actions_per_target_per_hour: 12
  paused: true
log: { format: json, level: "homeostat=debug,info" }
"#;

fn errs(text: &str) -> Vec<String> {
    match compile(Path::new("conf/homeostat.yaml"), text) {
        Ok(_) => panic!("expected errors"),
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn good_config_compiles_with_defaults_and_relative_paths() {
    let c = compile(Path::new("conf/homeostat.yaml"), GOOD).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:9900");
    assert_eq!(c.data_dir, Path::new("conf/state"));
    assert_eq!(c.rule_files[0].resolved, Path::new("conf/rules/*.yaml"));
    assert_eq!((c.rule_files[0].line, c.rule_files[0].column), (3, 14));
    assert_eq!(c.scrape.interval, Duration::from_secs(15));
    assert_eq!(c.scrape.timeout, Duration::from_secs(3));
    assert_eq!(c.scrape.body_size_limit, 8 << 20);
    assert_eq!(
        c.scrape.jobs[0].targets,
        JobTargets::Target("checkout".into())
    );
    assert_eq!(c.scrape.jobs[0].metrics_path, "/metrics");
    assert_eq!(c.scrape.jobs[1].scheme, Scheme::Https);
    let t = &c.targets["checkout"];
    assert_eq!((t.min, t.max), (1, 8));
    assert_eq!(t.cooldown_down, Duration::from_secs(300));
    assert_eq!(t.provider.name(), "process");
    match &c.targets["notify"].provider {
        ProviderConfig::Webhook(w) => assert_eq!(
            w.secret_file.as_deref(),
            Some(Path::new("conf/hook.secret")),
            "secret_file is relative to the config file"
        ),
        other => panic!("notify is {}", other.name()),
    }
    assert_eq!(c.sources["prom-main"].timeout, DEFAULT_SOURCE_TIMEOUT);
    assert_eq!(c.guard.max_actions_per_target_per_hour, 12);
    assert_eq!(c.guard.max_open_share, 0.5);
    assert!(c.guard.paused);
    assert_eq!(c.log.format, LogFormat::Json);
    assert!(c.api.token.is_none());
}

#[test]
fn empty_config_gets_defaults() {
    let c = compile(Path::new("homeostat.yaml"), "").unwrap();
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.data_dir, Path::new("./data"));
    assert_eq!(c.scrape.interval, DEFAULT_SCRAPE_INTERVAL);
    assert_eq!(c.scrape.body_size_limit, DEFAULT_BODY_SIZE_LIMIT);
    assert_eq!(c.guard.max_actions_per_target_per_hour, 30);
}

#[test]
fn syntax_error_has_position() {
    let e = errs("listen: [1, 2\nscrape: {}\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("conf/homeostat.yaml:2:"), "{e:?}");
}

#[test]
fn unknown_fields_are_reported_in_every_section() {
    let e = errs("lisen: x\nscrape:\n  intervall: 10s\ntargets:\n  a:\n    provider: webhook\n    webhook: { url: \"http://x\", secrt: 1 }\n");
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e[0].starts_with("conf/homeostat.yaml:1:1: unknown field `lisen`"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("conf/homeostat.yaml:3:3: scrape: unknown field `intervall`"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("conf/homeostat.yaml:7:33: target \"a\": webhook: unknown field `secrt`"),
        "{e:?}"
    );
}

#[test]
fn all_semantic_errors_at_once_with_positions() {
    let text = r#"listen: nowhere
scrape:
  interval: 5s
  timeout: 10s
  body_size_limit: 16 parsecs
  jobs:
    - name: j
      target: missing
    - name: j
      static_targets: ["no-port"]
targets:
  a:
    provider: process
    min: 5
    max: 2
    cooldown_up: 1minute
    process: { command: [x], ports: 18100-18000 }
  b:
    provider: nomad
  c:
    provider: webhook
guard:
  max_open_share: 1.5
log:
  format: xml
"#;
    let e = errs(text);
    let want = [
        "conf/homeostat.yaml:1:9: listen: \"nowhere\" is not an address such as 127.0.0.1:9798",
        "conf/homeostat.yaml:4:12: scrape.timeout (10s) must not exceed scrape.interval (5s)",
        "conf/homeostat.yaml:5:20: scrape.body_size_limit: invalid size \"16 parsecs\": unknown unit \"parsecs\" (B, KB, MB, GB, KiB, MiB, GiB)",
        "conf/homeostat.yaml:8:15: scrape job \"j\": unknown target \"missing\"",
        "conf/homeostat.yaml:9:13: scrape job \"j\": duplicate job name",
        "conf/homeostat.yaml:10:24: scrape job \"j\": \"no-port\" is not host:port",
        "conf/homeostat.yaml:14:10: target \"a\": min (5) is greater than max (2)",
        "conf/homeostat.yaml:16:18: targets.a.cooldown_up: invalid duration \"1minute\": unknown unit \"minute\" (ms, s, m, h, d, w, y)",
        "conf/homeostat.yaml:17:37: target \"a\": process.ports: port range \"18100-18000\": expected start-end with 0 < start <= end",
        "conf/homeostat.yaml:19:15: target \"b\": unknown provider \"nomad\" (known: process, webhook, docker, haproxy, kubernetes)",
        "conf/homeostat.yaml:21:15: target \"c\": provider webhook needs a webhook block",
        "conf/homeostat.yaml:23:19: guard.max_open_share: 1.5 is not in (0, 1]",
        "conf/homeostat.yaml:25:11: log.format: \"xml\" is not one of pretty, json",
    ];
    for w in want {
        assert!(e.iter().any(|x| x == w), "missing {w:?}\n got {e:#?}");
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
}

#[test]
fn type_error_in_provider_block_points_at_value() {
    let e = errs("targets:\n  a:\n    provider: process\n    max: 3\n    process:\n      command: x\n      ports: 1-2\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("conf/homeostat.yaml:6:16: target \"a\": process.command: invalid type"),
        "{e:?}"
    );
}

#[test]
fn api_token_from_file_is_hidden_and_relative() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t0ken\n").unwrap();
    let path = dir.path().join("homeostat.yaml");
    let c = compile(&path, "api: { token_file: token }\n").unwrap();
    let t = c.api.token.clone().unwrap();
    assert!(t.matches("t0ken"));
    assert!(!format!("{c:?}").contains("t0ken"));
    let e = match compile(&path, "api:\n  token_file: nope\n") {
        Err(d) => d,
        Ok(_) => panic!("missing token file accepted"),
    };
    assert_eq!((e[0].line, e[0].column), (2, 15));
    let e = match compile(
        &path,
        "api:\n  token_env: HOMEOSTAT_TEST_SURELY_UNSET_VAR\n",
    ) {
        Err(d) => d,
        Ok(_) => panic!("unset env accepted"),
    };
    assert_eq!((e[0].line, e[0].column), (2, 14));
}

#[test]
fn exactly_the_providers_block_must_be_present() {
    let e = errs(
        "targets:\n  a:\n    provider: process\n    max: 3\n    process: { command: [x], ports: 1-2, initial_replicas: 5 }\n    webhook: { url: \"http://x\" }\n  b:\n    provider: webhook\n    webhook: { url: \"ftp://x\" }\n    process: { command: [x], ports: 1-2 }\n",
    );
    assert_eq!(
        e,
        vec![
            "conf/homeostat.yaml:5:60: target \"a\": process.initial_replicas (5) is outside min..max (1..3)",
            "conf/homeostat.yaml:6:14: target \"a\": a webhook block on a process target",
            "conf/homeostat.yaml:9:21: target \"b\": webhook.url \"ftp://x\" must start with http:// or https://",
            "conf/homeostat.yaml:10:14: target \"b\": a process block on a webhook target",
        ]
    );
    let e =
        errs("targets:\n  a:\n    provider: process\n    process: { command: [x], ports: 1-2 }\n");
    assert_eq!(
        e,
        vec!["conf/homeostat.yaml:3:5: target \"a\": max is required for a process target"]
    );
}

#[test]
fn adapter_blocks_are_checked_with_positions() {
    let text = r#"targets:
  web:
    provider: docker
    docker: { port: 0, host_ports: "9000-8000" }
  edge:
    provider: haproxy
    haproxy: { runtime_api: "", backend: web }
    docker: { port: 80 }
  kube:
    provider: kubernetes
    max: 3
  odd:
    provider: nomad
"#;
    let e = errs(text);
    assert_eq!(
        e,
        vec![
            "conf/homeostat.yaml:3:5: target \"web\": max is required for a docker target",
            "conf/homeostat.yaml:4:21: target \"web\": docker.port: must be 1..=65535",
            "conf/homeostat.yaml:4:36: target \"web\": docker.host_ports: port range \"9000-8000\": expected start-end with 0 < start <= end",
            "conf/homeostat.yaml:6:5: target \"edge\": max is required for a haproxy target",
            "conf/homeostat.yaml:7:29: target \"edge\": haproxy.runtime_api: is empty",
            "conf/homeostat.yaml:8:13: target \"edge\": a docker block on a haproxy target",
            "conf/homeostat.yaml:10:15: target \"kube\": provider kubernetes needs a kubernetes block",
            "conf/homeostat.yaml:13:15: target \"odd\": unknown provider \"nomad\" (known: process, webhook, docker, haproxy, kubernetes)",
        ]
    );
}

#[test]
fn adapter_paths_resolve_against_the_config_file() {
    let text = r#"targets:
  web:
    provider: docker
    max: 2
    docker: { port: 8080, socket: run/docker.sock }
  edge:
    provider: haproxy
    haproxy: { runtime_api: run/admin.sock, backend: web }
    max: 2
  remote:
    provider: haproxy
    haproxy: { runtime_api: "tcp://127.0.0.1:9999", backend: web }
    max: 2
  kube:
    provider: kubernetes
    max: 3
    kubernetes: { name: web, kubeconfig: kube/config }
"#;
    let c = compile(Path::new("conf/homeostat.yaml"), text).unwrap();
    match &c.targets["web"].provider {
        ProviderConfig::Docker(d) => {
            assert_eq!(d.socket.as_deref(), Some(Path::new("conf/run/docker.sock")))
        }
        other => panic!("{other:?}"),
    }
    match (&c.targets["edge"].provider, &c.targets["remote"].provider) {
        (ProviderConfig::Haproxy(a), ProviderConfig::Haproxy(b)) => {
            assert_eq!(a.runtime_api, "conf/run/admin.sock");
            assert_eq!(b.runtime_api, "tcp://127.0.0.1:9999");
        }
        other => panic!("{other:?}"),
    }
    match &c.targets["kube"].provider {
        ProviderConfig::Kubernetes(k) => {
            assert_eq!(k.kubeconfig.as_deref(), Some(Path::new("conf/kube/config")))
        }
        other => panic!("{other:?}"),
    }
}
