//! deskbridge behind the shipped nginx site (`deploy/nginx/deskbridge.conf`): a real nginx in
//! front of a real `deskbridge serve`, over TLS with a self-signed certificate. The site file is
//! used as shipped, with only the upstream address, the listen ports and the certificate paths
//! replaced. Hooks pass with the caller's address, bodies over the limit are refused by nginx,
//! health and metrics stay internal, and plain HTTP redirects to HTTPS.
//!
//! Needs `nginx` (Debian package nginx-light or nginx) and `openssl`. Without nginx the tests
//! are skipped, except under CI (`CI` set), where that is a failure.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::BIN;
use common::{conversation, repo, TestConfig, TOKEN};
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// `server.max_body_bytes` by default, and the site's `client_max_body_size 5m`.
const LIMIT: usize = 5 * 1024 * 1024;

/// The test's own source address: not nginx's 127.0.0.1, so the two can be told apart.
const CALLER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// nginx on `PATH`, or in Debian's /usr/sbin (which is not on a normal user's `PATH`).
fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nginx"))
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|candidate| candidate.is_file())
}

/// nginx, or `None` after saying the test is skipped; under CI its absence fails the test.
fn nginx_or_skip() -> Option<PathBuf> {
    match find_nginx() {
        Some(nginx) => Some(nginx),
        None if std::env::var_os("CI").is_some() => {
            panic!("CI must provide nginx (Debian package nginx-light or nginx)")
        }
        None => {
            eprintln!("skipped: nginx is not installed (Debian package nginx-light or nginx)");
            None
        }
    }
}

/// Two free loopback ports (free when this returns; nginx is started again on others if one
/// was taken since).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// Polls `ready` every 20 ms until it gives a value, failing after `limit` or when `alive` says
/// the process is gone.
async fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut alive: impl FnMut() -> Result<(), String>,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = ready() {
            return Ok(value);
        }
        alive()?;
        if Instant::now() >= deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `deskbridge serve` as a child process whose JSON log lines are kept; killed when dropped.
struct Deskbridge {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Deskbridge {
    async fn start(dir: &Path) -> Self {
        let mut config = TestConfig::with_destinations(&format!(
            "  out:\n    kind: file\n    dir: \"{}\"\n",
            dir.join("out").display()
        ));
        config.log = "  level: \"info,deskbridge=debug\"\n  format: \"json\"\n".into();
        let path = config.write(dir);
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("deskbridge starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut deskbridge = Self {
            child,
            port: 0,
            log,
        };
        let log = deskbridge.log.clone();
        let port = wait_for(
            "deskbridge to report its port",
            Duration::from_secs(20),
            || match deskbridge.child.try_wait().unwrap() {
                None => Ok(()),
                Some(status) => Err(format!("deskbridge exited at start ({status})")),
            },
            || find(&log, |event| event["fields"]["port"].as_u64()),
        )
        .await;
        match port {
            Ok(port) => deskbridge.port = u16::try_from(port).unwrap(),
            Err(e) => panic!("{e}\n{}", log.lock().unwrap().join("\n")),
        }
        deskbridge
    }

    /// The client address deskbridge logged with "hook accepted" for conversation `key`.
    async fn client_of(&self, key: &str) -> String {
        let found = wait_for(
            &format!("\"hook accepted\" of {key} in deskbridge's log"),
            Duration::from_secs(10),
            || Ok(()),
            || {
                find(&self.log, |event| {
                    let fields = &event["fields"];
                    (fields["message"] == "hook accepted" && fields["conversation"] == key)
                        .then(|| fields["client"].as_str().unwrap_or_default().to_string())
                })
            },
        )
        .await;
        found.unwrap_or_else(|e| panic!("{e} (is log.level debug for deskbridge?)"))
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Deskbridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first JSON event in `log` for which `pick` gives a value.
fn find<T>(log: &Mutex<Vec<String>>, pick: impl Fn(&Value) -> Option<T>) -> Option<T> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find_map(|event| pick(&event))
}

/// A self-signed certificate and key for 127.0.0.1, made with the openssl command line.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("fullchain.pem");
    let key = dir.join("privkey.pem");
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "the openssl command line tool is needed to make the test's TLS certificate \
             (Debian package openssl)"
        ),
        Err(e) => panic!("cannot run openssl: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "openssl could not make a certificate: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    (cert, key)
}

/// `from` replaced by `to`, where `from` must stand exactly once in the shipped site file.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "deploy/nginx/deskbridge.conf must contain `{from}` exactly once"
    );
    text.replacen(from, to, 1)
}

