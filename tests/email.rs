//! The email destination against a real SMTP server (aiosmtpd, `tests/smtp/server.py`) with
//! STARTTLS and AUTH: each received message parsed by Python's `email` package as a mail client
//! would. Both parts, UTF-8 names and subjects, threading of a later version, no header from a
//! hostile visitor, a cut transcript, and the retry, dead and credential paths.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::smtp::{self, header, header_names, Options, Server, PASSWORD, USER};
use common::{attempts, conversation, deliveries, eventually, texts, Db, TestApp, TestConfig};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// An email destination named `name` sending to the server at `port`; `extra` is more YAML.
fn destination(name: &str, url: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    kind: email\n    smtp_url: \"{url}\"\n    from: \"chats@example.com\"\n{extra}"
    )
}

/// STARTTLS and AUTH settings for a server using `cert`, the password from a file in `dir`.
fn secured(dir: &Path, cert: &Path, password: &str) -> String {
    let file = dir.join("smtp_password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    format!(
        "    ca_file: \"{}\"\n    username: \"{USER}\"\n    password_file: \"{}\"\n",
        cert.display(),
        file.display()
    )
}

/// The documented chat as channel `channel`, from `name` <`email`>.
fn chat(channel: i64, name: &str, email: &str) -> Value {
    let mut c = conversation(channel);
    c["visitor"]["name"] = json!(name);
    c["visitor"]["email"] = json!(email);
    c["messages"][0]["content"] = json!("Dobrý den, můžete mi pomoci? 🙂");
    c
}

async fn state_of(db: &Db, destination: &str, state: &str) -> common::DeliveryRow {
    let mut found = None;
    eventually(
        &format!("{destination} {state}"),
        Duration::from_secs(20),
        || {
            let rows = deliveries(db);
            found = rows
                .into_iter()
                .find(|d| d.destination == destination && d.state == state);
            let done = found.is_some();
            async move { done }
        },
    )
    .await;
    found.unwrap()
}

fn excerpts(db: &Db, delivery: i64) -> Vec<String> {
    texts(
        db,
        &format!("SELECT excerpt FROM attempts WHERE delivery_id = {delivery} ORDER BY id"),
    )
}

/// A server with TLS (STARTTLS, or from the first byte with `implicit_tls`) and AUTH, its
/// messages under `dir/mail`; with its certificate and key.
fn secured_server(
    python: &std::path::Path,
    dir: &std::path::Path,
    implicit_tls: bool,
) -> (Server, (std::path::PathBuf, std::path::PathBuf)) {
    let tls = smtp::certificate(dir);
    let options = Options {
        tls: Some(tls.clone()),
        implicit_tls,
        auth: true,
        ..Options::default()
    };
    let server = Server::start(python, smtp::free_port(), &dir.join("mail"), &options);
    (server, tls)
}

