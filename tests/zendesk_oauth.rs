//! Zendesk over OAuth against a mock Zendesk with a token endpoint: tokens are fetched once
//! and reused, renewed before they expire and after a 401, refused credentials pause the
//! destination until a reload fixes them, an unavailable token endpoint is retried, and rotated
//! refresh tokens are kept in the store and never sent twice, also by two instances at once.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::Process;
use common::{attempts, conversation, deliveries, eventually, requests_at, TestApp, TestConfig};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "the-right-client-secret";

/// What the mock Zendesk knows and has seen.
#[derive(Default)]
struct State {
    /// `expires_in` of issued access tokens.
    expires_in: u64,
    /// Token requests answered 503 before the endpoint works.
    unavailable: usize,
    /// Access tokens Zendesk accepts.
    valid: HashSet<String>,
    /// Refresh tokens not yet spent.
    refresh: HashSet<String>,
    issued: u32,
    /// Every token request's body.
    token_requests: Vec<Value>,
    /// The Authorization header of every ticket request.
    authorizations: Vec<String>,
    /// Refuse the next ticket request's token once (as if Zendesk had revoked it).
    revoke_next: bool,
}

#[derive(Clone)]
struct Zendesk(Arc<Mutex<State>>);

impl Zendesk {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }
}

impl Respond for Zendesk {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let mut s = self.state();
        if r.url.path() == "/oauth/tokens" {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            s.token_requests.push(body.clone());
            if s.unavailable > 0 {
                s.unavailable -= 1;
                return ResponseTemplate::new(503);
            }
            if body["client_secret"] != SECRET {
                return ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client", "error_description": "Client authentication failed"}));
            }
            if body["grant_type"] == "refresh_token" {
                let given = body["refresh_token"].as_str().unwrap_or("").to_string();
                if !s.refresh.remove(&given) {
                    return ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant", "error_description": "The refresh token is invalid"}));
                }
            }
            s.issued += 1;
            let access = format!("access-{}", s.issued);
            let refresh = format!("refresh-{}", s.issued);
            s.valid.insert(access.clone());
            s.refresh.insert(refresh.clone());
            let mut answer = json!({"access_token": access, "token_type": "bearer", "scope": "tickets:write users:write read", "expires_in": s.expires_in});
            if body["grant_type"] == "refresh_token" {
                answer["refresh_token"] = json!(refresh);
            }
            return ResponseTemplate::new(200).set_body_json(answer);
        }
        let authorization = r
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        s.authorizations.push(authorization.clone());
        let token = authorization.strip_prefix("Bearer ").unwrap_or("");
        if s.revoke_next {
            s.revoke_next = false;
            s.valid.remove(token);
        }
        if !s.valid.contains(token) {
            return ResponseTemplate::new(401)
                .set_body_json(json!({"error": "Couldn't authenticate you"}));
        }
        let id = 100 + s.authorizations.len();
        ResponseTemplate::new(201).set_body_json(json!({"ticket": {"id": id}}))
    }
}

async fn zendesk(expires_in: u64) -> (MockServer, Zendesk) {
    let server = MockServer::start().await;
    let state = Zendesk(Arc::new(Mutex::new(State {
        expires_in,
        refresh: HashSet::from(["refresh-0".to_string()]),
        ..State::default()
    })));
    Mock::given(method("POST"))
        .respond_with(state.clone())
        .mount(&server)
        .await;
    (server, state)
}

fn helpdesk(mock: &MockServer, auth: &str) -> TestConfig {
    TestConfig::with_destinations(&format!(
        "  helpdesk:\n    kind: zendesk\n    base_url: \"{}\"\n    breaker: {{ failures: 3, cool_down: \"300ms\" }}\n    auth:\n      kind: oauth\n{auth}",
        mock.uri()
    ))
}

fn client_credentials(secret: &str) -> String {
    format!("      client_id: \"deskbridge\"\n      client_secret: \"{secret}\"\n")
}

fn refresh_grant() -> String {
    format!(
        "      grant: refresh_token\n      client_id: \"deskbridge\"\n      client_secret: \"{SECRET}\"\n      refresh_token: \"refresh-0\"\n"
    )
}

async fn all_done(app: &TestApp, n: usize) {
    eventually("every delivery done", Duration::from_secs(15), || async {
        let rows = deliveries(&app.db());
        rows.len() == n && rows.iter().all(|d| d.state == "done")
    })
    .await;
}

