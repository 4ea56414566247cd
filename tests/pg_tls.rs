//! PostgreSQL over TLS: `sslmode=require` encrypts, `verify-full` checks the certificate's CA
//! (`sslrootcert` or the system's roots) and host name, and a failed check says what is wrong.
//! Needs `DESKBRIDGE_TEST_PG_URL` and `DESKBRIDGE_TEST_PG_CA` (scripts/pg-test-server.sh start,
//! whose server has TLS on); skipped without them outside CI.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{fresh_pg_database, pg, pg_admin_url, requests_at, sample, TestApp, TestConfig};
use deskbridge::store::Store;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The test server's URL and the CA that signed its certificate, or `None` (skip).
fn server() -> Option<(String, String)> {
    let admin = pg_admin_url()?;
    match std::env::var("DESKBRIDGE_TEST_PG_CA") {
        Ok(ca) => Some((admin, ca)),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI must provide DESKBRIDGE_TEST_PG_CA (scripts/pg-test-server.sh start)")
        }
        Err(_) => {
            eprintln!("skipped: set DESKBRIDGE_TEST_PG_CA (scripts/pg-test-server.sh start)");
            None
        }
    }
}

/// Connections to database `name`, by whether they use TLS.
fn connections(admin: &str, name: &str) -> (i64, i64) {
    let sql = format!(
        "SELECT COUNT(*) FILTER (WHERE s.ssl), COUNT(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{name}'"
    );
    pg(admin, move |c| {
        Box::pin(async move {
            let row = c.query_one(&sql, &[]).await.unwrap();
            (row.get(0), row.get(1))
        })
    })
}

fn database_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn require_and_verify_full_connect_over_tls() {
    let Some((admin, ca)) = server() else { return };
    for params in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-full&sslrootcert={ca}"),
    ] {
        let url = fresh_pg_database(&admin);
        let store = Store::open(&format!("{url}?{params}"), 2)
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        let (encrypted, plain) = connections(&admin, &database_name(&url));
        assert!(
            encrypted >= 1 && plain == 0,
            "{params}: {encrypted} TLS, {plain} plain"
        );
        drop(store);
    }
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_it_cannot_trust_and_says_why() {
    let Some((admin, ca)) = server() else { return };
    let url = fresh_pg_database(&admin);
    let unrelated = common::repo().join("tests/fixtures/unrelated-ca.pem");
    let unrelated = unrelated.display();
    let error = |params: String| {
        let url = url.clone();
        async move {
            match Store::open(&format!("{url}?{params}"), 1).await {
                Ok(_) => panic!("{params} connected"),
                Err(e) => e.to_string(),
            }
        }
    };
    let e = error(format!("sslmode=verify-full&sslrootcert={unrelated}")).await;
    assert!(
        e.contains(&format!(
            "TLS handshake with 127.0.0.1 failed: its certificate is not signed by a CA in {unrelated}"
        )),
        "{e}"
    );
    // The system's roots do not hold the test server's CA either.
    let e = error("sslmode=verify-full".into()).await;
    assert!(
        e.contains("is not signed by a CA among the system's trusted roots")
            || e.contains("the system has no trusted root certificates"),
        "{e}"
    );
    // The right CA, but a certificate that does not name the host connected to.
    let (server, db) = url.rsplit_once('/').unwrap();
    let port = server.rsplit(':').next().unwrap();
    let renamed = format!(
        "postgres://deskbridge:deskbridge@db.invalid:{port}/{db}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"
    );
    let e = match Store::open(&renamed, 1).await {
        Ok(_) => panic!("a certificate for another name was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(
            "TLS handshake with db.invalid failed: its certificate does not name db.invalid"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn the_server_takes_and_delivers_conversations_over_verified_tls() {
    let Some((admin, ca)) = server() else { return };
    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    let url = fresh_pg_database(&admin);
    let mut config = TestConfig::with_destinations(&format!(
        "  target:\n    kind: webhook\n    url: \"{}/hook\"\n",
        mock.uri()
    ));
    config.store_url = Some(format!("{url}?sslmode=verify-full&sslrootcert={ca}"));
    let app = TestApp::spawn(config).await;
    assert_eq!(
        app.post_hook(sample("chat.json").to_string())
            .await
            .status(),
        200
    );
    requests_at(&mock, 1).await;
    let (encrypted, plain) = connections(&admin, &database_name(&url));
    assert!(
        encrypted >= 1 && plain == 0,
        "{encrypted} TLS, {plain} plain"
    );
}

#[test]
fn check_names_unusable_tls_settings_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    for (params, expected) in [
        (
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "store.url: sslrootcert /nonexistent/ca.pem: cannot read it",
        ),
        (
            "sslmode=verify-ca",
            "store.url: sslmode=verify-ca is not supported",
        ),
        (
            "sslmode=require&sslrootcert=/x.pem",
            "only used with sslmode=verify-full",
        ),
    ] {
        let mut config =
            TestConfig::with_destinations("  out:\n    kind: file\n    dir: \"out\"\n");
        config.store_url = Some(format!("postgres://u:secret-pw@127.0.0.1:1/db?{params}"));
        let path = config.write(dir.path());
        let error = deskbridge::config::load(&path).unwrap_err().to_string();
        assert!(error.contains(expected), "{params}: {error}");
        assert!(!error.contains("secret-pw"), "{error}");
    }
}
