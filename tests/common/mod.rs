//! Test harness: the real server on port 0 with a temporary store and templates, mock
//! destinations, and helpers to read the store and wait for conditions with a deadline.
#![allow(dead_code)]

pub mod events;
pub mod openapi;
pub mod process;
pub mod smtp;

use deskbridge::app::{prepare, Application, Role};
use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TOKEN: &str = "test-token";

/// A running deskbridge in this process.
pub struct TestApp {
    pub port: u16,
    pub dir: TempDir,
    db: Db,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// What a test configures; the rest has test-friendly defaults.
pub struct TestConfig {
    pub destinations: String,
    pub delivery: String,
    pub server_extra: String,
    pub log: String,
    pub templates: Vec<(String, String)>,
    /// The store; a SQLite file in the test's folder when `None`.
    pub store_url: Option<String>,
    /// `alerts.webhook_url`.
    pub alerts: Option<String>,
    /// More top-level sections (YAML at column 0), e.g. `telemetry:`.
    pub sections: String,
    /// The `smartsupp:` section's keys (indented), if any.
    pub smartsupp: String,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            destinations: String::new(),
            delivery: "  workers: 4\n  request_timeout: \"2s\"\n  retry_schedule: [\"100ms\", \"100ms\", \"100ms\"]\n".into(),
            server_extra: String::new(),
            log: "  level: \"warn\"\n".into(),
            templates: Vec::new(),
            store_url: None,
            alerts: None,
            sections: String::new(),
            smartsupp: String::new(),
        }
    }
}

impl TestConfig {
    /// A config whose destinations are the given YAML (indented under `destinations:`).
    pub fn with_destinations(yaml: &str) -> Self {
        Self {
            destinations: yaml.to_string(),
            ..Self::default()
        }
    }

    pub fn template(mut self, name: &str, source: &str) -> Self {
        self.templates.push((name.into(), source.into()));
        self
    }

    pub fn delivery(mut self, yaml: &str) -> Self {
        self.delivery = yaml.to_string();
        self
    }

    /// Writes config and templates under `dir`; returns the config path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let templates = dir.join("templates");
        copy_dir(&repo().join("templates"), &templates);
        for (name, source) in &self.templates {
            let path = templates.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, source).unwrap();
        }
        let yaml = format!(
            "server:\n  listen: \"127.0.0.1:0\"\n  hook_tokens: [\"{TOKEN}\"]\n{}\
             store:\n  url: \"{}\"\n\
             delivery:\n{}\
             templates:\n  dir: \"{}\"\n\
             log:\n{}\
             {}{}{}destinations:\n{}",
            self.server_extra,
            self.store_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", dir.join("db.sqlite").display())),
            self.delivery,
            templates.display(),
            self.log,
            self.alerts
                .as_ref()
                .map(|u| format!("alerts:\n  webhook_url: \"{u}\"\n"))
                .unwrap_or_default(),
            self.sections,
            if self.smartsupp.is_empty() {
                String::new()
            } else {
                format!("smartsupp:\n{}", self.smartsupp)
            },
            self.destinations
        );
        let path = dir.join("deskbridge.yaml");
        std::fs::write(&path, yaml).unwrap();
        path
    }
}