#[tokio::test]
async fn starttls_and_auth_carry_both_parts_utf8_names_and_threading() {
    let Some(python) = smtp::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, tls) = secured_server(&python, dir.path(), false);
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let extra = format!(
        "{}    to: [\"Support <support@example.com>\"]\n    bcc: \"audit@example.com\"\n    headers: {{ X-Conversation: \"{{{{meta.key}}}}\" }}\n",
        secured(dir.path(), &tls.0, PASSWORD)
    );
    let app = TestApp::spawn(TestConfig::with_destinations(&destination(
        "mail", &url, &extra,
    )))
    .await;

    let mut body = chat(501, "Dana Svobodová 🙂", "dana@example.cz");
    assert_eq!(app.post_hook(body.to_string()).await.status(), 200);
    let first = &server.wait_for(1).await[0];
    assert_eq!(first["defects"], json!([]), "{first}");
    assert_eq!(first["content_type"], "multipart/alternative");
    assert_eq!(first["parts"], json!(["text/plain", "text/html"]));
    assert_eq!(first["subject"], "Chat with Dana Svobodová 🙂");
    assert_eq!(
        first["from"],
        json!([{"name": "Dana Svobodová 🙂 via Smartsupp", "address": "chats@example.com"}])
    );
    assert_eq!(
        first["reply_to"],
        json!([{"name": "Dana Svobodová 🙂", "address": "dana@example.cz"}])
    );
    assert_eq!(
        first["to"],
        json!([{"name": "Support", "address": "support@example.com"}])
    );
    assert!(
        first["raw"].as_str().unwrap().is_ascii(),
        "every header and part is encoded"
    );
    let text = first["text"].as_str().unwrap();
    let html = first["html"].as_str().unwrap();
    assert!(
        text.contains("Dana Svobodová 🙂: Dobrý den, můžete mi pomoci? 🙂"),
        "{text}"
    );
    assert!(text.contains("Smartsupp conversation: 208-501"), "{text}");
    assert!(
        html.contains("<strong>Dana Svobodová 🙂</strong>: Dobrý den, můžete mi pomoci? 🙂"),
        "{html}"
    );
    assert!(
        html.contains("<h3>Visitor</h3>"),
        "the visitor's context: {html}"
    );
    assert_eq!(header(first, "Message-ID"), "<208-501-v1@example.com>");
    assert_eq!(header(first, "In-Reply-To"), "");
    assert_eq!(header(first, "X-Conversation"), "208-501");
    assert!(!header_names(first).contains(&"bcc".to_string()), "{first}");
    assert!(!first["raw"].as_str().unwrap().contains("audit@"));
    assert_eq!(
        first["envelope"],
        json!({"mail_from": "chats@example.com", "rcpt_tos": ["support@example.com", "audit@example.com"]})
    );
    let delivered = state_of(&app.db(), "mail", "done").await;
    assert_eq!(attempts(&app.db(), delivered.id)[0].1, Some(250));
    assert!(excerpts(&app.db(), delivered.id)[0].starts_with("250 2.0.0 Ok: queued as 1"));

    // The visitor came back: version 2 answers version 1, so help desks thread it.
    body["messages"].as_array_mut().unwrap().push(json!({
        "type": "visitor", "name": "Dana Svobodová 🙂", "content": "Ještě jedna otázka",
        "sentAt": 1427470500000_i64
    }));
    assert_eq!(app.post_hook(body.to_string()).await.status(), 200);
    let second = &server.wait_for(2).await[1];
    assert_eq!(second["defects"], json!([]), "{second}");
    assert_eq!(header(second, "Message-ID"), "<208-501-v2@example.com>");
    assert_eq!(header(second, "In-Reply-To"), "<208-501-v1@example.com>");
    assert_eq!(header(second, "References"), "<208-501-v1@example.com>");
    assert_eq!(second["subject"], first["subject"]);
    let text = second["text"].as_str().unwrap();
    assert!(
        text.contains("The visitor came back") && text.contains("Ještě jedna otázka"),
        "{text}"
    );
}

#[tokio::test]
async fn a_hostile_visitor_cannot_add_a_header_or_a_recipient() {
    let Some(python) = smtp::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&python, smtp::free_port(), dir.path(), &Options::default());
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let extra = "    tls: none\n    to: \"support@example.com\"\n    headers: { X-Visitor: \"{{visitor.name}}\" }\n";
    let app = TestApp::spawn(TestConfig::with_destinations(&destination(
        "mail", &url, extra,
    )))
    .await;
    let hostile = "Eve\r\nBcc: evil@example.com";
    let mut body = chat(502, hostile, "eve@example.com\r\nBcc: evil2@example.com");
    body["visitor"]["note"] = json!("x\r\n\r\n--boundary\r\nContent-Type: text/html\r\n\r\n<b>");
    assert_eq!(app.post_hook(body.to_string()).await.status(), 200);
    let message = &server.wait_for(1).await[0];
    assert_eq!(message["defects"], json!([]), "{message}");
    let names = header_names(message);
    assert!(!names.contains(&"bcc".to_string()), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| *n == "content-type").count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        message["envelope"]["rcpt_tos"],
        json!(["support@example.com"])
    );
    assert_eq!(message["subject"], "Chat with Eve Bcc: evil@example.com");
    assert_eq!(
        message["from"][0]["name"],
        "Eve Bcc: evil@example.com via Smartsupp"
    );
    assert_eq!(header(message, "X-Visitor"), "Eve Bcc: evil@example.com");
    assert_eq!(
        message["reply_to"],
        json!([]),
        "an unusable address drops Reply-To, not the mail"
    );
    assert_eq!(message["parts"], json!(["text/plain", "text/html"]));
    // The visitor's name stands in the text part as typed (that is its content); the header
    // block has no line of its own for it.
    let raw = message["raw"].as_str().unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(
        !head.contains("\r\nbcc:") && !head.contains("evil2"),
        "{head}"
    );
    state_of(&app.db(), "mail", "done").await;
}

