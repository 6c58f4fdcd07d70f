//! Unit tests of the haproxy adapter's pieces (parsing HAProxy 2.6's real
//! answers, error mapping, config checks, the view of a backend); the
//! behaviour against a real HAProxy is in `tests/haproxy_provider.rs`.
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::client::*;
use super::config::*;
use super::view::View;
use crate::model::{ProviderOp, Reconciliation};

/// `show servers state web;show stat web 4 -1` as HAProxy 2.6.12 answered it
/// (stat lines shortened after `check_status`; the columns are looked up by name).
const ANSWER: &str = "1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 web 1 s1 127.0.0.1 2 0 100 100 1 15 3 2 6 0 0 0 - 19101 - 0 0 - - 0
3 web 2 s2 127.0.0.1 2 0 100 100 1 15 3 2 6 0 0 0 - 19102 - 0 0 - - 0
3 web 3 s3 127.0.0.1 0 5 100 100 1 1 0 0 14 0 0 0 - 19103 - 0 0 - - 0
3 web 4 b1 127.0.0.1 2 0 100 100 1 15 3 2 6 0 0 0 - 19104 - 0 0 - - 0

# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_desc
web,s1,0,0,2,0,,0,0,0,,0,,0,0,0,0,UP,100,1,0,0,0,1,0,,1,3,1,,0,,2,0,,0,L7OK,\"Layer7 check passed, really\"
web,s2,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,100,1,0,0,0,1,0,,1,3,2,,0,,2,0,,0,L7OK,
web,s3,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,100,1,0,0,0,1,1,,1,3,3,,0,,2,0,,0,,
web,b1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,100,0,1,0,0,1,0,,1,3,4,,0,,2,0,,0,L7OK,

";

fn servers() -> Vec<Server> {
    parse_servers("web", ANSWER).unwrap()
}

fn cfg() -> HaproxyConfig {
    HaproxyConfig {
        runtime_api: "/run/haproxy/admin.sock".into(),
        backend: "web".into(),
        servers: None,
        backups: None,
        circuit_open: None,
        half_open_weight: None,
        metrics_port: None,
        drain_timeout: None,
        poll_interval: None,
        timeout: None,
        add_servers: None,
    }
}

fn set(s: &mut [Server], name: &str, f: impl FnOnce(&mut Server)) {
    f(s.iter_mut().find(|s| s.name == name).unwrap())
}

#[test]
fn parses_servers_state_joined_with_stat() {
    let s = servers();
    assert_eq!(
        s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["s1", "s2", "s3", "b1"]
    );
    let s1 = &s[0];
    assert_eq!(
        (s1.id, s1.port, s1.weight, s1.initial_weight),
        (1, 19101, 100, 100)
    );
    assert_eq!((s1.op_state, s1.admin, s1.sessions), (2, 0, 2));
    assert_eq!(s1.status, "UP");
    assert_eq!(s1.address(), "127.0.0.1:19101");
    assert!(s1.healthy() && s1.eligible() && !s1.backup);
    // `disabled` in the config: FMAINT | CMAINT, never checked.
    let s3 = &s[2];
    assert!(s3.maint() && s3.config_disabled() && !s3.eligible());
    assert_eq!(s3.admin_state(), "maint");
    assert!(
        !s3.healthy(),
        "a never-checked server in maint is not known healthy"
    );
    assert!(s[3].backup);
}

#[test]
fn refuses_what_is_not_a_servers_state_answer() {
    for (answer, want) in [
        ("Can't find backend.\n\nNo such proxy.\n\n", "not_found"),
        ("Permission denied\n\n", "permission_denied"),
        ("2\n# be_id\n\n", "failed"),
        ("", "failed"),
        ("1\n\n", "failed"),
        // A line with too few fields or a non-number.
        ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port\n3 web 1 s1\n\n# pxname,svname,scur,status,bck\n\n", "failed"),
        ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port\n3 web x s1 1.2.3.4 2 0 1 1 0 0 0 0 0 0 0 0 - 80\n\n# pxname,svname,scur,status,bck\n\n", "failed"),
        // show stat missing.
        ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_check_result srv_check_state srv_port\n\n", "failed"),
    ] {
        let e = parse_servers("web", answer).unwrap_err();
        assert_eq!(e.cause(), want, "{answer:?}: {e}");
    }
}

