//! `deskbridge destinations test NAME` as a process against mock destinations on port 0, and
//! the warning `check` prints for Zendesk API tokens.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::{run, Run};
use common::TestConfig;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CLIENT_SECRET: &str = "client-secret-7f3a9c";
const ACCESS_TOKEN: &str = "access-token-51be20";

/// Runs `deskbridge ARGS --config CONFIG` off the async runtime (the mocks keep answering).
async fn deskbridge(config: &Path, args: &[&str]) -> Run {
    let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    all.push("--config".into());
    all.push(config.into());
    tokio::task::spawn_blocking(move || run(&all))
        .await
        .unwrap()
}

fn write(dir: &Path, destinations: &str) -> PathBuf {
    TestConfig::with_destinations(destinations).write(dir)
}

fn zendesk_with(mock: &MockServer, credentials: &str) -> String {
    format!(
        "  helpdesk:\n    kind: zendesk\n    base_url: \"{}\"\n{credentials}",
        mock.uri()
    )
}

fn oauth(mock: &MockServer) -> String {
    zendesk_with(
        mock,
        &format!("    auth:\n      kind: oauth\n      client_id: \"deskbridge\"\n      client_secret: \"{CLIENT_SECRET}\"\n"),
    )
}

async fn me_answers(mock: &MockServer, user: Value) {
    Mock::given(method("GET"))
        .and(path("/api/v2/users/me.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "user": user })))
        .mount(mock)
        .await;
}

fn requests_to<'a>(all: &'a [Request], to: &str) -> Vec<&'a Request> {
    all.iter().filter(|r| r.url.path() == to).collect()
}

fn output(out: &Run) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

#[tokio::test]
async fn oauth_client_credentials_are_proved_without_printing_a_secret() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/tokens"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": ACCESS_TOKEN, "token_type": "bearer",
            "scope": "tickets:write users:write read", "expires_in": 1800
        })))
        .mount(&mock)
        .await;
    me_answers(
        &mock,
        json!({"id": 7, "email": "integrations@acme.example", "role": "admin"}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), &oauth(&mock));

    let out = deskbridge(&config, &["destinations", "test", "helpdesk"]).await;
    let text = output(&out);
    assert_eq!(out.code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "obtained an OAuth access token from {}/oauth/tokens",
            mock.uri()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "GET {}/api/v2/users/me.json: HTTP 200",
            mock.uri()
        )),
        "{text}"
    );
    assert!(text.contains("integrations@acme.example"), "{text}");
    assert!(text.contains("role admin"), "{text}");
    assert!(
        !text.contains(CLIENT_SECRET) && !text.contains(ACCESS_TOKEN),
        "a secret was printed: {text}"
    );

    let received = mock.received_requests().await.unwrap();
    let asked = requests_to(&received, "/oauth/tokens");
    assert_eq!(asked.len(), 1);
    let body: Value = serde_json::from_slice(&asked[0].body).unwrap();
    assert_eq!(body["grant_type"], "client_credentials");
    assert_eq!(body["client_id"], "deskbridge");
    assert_eq!(body["client_secret"], CLIENT_SECRET);
    assert_eq!(body["scope"], "tickets:write users:write read");
    let me = requests_to(&received, "/api/v2/users/me.json");
    assert_eq!(me.len(), 1);
    assert_eq!(
        me[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("Bearer {ACCESS_TOKEN}")
    );
}

#[tokio::test]
async fn a_refused_client_exits_1_with_the_reason() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/tokens"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "Client authentication failed due to unknown client"
        })))
        .mount(&mock)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), &oauth(&mock));

    let out = deskbridge(&config, &["destinations", "test", "helpdesk"]).await;
    let text = output(&out);
    assert_eq!(out.code, 1, "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(
        text.contains("check auth.client_id and auth.client_secret"),
        "{text}"
    );
    assert!(!text.contains(CLIENT_SECRET), "{text}");
    let received = mock.received_requests().await.unwrap();
    assert!(requests_to(&received, "/api/v2/users/me.json").is_empty());
}

/// Answers the refresh-token grant as Zendesk does: a new access token and a new refresh
/// token (`refresh-N`), each refresh token good once; tokens live 2 s.
struct Rotating(AtomicU32);

impl Respond for Rotating {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        if body["refresh_token"] != format!("refresh-{n}") {
            return ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"}));
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("{ACCESS_TOKEN}-{n}"), "token_type": "bearer",
            "refresh_token": format!("refresh-{}", n + 1), "expires_in": 2
        }))
    }
}