#[tokio::test]
async fn a_server_down_at_first_gets_the_mail_once_it_is_up() {
    let Some(python) = smtp::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = smtp::free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let extra = "    tls: none\n    to: \"support@example.com\"\n    breaker: { failures: 0 }\n";
    let config = TestConfig::with_destinations(&destination("mail", &url, extra))
        .delivery("  workers: 2\n  request_timeout: \"2s\"\n  retry_schedule: [\"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\"]\n");
    let app = TestApp::spawn(config).await;
    assert_eq!(
        app.post_hook(chat(503, "Dana", "dana@example.cz").to_string())
            .await
            .status(),
        200
    );
    let db = app.db();
    eventually("a failed attempt", Duration::from_secs(10), || async {
        deliveries(&db).first().is_some_and(|d| d.attempts >= 1)
    })
    .await;
    let server = Server::start(&python, port, dir.path(), &Options::default());
    server.wait_for(1).await;
    let delivered = state_of(&db, "mail", "done").await;
    let tried = attempts(&db, delivered.id);
    assert!(tried.len() >= 2, "{tried:?}");
    let (_, status, error) = &tried[0];
    assert_eq!(*status, None);
    assert!(
        error.as_deref().unwrap().contains("could not be reached"),
        "{tried:?}"
    );
    assert_eq!(tried.last().unwrap().1, Some(250));
}

#[tokio::test]
async fn a_refused_recipient_is_dead_with_the_reply_and_a_busy_one_is_retried() {
    let Some(python) = smtp::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        reject: vec!["unknown@example.com".into()],
        defer_once: vec!["busy@example.com".into()],
        ..Options::default()
    };
    let server = Server::start(&python, smtp::free_port(), dir.path(), &options);
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let destinations = format!(
        "{}{}",
        destination(
            "refused",
            &url,
            "    tls: none\n    to: \"unknown@example.com\"\n"
        ),
        destination(
            "busy",
            &url,
            "    tls: none\n    to: \"busy@example.com\"\n"
        )
    );
    let app = TestApp::spawn(TestConfig::with_destinations(&destinations)).await;
    assert_eq!(
        app.post_hook(chat(504, "Dana", "dana@example.cz").to_string())
            .await
            .status(),
        200
    );
    let db = app.db();

    let dead = state_of(&db, "refused", "dead").await;
    assert_eq!(dead.attempts, 1, "a 5xx is not retried");
    let tried = attempts(&db, dead.id);
    assert_eq!(tried.len(), 1);
    assert_eq!(tried[0].1, Some(550));
    let error = tried[0].2.as_deref().unwrap();
    assert!(
        error.contains("550 5.1.1 <unknown@example.com>: Recipient address rejected: User unknown"),
        "{error}"
    );
    assert!(excerpts(&db, dead.id)[0].starts_with("550 5.1.1 <unknown@example.com>"));

    let done = state_of(&db, "busy", "done").await;
    let tried = attempts(&db, done.id);
    assert_eq!(tried.len(), 2, "{tried:?}");
    assert_eq!(tried[0].1, Some(451));
    assert!(
        tried[0].2.as_deref().unwrap().contains("451 4.3.0"),
        "{tried:?}"
    );
    assert_eq!(tried[1].1, Some(250));
    let received = server.wait_for(1).await;
    assert_eq!(received.len(), 1, "the refused recipient got nothing");
    assert_eq!(
        received[0]["envelope"]["rcpt_tos"],
        json!(["busy@example.com"])
    );
}