#[tokio::test]
async fn client_credentials_are_fetched_once_and_reused() {
    let (mock, zd) = zendesk(1800).await;
    let app = TestApp::spawn(helpdesk(&mock, &client_credentials(SECRET))).await;
    for id in 1..=3 {
        app.post_hook(conversation(id).to_string()).await;
    }
    all_done(&app, 3).await;
    let s = zd.state();
    assert_eq!(s.token_requests.len(), 1, "{:?}", s.token_requests);
    assert_eq!(
        s.token_requests[0],
        json!({"grant_type": "client_credentials", "client_id": "deskbridge", "client_secret": SECRET, "scope": "tickets:write users:write read"})
    );
    assert!(s.authorizations.iter().all(|a| a == "Bearer access-1"));
}

#[tokio::test]
async fn a_token_near_its_expiry_is_renewed() {
    let (mock, zd) = zendesk(2).await;
    let app = TestApp::spawn(helpdesk(&mock, &client_credentials(SECRET))).await;
    app.post_hook(conversation(1).to_string()).await;
    all_done(&app, 1).await;
    // Renewed a quarter of its 2 s life before it ends.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    app.post_hook(conversation(2).to_string()).await;
    all_done(&app, 2).await;
    let s = zd.state();
    assert_eq!(s.token_requests.len(), 2);
    assert_eq!(s.authorizations, ["Bearer access-1", "Bearer access-2"]);
}

#[tokio::test]
async fn a_refused_token_is_renewed_once_and_the_request_repeated_in_the_same_attempt() {
    let (mock, zd) = zendesk(1800).await;
    let app = TestApp::spawn(helpdesk(&mock, &client_credentials(SECRET))).await;
    app.post_hook(conversation(1).to_string()).await;
    all_done(&app, 1).await;
    zd.state().revoke_next = true;
    app.post_hook(conversation(2).to_string()).await;
    all_done(&app, 2).await;
    let rows = deliveries(&app.db());
    assert_eq!(rows[1].attempts, 1, "the repeat is part of the attempt");
    assert_eq!(attempts(&app.db(), rows[1].id).len(), 1);
    let s = zd.state();
    assert_eq!(
        s.authorizations,
        ["Bearer access-1", "Bearer access-1", "Bearer access-2"]
    );
}

#[tokio::test]
async fn an_unavailable_token_endpoint_is_retried() {
    let (mock, zd) = zendesk(1800).await;
    zd.state().unavailable = 1;
    let app = TestApp::spawn(helpdesk(&mock, &client_credentials(SECRET))).await;
    app.post_hook(conversation(1).to_string()).await;
    all_done(&app, 1).await;
    let rows = deliveries(&app.db());
    let log = attempts(&app.db(), rows[0].id);
    assert_eq!(rows[0].attempts, 2, "{log:?}");
    assert!(
        log[0]
            .2
            .as_deref()
            .unwrap()
            .contains("token endpoint is not available"),
        "{log:?}"
    );
}

#[tokio::test]
async fn refused_credentials_pause_until_a_reload_fixes_them() {
    let (mock, zd) = zendesk(1800).await;
    let alerts = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&alerts)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = helpdesk(&mock, &client_credentials("a-wrong-client-secret"));
    config.alerts = Some(format!("{}/alerts", alerts.uri()));
    config.log = "  level: \"debug\"\n  format: \"json\"\n".into();
    config.server_extra = "  admin_token: \"an-admin-token-of-some-length\"\n".into();
    let path = config.write(dir.path());
    let process = Process::start(&path);
    for id in 1..=2 {
        assert_eq!(process.post(conversation(id).to_string()).await, 200);
    }
    let alert: Value = serde_json::from_slice(&requests_at(&alerts, 1).await[0].body).unwrap();
    assert_eq!(alert["state"], "paused");
    assert!(
        alert["reason"].as_str().unwrap().contains("invalid_client"),
        "{alert}"
    );
    let overview: Value = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/admin/api/overview",
            process.port
        ))
        .bearer_auth("an-admin-token-of-some-length")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let helpdesk = &overview["destinations"][0];
    // Paused, or probing for a moment after each short cool-down.
    assert!(
        helpdesk["state"] == "paused" || helpdesk["state"] == "probing",
        "{overview}"
    );
    assert!(
        helpdesk["paused_because"]
            .as_str()
            .unwrap()
            .contains("check auth.client_id and auth.client_secret"),
        "{overview}"
    );
    let db = common::Db::Sqlite(dir.path().join("db.sqlite"));
    let rows = deliveries(&db);
    assert!(
        rows.iter().all(|d| d.state == "pending" && d.attempts == 0),
        "no attempt spent, nothing dead: {rows:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("a-wrong-client-secret", SECRET)).unwrap();
    process.signal("HUP");
    eventually(
        "delivered after the reload",
        Duration::from_secs(15),
        || async {
            let rows = deliveries(&db);
            rows.len() == 2 && rows.iter().all(|d| d.state == "done")
        },
    )
    .await;
    let logs = process.logs.lock().unwrap().join("\n");
    for secret in ["a-wrong-client-secret", SECRET, "access-1"] {
        assert!(!logs.contains(secret), "{secret} in the log");
    }
    assert!(zd.state().token_requests.len() >= 2);
}

