//! The admin dashboard and its JSON API over HTTP: off without a token, sign-in and session
//! cookie, CSRF and cross-site refusals, the one-time notice after a retry, escaping of
//! untrusted strings, listing, search, paging, counts, delivery details, outcomes in words,
//! grouped dead letters, replays recorded and attempts numbered alike, the request as last
//! sent, a pause explained and never stale after a restart or a reload, and bad input. Runs on
//! SQLite, and on PostgreSQL with `DESKBRIDGE_TEST_BACKEND=postgres` (the reload test runs a
//! process of its own on SQLite).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use reqwest::header::{HeaderMap, CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN: &str = "admin-token-for-tests";

/// A config with the dashboard on and one webhook destination at `mock`.
fn config(mock: &MockServer) -> TestConfig {
    let mut c = TestConfig::with_destinations(&format!(
        "  crm:\n    kind: webhook\n    url: \"{}/in\"\n",
        mock.uri()
    ));
    c.server_extra = format!("  admin_token: \"{ADMIN}\"\n  admin_time_zone: \"Europe/Prague\"\n");
    c
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in through the form; returns the cookie pair (`name=value`).
async fn sign_in(app: &TestApp, tz: &str) -> String {
    let response = client()
        .post(app.url("/admin/login"))
        .form(&[("token", ADMIN), ("tz", tz), ("next", "/admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/admin");
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, HeaderMap, String) {
    let response = client()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("page has a form")
        + 19;
    html[at..].split('"').next().unwrap().to_string()
}

async fn api(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = client()
        .get(app.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let response = common::documented("GET", path, response).await;
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn api_post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = client()
        .post(app.url(path))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let response = common::documented("POST", path, response).await;
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Waits until the delivery of `key` has `state`; returns its id.
async fn delivery_in(app: &TestApp, key: &str, state: &str) -> i64 {
    let mut id = 0;
    eventually(&format!("{key} {state}"), Duration::from_secs(10), || {
        let found = deliveries(&app.db())
            .into_iter()
            .find(|d| d.key == key && d.state == state);
        id = found.map_or(0, |d| d.id);
        async move { id != 0 }
    })
    .await;
    id
}

#[tokio::test]
async fn the_dashboard_is_off_without_an_admin_token() {
    let mock = MockServer::start().await;
    let mut c = config(&mock);
    c.server_extra.clear();
    let app = TestApp::spawn(c).await;
    for path in ["/admin", "/admin/login", "/admin/api/overview"] {
        let response = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let response = client()
        .get(app.url("/admin/api/overview"))
        .bearer_auth("anything at all")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn sign_in_sets_a_strict_session_and_every_page_needs_it() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    let app = TestApp::spawn(config(&mock)).await;
    assert_eq!(
        app.post_hook(sample("chat.json").to_string())
            .await
            .status(),
        200
    );

    // Not signed in: pages send the browser to the sign-in form, the API answers 401.
    for path in [
        "/admin",
        "/admin/conversations",
        "/admin/conversations/208-55039",
        "/admin/dead",
    ] {
        let (status, headers, _) = page(&app, "", path).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert!(headers[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/admin/login?next=%2Fadmin"));
    }
    let response = client()
        .get(app.url("/admin/api/overview"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");

    // The sign-in form, with the security headers every admin response carries.
    let (status, headers, html) = page(&app, "", "/admin/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"token\""));
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline code"
    );

    // A wrong token: 401, no cookie.
    let response = client()
        .post(app.url("/admin/login"))
        .form(&[("token", "not the token"), ("tz", ""), ("next", "/admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("That is not the admin token."));

    // The right token: an HttpOnly, SameSite=Strict cookie for /admin.
    let response = client()
        .post(app.url("/admin/login"))
        .form(&[
            ("token", ADMIN),
            ("tz", "America/New_York"),
            ("next", "/admin/dead"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/admin/dead");
    let set = response.headers()[SET_COOKIE].to_str().unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=43200",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();

    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    // Behind a TLS-terminating proxy the cookie is only sent over HTTPS.
    let response = client()
        .post(app.url("/admin/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", ADMIN), ("tz", ""), ("next", "/admin")])
        .send()
        .await
        .unwrap();
    assert!(response.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .ends_with("; Secure"));

    // An open redirect is not possible through `next`.
    let response = client()
        .post(app.url("/admin/login"))
        .form(&[("token", ADMIN), ("tz", ""), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[LOCATION], "/admin");

    // Signed in: every page, in the admin's time zone.
    for path in [
        "/admin",
        "/admin/conversations",
        "/admin/conversations/208-55039",
        "/admin/dead",
    ] {
        let (status, headers, html) = page(&app, &cookie, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        assert!(headers.contains_key(CONTENT_SECURITY_POLICY));
        assert!(html.contains("Times in America/New_York"), "{path}");
    }
    // The first message was sent at 2015-03-27 15:33:59 UTC (11:33:59 in New York, on summer
    // time since March 8).
    let (_, _, html) = page(&app, &cookie, "/admin/conversations/208-55039").await;
    assert!(html.contains("2015-03-27 11:33:59"), "{html}");
    // A forged cookie is not a session.
    let forged = cookie.replace("America/New_York", "Europe/Prague");
    assert_eq!(page(&app, &forged, "/admin").await.0, StatusCode::SEE_OTHER);

    // Signing out needs the CSRF token, then ends the session in the browser.
    let (_, _, html) = page(&app, &cookie, "/admin").await;
    let csrf = csrf_of(&html);
    let response = client()
        .post(app.url("/admin/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = client()
        .post(app.url("/admin/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    app.stop().await;
}

#[tokio::test]
async fn state_changes_need_the_csrf_token_and_this_origin() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string("rejected"))
        .mount(&mock)
        .await;
    let app = TestApp::spawn(config(&mock)).await;
    app.post_hook(sample("chat.json").to_string()).await;
    let id = delivery_in(&app, "208-55039", "dead").await;
    let cookie = sign_in(&app, "UTC").await;
    let (_, _, html) = page(&app, &cookie, "/admin/dead").await;
    let csrf = csrf_of(&html);
    let ids = id.to_string();
    let host = format!("127.0.0.1:{}", app.port);

    let wrong = "x".repeat(csrf.len());
    let refused = [
        ("no token", None, None),
        ("wrong token", Some(wrong.as_str()), None),
        (
            "another site's origin",
            Some(csrf.as_str()),
            Some(("origin", "http://evil.example")),
        ),
        (
            "a cross-site fetch",
            Some(csrf.as_str()),
            Some(("sec-fetch-site", "cross-site")),
        ),
    ];
    for (what, token, header) in refused {
        let mut fields = vec![("ids", ids.as_str())];
        if let Some(token) = token {
            fields.push(("csrf", token));
        }
        let mut request = client()
            .post(app.url("/admin/deliveries/retry"))
            .header("cookie", &cookie)
            .form(&fields);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(response.text().await.unwrap().contains("CSRF"), "{what}");
    }
    // The API with a session cookie needs the header too.
    let response = client()
        .post(app.url("/admin/api/deliveries/retry"))
        .header("cookie", &cookie)
        .json(&json!({ "ids": [id] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Nothing was replayed by any of them.
    assert_eq!(deliveries(&app.db())[0].state, "dead");
    assert_eq!(attempts(&app.db(), id).len(), 1);

    // The page's own form, from this origin: replayed.
    let response = client()
        .post(app.url("/admin/deliveries/retry"))
        .header("cookie", &cookie)
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf", csrf.as_str()),
            ("ids", ids.as_str()),
            ("back", "/admin/dead"),
        ])
        .send()
        .await
        .unwrap();
    // Post/redirect/get: back to the page with a clean address, the notice in a short-lived
    // signed cookie beside the session.
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/admin/dead");
    let notice = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("deskbridge_notice="))
        .expect("a notice cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=60"] {
        assert!(notice.contains(attribute), "{notice}");
    }
    let notice = notice.split(';').next().unwrap().to_string();
    let with_notice = format!("{cookie}; {notice}");
    let response = client()
        .get(app.url("/admin/dead"))
        .header("cookie", &with_notice)
        .send()
        .await
        .unwrap();
    let cleared = response.headers().get_all(SET_COOKIE).iter().any(|v| {
        v.to_str().unwrap()
            == "deskbridge_notice=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0"
    });
    assert!(cleared, "the page that shows the notice clears it");
    let html = response.text().await.unwrap();
    assert!(
        html.contains("1 delivery is due again and will be sent within seconds"),
        "{html}"
    );
    // The browser drops the cleared cookie: a reload shows no notice.
    let (_, _, html) = page(&app, &cookie, "/admin/dead").await;
    assert!(!html.contains("id=\"notice\""), "no notice on reload");
    // A notice not signed with the session keys is not shown (and cleared all the same).
    let forged = format!("{cookie}; deskbridge_notice=QWxsIGlzIHdlbGw.AAAA");
    let (_, headers, html) = page(&app, &forged, "/admin/dead").await;
    assert!(
        !html.contains("id=\"notice\""),
        "a forged notice is not shown"
    );
    assert!(headers
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("deskbridge_notice=;")));
    eventually("a second attempt", Duration::from_secs(10), || {
        let n = attempts(&app.db(), id).len();
        async move { n == 2 }
    })
    .await;
    // And through the API with the session's header.
    delivery_in(&app, "208-55039", "dead").await;
    let response = client()
        .post(app.url("/admin/api/deliveries/retry"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({ "ids": [id] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["replayed"], 1);
    app.stop().await;
}

#[tokio::test]
async fn untrusted_strings_are_shown_as_text() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(422).set_body_string("<h1 onclick=\"x()\">bad request</h1>"),
        )
        .mount(&mock)
        .await;
    let app = TestApp::spawn(config(&mock)).await;
    let mut c = sample("chat.json");
    c["visitor"]["name"] = json!("<script>alert('name')</script>");
    c["visitor"]["email"] = json!("eve@example.com");
    c["visitor"]["note"] = json!("\"><img src=x onerror=alert(1)>");
    c["visitor"]["variables"] = json!({"v": {"label": "<b>label</b>", "value": "{{constructor}}"}});
    c["paths"] = json!([{"url": "javascript:alert(1)", "title": "<i>title</i>"}]);
    c["messages"][0]["content"] = json!("<img src=x onerror=alert('msg')>");
    app.post_hook(c.to_string()).await;
    delivery_in(&app, "208-55039", "dead").await;
    let cookie = sign_in(&app, "UTC").await;

    let (_, _, list) = page(&app, &cookie, "/admin/conversations?q=eve").await;
    let (_, _, one) = page(&app, &cookie, "/admin/conversations/208-55039").await;
    let (_, _, dead) = page(&app, &cookie, "/admin/dead").await;
    for (name, html) in [("list", &list), ("conversation", &one), ("dead", &dead)] {
        for raw in [
            "<script>alert",
            "<img src=x",
            "<b>label",
            "<i>title",
            "<h1 onclick",
        ] {
            assert!(!html.contains(raw), "{name} page contains {raw}");
        }
    }
    assert!(
        list.contains("&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;"),
        "{list}"
    );
    assert!(one.contains("&lt;img src"), "the message is shown as text");
    assert!(one.contains("&lt;b&gt;label&lt;/b&gt;") && one.contains("{{constructor}}"));
    assert!(
        one.contains("&quot;&gt;&lt;img"),
        "the note cannot leave its element"
    );
    assert!(
        !one.contains("href=\"javascript:"),
        "page addresses are text, not links"
    );
    assert!(
        one.contains("&lt;h1 onclick"),
        "the response excerpt is text"
    );
    // The API returns the same strings as JSON, unchanged.
    let (_, view) = api(&app, "/admin/api/conversations/208-55039").await;
    assert_eq!(
        view["visitor"]["display_name"],
        "<script>alert('name')</script>"
    );
    assert_eq!(
        view["transcript"][0]["text"],
        "<img src=x onerror=alert('msg')>"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_api_lists_searches_pages_and_replays() {
    let mock = MockServer::start().await;
    // Conversations of bob@ fail permanently until the destination is fixed.
    Mock::given(method("POST"))
        .and(path("/in"))
        .and(body_string_contains("bob@example.com"))
        .respond_with(ResponseTemplate::new(400).set_body_string("{\"error\":\"bob refused\"}"))
        .up_to_n_times(1)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/in"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    let app = TestApp::spawn(config(&mock)).await;

    let mut chat = conversation(1);
    chat["visitor"]["email"] = json!("Alice@Example.com");
    chat["visitor"]["name"] = json!("Alice Novak");
    let mut missed = sample("missed.json");
    missed["channel"]["id"] = json!(2);
    missed["visitor"]["email"] = json!("bob@example.com");
    missed["visitor"]["name"] = json!("Bob 50%_off");
    let mut offline = sample("offline.json");
    offline["channel"]["id"] = json!(3);
    offline["visitor"]["email"] = json!("carol@example.org");
    for c in [&chat, &missed, &offline] {
        assert_eq!(app.post_hook(c.to_string()).await.status(), 200);
    }
    let bob_key = format!("{}-2", missed["accountId"]);
    let dead_id = delivery_in(&app, &bob_key, "dead").await;
    eventually("two done", Duration::from_secs(10), || {
        let n = deliveries(&app.db())
            .iter()
            .filter(|d| d.state == "done")
            .count();
        async move { n == 2 }
    })
    .await;

    // Overview.
    let (status, overview) = api(&app, "/admin/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overview["hooks_last_hour"], 3);
    assert_eq!(overview["hooks_last_day"], 3);
    assert_eq!(
        overview["deliveries"],
        json!({"pending": 0, "done": 2, "dead": 1})
    );
    let crm = &overview["destinations"][0];
    assert_eq!(crm["name"], "crm");
    assert_eq!(crm["state"], "delivering");
    assert_eq!(crm["success_rate"], 66.7);
    assert_eq!(crm["dead"], 1);
    assert_eq!(
        crm["last_error_summary"], "HTTP 400 Bad Request: bob refused",
        "the last error in words, with the destination's own message"
    );
    assert!(overview["last_received_at"].as_i64().unwrap() > 0);
    assert!(crm["last_error"].as_str().unwrap().contains("400"), "{crm}");

    // Listing: newest first, one row per conversation, searchable.
    let (_, all) = api(&app, "/admin/api/conversations").await;
    let keys: Vec<&str> = all["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(
        (&all["count"], &all["count_capped"]),
        (&json!(3), &json!(false))
    );
    let bob_row = &all["conversations"][1];
    assert_eq!(bob_row["dead_destinations"], json!(["crm"]));
    assert_eq!(bob_row["display_name"], "Bob 50%_off");
    assert_eq!(bob_row["began_at"], 1427470439703_i64);
    assert_eq!(all["conversations"][2]["duration_seconds"], 36);
    assert_eq!(keys[1], bob_key);
    assert_eq!(all["next_before"], Value::Null);
    let search = |q: &str| {
        let app = &app;
        let q = q.to_string();
        async move {
            let (status, v) = api(app, &format!("/admin/api/conversations?{q}")).await;
            assert_eq!(status, StatusCode::OK, "{q}: {v}");
            v["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["visitor_email"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("q=ALICE%40example").await, ["alice@example.com"]);
    assert_eq!(search("q=novak").await, ["alice@example.com"]);
    assert_eq!(search(&format!("q={bob_key}")).await, ["bob@example.com"]);
    assert_eq!(
        search("q=50%25_").await,
        ["bob@example.com"],
        "% and _ are literal"
    );
    assert!(search("q=5_%25").await.is_empty());
    assert_eq!(search("kind=missed").await, ["bob@example.com"]);
    assert_eq!(search("kind=offline").await, ["carol@example.org"]);
    assert_eq!(search("state=dead").await, ["bob@example.com"]);
    assert_eq!(
        search("q=example.org&state=done").await,
        ["carol@example.org"]
    );
    // Paging.
    let (_, first) = api(&app, "/admin/api/conversations?limit=2").await;
    assert_eq!(first["conversations"].as_array().unwrap().len(), 2);
    let before = first["next_before"].as_i64().expect("a next page");
    let (_, second) = api(
        &app,
        &format!("/admin/api/conversations?limit=2&before={before}"),
    )
    .await;
    assert_eq!(second["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(
        (&first["count"], &second["count"]),
        (&json!(3), &json!(3)),
        "every page counts all matches"
    );
    assert_eq!(second["conversations"][0]["key"], keys[2]);
    assert_eq!(second["next_before"], Value::Null);

    // One conversation: transcript, deliveries with attempts and the request.
    let (status, bob) = api(
        &app,
        &format!("/admin/api/conversations/{bob_key}?tz=Asia/Tokyo"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bob["kind"], "missed");
    assert_eq!(bob["visitor"]["email"], "bob@example.com");
    assert!(!bob["transcript"].as_array().unwrap().is_empty());
    let delivery = &bob["versions"][0]["deliveries"][0];
    assert_eq!(delivery["delivery"]["state"], "dead");
    assert_eq!(delivery["attempts"][0]["status"], 400);
    assert_eq!(
        delivery["attempts"][0]["excerpt"],
        "{\"error\":\"bob refused\"}"
    );
    assert!(delivery["request"].as_str().unwrap().starts_with("POST "));
    let (_, same) = api(&app, &format!("/admin/api/deliveries/{dead_id}")).await;
    assert_eq!(
        &same, delivery,
        "the delivery endpoint shows what the conversation shows"
    );
    // Where it went, first: what failed, in words, and that it is not retried by itself.
    let outcome = &bob["outcomes"][0];
    assert_eq!(outcome["destination"], "crm");
    assert_eq!(outcome["label"], "failed");
    assert_eq!(outcome["failure"]["headline"], "HTTP 400 Bad Request");
    assert_eq!(outcome["failure"]["message"], "bob refused");
    assert_eq!(outcome["next"]["automatic"], false);
    assert!(outcome["next"]["text"]
        .as_str()
        .unwrap()
        .starts_with("Not retried: HTTP 400"));
    // The request as it was sent, kept while the delivery is not done.
    let sent = delivery["last_request"].as_str().unwrap();
    assert!(
        sent.starts_with("POST ") && sent.contains("bob@example.com"),
        "{sent}"
    );
    let (_, grouped) = api(&app, "/admin/api/dead-letters").await;
    assert_eq!(grouped["total"], 1);
    assert_eq!(grouped["groups"][0]["destination"], "crm");
    assert_eq!(grouped["groups"][0]["count"], 1);
    assert_eq!(grouped["groups"][0]["headline"], "HTTP 400 Bad Request");
    assert_eq!(grouped["groups"][0]["rows"][0]["id"], dead_id);

    // Dead letters, then replay: the fixed destination accepts.
    let (_, dead) = api(&app, "/admin/api/deliveries?state=dead").await;
    assert_eq!(dead.as_array().unwrap().len(), 1);
    assert_eq!(dead[0]["id"], dead_id);
    let (status, replayed) = api_post(
        &app,
        "/admin/api/deliveries/retry",
        json!({"dead": true, "destination": "crm"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replayed, json!({"replayed": 1}));
    delivery_in(&app, &bob_key, "done").await;
    // The admin's replay is recorded, and the attempts are numbered the same everywhere.
    let (_, done) = api(&app, &format!("/admin/api/deliveries/{dead_id}")).await;
    let numbers: Vec<&Value> = done["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["attempt"])
        .collect();
    assert_eq!(numbers, [&json!(1), &json!(2)]);
    assert_eq!(done["attempts"][1]["replay"]["by"], "admin");
    assert_eq!(done["attempts"][1]["replay"]["was"], "dead");
    assert_eq!(done["replays"].as_array().unwrap().len(), 1);
    assert_eq!(done["delivery"]["replayed_by"], "admin");
    assert_eq!(
        (
            &done["delivery"]["attempts"],
            &done["delivery"]["schedule_attempts"]
        ),
        (&json!(2), &json!(1))
    );
    assert_eq!(
        done["last_request"],
        Value::Null,
        "kept only while not done"
    );
    let (_, listed) = api(&app, "/admin/api/deliveries?state=done").await;
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == dead_id)
        .unwrap();
    assert_eq!(
        row["attempts"], 2,
        "the list counts attempts as the details do"
    );
    let (_, overview) = api(&app, "/admin/api/overview").await;
    assert_eq!(
        overview["deliveries"],
        json!({"pending": 0, "done": 3, "dead": 0})
    );

    // Bad input gets a precise error.
    for (path, status, message) in [
        (
            "/admin/api/conversations?kind=chats",
            400,
            "kind must be one of chat, missed, offline",
        ),
        (
            "/admin/api/conversations?state=gone",
            400,
            "state must be one of pending, done, dead",
        ),
        (
            "/admin/api/conversations/208-999999",
            404,
            "no conversation 208-999999",
        ),
        (
            "/admin/api/conversations/208-1?tz=Mars/Base",
            400,
            "not an IANA time zone",
        ),
        ("/admin/api/deliveries/abc", 400, "is not a delivery id"),
        ("/admin/api/deliveries/999999", 404, "no delivery 999999"),
        ("/admin/api/deliveries?since=soon", 400, "since:"),
        ("/admin/api/nothing", 404, "docs/ADMIN.md"),
    ] {
        let (got, body) = api(&app, path).await;
        assert_eq!(got.as_u16(), status, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(message),
            "{path}: {body}"
        );
    }
    for body in [
        json!({}),
        json!({"ids": [1], "dead": true}),
        json!({"ids": "1"}),
        json!({"id": 1}),
    ] {
        let (got, answer) = api_post(&app, "/admin/api/deliveries/retry", body.clone()).await;
        assert_eq!(got, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    app.stop().await;
}

#[tokio::test]
async fn repeated_wrong_tokens_are_refused_for_a_while() {
    let mock = MockServer::start().await;
    let app = TestApp::spawn(config(&mock)).await;
    for _ in 0..10 {
        let response = client()
            .get(app.url("/admin/api/overview"))
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even the right token waits, and so does the form.
    let response = client()
        .get(app.url("/admin/api/overview"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 800 && wait <= 900, "{wait}");
    let response = client()
        .post(app.url("/admin/login"))
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

#[tokio::test]
async fn created_tickets_are_linked() {
    let zendesk = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/tickets"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"ticket": {"id": 4242}})))
        .mount(&zendesk)
        .await;
    let mut c = TestConfig::with_destinations(&format!(
        "  helpdesk:\n    kind: zendesk\n    base_url: \"{}\"\n    email: \"agent@acme.example\"\n    api_token: \"tok-123\"\n",
        zendesk.uri()
    ));
    c.server_extra = format!("  admin_token: \"{ADMIN}\"\n");
    let app = TestApp::spawn(c).await;
    app.post_hook(sample("chat.json").to_string()).await;
    delivery_in(&app, "208-55039", "done").await;
    let (_, view) = api(&app, "/admin/api/conversations/208-55039").await;
    let delivery = &view["versions"][0]["deliveries"][0];
    assert_eq!(
        delivery["links"],
        json!([{"label": "ticket", "id": "4242", "url": format!("{}/agent/tickets/4242", zendesk.uri())}])
    );
    assert!(
        delivery["request"]
            .as_str()
            .unwrap()
            .contains("authorization: ***"),
        "secrets masked"
    );
    assert!(!delivery["request"].as_str().unwrap().contains("tok-123"));
    let cookie = sign_in(&app, "UTC").await;
    let (_, _, html) = page(&app, &cookie, "/admin/conversations/208-55039").await;
    assert!(html.contains(&format!("href=\"{}/agent/tickets/4242\"", zendesk.uri())));
    assert!(!html.contains("tok-123"));
    app.stop().await;
}

/// A store from before the dashboard (migration 1 only), with conversations received a minute
/// ago in it.
fn old_store(db: &Db, bodies: &[(String, String)]) {
    let received = deskbridge::store::now_ms() - 60_000;
    let migration = |backend: &str| {
        std::fs::read_to_string(
            repo().join(format!("src/store/migrations/{backend}/0001_init.sql")),
        )
        .unwrap()
    };
    match db {
        Db::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch(&migration("sqlite")).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            for (i, (key, raw)) in bodies.iter().enumerate() {
                conn.execute(
                    "INSERT INTO conversations (key, version, digest, raw, received_at) VALUES (?1, 1, ?2, ?3, ?4)",
                    rusqlite::params![key, vec![i as u8], raw.as_bytes(), received + i as i64],
                )
                .unwrap();
            }
        }
        Db::Postgres(url) => {
            let sql = migration("postgres");
            let bodies = bodies.to_vec();
            pg(url, move |c| {
                Box::pin(async move {
                    c.batch_execute(&sql).await.unwrap();
                    c.batch_execute(
                        "CREATE TABLE deskbridge_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL);
                         INSERT INTO deskbridge_migrations VALUES (1, 0);",
                    )
                    .await
                    .unwrap();
                    for (i, (key, raw)) in bodies.iter().enumerate() {
                        c.execute(
                            "INSERT INTO conversations (key, version, digest, raw, received_at) VALUES ($1, 1, $2, $3, $4)",
                            &[key, &vec![i as u8], &raw.as_bytes(), &(received + i as i64)],
                        )
                        .await
                        .unwrap();
                    }
                })
            });
        }
    }
}

#[tokio::test]
async fn an_upgraded_store_is_searchable() {
    let mock = MockServer::start().await;
    let mut c = config(&mock);
    let dir = tempfile::tempdir().unwrap();
    let db = if on_postgres() {
        let url = fresh_pg_database(&pg_admin_url().unwrap());
        c.store_url = Some(url.clone());
        Db::Postgres(url)
    } else {
        Db::Sqlite(dir.path().join("db.sqlite"))
    };
    let mut missed = sample("missed.json");
    missed["channel"]["id"] = json!(2);
    missed["visitor"]["email"] = json!(" Old@Example.COM ");
    let mut odd = conversation(3);
    odd["visitor"] = json!(["not", "an", "object"]);
    let mut nul = conversation(4);
    nul["visitor"]["name"] = json!("nul \u{0} in a name");
    let bodies: Vec<(String, String)> = [
        ("208-1", conversation(1)),
        ("208-2", missed),
        ("208-3", odd),
        ("208-4", nul),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    old_store(&db, &bodies);

    let app = TestApp::spawn_in(dir, &c).await;
    let (_, found) = api(&app, "/admin/api/conversations?q=old%40example.com").await;
    assert_eq!(found["conversations"][0]["key"], "208-2", "{found}");
    assert_eq!(found["conversations"][0]["kind"], "missed");
    assert_eq!(
        found["conversations"][0]["began_at"], 1427470439703_i64,
        "the chat's start is read from old bodies too"
    );
    let (_, found) = api(&app, "/admin/api/conversations?q=dusan").await;
    let keys: Vec<&str> = found["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"208-1"), "{found}");
    let (_, all) = api(&app, "/admin/api/conversations").await;
    assert_eq!(
        all["conversations"].as_array().unwrap().len(),
        4,
        "every old conversation is listed"
    );
    let (status, odd) = api(&app, "/admin/api/conversations/208-3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(odd["versions"][0]["version"], 1);
    app.stop().await;
}

#[tokio::test]
async fn hubspot_records_are_linked_when_the_portal_is_known() {
    let hubspot = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/contacts/batch/upsert"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"status": "COMPLETE", "results": [{"id": "501", "new": true, "properties": {}}]}),
        ))
        .mount(&hubspot)
        .await;
    for (object, id) in [("tickets", "601"), ("notes", "701")] {
        Mock::given(method("POST"))
            .and(path(format!("/crm/objects/2026-03/{object}")))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(json!({"id": id, "properties": {}})),
            )
            .mount(&hubspot)
            .await;
    }
    let mut c = TestConfig::with_destinations(&format!(
        "  crm:\n    kind: hubspot\n    base_url: \"{}\"\n    access_token: \"pat-test-1\"\n    portal_id: \"4242\"\n",
        hubspot.uri()
    ));
    c.server_extra = format!("  admin_token: \"{ADMIN}\"\n");
    let app = TestApp::spawn(c).await;
    app.post_hook(sample("chat.json").to_string()).await;
    delivery_in(&app, "208-55039", "done").await;
    let (_, view) = api(&app, "/admin/api/conversations/208-55039").await;
    let page = |t: &str, id: &str| format!("https://app.hubspot.com/contacts/4242/record/{t}/{id}");
    assert_eq!(
        view["versions"][0]["deliveries"][0]["links"],
        json!([
            {"label": "contact", "id": "501", "url": page("0-1", "501")},
            {"label": "ticket", "id": "601", "url": page("0-5", "601")},
            {"label": "note", "id": "701", "url": null},
        ])
    );
    app.stop().await;
}

#[tokio::test]
async fn pages_put_the_outcome_first_and_explain_a_pause_that_a_restart_does_not_leave_stale() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("{\"message\":\"maintenance\"}"))
        .up_to_n_times(1)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    let mut c = TestConfig::with_destinations(&format!(
        "  crm:\n    kind: webhook\n    url: \"{}/in\"\n    headers: {{X-Api-Key: \"k-secret-1\"}}\n    breaker: {{failures: 1, cool_down: \"1h\"}}\n",
        mock.uri()
    ));
    c.server_extra = format!("  admin_token: \"{ADMIN}\"\n");
    if on_postgres() {
        c.store_url = Some(fresh_pg_database(&pg_admin_url().unwrap()));
    }
    let app = TestApp::spawn_in(tempfile::tempdir().unwrap(), &c).await;
    app.post_hook(sample("chat.json").to_string()).await;
    paused(&app, "crm").await;

    // The overview says why, since when, when the probe runs and what resumes it.
    let (_, overview) = api(&app, "/admin/api/overview").await;
    let crm = &overview["destinations"][0];
    assert_eq!(crm["state"], "paused");
    assert_eq!(crm["paused_summary"], "HTTP 503");
    let now = deskbridge::store::now_ms();
    assert!(crm["since"].as_i64().unwrap() <= now);
    let probe = crm["probe_at"].as_i64().unwrap();
    assert!(probe > now + 3_500_000 && probe <= now + 3_600_000, "{crm}");
    assert!(crm["resumes"].as_str().unwrap().contains("reload (SIGHUP)"));

    // The conversation's page: the outcome before the transcript, waiting for the paused
    // destination; the request as it was sent, its secret masked.
    let cookie = sign_in(&app, "UTC").await;
    let (_, _, html) = page(&app, &cookie, "/admin/conversations/208-55039").await;
    let (outcome, transcript) = (
        html.find("id=\"outcome\"").unwrap(),
        html.find("id=\"transcript\"").unwrap(),
    );
    assert!(outcome < transcript, "the outcome comes first");
    assert!(
        html.contains("waiting") && html.contains("crm is paused"),
        "{html}"
    );
    assert!(html.contains("Request as last sent"));
    let (_, view) = api(&app, "/admin/api/conversations/208-55039").await;
    let delivery = &view["versions"][0]["deliveries"][0];
    let sent = delivery["last_request"].as_str().unwrap();
    assert!(
        sent.contains("X-Api-Key: ***") && !sent.contains("k-secret-1"),
        "{sent}"
    );
    assert!(!html.contains("k-secret-1"));
    assert_eq!(view["outcomes"][0]["label"], "waiting");
    assert_eq!(view["outcomes"][0]["next"]["at"], probe);
    let (status, _, missing) = page(&app, &cookie, "/admin/conversations/208-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing.contains("no conversation 208-1"), "{missing}");
    // The list: one conversation, with its kind and visitor.
    let (_, _, list) = page(&app, &cookie, "/admin/conversations").await;
    assert!(list.contains("1 conversation."), "{list}");
    assert!(list.contains("kind-chat") && list.contains("Dusan Kmet"));

    // A restart starts a fresh lane: delivering, not a stale pause; it delivers at once.
    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir, &c).await;
    delivery_in(&app, "208-55039", "done").await;
    let (_, overview) = api(&app, "/admin/api/overview").await;
    let crm = &overview["destinations"][0];
    assert_eq!(crm["state"], "delivering");
    assert_eq!(crm["paused_because"], Value::Null);
    let cookie = sign_in(&app, "UTC").await;
    let (_, _, html) = page(&app, &cookie, "/admin/conversations/208-55039").await;
    assert!(html.contains("delivered"));
    assert!(
        html.contains("Send again…") && html.contains("second ticket"),
        "sending a delivered one again warns first"
    );
    assert!(!html.contains("Request as last sent"), "not kept once done");
    app.stop().await;
}

#[tokio::test]
async fn a_reload_that_turns_the_breaker_off_shows_the_destination_delivering() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&mock)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let destination = |breaker: &str| {
        format!(
            "  crm:\n    kind: webhook\n    url: \"{}/in\"\n    breaker: {breaker}\n",
            mock.uri()
        )
    };
    let mut c = TestConfig::with_destinations(&destination("{failures: 1, cool_down: \"1h\"}"));
    c.server_extra = format!("  admin_token: \"{ADMIN}\"\n");
    c.log = "  level: \"info\"\n  format: \"json\"\n".into();
    c.store_url = None;
    let path = c.write(dir.path());
    let process = common::process::Process::start(&path);
    assert_eq!(process.post(sample("chat.json").to_string()).await, 200);
    let overview = || async {
        let (status, view) = api_at(process.port, "/admin/api/overview").await;
        assert_eq!(status, StatusCode::OK);
        view["destinations"][0].clone()
    };
    eventually("crm paused", Duration::from_secs(10), || async {
        overview().await["state"] == "paused"
    })
    .await;

    c.destinations = destination("{failures: 0}");
    c.write(dir.path());
    process.signal("HUP");
    process.wait_for_log("configuration reloaded");
    // The new lane delivers (and fails) without a breaker; the old one's pause is gone.
    for _ in 0..5 {
        let crm = overview().await;
        assert_eq!(crm["state"], "delivering", "{crm}");
        assert_eq!(crm["paused_because"], Value::Null, "{crm}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An API answer from a deskbridge on `port` (a process of its own).
async fn api_at(port: u16, path: &str) -> (StatusCode, Value) {
    let response = client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let response = common::documented("GET", path, response).await;
    let status = response.status();
    (status, response.json().await.unwrap())
}
