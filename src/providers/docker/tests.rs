//! Unit tests of the docker provider's pieces (error classes, image
//! references, replica specs, the state file, config checks); the behaviour
//! against the real engine is in `tests/docker_provider.rs`.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::errors::Error as BErr;
use bollard::models::{
    ContainerConfig, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum,
    EndpointSettings, Health as BHealth, HealthConfig, HealthStatusEnum, HealthcheckResult,
    HostConfig, ImageConfig, ImageInspect, NetworkSettings, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};

use super::client::*;
use super::config::*;
use super::spec::*;
use super::state::*;
use crate::model::{ActionKind, ActionOutcome, ActionRequest, ProviderError, ProviderOp};
use crate::providers::{CompletedActions, ProviderBlock};
use crate::spec::YPath;

fn server(status_code: u16, message: &str) -> BErr {
    BErr::DockerResponseServerError {
        status_code,
        message: message.into(),
    }
}

#[test]
fn engine_answers_map_to_error_classes() {
    let cases = [
        (401, "permission_denied"),
        (403, "permission_denied"),
        (404, "not_found"),
        (409, "conflict"),
        (400, "rejected"),
        (500, "failed"),
        (503, "unavailable"),
    ];
    for (code, cause) in cases {
        let e = map_error("create container web-1", &server(code, "boom"));
        assert_eq!(e.cause(), cause, "{code}: {e}");
        assert!(e.to_string().contains("create container web-1"), "{e}");
        assert!(e.to_string().contains("boom"), "{e}");
    }
    assert!(map_error("x", &server(409, "name in use")).is_retryable());
    assert!(!map_error("x", &server(404, "no such container")).is_retryable());
}

