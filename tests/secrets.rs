//! Credentials in destination URLs (`user:password@` userinfo, tokens in the query string)
//! never show: not in recorded attempt errors, logs, the admin API and pages, the operator
//! commands, or the output of `check` and `render`.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::{run, Process, Run};
use common::*;
use std::ffi::OsStr;
use std::time::Duration;

const PASSWORD: &str = "pw-hunter2";
const TOKEN_VALUE: &str = "s3cret";
const ADMIN: &str = "admin-token-for-tests";

/// Fails when `text` (what `what` showed) holds a credential.
fn assert_clean(what: &str, text: &str) {
    for secret in [PASSWORD, TOKEN_VALUE] {
        assert!(!text.contains(secret), "{what} shows {secret:?}:\n{text}");
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn cli(args: &[&OsStr]) -> Run {
    let out = run(args);
    assert_clean(&format!("{args:?} (stdout)"), &out.stdout);
    assert_clean(&format!("{args:?} (stderr)"), &out.stderr);
    out
}

#[tokio::test]
async fn credentials_in_a_webhook_url_never_show() {
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestConfig::with_destinations(&format!(
        "  leaky:\n    kind: webhook\n    url: \"http://user:{PASSWORD}@127.0.0.1:{port}/in?token={TOKEN_VALUE}\"\n"
    ))
    .delivery("  workers: 2\n  request_timeout: \"2s\"\n  retry_schedule: [\"100ms\"]\n");
    config.server_extra = format!("  admin_token: \"{ADMIN}\"\n");
    config.log = "  level: \"debug\"\n  format: \"json\"\n".into();
    let path = config.write(dir.path());
    let db = Db::Sqlite(dir.path().join("db.sqlite"));

    let server = Process::start(&path);
    assert_eq!(server.post(sample("chat.json").to_string()).await, 200);
    let mut id = 0;
    eventually("the delivery is dead", Duration::from_secs(15), || {
        id = deliveries(&db)
            .into_iter()
            .find(|d| d.state == "dead")
            .map_or(0, |d| d.id);
        async move { id != 0 }
    })
    .await;

    let recorded = attempts(&db, id);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    for (_, _, error) in &recorded {
        let error = error.as_deref().unwrap();
        assert!(error.starts_with("could not connect"), "{error}");
        assert_clean("a recorded attempt", error);
    }
    assert_clean(
        "the delivery's last error",
        &texts(&db, "SELECT last_error FROM deliveries").join("\n"),
    );

    let base = format!("http://127.0.0.1:{}", server.port);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for api in [
        format!("/admin/api/deliveries/{id}"),
        "/admin/api/deliveries?state=dead".into(),
        "/admin/api/conversations/208-55039".into(),
        "/admin/api/overview".into(),
    ] {
        let response = client
            .get(format!("{base}{api}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{api}");
        assert_clean(&api, &response.text().await.unwrap());
    }

    let signed_in = client
        .post(format!("{base}/admin/login"))
        .form(&[("token", ADMIN), ("tz", "UTC"), ("next", "/admin")])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let mut conversation_page = String::new();
    for page in ["/admin", "/admin/dead", "/admin/conversations/208-55039"] {
        let response = client
            .get(format!("{base}{page}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{page}");
        let html = response.text().await.unwrap();
        assert_clean(page, &html);
        conversation_page = html;
    }
    assert!(
        conversation_page.contains(&format!(
            "POST http://***:***@127.0.0.1:{port}/in?token&#x3D;***"
        )),
        "the page shows the request with the URL masked:\n{conversation_page}"
    );

    let id_text = id.to_string();
    let config_arg = path.as_os_str();
    for args in [
        vec!["deliveries".as_ref(), "list".as_ref()],
        vec!["deliveries".as_ref(), "list".as_ref(), "--json".as_ref()],
        vec!["deliveries".as_ref(), "show".as_ref(), id_text.as_ref()],
        vec![
            "deliveries".as_ref(),
            "show".as_ref(),
            id_text.as_ref(),
            "--json".as_ref(),
        ],
    ] {
        let mut args: Vec<&OsStr> = args;
        args.extend(["--config".as_ref(), config_arg]);
        assert!(cli(&args).ok());
    }

    let sample_path = repo().join("samples/chat.json");
    let rendered = cli(&[
        "render".as_ref(),
        "--destination".as_ref(),
        "leaky".as_ref(),
        sample_path.as_os_str(),
        "--config".as_ref(),
        config_arg,
    ]);
    assert!(
        rendered.stdout.starts_with(&format!(
            "POST http://***:***@127.0.0.1:{port}/in?token=***\n"
        )),
        "{}",
        rendered.stdout
    );
    assert!(cli(&["check".as_ref(), "--config".as_ref(), config_arg]).ok());

    // An error recorded by an earlier version, which quoted the URL, is masked when shown.
    let Db::Sqlite(file) = &db else {
        unreachable!()
    };
    rusqlite::Connection::open(file)
        .unwrap()
        .execute(
            "UPDATE attempts SET error = ?1",
            [format!(
                "could not connect: error sending request for url \
                 (http://user:{PASSWORD}@127.0.0.1:{port}/in?token={TOKEN_VALUE}): refused"
            )],
        )
        .unwrap();
    let old = client
        .get(format!("{base}/admin/api/deliveries/{id}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(old.contains("/in?token=***): refused"), "{old}");
    assert_clean("an error recorded by an earlier version", &old);

    let logs = server.logs.lock().unwrap().join("\n");
    assert!(logs.contains("delivery is dead"), "{logs}");
    assert_clean("the server's log", &logs);
}

#[test]
fn check_names_a_bad_url_without_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestConfig::with_destinations(&format!(
        "  leaky:\n    kind: webhook\n    url: \"ftp://user:{PASSWORD}@example.com/in?token={TOKEN_VALUE}\"\n"
    ));
    config.alerts = Some(format!(
        "mailto://user:{PASSWORD}@alerts.example/?token={TOKEN_VALUE}"
    ));
    let path = config.write(dir.path());
    let out = cli(&["check".as_ref(), "--config".as_ref(), path.as_os_str()]);
    assert!(!out.ok());
    assert!(
        out.stderr.contains("destinations.leaky.url")
            && out
                .stderr
                .contains("ftp://***:***@example.com/in?token=***"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("alerts.webhook_url"), "{}", out.stderr);
}
