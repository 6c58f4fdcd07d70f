//! deploy/systemd/ works as shipped: `systemd-analyze verify` accepts the unit,
//! and the example config it starts with puts everything the agent writes
//! inside the paths the unit leaves writable (ProtectSystem=strict makes the
//! rest read-only, /etc/homeostat included).
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn unit_text() -> String {
    std::fs::read_to_string(root().join("deploy/systemd/homeostat.service")).expect("unit")
}

/// Values of `key=` lines of the unit, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim().to_string())
        .collect()
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Some(analyze) = which("systemd-analyze") else {
        available(false, "systemd-analyze", "apt-get install systemd");
        return;
    };
    // The unit names the installed binary; point it at this build's, nothing else.
    let unit = unit_text();
    assert!(unit.contains("/usr/local/bin/homeostat "), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeostat.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/homeostat ", &format!("{EXE} ")),
    )
    .unwrap();
    let out = Command::new(analyze)
        .args(["verify", path.to_str().unwrap()])
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    let about_ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("homeostat.service"))
        .collect();
    assert!(about_ours.is_empty(), "warnings about the unit:\n{text}");
}

#[test]
fn the_example_config_writes_only_where_the_unit_allows() {
    let unit = unit_text();
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(exec.len(), 1, "{unit}");
    let config_path = exec[0]
        .split_once("--config ")
        .map(|(_, c)| c.trim().to_string())
        .expect("ExecStart passes --config");
    assert_eq!(config_path, "/etc/homeostat/homeostat.yaml");
    let mut writable: Vec<PathBuf> = unit_values(&unit, "ReadWritePaths")
        .iter()
        .flat_map(|v| v.split_whitespace().map(PathBuf::from).collect::<Vec<_>>())
        .collect();
    writable.extend(
        unit_values(&unit, "StateDirectory")
            .iter()
            .map(|d| Path::new("/var/lib").join(d)),
    );
    assert_eq!(unit_values(&unit, "ProtectSystem"), ["strict"]);

    // Compile the example as if installed at the unit's config path: its
    // directory only decides how relative paths resolve.
    let example = std::fs::read_to_string(root().join("deploy/systemd/homeostat.yaml")).unwrap();
    let cfg = homeostat::config::compile(Path::new(&config_path), &example)
        .unwrap_or_else(|d| panic!("example config does not compile: {d:?}"));
    assert!(
        writable.iter().any(|w| cfg.data_dir.starts_with(w)),
        "data_dir {} is not under the unit's writable paths {writable:?}",
        cfg.data_dir.display()
    );
    // Rules resolve under /etc/homeostat (read-only is right for them).
    for p in &cfg.rule_files {
        assert!(p.resolved.starts_with("/etc/homeostat"), "{p:?}");
    }

    // And the binary accepts it in a copy of that layout with one rule file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/none.yaml"), "groups: []\n").unwrap();
    let copy = dir.path().join("homeostat.yaml");
    std::fs::write(&copy, &example).unwrap();
    let out = Command::new(EXE)
        .args(["check", "-c", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
