//! Test harness: the real server on port 0 with a temporary store and templates, mock
//! destinations, and helpers to read the store and wait for conditions with a deadline.
#![allow(dead_code)]

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
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            destinations: String::new(),
            delivery: "  workers: 4\n  request_timeout: \"2s\"\n  retry_schedule: [\"100ms\", \"100ms\", \"100ms\"]\n".into(),
            server_extra: String::new(),
            log: "  level: \"warn\"\n".into(),
            templates: Vec::new(),
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
             store:\n  url: \"sqlite://{}\"\n\
             delivery:\n{}\
             templates:\n  dir: \"{}\"\n\
             log:\n{}\
             destinations:\n{}",
            self.server_extra,
            dir.join("db.sqlite").display(),
            self.delivery,
            templates.display(),
            self.log,
            self.destinations
        );
        let path = dir.join("deskbridge.yaml");
        std::fs::write(&path, yaml).unwrap();
        path
    }
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
    pub async fn spawn(config: TestConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn_in(dir, &config).await
    }

    /// Starts deskbridge with `config` in `dir` (which may hold a store from before).
    pub async fn spawn_in(dir: TempDir, config: &TestConfig) -> Self {
        let path = config.write(dir.path());
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
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POSTs `body` to the hook URL with the test token.
    pub async fn post_hook(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/hooks/smartsupp/{TOKEN}")))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("db.sqlite")
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

pub fn deliveries(db: &Path) -> Vec<DeliveryRow> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT d.id, c.key, c.version, d.destination, d.state, d.attempts, d.last_error
             FROM deliveries d JOIN conversations c ON c.id = d.conversation_id ORDER BY d.id",
        )
        .unwrap();
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

pub fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Attempt rows (attempt number, status, error) of one delivery.
pub fn attempts(db: &Path, delivery: i64) -> Vec<(i64, Option<i64>, Option<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT attempt, status, error FROM attempts WHERE delivery_id = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([delivery], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
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