#[tokio::test]
async fn smtps_delivers_and_a_long_transcript_is_cut_with_a_notice() {
    let Some(python) = smtp::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, tls) = secured_server(&python, dir.path(), true);
    let url = format!("smtps://127.0.0.1:{}", server.port);
    let extra = format!(
        "{}    to: \"support@example.com\"\n    max_message_bytes: 20000\n",
        secured(dir.path(), &tls.0, PASSWORD)
    );
    let app = TestApp::spawn(TestConfig::with_destinations(&destination(
        "mail", &url, &extra,
    )))
    .await;
    let mut body = chat(505, "Dana Svobodová", "dana@example.cz");
    let messages: Vec<Value> = (0..400)
        .map(|i| json!({"type": "visitor", "content": format!("message {i}: {}", "slovo ".repeat(12)), "sentAt": 1427470439703_i64 + i}))
        .collect();
    body["messages"] = json!(messages);
    assert_eq!(app.post_hook(body.to_string()).await.status(), 200);
    let message = &server.wait_for(1).await[0];
    assert!(message["raw"].as_str().unwrap().len() <= 20000);
    let text = message["text"].as_str().unwrap();
    let html = message["html"].as_str().unwrap();
    assert!(
        text.contains("NOTE: this transcript is shortened."),
        "{text}"
    );
    assert!(html.contains("This transcript is shortened."), "{html}");
    assert!(
        text.contains("message 0: ") && !text.contains("message 399: "),
        "{text}"
    );
    assert!(
        text.contains("Smartsupp conversation: 208-505"),
        "the context stays: {text}"
    );
    state_of(&app.db(), "mail", "done").await;
}

#[tokio::test]
async fn refused_credentials_pause_the_destination_and_the_probe_says_so() {
    let Some(python) = smtp::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, tls) = secured_server(&python, dir.path(), false);
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let wrong = destination(
        "wrong",
        &url,
        &format!(
            "{}    to: \"support@example.com\"\n",
            secured(dir.path(), &tls.0, "not-the-password")
        ),
    );
    let app = TestApp::spawn(TestConfig::with_destinations(&wrong)).await;
    assert_eq!(
        app.post_hook(chat(506, "Dana", "dana@example.cz").to_string())
            .await
            .status(),
        200
    );
    let db = app.db();
    eventually("a refused attempt", Duration::from_secs(10), || async {
        deliveries(&db)
            .first()
            .and_then(|d| d.last_error.clone())
            .is_some_and(|e| e.contains("refused deskbridge's credentials"))
    })
    .await;
    common::paused(&app, "wrong").await;
    let row = &deliveries(&db)[0];
    assert_eq!(
        row.state, "pending",
        "refused credentials never dead-letter: {row:?}"
    );
    assert!(
        row.last_error.as_deref().unwrap().contains("535"),
        "{row:?}"
    );
    assert!(!row
        .last_error
        .as_deref()
        .unwrap()
        .contains("not-the-password"));
    assert!(server.messages().is_empty());

    // The probe connects, starts TLS and authenticates, and sends nothing.
    for (password, works) in [(PASSWORD, true), ("not-the-password", false)] {
        let extra = format!(
            "{}    to: \"support@example.com\"\n",
            secured(dir.path(), &tls.0, password)
        );
        let path = TestConfig::with_destinations(&destination("probe", &url, &extra))
            .write(&dir.path().join(password));
        let out = common::process::run(&[
            std::ffi::OsStr::new("destinations"),
            "test".as_ref(),
            "probe".as_ref(),
            "--config".as_ref(),
            path.as_os_str(),
        ]);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, if works { 0 } else { 1 }, "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
        if !works {
            assert!(text.contains("failed:"), "{text}");
        }
    }
    assert!(server.messages().is_empty(), "the probe sent nothing");
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_after_request_timeout() {
    // Accepts connections and says nothing (lettre bounds only the TCP connect).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Every connection stays open, unanswered, until the test process ends.
        let mut held = Vec::new();
        for connection in listener.incoming() {
            held.push(connection);
        }
    });
    let url = format!("smtp://127.0.0.1:{port}");
    let extra = "    tls: none\n    to: \"support@example.com\"\n";
    let config = TestConfig::with_destinations(&destination("mail", &url, extra))
        .delivery("  workers: 2\n  request_timeout: \"500ms\"\n  retry_schedule: [\"100ms\"]\n");
    let app = TestApp::spawn(config).await;
    let body = chat(507, "Dana", "dana@example.cz");
    assert_eq!(app.post_hook(body.to_string()).await.status(), 200);
    let dead = state_of(&app.db(), "mail", "dead").await;
    let tried = attempts(&app.db(), dead.id);
    assert_eq!(tried.len(), 2, "retried once, then dead: {tried:?}");
    assert!(
        tried[0]
            .2
            .as_deref()
            .unwrap()
            .contains("did not finish within 500 ms"),
        "{tried:?}"
    );
}