/// The first of `candidates` (after the path in environment variable `env`, when set) that
/// runs `import {module}`. Under CI none is a failure, naming `needs`; elsewhere the caller
/// skips, and `needs` is printed.
pub fn python_with(
    env: &str,
    candidates: &[PathBuf],
    module: &str,
    needs: &str,
) -> Option<PathBuf> {
    let candidates = std::env::var_os(env)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().cloned());
    for candidate in candidates {
        let works = std::process::Command::new(&candidate)
            .args(["-c", &format!("import {module}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return Some(candidate);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI must provide {needs}");
    }
    eprintln!("skipped: this test needs {needs}");
    None
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl TestApp {
    /// Starts deskbridge with `config` in a new temporary folder.
    /// Starts deskbridge with `config` in a new temporary folder, on a new SQLite file, or
    /// under `DESKBRIDGE_TEST_BACKEND=postgres` a new PostgreSQL database.
    pub async fn spawn(mut config: TestConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if on_postgres() && config.store_url.is_none() {
            let admin = pg_admin_url()
                .expect("DESKBRIDGE_TEST_BACKEND=postgres needs DESKBRIDGE_TEST_PG_URL");
            config.store_url = Some(fresh_pg_database(&admin));
        }
        Self::spawn_in(dir, &config).await
    }

    /// Starts deskbridge with `config` in `dir` (which may hold a store from before).
    pub async fn spawn_in(dir: TempDir, config: &TestConfig) -> Self {
        let path = config.write(dir.path());
        let db = match &config.store_url {
            Some(url) => Db::Postgres(url.clone()),
            None => Db::Sqlite(dir.path().join("db.sqlite")),
        };
        let (settings, text) = deskbridge::config::load(&path).expect("test config is valid");
        let prepared = prepare(settings, &path, &text).expect("test config prepares");
        let app = Application::build(prepared, Role::All)
            .await
            .expect("app builds");
        let port = app.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            port,
            dir,
            db,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POSTs `body` to the hook URL with the test token; the answer must be one that
    /// docs/openapi.yaml describes.
    pub async fn post_hook(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let response = self
            .client
            .post(self.url(&format!("/hooks/smartsupp/{TOKEN}")))
            .body(body)
            .send()
            .await
            .unwrap();
        documented("POST", &format!("/hooks/smartsupp/{TOKEN}"), response).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        let response = documented("GET", "/metrics", response).await;
        response.text().await.unwrap()
    }

    pub fn db(&self) -> Db {
        self.db.clone()
    }

    /// Stops gracefully and returns the folder (to start again on the same store).
    pub async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        tempfile::tempdir()
            .map(|fresh| std::mem::replace(&mut self.dir, fresh))
            .unwrap()
    }
}

/// Checks `response` against docs/openapi.yaml ([`openapi::assert_documented`]) and gives
/// it back, unread.
pub async fn documented(
    method: &str,
    path: &str,
    response: reqwest::Response,
) -> reqwest::Response {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    openapi::assert_documented(method, path, status.as_u16(), content_type, &body);
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.headers_mut() = headers;
    reqwest::Response::from(rebuilt)
}

/// The store a test app uses.
#[derive(Debug, Clone)]
pub enum Db {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database URL.
    Postgres(String),
}

/// Whether the tests run against PostgreSQL (`DESKBRIDGE_TEST_BACKEND=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("DESKBRIDGE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The PostgreSQL server for tests (`scripts/pg-test-server.sh start` prints it). Under CI its
/// absence fails the test; elsewhere the caller skips.
pub fn pg_admin_url() -> Option<String> {
    match std::env::var("DESKBRIDGE_TEST_PG_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI must provide DESKBRIDGE_TEST_PG_URL (scripts/pg-test-server.sh start)")
        }
        Err(_) => {
            eprintln!("skipped: set DESKBRIDGE_TEST_PG_URL (scripts/pg-test-server.sh start)");
            None
        }
    }
}

/// Runs `f` with a client of `url` on a runtime of its own (callable from any test).
pub fn pg<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(tokio_postgres::Client) -> std::pin::Pin<Box<dyn Future<Output = T> + Send>>
        + Send
        + 'static,
) -> T {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            f(client).await
        })
    })
    .join()
    .unwrap()
}

/// A new, empty PostgreSQL database on the test server; its URL.
pub fn fresh_pg_database(admin: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("t_{}_{n}_{nanos}", std::process::id());
    let create = format!("CREATE DATABASE {name}");
    pg(admin, move |c| {
        Box::pin(async move { c.batch_execute(&create).await.unwrap() })
    });
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("DESKBRIDGE_TEST_PG_URL must end with /database"),
    }
}

/// One delivery row as the store has it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub key: String,
    pub version: i64,
    pub destination: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

const DELIVERIES: &str =
    "SELECT d.id, c.key, c.version, d.destination, d.state, d.attempts, d.last_error
     FROM deliveries d JOIN conversations c ON c.id = d.conversation_id ORDER BY d.id";