/// The shipped site with the upstream, the listen ports and the certificate paths replaced.
fn site(upstream: u16, https: u16, http: u16, cert: &Path, key: &Path) -> String {
    let shipped = std::fs::read_to_string(repo().join("deploy/nginx/deskbridge.conf")).unwrap();
    let swaps = [
        (
            "server 127.0.0.1:8080;".to_string(),
            format!("server 127.0.0.1:{upstream};"),
        ),
        (
            "listen 443 ssl http2;".to_string(),
            format!("listen 127.0.0.1:{https} ssl http2;"),
        ),
        (
            "listen 80;".to_string(),
            format!("listen 127.0.0.1:{http};"),
        ),
        (
            "ssl_certificate /etc/ssl/deskbridge/fullchain.pem;".to_string(),
            format!("ssl_certificate {};", cert.display()),
        ),
        (
            "ssl_certificate_key /etc/ssl/deskbridge/privkey.pem;".to_string(),
            format!("ssl_certificate_key {};", key.display()),
        ),
    ];
    swaps
        .iter()
        .fold(shipped, |text, (from, to)| replace_once(&text, from, to))
}

/// A minimal nginx.conf around the site, with every file nginx writes inside `dir`. nginx runs
/// as one process in the foreground (`daemon off`, `master_process off`): killing it leaves no
/// worker behind, even when the test itself is killed.
fn nginx_conf(nginx: &Path, dir: &Path) -> String {
    let d = dir.display();
    // As root, nginx would otherwise switch to `nobody`, which cannot enter the private
    // temporary folder to write request bodies there.
    let user = if std::fs::metadata(dir).unwrap().uid() == 0 {
        "user root;\n"
    } else {
        ""
    };
    let built = Command::new(nginx).arg("-V").output().unwrap();
    let built = String::from_utf8_lossy(&built.stderr).into_owned();
    let temp_paths: String = ["fastcgi", "uwsgi", "scgi"]
        .iter()
        .filter(|module| !built.contains(&format!("--without-http_{module}_module")))
        .map(|module| format!("    {module}_temp_path {d}/{module}_temp;\n"))
        .collect();
    format!(
        "{user}daemon off;\n\
         master_process off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log notice;\n\
         events {{\n    worker_connections 64;\n}}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/client_body_temp;\n\
         \x20   proxy_temp_path {d}/proxy_temp;\n\
         {temp_paths}\
         \x20   include {d}/deskbridge.conf;\n\
         }}\n"
    )
}

/// nginx running the shipped site in the foreground; killed when dropped.
struct Nginx {
    child: Child,
    https: u16,
    http: u16,
}

