//! A real SMTP server for the email tests: `tests/smtp/server.py` (aiosmtpd) as a child
//! process on a chosen port, with STARTTLS on a throwaway self-signed certificate made by
//! `openssl` and AUTH; messages it accepted read back through `tests/smtp/parse.py`.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "deskbridge";
pub const PASSWORD: &str = "smtp-secret-password";

/// A Python 3 with aiosmtpd (`DESKBRIDGE_TEST_PYTHON`, `python3`, then Debian's
/// `/usr/bin/python3`, which has the `python3-aiosmtpd` package). Under CI its absence fails
/// the test; elsewhere the caller skips.
pub fn python() -> Option<PathBuf> {
    super::python_with(
        "DESKBRIDGE_TEST_PYTHON",
        &[PathBuf::from("python3"), PathBuf::from("/usr/bin/python3")],
        "aiosmtpd",
        "python3 with aiosmtpd (Debian: apt install python3-aiosmtpd)",
    )
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A self-signed certificate for 127.0.0.1 and localhost in `dir`: (cert.pem, key.pem).
pub fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// How the server is set up.
#[derive(Clone, Default)]
pub struct Options {
    /// STARTTLS (required) with this certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// TLS from the first byte instead of STARTTLS.
    pub implicit_tls: bool,
    /// Require AUTH with [`USER`] and [`PASSWORD`].
    pub auth: bool,
    /// Recipients refused with 550.
    pub reject: Vec<String>,
    /// Recipients answered 451 the first time.
    pub defer_once: Vec<String>,
}

/// A running `tests/smtp/server.py`, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    python: PathBuf,
    /// Where accepted messages are saved.
    pub dir: PathBuf,
}

impl Server {
    /// Starts the server on `port`, saving messages in `dir`; returns once it listens.
    pub fn start(python: &Path, port: u16, dir: &Path, options: &Options) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut command = Command::new(python);
        command
            .arg(super::repo().join("tests/smtp/server.py"))
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir);
        if let Some((cert, key)) = &options.tls {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if options.implicit_tls {
            command.arg("--implicit-tls");
        }
        if options.auth {
            command.args(["--user", USER, "--password", PASSWORD]);
        }
        for r in &options.reject {
            command.args(["--reject", r]);
        }
        for r in &options.defer_once {
            command.args(["--defer-once", r]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the SMTP test server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP test server did not start");
        Self {
            child,
            port,
            python: python.to_path_buf(),
            dir: dir.to_path_buf(),
        }
    }

    /// The saved messages, oldest first, as `tests/smtp/parse.py` reads them, each with its
    /// envelope (`envelope.mail_from`, `envelope.rcpt_tos`) and raw text (`raw`).
    pub fn messages(&self) -> Vec<Value> {
        let mut numbers: Vec<u32> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".eml")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        numbers
            .into_iter()
            .map(|n| {
                let eml = self.dir.join(format!("{n}.eml"));
                let out = Command::new(&self.python)
                    .arg(super::repo().join("tests/smtp/parse.py"))
                    .arg(&eml)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let mut parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
                let envelope = std::fs::read(self.dir.join(format!("{n}.json"))).unwrap();
                parsed["envelope"] = serde_json::from_slice(&envelope).unwrap();
                parsed["raw"] = String::from_utf8_lossy(&std::fs::read(&eml).unwrap()).into();
                parsed
            })
            .collect()
    }

    /// Waits until at least `n` messages were accepted; returns all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let count = std::fs::read_dir(&self.dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                })
                .count();
            if count >= n {
                return self.messages();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} message(s)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The decoded value of the first header `name` of a parsed message ("" when missing).
pub fn header(message: &Value, name: &str) -> String {
    message["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Names of every header of a parsed message, lower case.
pub fn header_names(message: &Value) -> Vec<String> {
    message["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap().to_ascii_lowercase())
        .collect()
}