pub fn deliveries(db: &Db) -> Vec<DeliveryRow> {
    match db {
        Db::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut stmt = conn.prepare(DELIVERIES).unwrap();
            stmt.query_map([], |r| {
                Ok(DeliveryRow {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    version: r.get(2)?,
                    destination: r.get(3)?,
                    state: r.get(4)?,
                    attempts: r.get(5)?,
                    last_error: r.get(6)?,
                })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
        }
        Db::Postgres(url) => pg(url, |c| {
            Box::pin(async move {
                c.query(DELIVERIES, &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| DeliveryRow {
                        id: r.get(0),
                        key: r.get(1),
                        version: i64::from(r.get::<_, i32>(2)),
                        destination: r.get(3),
                        state: r.get(4),
                        attempts: i64::from(r.get::<_, i32>(5)),
                        last_error: r.get(6),
                    })
                    .collect()
            })
        }),
    }
}

/// The value of a `SELECT COUNT(*) …`.
pub fn count(db: &Db, sql: &str) -> i64 {
    match db {
        Db::Sqlite(path) => rusqlite::Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap(),
        Db::Postgres(url) => {
            let sql = sql.to_string();
            pg(url, move |c| {
                Box::pin(async move { c.query_one(&sql, &[]).await.unwrap().get(0) })
            })
        }
    }
}

/// The first column of every row of a query that selects text (null as "").
pub fn texts(db: &Db, sql: &str) -> Vec<String> {
    match db {
        Db::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut stmt = conn.prepare(sql).unwrap();
            stmt.query_map([], |r| r.get::<_, Option<String>>(0))
                .unwrap()
                .map(|v| v.unwrap().unwrap_or_default())
                .collect()
        }
        Db::Postgres(url) => {
            let sql = sql.to_string();
            pg(url, move |c| {
                Box::pin(async move {
                    c.query(&sql, &[])
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
                        .collect()
                })
            })
        }
    }
}

/// Attempt rows (attempt number, status, error) of one delivery.
pub fn attempts(db: &Db, delivery: i64) -> Vec<(i64, Option<i64>, Option<String>)> {
    let sql = format!(
        "SELECT attempt, status, error FROM attempts WHERE delivery_id = {delivery} ORDER BY id"
    );
    match db {
        Db::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut stmt = conn.prepare(&sql).unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
        Db::Postgres(url) => pg(url, move |c| {
            Box::pin(async move {
                c.query(&sql, &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| {
                        (
                            i64::from(r.get::<_, i32>(0)),
                            r.get::<_, Option<i32>>(1).map(i64::from),
                            r.get(2),
                        )
                    })
                    .collect()
            })
        }),
    }
}

/// Polls `check` until it holds, failing the test after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bundled sample conversation as JSON.
pub fn sample(name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("samples").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The documented example with another channel id.
pub fn conversation(channel: i64) -> Value {
    let mut c = sample("chat.json");
    c["channel"]["id"] = channel.into();
    c
}

/// Waits until `mock` has received at least `n` requests; returns all of them.
pub async fn requests_at(mock: &wiremock::MockServer, n: usize) -> Vec<wiremock::Request> {
    eventually(
        &format!("{n} request(s) at the mock"),
        Duration::from_secs(15),
        || async { mock.received_requests().await.unwrap_or_default().len() >= n },
    )
    .await;
    mock.received_requests().await.unwrap_or_default()
}

/// A request's JSON body.
pub fn json_body(r: &wiremock::Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

/// A request header's value, or "".
pub fn header(r: &wiremock::Request, name: &str) -> String {
    r.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Fails when more than `most` of the (sorted) `times` fall within any `window`.
pub fn assert_at_most_per_window(times: &[std::time::Instant], most: usize, window: Duration) {
    for (i, t) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < window)
            .count();
        assert!(
            within <= most,
            "{within} requests within {window:?} (at most {most})"
        );
    }
}

/// Waits (up to 10 s) until `destination` is paused in the app's metrics.
pub async fn paused(app: &TestApp, destination: &str) {
    let gauge = format!("deskbridge_destination_state{{destination=\"{destination}\"}} 1");
    eventually(
        &format!("{destination} paused"),
        Duration::from_secs(10),
        || async { app.metrics().await.contains(&gauge) },
    )
    .await;
}