#[test]
fn csv_split_honours_quotes() {
    assert_eq!(split_csv("a,\"b,c\",,d"), ["a", "b,c", "", "d"]);
    assert_eq!(split_csv("\"say \"\"hi\"\"\",x"), ["say \"hi\"", "x"]);
    assert_eq!(split_csv(""), [""]);
}

#[test]
fn haproxy_error_answers_map_to_typed_errors() {
    let c = |a: &str| classify("cmd", a).map(|e| e.cause());
    assert_eq!(c("Permission denied\n"), Some("permission_denied"));
    assert_eq!(c("No such backend.\n"), Some("not_found"));
    assert_eq!(c("No such server.\n"), Some("not_found"));
    assert_eq!(c("Can't find backend.\n"), Some("not_found"));
    assert_eq!(
        c("Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n"),
        Some("rejected")
    );
    assert_eq!(
        c("Backend must use a dynamic load balancing to support dynamic servers."),
        Some("rejected")
    );
    assert_eq!(
        c("Unknown command, but maybe one of the following ones is a better match:\n  add acl"),
        Some("rejected")
    );
    assert_eq!(
        c("Only servers in maintenance mode can be deleted."),
        Some("conflict")
    );
    assert_eq!(
        c("Already exists a server with the same name in backend."),
        Some("conflict")
    );
    assert_eq!(c("Something new.\n"), None);
    assert_eq!(c(""), None);
    let e = classify("set weight web/s1 1", "Permission denied\n").unwrap();
    assert!(e.to_string().contains("level admin"), "{e}");
    assert!(!e.is_retryable());
}

#[test]
fn connection_failures_map_to_typed_errors() {
    use std::io::{Error, ErrorKind};
    let ep = Endpoint::parse("/run/haproxy/admin.sock");
    let e = connect_error(&ep, &Error::from(ErrorKind::PermissionDenied));
    assert_eq!(e.cause(), "permission_denied");
    assert!(e.to_string().contains("/run/haproxy/admin.sock"), "{e}");
    let e = connect_error(&ep, &Error::from(ErrorKind::NotFound));
    assert_eq!(e.cause(), "unavailable");
    assert!(e.is_retryable());
    let ep = Endpoint::parse("tcp://127.0.0.1:9999");
    assert_eq!(ep, Endpoint::Tcp("127.0.0.1:9999".into()));
    let e = connect_error(&ep, &Error::from(ErrorKind::ConnectionRefused));
    assert_eq!(e.cause(), "unavailable");
    assert!(e.to_string().contains("tcp://127.0.0.1:9999"), "{e}");
}

/// A Unix socket that answers every connection with `answer`, then closes.
fn fake_api(answer: Vec<u8>) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&answer).await;
        }
    });
    (dir, path)
}

#[tokio::test]
async fn oversized_or_binary_answers_are_refused() {
    let (_d, path) = fake_api(vec![b'x'; MAX_REPLY_BYTES + 10]);
    let c = Client::new(Endpoint::Unix(path), Duration::from_secs(5));
    let e = c.raw("show stat").await.unwrap_err();
    assert_eq!(e.cause(), "failed");
    assert!(e.to_string().contains("larger than"), "{e}");

    let (_d, path) = fake_api(vec![0xff, 0xfe, b'\n']);
    let c = Client::new(Endpoint::Unix(path), Duration::from_secs(5));
    let e = c.raw("show stat").await.unwrap_err();
    assert!(e.to_string().contains("UTF-8"), "{e}");

    // An unexpected answer to a command that answers nothing is an error.
    let (_d, path) = fake_api(b"Huh?\n".to_vec());
    let c = Client::new(Endpoint::Unix(path), Duration::from_secs(5));
    let e = c.act("set weight web/s1 1").await.unwrap_err();
    assert_eq!(e.cause(), "failed");
    assert!(e.to_string().contains("Huh?"), "{e}");
    // Two lines are never sent.
    let e = c.raw("show stat\nshutdown").await.unwrap_err();
    assert_eq!(e.cause(), "rejected");

    // A socket path that does not exist: unavailable, naming it.
    let c = Client::new(
        Endpoint::Unix("/nonexistent/haproxy.sock".into()),
        Duration::from_secs(1),
    );
    let e = c.raw("show info").await.unwrap_err();
    assert_eq!(e.cause(), "unavailable");
    assert!(e.to_string().contains("/nonexistent/haproxy.sock"), "{e}");
}

