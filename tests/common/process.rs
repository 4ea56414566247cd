//! `deskbridge serve` as a child process: started with a config, its port read from its log
//! (JSON or text), signalled, and killed (SIGKILL) when dropped.

use super::TOKEN;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_deskbridge");

/// What one `deskbridge` command did.
pub struct Run {
    /// Its exit code.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// Runs `deskbridge ARGS` from the repository root (where the shipped relative paths hold),
/// without `DESKBRIDGE_CONFIG`; fails the test on a panic.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(BIN)
        .current_dir(super::repo())
        .args(args)
        .env_remove("DESKBRIDGE_CONFIG")
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

/// A running `deskbridge serve`.
pub struct Process {
    pub child: Child,
    pub port: u16,
    /// Every line it has written to stderr so far.
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub fn start(config: &Path) -> Self {
        Self::start_with(config, &[])
    }

    /// Starts `deskbridge serve` with extra arguments (e.g. `--role worker`).
    pub fn start_with(config: &Path, args: &[&str]) -> Self {
        let mut command = Command::new(BIN);
        command.args(["serve", "--config"]).arg(config).args(args);
        Self::spawn(command)
    }

    /// Starts `deskbridge serve` with files limited to `blocks` 512-byte blocks (a soft `ulimit -f`, which the test may lift),
    /// and writes past the limit failing (SIGXFSZ ignored) as on a full disk.
    pub fn start_with_file_limit(config: &Path, blocks: u64) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!(
                "trap '' XFSZ; ulimit -S -f {blocks}; exec \"$0\" serve --config \"$1\""
            ))
            .arg(BIN)
            .arg(config);
        Self::spawn(command)
    }

    /// Starts a prepared command that runs `deskbridge serve` with a JSON log.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("deskbridge starts");
        let port = Arc::new(Mutex::new(None));
        let stderr = child.stderr.take().unwrap();
        let found = port.clone();
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                if let Some(p) = port_in(&line) {
                    *found.lock().unwrap() = Some(p);
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(p) = *port.lock().unwrap() {
                return Self {
                    child,
                    port: p,
                    logs,
                };
            }
            assert!(
                std::time::Instant::now() < deadline,
                "deskbridge did not report its port"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "deskbridge exited at start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to 10 s) for a log line that contains `needle`; returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no log line with {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn post(&self, body: String) -> u16 {
        reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/hooks/smartsupp/{TOKEN}",
                self.port
            ))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// The port of a "deskbridge is listening" log line, JSON or text (coloured or not).
fn port_in(line: &str) -> Option<u16> {
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(line) {
        return event["fields"]["port"].as_u64().map(|p| p as u16);
    }
    let mut plain = String::new();
    let mut rest = line;
    while let Some((before, after)) = rest.split_once("\u{1b}[") {
        plain.push_str(before);
        rest = after.split_once('m').map_or("", |(_, tail)| tail);
    }
    plain.push_str(rest);
    let (_, fields) = plain.split_once("deskbridge is listening ")?;
    fields
        .split(' ')
        .find_map(|field| field.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