fn check(config: &Path) -> common::process::Run {
    common::process::run(&[
        std::ffi::OsStr::new("check"),
        "--config".as_ref(),
        config.as_os_str(),
    ])
}

#[test]
fn render_prints_the_whole_message_with_the_credentials_masked() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "    username: \"smtp-user-name\"\n    password: \"smtp-secret-password\"\n    to: [\"support@example.com\", \"{{#if (eq meta.kind \\\"missed\\\")}}sales@example.com{{/if}}\"]\n    bcc: \"audit@example.com\"\n";
    let path =
        TestConfig::with_destinations(&destination("mail", "smtp://mail.example.com:587", extra))
            .write(dir.path());
    assert!(check(&path).ok(), "{}", check(&path).stderr);
    let sample = common::repo().join("samples/chat.json");
    let out = common::process::run(&[
        "render".as_ref(),
        "--destination".as_ref(),
        std::ffi::OsStr::new("mail"),
        sample.as_os_str(),
        "--config".as_ref(),
        path.as_os_str(),
    ]);
    assert!(out.ok(), "{}", out.stderr);
    let text = &out.stdout;
    assert!(
        text.starts_with("SEND smtp://mail.example.com:587\ntls: starttls (required)\nauth: ***\nmail-from: chats@example.com\nrcpt-to: support@example.com\nrcpt-to: audit@example.com\n\n"),
        "{text}"
    );
    for expected in [
        "Subject: Chat with Dusan Kmet",
        "Message-ID: <208-55039-v1@example.com>",
        "Reply-To: \"Dusan Kmet\" <dusan@domain.com>",
        "Content-Type: multipart/alternative;",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Type: text/html; charset=utf-8",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    for secret in ["smtp-user-name", "smtp-secret-password", "sales@", "Bcc:"] {
        assert!(!text.contains(secret), "{secret}: {text}");
    }
}