#[test]
fn weights_parse_and_resolve() {
    let p = |s: &str| WeightSetting::Text(s.into()).parse();
    assert_eq!(p("10%"), Ok(Weight::Percent(10)));
    assert_eq!(p(" 5 "), Ok(Weight::Absolute(5)));
    assert_eq!(
        WeightSetting::Absolute(256).parse(),
        Ok(Weight::Absolute(256))
    );
    for bad in ["0%", "101%", "x", "", "0", "300", "-1"] {
        assert!(p(bad).is_err(), "{bad}");
    }
    assert_eq!(Weight::Percent(10).resolve(100), 10);
    assert_eq!(Weight::Percent(10).resolve(1), 1, "never below 1");
    assert_eq!(Weight::Percent(10).resolve(256), 26);
    assert_eq!(Weight::Absolute(50).resolve(1), 50);
    assert_eq!(cfg().half_open(), Weight::Percent(10));
}

#[test]
fn names_are_plain_haproxy_names() {
    assert!(valid_name("web-1.a_b:x"));
    for bad in ["", "a b", "a;b", "a/b", "a\nb", "a\\b", "ä"] {
        assert!(!valid_name(bad), "{bad:?}");
    }
}

fn errs(block: &str) -> Vec<String> {
    let text =
        format!("targets:\n  edge:\n    provider: haproxy\n    max: 3\n    haproxy:\n{block}");
    match crate::config::compile(Path::new("conf/homeostat.yaml"), &text) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn config_errors_name_the_field_with_its_position() {
    let e = errs(
        r#"      runtime_api: "http://x"
      backend: "web;shutdown"
      servers: [s1, s1, "a b"]
      backups: [s1]
      half_open_weight: "0%"
      metrics_port: 0
      timeout: 0s
      add_servers: { name_prefix: "s", addresses: [nope], options: "check; x" }
"#,
    );
    let want = [
        "6:20: target \"edge\": haproxy.runtime_api: \"http://x\": only a socket path or tcp://host:port",
        "7:16: target \"edge\": haproxy.backend: \"web;shutdown\" is not a HAProxy name (letters, digits, - _ . :)",
        "8:21: target \"edge\": haproxy.servers[1]: \"s1\" is listed twice",
        "8:25: target \"edge\": haproxy.servers[2]: \"a b\" is not a HAProxy server name",
        "9:17: target \"edge\": haproxy.backups[0]: \"s1\" is also a slot in haproxy.servers",
        "10:25: target \"edge\": haproxy.half_open_weight: \"0%\": a percentage must be 1%..=100%",
        "11:21: target \"edge\": haproxy.metrics_port: must be 1..=65535",
        "12:16: target \"edge\": haproxy.timeout: must be above 0",
        "13:35: target \"edge\": haproxy.add_servers.name_prefix: slot \"s1\" already starts with \"s\"",
        "13:52: target \"edge\": haproxy.add_servers.addresses[0]: \"nope\" is not ip:port",
        "13:68: target \"edge\": haproxy.add_servers.options: \"check; x\": only server keywords and plain values (no ; \\ # or quotes)",
    ];
    let got: Vec<String> = e
        .iter()
        .map(|l| l.trim_start_matches("conf/homeostat.yaml:").to_string())
        .collect();
    assert_eq!(got, want);
    assert!(
        errs("      runtime_api: \"tcp://h\"\n      backend: web\n")[0]
            .contains("is not tcp://host:port")
    );
    assert!(
        errs("      runtime_api: x.sock\n      backend: web\n      bogus: 1\n")[0]
            .contains("bogus")
    );
    assert!(errs("      runtime_api: x.sock\n      backend: web\n      circuit_open: drain\n      half_open_weight: 5\n").is_empty());
}

#[test]
fn an_explicit_slot_list_implies_max() {
    use crate::providers::ProviderBlock;
    let mut c = cfg();
    assert_eq!(c.implied_max(), None);
    c.servers = Some(vec!["a".into(), "b".into()]);
    assert_eq!(c.implied_max(), Some(2));
    c.add_servers = Some(AddServers {
        name_prefix: "hs-".into(),
        addresses: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
        options: None,
    });
    assert_eq!(c.implied_max(), Some(4));
    assert_eq!(c.add_options(), "check");
    let text = "targets:\n  edge:\n    provider: haproxy\n    haproxy: { runtime_api: a.sock, backend: web, servers: [a, b, c] }\n";
    let compiled = crate::config::compile(Path::new("c.yaml"), text).unwrap();
    assert_eq!(compiled.targets["edge"].max, 3);
}

#[test]
fn the_view_counts_replicas_spares_and_backups() {
    let c = cfg();
    let held = BTreeSet::new();
    let v = View::new(&c, servers(), &held);
    let names = |v: Vec<&Server>| v.into_iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(v.slots()), ["s1", "s2", "s3"]);
    assert_eq!(names(v.replicas()), ["s1", "s2"]);
    assert_eq!(names(v.spares()), ["s3"]);
    assert_eq!(names(v.backups()), ["b1"]);
    let st = v.target_state();
    assert_eq!(st.replicas, 2);
    let ids: Vec<&str> = st.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2", "b1"]);
    // A backup is not in traffic while a primary is.
    assert!(!st.instances[2].in_traffic);
    assert_eq!(st.instances[0].labels["server"], "s1");
    assert_eq!(st.instances[0].labels["backend"], "web");

    // Instance ids: name, backend/name, addr:port.
    assert_eq!(v.find("s2").unwrap().name, "s2");
    assert_eq!(v.find("web/s2").unwrap().name, "s2");
    assert_eq!(v.find("127.0.0.1:19102").unwrap().name, "s2");
    assert!(v.find("other/s2").is_none());
    assert!(v.find("127.0.0.1:1").is_none());

    // metrics_port changes the scrape address, and it names the instance too.
    let mut c2 = cfg();
    c2.metrics_port = Some(9100);
    let v2 = View::new(&c2, servers(), &held);
    assert_eq!(
        v2.target_state().instances[0].address.as_deref(),
        Some("127.0.0.1:9100")
    );
    assert!(v2.find("127.0.0.1:9100").is_some());
}

