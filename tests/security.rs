//! What an attacker or a careless deploy meets: development tokens refused on a public
//! listener, failed credentials limited per client (hooks and admin alike), bodies read only
//! after authentication and under a deadline, a connection limit, and admin sessions that end
//! on sign-out and when idle.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::{run, Process, BIN};
use common::{TestApp, TestConfig, TOKEN};
use reqwest::header::{LOCATION, RETRY_AFTER, SET_COOKIE};
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "an-admin-token-of-some-length";

fn file_destination() -> TestConfig {
    TestConfig::with_destinations("  archive:\n    kind: file\n    dir: \"out\"\n")
}

fn admin_config(extra: &str) -> TestConfig {
    let mut config = file_destination();
    config.server_extra = format!("  admin_token: \"{ADMIN}\"\n{extra}");
    config
}

/// Sends `request` as raw bytes and reads what comes back within `wait` (the status line and
/// whatever followed), or `None` when nothing came.
async fn raw(port: u16, request: &[u8], wait: Duration) -> Option<String> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut answer = vec![0u8; 4096];
    match tokio::time::timeout(wait, socket.read(&mut answer)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&answer[..n]).into_owned()),
        _ => None,
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[test]
fn a_public_listener_refuses_development_and_short_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = admin_config("").write(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    let public = text.replace("127.0.0.1:0", "0.0.0.0:0");
    std::fs::write(&path, &public).unwrap();
    let out = run(&[
        std::ffi::OsStr::new("serve"),
        "--config".as_ref(),
        path.as_os_str(),
    ]);
    assert_eq!(out.code, 1, "serve must refuse: {}", out.stderr);
    let line = public
        .lines()
        .position(|l| l.contains("hook_tokens"))
        .unwrap()
        + 1;
    assert!(
        out.stderr.contains(&format!(
            "{}:{line}: server.hook_tokens: server.listen 0.0.0.0:0 is reachable from other machines",
            path.display()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("at least 24 characters"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(TOKEN) && !out.stderr.contains(ADMIN),
        "no token is shown: {}",
        out.stderr
    );
    // Long tokens pass.
    let strong = public.replace(TOKEN, "a-hook-token-that-is-long-enough");
    std::fs::write(&path, strong).unwrap();
    let out = run(&[
        std::ffi::OsStr::new("check"),
        "--config".as_ref(),
        path.as_os_str(),
    ]);
    assert!(out.ok(), "{}", out.stderr);
}

#[test]
fn the_shipped_config_refuses_a_public_address_with_its_development_tokens() {
    let out = std::process::Command::new(BIN)
        .current_dir(common::repo())
        .args(["serve"])
        .env_remove("DESKBRIDGE_CONFIG")
        .env_remove("DESKBRIDGE_HOOK_TOKEN")
        .env_remove("DESKBRIDGE_ADMIN_TOKEN")
        .env("DESKBRIDGE_SERVER__LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("server.hook_tokens"), "{stderr}");
    assert!(stderr.contains("server.admin_token"), "{stderr}");
}

#[tokio::test]
async fn wrong_hook_tokens_are_limited_per_client() {
    let app = TestApp::spawn(file_destination()).await;
    let client = reqwest::Client::new();
    let post = |token: &str| {
        client
            .post(app.url(&format!("/hooks/smartsupp/{token}")))
            .body(common::conversation(1).to_string())
            .send()
    };
    for guess in 0..10 {
        let answer = post(&format!("guess-{guess}")).await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    let answer = post("guess-11").await.unwrap();
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = answer.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 900, "{wait}");
    assert_eq!(
        post(TOKEN).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a client that guessed too often waits, whatever it sends next"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("deskbridge_hooks_received_total{outcome=\"unauthorized\"} 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("deskbridge_hooks_received_total{outcome=\"limited\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn failures_through_an_untrusted_proxy_are_explained_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = admin_config("  trusted_proxies: []\n");
    config.log = "  level: \"info\"\n  format: \"json\"\n".into();
    let path = config.write(dir.path());
    let process = Process::start(&path);
    let client = reqwest::Client::new();
    for i in 0..11 {
        client
            .post(format!(
                "http://127.0.0.1:{}/hooks/smartsupp/wrong",
                process.port
            ))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .body("{}")
            .send()
            .await
            .unwrap();
    }
    let line = process.wait_for_log("server.trusted_proxies");
    assert!(line.contains("127.0.0.1"), "{line}");
}

#[tokio::test]
async fn admin_bodies_are_not_read_before_authentication() {
    let app = TestApp::spawn(admin_config("")).await;
    // Headers announce a large body that never comes: an unauthenticated caller is answered
    // at once, without waiting for it.
    let request = "POST /admin/api/deliveries/retry HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{";
    let answer = raw(app.port, request.as_bytes(), Duration::from_secs(3))
        .await
        .expect("an answer without the body");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn a_sign_in_body_that_stalls_is_answered_408() {
    let app = TestApp::spawn(admin_config("  body_timeout: \"1s\"\n")).await;
    let request = "POST /admin/login HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ntoken=";
    let started = Instant::now();
    let answer = raw(app.port, request.as_bytes(), Duration::from_secs(5))
        .await
        .expect("an answer before the client gives up");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_hook_body_that_stalls_is_answered_408() {
    let mut config = file_destination();
    config.server_extra = "  body_timeout: \"1s\"\n".into();
    let app = TestApp::spawn(config).await;
    let request = format!(
        "POST /hooks/smartsupp/{TOKEN} HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{{"
    );
    let answer = raw(app.port, request.as_bytes(), Duration::from_secs(5))
        .await
        .expect("an answer before the client gives up");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_to_be_served() {
    let mut config = file_destination();
    config.server_extra = "  http_workers: 1\n  max_connections: 2\n".into();
    let app = TestApp::spawn(config).await;
    let first = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let _second = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let health = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    let waiting = tokio::spawn(async move { raw(app.port, health, Duration::from_secs(4)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection is not served while two are open"
    );
    drop(first);
    let answer = waiting
        .await
        .unwrap()
        .expect("served once a connection closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(app);
}

async fn sign_in(app: &TestApp) -> String {
    let response = no_redirects()
        .post(app.url("/admin/login"))
        .form(&[("token", ADMIN), ("tz", "UTC"), ("next", "/admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

async fn overview(app: &TestApp, cookie: &str) -> (StatusCode, String) {
    let response = no_redirects()
        .get(app.url("/admin"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Signs out with the sign-out form of the overview page; returns the (redirect) answer.
async fn sign_out(app: &TestApp, cookie: &str) -> reqwest::Response {
    let (_, html) = overview(app, cookie).await;
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[at..].split('"').next().unwrap().to_string();
    let out = no_redirects()
        .post(app.url("/admin/logout"))
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    out
}

#[tokio::test]
async fn signing_out_ends_the_session_and_its_copies() {
    let app = TestApp::spawn(admin_config("")).await;
    let cookie = sign_in(&app).await;
    let other_tab = sign_in(&app).await;
    assert_eq!(overview(&app, &cookie).await.0, StatusCode::OK);
    let out = sign_out(&app, &cookie).await;
    assert_eq!(out.headers()[LOCATION], "/admin/login");
    for (what, c) in [
        ("the signed-out cookie", &cookie),
        ("another session", &other_tab),
    ] {
        let (status, _) = overview(&app, c).await;
        assert_ne!(
            status,
            StatusCode::OK,
            "{what} still works after signing out"
        );
    }
    let (status, _) = overview(&app, &sign_in(&app).await).await;
    assert_eq!(status, StatusCode::OK, "a new sign-in works");
}

#[tokio::test]
async fn an_idle_session_ends() {
    let app = TestApp::spawn(admin_config("  admin_idle_timeout: \"1s\"\n")).await;
    let cookie = sign_in(&app).await;
    assert_eq!(overview(&app, &cookie).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_ne!(
        overview(&app, &cookie).await.0,
        StatusCode::OK,
        "unused for longer than admin_idle_timeout"
    );
}

/// The image's environment, as deploy/Dockerfile sets it (`ENV NAME=value` lines).
fn image_environment() -> Vec<(String, String)> {
    std::fs::read_to_string(common::repo().join("deploy/Dockerfile"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// The shipped config as the image runs it, on port 0, with its store in `dir`.
fn as_in_the_image(dir: &std::path::Path, admin_token: Option<&str>) -> Process {
    let mut command = std::process::Command::new(BIN);
    command
        .current_dir(common::repo())
        .args(["serve", "--config", "config/deskbridge.yaml"])
        .env_remove("DESKBRIDGE_CONFIG")
        .env_remove("DESKBRIDGE_ADMIN_TOKEN")
        .envs(image_environment())
        .env("DESKBRIDGE_SERVER__LISTEN", "0.0.0.0:0")
        .env("DESKBRIDGE_HOOK_TOKEN", "a-hook-token-that-is-long-enough")
        .env("DESKBRIDGE_LOG__FORMAT", "json")
        .env(
            "DESKBRIDGE_STORE__URL",
            format!("sqlite://{}", dir.join("db.sqlite").display()),
        )
        .env("DESKBRIDGE_DESTINATIONS__OUTBOX__DIR", dir.join("outbox"));
    if let Some(token) = admin_token {
        command.env("DESKBRIDGE_ADMIN_TOKEN", token);
    }
    Process::spawn(command)
}

#[tokio::test]
async fn the_image_serves_the_dashboard_only_with_an_admin_token_of_its_own() {
    let environment = image_environment();
    assert!(
        environment
            .iter()
            .any(|(k, _)| k == "DESKBRIDGE_SERVER__ADMIN_TOKEN"),
        "{environment:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let login = |port: u16| async move {
        reqwest::get(format!("http://127.0.0.1:{port}/admin/login"))
            .await
            .unwrap()
            .status()
    };
    let without = as_in_the_image(dir.path(), None);
    assert_eq!(login(without.port).await, StatusCode::NOT_FOUND);
    drop(without);
    let with = as_in_the_image(dir.path(), Some("an-admin-token-of-the-operator"));
    assert_eq!(login(with.port).await, StatusCode::OK);
}

#[tokio::test]
async fn signing_out_on_one_instance_ends_the_session_on_another() {
    let Some(admin) = common::pg_admin_url() else {
        return;
    };
    let url = common::fresh_pg_database(&admin);
    let mut config = admin_config("");
    config.store_url = Some(url);
    let first = TestApp::spawn(TestConfig {
        destinations: config.destinations.clone(),
        server_extra: config.server_extra.clone(),
        store_url: config.store_url.clone(),
        ..TestConfig::default()
    })
    .await;
    let second = TestApp::spawn(config).await;
    let cookie = sign_in(&first).await;
    assert_eq!(
        overview(&second, &cookie).await.0,
        StatusCode::OK,
        "one token, one session"
    );
    sign_out(&first, &cookie).await;
    common::eventually(
        "the other instance refuses the session",
        Duration::from_secs(10),
        || async { overview(&second, &cookie).await.0 != StatusCode::OK },
    )
    .await;
}