impl Nginx {
    async fn start(nginx: &Path, dir: &Path, upstream: u16) -> Self {
        let (cert, key) = certificate(dir);
        let mut failures = Vec::new();
        // A port found free may be taken before nginx binds it: then try other ports.
        for _ in 0..3 {
            let (https, http) = free_ports();
            std::fs::write(
                dir.join("deskbridge.conf"),
                site(upstream, https, http, &cert, &key),
            )
            .unwrap();
            std::fs::write(dir.join("nginx.conf"), nginx_conf(nginx, dir)).unwrap();
            let output = File::create(dir.join("nginx.out")).unwrap();
            let mut child = Command::new(nginx)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::from(output.try_clone().unwrap()))
                .stderr(Stdio::from(output))
                .spawn()
                .expect("nginx starts");
            let listening = wait_for(
                "nginx to listen",
                Duration::from_secs(10),
                || match child.try_wait().unwrap() {
                    None => Ok(()),
                    Some(status) => Err(format!("nginx exited ({status})")),
                },
                || {
                    let up = |port: u16| {
                        let addr = SocketAddr::from(([127, 0, 0, 1], port));
                        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
                    };
                    (up(https) && up(http)).then_some(())
                },
            )
            .await;
            if listening.is_ok() {
                return Self { child, https, http };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                + &std::fs::read_to_string(dir.join("nginx.out")).unwrap_or_default();
            let in_use = log.contains("Address already in use");
            failures.push(format!("{}\n{log}", listening.unwrap_err()));
            if !in_use {
                break;
            }
        }
        panic!("nginx did not start:\n{}", failures.join("\n---\n"));
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx in front of deskbridge, in one temporary folder. Fields drop in order: the processes
/// stop before their folder goes.
struct Stack {
    nginx: Nginx,
    deskbridge: Deskbridge,
    /// Bound to [`CALLER`], accepts the self-signed certificate, follows no redirects.
    client: reqwest::Client,
    dir: TempDir,
}

impl Stack {
    /// The running stack, or `None` when the test is skipped.
    async fn start() -> Option<Self> {
        let nginx = nginx_or_skip()?;
        let dir = tempfile::tempdir().unwrap();
        let deskbridge = Deskbridge::start(dir.path()).await;
        let nginx = Nginx::start(&nginx, dir.path(), deskbridge.port).await;
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .local_address(IpAddr::V4(CALLER))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Some(Self {
            nginx,
            deskbridge,
            client,
            dir,
        })
    }

    fn https(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.nginx.https)
    }

    fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.nginx.http)
    }

    /// POSTs `body` to the hook URL through nginx.
    async fn post_hook(&self, body: String) -> reqwest::Response {
        self.client
            .post(self.https(&format!("/hooks/smartsupp/{TOKEN}")))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// deskbridge's metrics, from its own port.
    async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.deskbridge.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

/// `conversation` as JSON of exactly `size` bytes (a padding field makes up the difference).
fn padded(mut conversation: Value, size: usize) -> String {
    conversation["padding"] = "".into();
    let bare = conversation.to_string().len();
    conversation["padding"] = "x".repeat(size - bare).into();
    let text = conversation.to_string();
    assert_eq!(text.len(), size);
    text
}

#[tokio::test]
async fn a_hook_over_https_is_accepted_and_logged_with_the_callers_address() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    // A made-up X-Forwarded-For from the caller must not become the recorded address.
    let response = stack
        .client
        .post(stack.https(&format!("/hooks/smartsupp/{TOKEN}")))
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Real-IP", "203.0.113.8")
        .body(conversation(4101).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "accepted", "{answer}");
    assert_eq!(answer["conversation"], "208-4101");
    assert_eq!(
        stack.deskbridge.client_of("208-4101").await,
        CALLER.to_string(),
        "deskbridge must record the caller (127.0.0.2), not nginx (127.0.0.1) or a forged header"
    );

    // The token stays out of nginx's access log; a request logged after the hook shows the
    // log is written.
    let response = stack
        .client
        .get(stack.https("/after-the-hook"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let logged = wait_for(
        "the access log to show /after-the-hook",
        Duration::from_secs(10),
        || Ok(()),
        || Some(stack.access_log()).filter(|log| log.contains("/after-the-hook")),
    )
    .await
    .unwrap();
    assert!(
        !logged.contains(TOKEN),
        "nginx logged the hook token:\n{logged}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_by_nginx_and_one_at_the_limit_passes() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let response = stack.post_hook(padded(conversation(4201), LIMIT)).await;
    assert_eq!(response.status(), 200, "a body of exactly the limit passes");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "accepted", "{answer}");

    let response = stack.post_hook(padded(conversation(4202), LIMIT + 1)).await;
    assert_eq!(response.status(), 413);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("413 Request Entity Too Large") && page.contains("nginx"),
        "nginx's own 413 page, not deskbridge's: {page}"
    );
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains("deskbridge_hooks_received_total{outcome=\"accepted\"} 1")
            && metrics.contains("deskbridge_hooks_received_total{outcome=\"too_large\"} 0"),
        "the oversized body never reached deskbridge:\n{metrics}"
    );
}

#[tokio::test]
async fn health_and_metrics_are_not_reachable_through_nginx() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    for path in ["/metrics", "/healthz", "/readyz", "/", "/hooks"] {
        let response = stack.client.get(stack.https(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "GET {path} through nginx");
    }
    let metrics = stack.metrics().await;
    assert!(metrics.contains("deskbridge_hooks_received_total"));
    let response = stack
        .client
        .get(stack.deskbridge.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "deskbridge's own port answers /healthz"
    );
}

#[tokio::test]
async fn plain_http_redirects_to_https() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let path = format!("/hooks/smartsupp/{TOKEN}");
    for response in [
        stack.client.get(stack.http(&path)).send().await.unwrap(),
        stack
            .client
            .post(stack.http(&path))
            .body(conversation(4301).to_string())
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(response.status(), 301);
        let location = response.headers()["location"].to_str().unwrap();
        assert_eq!(location, format!("https://127.0.0.1{path}"));
    }
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains("deskbridge_hooks_received_total{outcome=\"accepted\"} 0"),
        "nothing reached deskbridge over plain HTTP:\n{metrics}"
    );
}