#[test]
fn spares_are_marked_by_weight_zero_or_disabled_unless_held() {
    let c = cfg();
    let mut s = servers();
    // s2 scaled in: forced maint, weight 0.
    set(&mut s, "s2", |s| {
        s.admin = ADMF_FMAINT;
        s.weight = 0;
    });
    // s1 put in maint by an operator (weight kept): a replica out of traffic.
    set(&mut s, "s1", |s| s.admin = ADMF_FMAINT);
    let none = BTreeSet::new();
    let v = View::new(&c, s.clone(), &none);
    let spares: Vec<&str> = v.spares().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spares, ["s2", "s3"]);
    assert_eq!(v.replicas().len(), 1);
    assert!(!v.target_state().instances[0].in_traffic);
    // With every primary out, the backup is in traffic.
    assert!(v
        .target_state()
        .instances
        .iter()
        .any(|i| i.id == "b1" && i.in_traffic));
    // s3 enabled by the agent and then held out for a circuit: a replica.
    set(&mut s, "s3", |s| s.admin = ADMF_FMAINT | ADMF_CMAINT);
    let held = BTreeSet::from(["s3".to_string()]);
    let v = View::new(&c, s, &held);
    let spares: Vec<&str> = v.spares().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spares, ["s2"]);
}

#[test]
fn scale_order_follows_the_slot_list_and_victims_prefer_servers_out_of_traffic() {
    let mut c = cfg();
    c.servers = Some(vec!["s2".into(), "s1".into(), "s3".into()]);
    let mut s = servers();
    set(&mut s, "s3", |s| {
        s.admin = 0;
        s.op_state = 2;
        s.check_result = 3;
    });
    let held = BTreeSet::new();
    let v = View::new(&c, s.clone(), &held);
    let names = |v: Vec<&Server>| v.into_iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(v.slots()), ["s2", "s1", "s3"]);
    assert_eq!(names(v.victims(2)), ["s3", "s1"]);
    // A replica that is down goes first.
    set(&mut s, "s2", |s| s.op_state = 0);
    let v = View::new(&c, s, &held);
    assert_eq!(names(v.victims(1)), ["s2"]);
}