#[test]
fn check_names_the_key_of_each_email_mistake() {
    let cases = [
        (
            "    smtp_url: \"http://mail.example.com\"\n",
            "mail.smtp_url",
            "is not an SMTP URL",
        ),
        (
            "    smtp_url: \"smtp://u:p@mail.example.com\"\n",
            "mail.smtp_url",
            "give the credentials as username and password",
        ),
        (
            "    tls: none\n    username: \"u\"\n    password: \"p\"\n",
            "mail.tls",
            "send the password in plain text",
        ),
        (
            "    smtp_url: \"smtps://mail.example.com\"\n    tls: starttls\n",
            "mail.tls",
            "smtps:// is TLS from the first byte",
        ),
        ("    tls: plain\n", "mail", "unknown variant `plain`"),
        (
            "    username: \"u\"\n",
            "mail.password",
            "username needs a password",
        ),
        (
            "    username: \"u\"\n    password: \"\"\n",
            "mail.password",
            "is empty (leave username and password out",
        ),
        (
            "    from: \"Chats <chats@example.com>\"\n",
            "mail.from",
            "not a plain ASCII address",
        ),
        (
            "    reply_to: \"nobody\"\n",
            "mail.reply_to",
            "is not visitor, none or an address",
        ),
        (
            "    headers: { Subject: \"x\" }\n",
            "mail.headers.Subject",
            "deskbridge writes this header itself",
        ),
        (
            "    headers: { \"X Bad\": \"x\" }\n",
            "mail.headers.X Bad",
            "letters, digits and '-'",
        ),
        ("    subject: \"{{#if meta.kind}}\"\n", "mail.subject", ""),
        (
            "    ca_file: \"/nonexistent/ca.pem\"\n",
            "mail.ca_file",
            "cannot read /nonexistent/ca.pem",
        ),
        (
            "    max_message_bytes: 1000\n",
            "mail.max_message_bytes",
            "must be at least 16384",
        ),
        (
            "    time_zone: \"Mars/Olympus\"\n",
            "mail.time_zone",
            "unknown time zone",
        ),
        (
            "    to: \"{{visitor.nmae}}\"\n",
            "mail: sample chat.json: template destinations.mail.to[0] failed to render",
            "visitor.nmae",
        ),
        (
            "    to: \"{{visitor.name}}\"\n",
            "mail: sample chat.json: template destinations.mail.to[0] failed to render",
            "not a list of email addresses",
        ),
    ];
    for (extra, key, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        // Later keys win in YAML maps: each case overrides the valid base.
        let base = "    smtp_url: \"smtp://mail.example.com\"\n    from: \"chats@example.com\"\n    to: \"support@example.com\"\n";
        let yaml = format!("  mail:\n    kind: email\n{}", merge(base, extra));
        let path = TestConfig::with_destinations(&yaml).write(dir.path());
        let out = check(&path);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(!out.ok(), "{extra}: accepted");
        assert!(
            text.contains(&format!("destinations.{key}")) && text.contains(message),
            "{extra}: expected destinations.{key} … {message}, got {text}"
        );
    }
}

/// `base` with the keys `extra` sets replaced (one key per line, two-space indent).
fn merge(base: &str, extra: &str) -> String {
    let key = |line: &str| {
        line.trim_start()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string()
    };
    let replaced: Vec<String> = extra.lines().map(key).collect();
    let mut out: String = base
        .lines()
        .filter(|l| !replaced.contains(&key(l)))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(extra);
    out
}

#[tokio::test]
async fn the_shipped_example_mails_the_documented_conversation() {
    let Some(python) = smtp::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &python,
        smtp::free_port(),
        &dir.path().join("mail"),
        &Options::default(),
    );
    let repo = common::repo();
    let mut command = std::process::Command::new(common::process::BIN);
    command
        .current_dir(&repo)
        .arg("serve")
        .arg("--config")
        .arg(repo.join("config/examples/email.yaml"))
        .env("SMTP_URL", format!("smtp://127.0.0.1:{}", server.port))
        .env("DESKBRIDGE_HOOK_TOKEN", common::TOKEN)
        .env("DESKBRIDGE_SERVER__LISTEN", "127.0.0.1:0")
        .env("DESKBRIDGE_LOG__FORMAT", "json")
        .env(
            "DESKBRIDGE_STORE__URL",
            format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        )
        .env(
            "DESKBRIDGE_DESTINATIONS__OUTBOX__DIR",
            dir.path().join("outbox"),
        );
    let process = common::process::Process::spawn(command);
    let documented = std::fs::read_to_string(repo.join("samples/chat.json")).unwrap();
    assert_eq!(process.post(documented).await, 200);
    let message = &server.wait_for(1).await[0];
    assert_eq!(message["defects"], json!([]), "{message}");
    assert_eq!(message["parts"], json!(["text/plain", "text/html"]));
    assert_eq!(message["subject"], "Chat with Dusan Kmet");
    assert_eq!(
        message["from"],
        json!([{"name": "Dusan Kmet via Smartsupp", "address": "chats@example.com"}])
    );
    assert_eq!(
        message["reply_to"],
        json!([{"name": "Dusan Kmet", "address": "dusan@domain.com"}])
    );
    assert_eq!(header(message, "X-Smartsupp-Conversation"), "208-55039");
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains("John Doe: Hi, how can i help you ?"),
        "{text}"
    );
    assert!(
        text.contains("Started: 2015-03-27 16:33 CET"),
        "the example's time zone: {text}"
    );
}
