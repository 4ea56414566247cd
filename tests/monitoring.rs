//! What ships for Prometheus and Grafana: deploy/prometheus/alerts.yml passes `promtool check
//! rules` and its unit tests (alerts.test.yml), the Grafana dashboard has the structure
//! Grafana's dashboard schema asks for, and every metric either of them names is one that
//! deskbridge's /metrics really exports.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{TestApp, TestConfig};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

/// `promtool` (Debian: prometheus); under CI its absence fails the test.
fn promtool() -> Option<PathBuf> {
    let candidates = std::env::var_os("PROMTOOL")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            PathBuf::from("promtool"),
            PathBuf::from("/usr/bin/promtool"),
        ]);
    for candidate in candidates {
        if Command::new(&candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(candidate);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI must provide promtool (Debian: apt install prometheus)");
    }
    eprintln!("skipped: the alert rule tests need promtool (Debian: apt install prometheus)");
    None
}

#[test]
fn the_alert_rules_are_valid_and_their_unit_tests_pass() {
    let Some(promtool) = promtool() else { return };
    let dir = common::repo().join("deploy/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn dashboard() -> Value {
    let text =
        std::fs::read_to_string(common::repo().join("deploy/grafana/deskbridge.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_dashboard_has_grafanas_structure() {
    let d = dashboard();
    for key in ["title", "uid"] {
        assert!(d[key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
    }
    assert!(d["schemaVersion"].as_i64().is_some_and(|v| v >= 36));
    assert!(d["time"]["from"].is_string() && d["time"]["to"].is_string());
    let variables: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert!(v["type"].is_string(), "{v}");
            v["name"].as_str().unwrap()
        })
        .collect();
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_i64().unwrap()), "panel id twice: {p}");
        let kind = p["type"].as_str().unwrap();
        assert!(
            ["timeseries", "stat", "state-timeline", "gauge", "table"].contains(&kind),
            "{kind}"
        );
        let g = &p["gridPos"];
        let (x, w, h) = (
            g["x"].as_i64().unwrap(),
            g["w"].as_i64().unwrap(),
            g["h"].as_i64().unwrap(),
        );
        assert!(g["y"].as_i64().is_some() && x >= 0 && w > 0 && h > 0 && x + w <= 24);
        let datasource = p["datasource"]["uid"].as_str().unwrap();
        let variable = datasource.trim_start_matches("${").trim_end_matches('}');
        assert!(variables.contains(&variable), "{datasource}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty());
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().unwrap().to_string()));
            assert!(t["expr"]
                .as_str()
                .is_some_and(|e| e.contains("deskbridge_")));
        }
        titles.push(p["title"].as_str().unwrap().to_string());
    }
    // What the issue asks the dashboard to show.
    for wanted in [
        "Hooks",
        "Delivery attempts",
        "latency",
        "duration",
        "Backlog",
        "Oldest",
        "Breaker",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no panel about {wanted}: {titles:?}"
        );
    }
}

/// Every `deskbridge_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("deskbridge_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_metric_the_rules_and_the_dashboard_name_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(TestConfig::with_destinations(&format!(
        "  archive:\n    kind: file\n    dir: \"{}\"\n",
        dir.path().display()
    )))
    .await;
    let exported: BTreeSet<String> = app
        .metrics()
        .await
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    for name in [
        "deskbridge_hook_commit_duration_seconds_bucket",
        "deskbridge_delivery_attempt_duration_seconds_bucket",
    ] {
        assert!(exported.contains(name), "{name} is not exported");
    }
    let rules =
        std::fs::read_to_string(common::repo().join("deploy/prometheus/alerts.yml")).unwrap();
    let named: BTreeSet<String> = metric_names(&rules)
        .into_iter()
        .chain(metric_names(&dashboard().to_string()))
        .collect();
    assert!(named.len() >= 6, "{named:?}");
    for name in named {
        assert!(
            exported.contains(&name),
            "{name} is named by the rules or the dashboard but not exported: {exported:?}"
        );
    }
}