#[test]
fn spares_whose_last_check_failed_come_last() {
    let c = cfg();
    let mut s = servers();
    set(&mut s, "s1", |s| {
        s.admin = ADMF_FMAINT;
        s.weight = 0;
        s.check_result = 2;
    });
    let held = BTreeSet::new();
    let v = View::new(&c, s, &held);
    let spares: Vec<&str> = v.spares().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spares, ["s3", "s1"]);
}

#[test]
fn reconcile_reads_the_effect_from_haproxy() {
    let c = cfg();
    let held = BTreeSet::new();
    let mut s = servers();
    let op = |i: &str| ProviderOp::CircuitOpen { instance: i.into() };
    let v = View::new(&c, s.clone(), &held);
    assert_eq!(v.reconcile(&op("s1")), Reconciliation::NotApplied);
    assert_eq!(v.reconcile(&op("nope")), Reconciliation::Unknown);
    assert_eq!(
        v.reconcile(&ProviderOp::SetReplicas { from: 1, to: 2 }),
        Reconciliation::Applied
    );
    assert_eq!(
        v.reconcile(&ProviderOp::SetReplicas { from: 2, to: 3 }),
        Reconciliation::NotApplied
    );
    assert_eq!(
        v.reconcile(&ProviderOp::SetReplicas { from: 4, to: 3 }),
        Reconciliation::Unknown
    );
    set(&mut s, "s1", |s| s.admin = ADMF_FMAINT);
    let v = View::new(&c, s.clone(), &held);
    assert_eq!(v.reconcile(&op("s1")), Reconciliation::Applied);
    let close = ProviderOp::CircuitClose {
        instance: "s1".into(),
    };
    assert_eq!(v.reconcile(&close), Reconciliation::NotApplied);
    set(&mut s, "s1", |s| {
        s.admin = 0;
        s.weight = 10;
    });
    let v = View::new(&c, s.clone(), &held);
    let half = ProviderOp::CircuitHalfOpen {
        instance: "s1".into(),
    };
    assert_eq!(v.reconcile(&half), Reconciliation::Applied);
    assert_eq!(v.reconcile(&close), Reconciliation::NotApplied);
    set(&mut s, "s1", |s| s.weight = 100);
    let v = View::new(&c, s, &held);
    assert_eq!(v.reconcile(&close), Reconciliation::Applied);
    assert_eq!(v.reconcile(&ProviderOp::Rollback), Reconciliation::Unknown);
}

#[test]
fn summaries_name_every_server_with_its_role() {
    let c = cfg();
    let held = BTreeSet::new();
    let v = View::new(&c, servers(), &held);
    let s = v.summary();
    assert_eq!(s["replicas"], 2);
    assert_eq!(s["backend"], "web");
    let roles: Vec<(&str, &str)> = s["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["server"].as_str().unwrap(), x["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("s1", "replica"),
            ("s2", "replica"),
            ("s3", "spare"),
            ("b1", "backup")
        ]
    );
}