fn stored_refresh_token(db: &common::Db) -> String {
    common::texts(db, "SELECT refresh_token FROM oauth_tokens")
        .pop()
        .unwrap()
}

#[tokio::test]
async fn rotated_refresh_tokens_are_stored_and_never_sent_twice() {
    let (mock, zd) = zendesk(1).await;
    let app = TestApp::spawn(helpdesk(&mock, &refresh_grant())).await;
    let mut stored = Vec::new();
    for id in 1..=3 {
        app.post_hook(conversation(id).to_string()).await;
        all_done(&app, id as usize).await;
        stored.push(stored_refresh_token(&app.db()));
        // Past three quarters of the 1 s life: the next delivery renews.
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    assert_eq!(stored, ["refresh-1", "refresh-2", "refresh-3"]);
    let s = zd.state();
    let sent: Vec<&str> = s
        .token_requests
        .iter()
        .map(|b| b["refresh_token"].as_str().unwrap())
        .collect();
    assert_eq!(sent, ["refresh-0", "refresh-1", "refresh-2"]);
}

#[tokio::test]
async fn two_instances_renewing_at_once_send_the_refresh_token_once() {
    let Some(admin) = common::pg_admin_url() else {
        return;
    };
    let url = common::fresh_pg_database(&admin);
    let (mock, zd) = zendesk(1800).await;
    let config = || {
        let mut c = helpdesk(&mock, &refresh_grant());
        c.store_url = Some(url.clone());
        c
    };
    let (first, second) = (
        TestApp::spawn(config()).await,
        TestApp::spawn(config()).await,
    );
    let (a, b) = tokio::join!(
        first.post_hook(conversation(1).to_string()),
        second.post_hook(conversation(2).to_string())
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    all_done(&first, 2).await;
    let s = zd.state();
    assert_eq!(
        s.token_requests.len(),
        1,
        "one renewal for both instances: {:?}",
        s.token_requests
    );
    assert!(s.authorizations.iter().all(|a| a == "Bearer access-1"));
}

#[tokio::test]
async fn a_new_refresh_token_replaces_the_stored_one_and_an_old_one_never_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = if common::on_postgres() {
        common::fresh_pg_database(&common::pg_admin_url().unwrap())
    } else {
        format!("sqlite://{}", dir.path().join("store.sqlite").display())
    };
    let store = deskbridge::store::Store::open(&url, 1).await.unwrap();
    let first = store
        .oauth_seed("zd/c", "seed-a", "refresh-a")
        .await
        .unwrap();
    assert_eq!(first.refresh_token, "refresh-a");
    // Renewed: the stored token rotates.
    let renewed = deskbridge::store::oauth::Renewed {
        refresh_token: "refresh-a2".into(),
        access_token: "access".into(),
        expires_at: deskbridge::store::now_ms() + 60_000,
    };
    assert!(store
        .oauth_renewed("zd/c", first.generation, renewed)
        .await
        .unwrap());
    let same = store
        .oauth_seed("zd/c", "seed-a", "refresh-a")
        .await
        .unwrap();
    assert_eq!(same.refresh_token, "refresh-a2", "the seed only seeds once");
    // The admin authorised again: the new token replaces the stored one.
    let new = store
        .oauth_seed("zd/c", "seed-b", "refresh-b")
        .await
        .unwrap();
    assert_eq!(new.refresh_token, "refresh-b");
    // An instance not yet reloaded still has the old seed: nothing changes.
    let old = store
        .oauth_seed("zd/c", "seed-a", "refresh-a")
        .await
        .unwrap();
    assert_eq!(old.refresh_token, "refresh-b");
}