#[test]
fn transport_failures_map_to_error_classes() {
    let e = map_error(
        "list containers",
        &BErr::SocketNotFoundError("/run/nope.sock".into()),
    );
    assert!(matches!(e, ProviderError::Unavailable { .. }), "{e}");
    assert!(e.to_string().contains("/run/nope.sock"), "{e}");

    let io = |kind| BErr::IOError {
        err: std::io::Error::new(kind, "os says no"),
    };
    let e = map_error("ping", &io(std::io::ErrorKind::PermissionDenied));
    assert!(matches!(e, ProviderError::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("os says no"), "{e}");
    let e = map_error("ping", &io(std::io::ErrorKind::ConnectionRefused));
    assert!(matches!(e, ProviderError::Unavailable { .. }), "{e}");
    let e = map_error("ping", &io(std::io::ErrorKind::TimedOut));
    assert!(matches!(e, ProviderError::Timeout { .. }), "{e}");
    let e = map_error("ping", &BErr::RequestTimeoutError);
    assert!(matches!(e, ProviderError::Timeout { .. }), "{e}");

    let e = map_error(
        "inspect container",
        &BErr::JsonDataError {
            message: "expected value".into(),
            column: 3,
        },
    );
    assert!(matches!(e, ProviderError::Failed { .. }), "{e}");
    assert!(e.to_string().contains("malformed reply"), "{e}");
}

#[test]
fn an_oversized_engine_message_is_cut() {
    let e = map_error("x", &server(500, &"a".repeat(10_000)));
    assert!(e.to_string().len() < 700, "{}", e.to_string().len());
}

#[test]
fn port_conflicts_are_recognised() {
    let e = map_error(
        "start container web-2",
        &server(
            500,
            "driver failed programming external connectivity on endpoint web-2: Bind for 127.0.0.1:24100 failed: port is already allocated",
        ),
    );
    assert!(is_port_conflict(&e));
    assert!(!is_port_conflict(&map_error("x", &server(500, "oops"))));
}

#[test]
fn creation_times_sort_although_the_engine_trims_fractions() {
    let a = created_key("2024-05-01T10:00:00.1Z");
    let b = created_key("2024-05-01T10:00:00.12Z");
    let c = created_key("2024-05-01T10:00:00Z");
    let d = created_key("2024-05-01T10:00:01.000000001Z");
    assert!(c < a && a < b && b < d, "{c} {a} {b} {d}");
    // As plain strings these would not sort.
    assert!("2024-05-01T10:00:00.1Z" > "2024-05-01T10:00:00.12Z");
    assert_eq!(created_key("garbage"), "garbage");
}

#[test]
fn image_references() {
    assert_eq!(repository("web:v1"), Some("web"));
    assert_eq!(repository("web"), Some("web"));
    assert_eq!(
        repository("registry:5000/team/web:v1"),
        Some("registry:5000/team/web")
    );
    assert_eq!(
        repository("registry:5000/team/web"),
        Some("registry:5000/team/web")
    );
    assert_eq!(repository("web@sha256:abcd"), Some("web"));
    assert_eq!(repository("sha256:abcd"), None);
    assert_eq!(tag("web:v1"), Some("v1"));
    assert_eq!(tag("web"), Some("latest"));
    assert_eq!(tag("registry:5000/web"), Some("latest"));
    assert_eq!(tag("web@sha256:abcd"), None);

    assert_eq!(resolve_version("web:v1", "v2").unwrap(), "web:v2");
    assert_eq!(
        resolve_version("registry:5000/web:v1", "v2").unwrap(),
        "registry:5000/web:v2"
    );
    assert_eq!(
        resolve_version("web:v1", "other/web:v3").unwrap(),
        "other/web:v3"
    );
    assert_eq!(resolve_version("web:v1", "web:v3").unwrap(), "web:v3");
    assert!(resolve_version("web:v1", "v 2").is_err());
    assert!(resolve_version("web:v1", "").is_err());
    let e = resolve_version("sha256:abcd", "v2").unwrap_err();
    assert!(e.contains("full image reference"), "{e}");
}

#[test]
fn container_names() {
    assert_eq!(name_prefix("web"), "web");
    assert_eq!(name_prefix("web api"), "web-api");
    assert_eq!(name_prefix("_x"), "h_x");
    assert_eq!(name_index("web", "web-12"), Some(12));
    assert_eq!(name_index("web", "web-a"), None);
    assert_eq!(name_index("web", "webby-1"), None);
}

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn image() -> ImageInspect {
    ImageInspect {
        id: Some("sha256:img".into()),
        config: Some(ImageConfig {
            env: Some(strs(&["PATH=/bin", "HOMEOSTAT_DEMO_VERSION=v1"])),
            cmd: Some(strs(&["demo-service"])),
            entrypoint: Some(strs(&["/homeostat"])),
            user: Some("65534".into()),
            labels: Some(HashMap::from([("maintainer".into(), "sre".into())])),
            exposed_ports: Some(strs(&["8080/tcp"])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container() -> ContainerInspectResponse {
    let bindings = HashMap::from([
        (
            "8080/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("24100".into()),
            }]),
        ),
        (
            "9090/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("0.0.0.0".into()),
                host_port: Some("9090".into()),
            }]),
        ),
    ]);
    ContainerInspectResponse {
        id: Some(ID.into()),
        name: Some("/web-1".into()),
        created: Some("2024-05-01T10:00:00.5Z".into()),
        image: Some("sha256:img".into()),
        state: Some(ContainerState {
            status: Some(ContainerStateStatusEnum::RUNNING),
            running: Some(true),
            health: Some(BHealth {
                status: Some(HealthStatusEnum::UNHEALTHY),
                failing_streak: Some(3),
                log: Some(vec![HealthcheckResult {
                    output: Some("connection refused".into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        }),
        config: Some(ContainerConfig {
            hostname: Some(ID[..12].into()),
            env: Some(strs(&[
                "PATH=/bin",
                "HOMEOSTAT_DEMO_VERSION=v1",
                "COLOR=blue",
            ])),
            cmd: Some(strs(&["demo-service"])),
            entrypoint: Some(strs(&["/homeostat"])),
            image: Some("web:v1".into()),
            user: Some("65534".into()),
            labels: Some(HashMap::from([
                ("maintainer".into(), "sre".into()),
                ("homeostat.target".into(), "web".into()),
                ("homeostat.action".into(), "a-1".into()),
                ("homeostat.replaces".into(), "web-0".into()),
                ("tier".into(), "front".into()),
            ])),
            healthcheck: Some(HealthConfig {
                test: Some(strs(&["CMD", "/homeostat", "healthcheck"])),
                ..Default::default()
            }),
            exposed_ports: Some(strs(&["8080/tcp", "9090/tcp"])),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            port_bindings: Some(bindings),
            network_mode: Some("appnet".into()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            links: Some(strs(&["/db:/web-1/database"])),
            container_id_file: Some("/tmp/cid".into()),
            ..Default::default()
        }),
        network_settings: Some(NetworkSettings {
            ports: Some(HashMap::from([(
                "8080/tcp".to_string(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some("24100".into()),
                }]),
            )])),
            networks: Some(HashMap::from([
                (
                    "appnet".to_string(),
                    EndpointSettings {
                        aliases: Some(strs(&["web", &ID[..12], "web-1"])),
                        ..Default::default()
                    },
                ),
                (
                    "metrics".to_string(),
                    EndpointSettings {
                        aliases: Some(strs(&["scrape-me"])),
                        ..Default::default()
                    },
                ),
            ])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_container_is_observed() {
    let o = observe(&container(), 8080).unwrap();
    assert_eq!(o.name, "web-1");
    assert_eq!(o.image, "web:v1");
    assert_eq!(o.image_id, "sha256:img");
    assert_eq!(o.status, Status::Running);
    assert_eq!(o.health, Health::Unhealthy);
    assert_eq!(o.host_port, Some(24100));
    assert_eq!(o.action(), Some("a-1"));
    assert_eq!(o.cmd, ["/homeostat", "demo-service"]);
    let cond = o.condition();
    assert!(
        cond.contains("unhealthy") && cond.contains("connection refused"),
        "{cond}"
    );

    // Stopped: the live binding is gone, the configured one remains.
    let mut c = container();
    c.network_settings.as_mut().unwrap().ports = Some(HashMap::new());
    c.state = Some(ContainerState {
        status: Some(ContainerStateStatusEnum::EXITED),
        exit_code: Some(137),
        ..Default::default()
    });
    let o = observe(&c, 8080).unwrap();
    assert_eq!(o.status, Status::Exited);
    assert_eq!(o.health, Health::None);
    assert_eq!(o.host_port, Some(24100));
    assert!(o.condition().contains("exit code 137"));
    // Another port: none published.
    assert_eq!(observe(&c, 7000).unwrap().host_port, None);
    // No id: a malformed reply, not a container.
    let mut c = container();
    c.id = None;
    assert!(observe(&c, 8080).is_none());
}

#[test]
fn a_spec_leaves_out_what_the_image_supplies() {
    let s = ReplicaSpec::from_container(&container(), Some(&image()), "web:v1", 8080);
    assert_eq!(s.image, "web:v1");
    assert_eq!(s.host_port, Some(24100));
    let c = &s.config;
    assert_eq!(c.env.as_deref(), Some(&strs(&["COLOR=blue"])[..]));
    assert_eq!(c.cmd, None, "the image's Cmd");
    assert_eq!(c.entrypoint, None, "the image's Entrypoint");
    assert_eq!(c.user, None);
    assert_eq!(
        c.hostname, None,
        "the engine's default hostname is not copied"
    );
    assert_eq!(c.exposed_ports.as_deref(), Some(&strs(&["9090/tcp"])[..]));
    let labels = c.labels.as_ref().unwrap();
    assert_eq!(labels.get("tier").map(String::as_str), Some("front"));
    assert_eq!(
        labels.get("homeostat.target").map(String::as_str),
        Some("web")
    );
    for k in ["homeostat.action", "homeostat.replaces", "maintainer"] {
        assert!(!labels.contains_key(k), "{k}");
    }
    assert!(
        c.healthcheck.is_some(),
        "a container's own health check is kept"
    );
    let h = c.host_config.as_ref().unwrap();
    assert_eq!(h.links.as_deref(), Some(&strs(&["db:database"])[..]));
    assert_eq!(h.container_id_file, None);
    assert_eq!(
        h.restart_policy.as_ref().unwrap().name,
        Some(RestartPolicyNameEnum::UNLESS_STOPPED)
    );
    assert_eq!(
        s.primary_aliases,
        ["web"],
        "own id and name are not aliases to copy"
    );
    assert_eq!(
        s.extra_networks,
        [NetworkAttachment {
            name: "metrics".into(),
            aliases: strs(&["scrape-me"])
        }]
    );
    // The spec survives the state file.
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<ReplicaSpec>(&json).unwrap(), s);
}

#[test]
fn a_custom_entrypoint_keeps_its_command() {
    let mut c = container();
    c.config.as_mut().unwrap().entrypoint = Some(strs(&["/other"]));
    let s = ReplicaSpec::from_container(&c, Some(&image()), "web:v1", 8080);
    assert_eq!(s.config.entrypoint, Some(strs(&["/other"])));
    // The engine ignores the image's Cmd when an entrypoint is given.
    assert_eq!(s.config.cmd, Some(strs(&["demo-service"])));
}

#[test]
fn without_the_image_everything_is_copied() {
    let s = ReplicaSpec::from_container(&container(), None, "sha256:img", 8080);
    assert_eq!(s.config.cmd, Some(strs(&["demo-service"])));
    assert_eq!(s.config.env.as_ref().unwrap().len(), 3);
}

#[test]
fn the_create_request_publishes_on_loopback() {
    let s = ReplicaSpec::from_container(&container(), Some(&image()), "web:v1", 8080);
    let labels = BTreeMap::from([
        ("homeostat.action".to_string(), "a-2".to_string()),
        ("homeostat.target".to_string(), "web".to_string()),
    ]);
    let body = s.create_body(8080, Some(24105), &labels);
    assert_eq!(body.image.as_deref(), Some("web:v1"));
    let l = body.labels.as_ref().unwrap();
    assert_eq!(l.get("homeostat.action").map(String::as_str), Some("a-2"));
    assert_eq!(l.get("tier").map(String::as_str), Some("front"));
    let ports = body
        .host_config
        .as_ref()
        .unwrap()
        .port_bindings
        .as_ref()
        .unwrap();
    let main = ports["8080/tcp"].as_ref().unwrap();
    assert_eq!(main[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(main[0].host_port.as_deref(), Some("24105"));
    // Another published port: loopback, a port the engine picks (a fixed one would collide).
    let other = ports["9090/tcp"].as_ref().unwrap();
    assert_eq!(other[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(other[0].host_port.as_deref(), Some(""));
    assert!(body
        .exposed_ports
        .as_ref()
        .unwrap()
        .contains(&"8080/tcp".to_string()));
    let eps = body
        .networking_config
        .as_ref()
        .unwrap()
        .endpoints_config
        .as_ref()
        .unwrap();
    assert_eq!(eps["appnet"].aliases, Some(strs(&["web"])));
    // No range: the engine picks the host port.
    let body = s.create_body(8080, None, &labels);
    let ports = body.host_config.unwrap().port_bindings.unwrap();
    assert_eq!(
        ports["8080/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
        Some("")
    );
    // The default bridge needs no endpoint config.
    let mut c = container();
    c.host_config.as_mut().unwrap().network_mode = Some("default".into());
    let s = ReplicaSpec::from_container(&c, Some(&image()), "web:v1", 8080);
    assert!(s
        .create_body(8080, None, &labels)
        .networking_config
        .is_none());
    assert_eq!(
        s.extra_networks.len(),
        2,
        "appnet and metrics joined after create"
    );
}

#[test]
fn a_change_sets_image_command_and_variables() {
    let s = ReplicaSpec::from_container(&container(), Some(&image()), "web:v1", 8080);
    let c = Change {
        image: Some("web:v2".into()),
        command: Some(strs(&["demo-service", "--workers", "8"])),
        env: BTreeMap::from([
            ("COLOR".to_string(), "red".to_string()),
            ("NEW".to_string(), "1".to_string()),
        ]),
    };
    let n = s.with_change(&c);
    assert_eq!(n.image, "web:v2");
    assert_eq!(n.config.cmd, c.command);
    assert_eq!(n.config.env, Some(strs(&["COLOR=red", "NEW=1"])));
    assert!(!c.is_empty());
    assert!(Change::default().is_empty());
    assert_eq!(s.with_change(&Change::default()), s);
    assert_eq!(
        env_map(&strs(&["A=1", "B", "A=2"])),
        BTreeMap::from([("A".into(), "2".into()), ("B".into(), String::new())])
    );
}

#[test]
fn the_state_file_keeps_the_last_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.json");
    let st = PersistedState::load(&path).unwrap();
    assert_eq!(st, PersistedState::default());
    let mut st = st;
    for i in 0..(CompletedActions::KEPT + 5) {
        let req = ActionRequest {
            action_id: format!("a-{i}"),
            target: "web".into(),
            kind: ActionKind::ScaleOut,
            op: ProviderOp::SetReplicas { from: 1, to: 2 },
            rule: "r".into(),
        };
        st.actions.record(&req, ActionOutcome::default());
    }
    assert_eq!(st.actions.len(), CompletedActions::KEPT);
    assert!(st.actions.outcome("a-0").is_none());
    assert!(st
        .actions
        .outcome(&format!("a-{}", CompletedActions::KEPT + 4))
        .is_some());
    st.template = Some(ReplicaSpec::from_container(
        &container(),
        Some(&image()),
        "web:v1",
        8080,
    ));
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    assert_eq!(PersistedState::load(&path).unwrap(), st);

    std::fs::write(&path, b"{not json").unwrap();
    let e = PersistedState::load(&path).unwrap_err();
    assert!(e.contains("corrupt state file"), "{e}");
    std::fs::write(&path, br#"{"schema": 99}"#).unwrap();
    let e = PersistedState::load(&path).unwrap_err();
    assert!(e.contains("schema 99"), "{e}");
}

fn cfg() -> DockerConfig {
    DockerConfig {
        socket: None,
        port: 8080,
        host_ports: None,
        health: None,
        settle_time: None,
        startup_timeout: None,
        stop_timeout: None,
        poll_interval: None,
        api_timeout: None,
    }
}

fn check(c: &DockerConfig) -> Vec<String> {
    c.check(&YPath::root())
        .into_iter()
        .map(|(_, m)| m)
        .collect()
}

#[test]
fn config_checks_name_the_field() {
    assert!(check(&cfg()).is_empty());
    let bad = DockerConfig {
        socket: Some(PathBuf::from("tcp://10.0.0.1:2375")),
        health: Some("healthz".into()),
        stop_timeout: Some(Duration::from_millis(1500)),
        api_timeout: Some(Duration::ZERO),
        host_ports: Some("9-1".into()),
        ..cfg()
    };
    let errs = check(&bad);
    for want in [
        "docker.socket",
        "docker.health",
        "docker.stop_timeout",
        "docker.api_timeout",
        "docker.host_ports",
    ] {
        assert!(errs.iter().any(|e| e.starts_with(want)), "{want}: {errs:?}");
    }
}

#[test]
fn socket_paths() {
    let mut c = DockerConfig {
        socket: Some(PathBuf::from("unix:///run/user/1000/docker.sock")),
        ..cfg()
    };
    c.resolve_paths(Path::new("/etc/homeostat"));
    assert_eq!(c.socket_path(), PathBuf::from("/run/user/1000/docker.sock"));
    let mut c = DockerConfig {
        socket: Some(PathBuf::from("run/docker.sock")),
        ..cfg()
    };
    c.resolve_paths(Path::new("/etc/homeostat"));
    assert_eq!(
        c.socket_path(),
        PathBuf::from("/etc/homeostat/run/docker.sock")
    );
    assert_eq!(
        strip_unix_scheme(Path::new("/var/run/docker.sock")),
        PathBuf::from("/var/run/docker.sock")
    );
}