#[tokio::test]
async fn the_refresh_token_grant_keeps_the_rotated_token_in_the_store() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/tokens"))
        .respond_with(Rotating(AtomicU32::new(0)))
        .mount(&mock)
        .await;
    me_answers(
        &mock,
        json!({"id": 7, "email": "a@acme.example", "role": "agent"}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &zendesk_with(
            &mock,
            &format!("    auth:\n      kind: oauth\n      grant: refresh_token\n      client_id: \"deskbridge\"\n      client_secret: \"{CLIENT_SECRET}\"\n      refresh_token: \"refresh-0\"\n"),
        ),
    );

    // The second run renews (the first token lives 2 s) with the refresh token the first
    // run stored, not the configured one, which Zendesk no longer accepts.
    for _ in 0..2 {
        let out = deskbridge(&config, &["destinations", "test", "helpdesk"]).await;
        let text = output(&out);
        assert_eq!(out.code, 0, "{text}");
        assert!(
            !text.contains("refresh-") && !text.contains(ACCESS_TOKEN),
            "{text}"
        );
    }
    let received = mock.received_requests().await.unwrap();
    let sent: Vec<Value> = requests_to(&received, "/oauth/tokens")
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["refresh_token"].clone())
        .collect();
    assert_eq!(sent, vec![json!("refresh-0"), json!("refresh-1")]);
}

#[tokio::test]
async fn an_end_user_answer_is_not_an_agent() {
    let mock = MockServer::start().await;
    me_answers(
        &mock,
        json!({"id": null, "name": "Anonymous user", "email": "invalid@example.com", "role": "end-user"}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &zendesk_with(
            &mock,
            "    email: \"agent@acme.example\"\n    api_token: \"api-token-0c1d\"\n",
        ),
    );

    let out = deskbridge(&config, &["destinations", "test", "helpdesk"]).await;
    let text = output(&out);
    assert_eq!(out.code, 1, "{text}");
    assert!(text.contains("role end-user"), "{text}");
    assert!(text.contains("do not identify an agent"), "{text}");
    assert!(
        text.contains("deactivates API tokens on 2027-04-30"),
        "{text}"
    );
    assert!(!text.contains("api-token-0c1d"), "{text}");
    let received = mock.received_requests().await.unwrap();
    let authorization = received[0].headers.get("authorization").unwrap();
    assert!(authorization.to_str().unwrap().starts_with("Basic "));
}

#[tokio::test]
async fn hubspot_is_proved_with_one_contact_read() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/objects/contacts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .mount(&mock)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        &format!(
            "  crm:\n    kind: hubspot\n    base_url: \"{}\"\n    access_token: \"pat-na1-secret\"\n",
            mock.uri()
        ),
    );
    let out = deskbridge(&config, &["destinations", "test", "crm"]).await;
    let text = output(&out);
    assert_eq!(out.code, 0, "{text}");
    assert!(
        text.contains("HTTP 200") && !text.contains("pat-na1-secret"),
        "{text}"
    );
    let received = mock.received_requests().await.unwrap();
    assert_eq!(received[0].url.query(), Some("limit=1"));
    assert_eq!(
        received[0].headers.get("authorization").unwrap(),
        "Bearer pat-na1-secret"
    );
}

#[tokio::test]
async fn an_unknown_name_or_a_kind_without_credentials_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "  archive:\n    kind: webhook\n    url: \"http://127.0.0.1:9/in\"\n",
    );
    let out = deskbridge(&config, &["destinations", "test", "nowhere"]).await;
    assert_eq!(out.code, 2, "{}", output(&out));
    assert!(
        out.stderr.contains("no destination \"nowhere\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("known: archive"), "{}", out.stderr);

    let out = deskbridge(&config, &["destinations", "test", "archive"]).await;
    assert_eq!(out.code, 2, "{}", output(&out));
    assert!(
        out.stderr
            .contains("nothing to test without sending a conversation; use `deskbridge render"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("kind: zendesk, kind: hubspot and kind: email"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_warns_about_zendesk_api_tokens_and_still_succeeds() {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("zendesk-token");
    std::fs::write(&secret, "api-token-from-file\n").unwrap();
    for (credentials, key) in [
        (
            "    email: \"a@acme.example\"\n    api_token: \"api-token-1\"\n",
            "api_token",
        ),
        (
            &*format!(
                "    email: \"a@acme.example\"\n    api_token_file: \"{}\"\n",
                secret.display()
            ),
            "api_token_file",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            dir.path(),
            &format!("  helpdesk:\n    kind: zendesk\n    subdomain: acme\n{credentials}"),
        );
        let out = run(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
        assert_eq!(out.code, 0, "{}", output(&out));
        let line = std::fs::read_to_string(&config)
            .unwrap()
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("{key}:")))
            .unwrap()
            + 1;
        let expected = format!(
            "{}:{line}: destinations.helpdesk.{key}: warning: Zendesk deactivates API tokens on 2027-04-30; use auth: kind: oauth (docs/destinations/zendesk.md)",
            config.display()
        );
        assert_eq!(out.stderr.trim(), expected);
        assert!(out.stdout.contains(": ok ("), "{}", out.stdout);
    }
}
