//! A migration owner and a runtime role (docs/OPERATIONS.md): the owner migrates with
//! `deskbridge migrate`, and deskbridge then runs as a role that reads and writes rows but may
//! not change the schema. Needs `DESKBRIDGE_TEST_PG_URL` (scripts/pg-test-server.sh start);
//! skipped without it outside CI.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::BIN;
use common::{pg, pg_admin_url, requests_at, sample, TestApp, TestConfig};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs the statements of `sql` on `url` one at a time (`CREATE DATABASE` cannot share a
/// transaction); the error's text when one fails.
fn exec(url: &str, sql: &str) -> Result<(), String> {
    let statements: Vec<String> = sql.split(';').map(str::to_string).collect();
    pg(url, move |c| {
        Box::pin(async move {
            for statement in statements.iter().filter(|s| !s.trim().is_empty()) {
                c.batch_execute(statement).await.map_err(|e| {
                    e.as_db_error()
                        .map_or(e.to_string(), |d| d.message().into())
                })?;
            }
            Ok(())
        })
    })
}

/// `url` with another user and database.
fn as_user(admin: &str, user: &str, database: &str) -> String {
    let (server, _) = admin.rsplit_once('/').unwrap();
    let host = server.rsplit_once('@').unwrap().1;
    format!("postgres://{user}:pw-{user}@{host}/{database}")
}

#[tokio::test]
async fn deskbridge_runs_as_a_role_that_cannot_change_the_schema_its_owner_migrated() {
    let Some(admin) = pg_admin_url() else { return };
    let n = std::process::id();
    let (owner, app_role, db) = (format!("own_{n}"), format!("app_{n}"), format!("roles_{n}"));
    // The setup docs/OPERATIONS.md shows, run by an administrator.
    exec(
        &admin,
        &format!(
            "CREATE ROLE {owner} LOGIN PASSWORD 'pw-{owner}';
             CREATE ROLE {app_role} LOGIN PASSWORD 'pw-{app_role}';
             CREATE DATABASE {db} OWNER {owner};"
        ),
    )
    .unwrap();
    let (server, _) = admin.rsplit_once('/').unwrap();
    exec(
        &format!("{server}/{db}"),
        &format!(
            "ALTER SCHEMA public OWNER TO {owner};
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public
                 GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app_role};
             ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public
                 GRANT USAGE, SELECT ON SEQUENCES TO {app_role};"
        ),
    )
    .unwrap();
    let owner_url = as_user(&admin, &owner, &db);
    let app_url = as_user(&admin, &app_role, &db);

    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    let mut config = TestConfig::with_destinations(&format!(
        "  target:\n    kind: webhook\n    url: \"{}/hook\"\n",
        mock.uri()
    ));
    config.store_url = Some(app_url.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = config.write(dir.path());

    // Before the owner migrated, the runtime role cannot: the error says what to do.
    let refused = std::process::Command::new(BIN)
        .args(["migrate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("may not change the schema") && stderr.contains("deskbridge migrate"),
        "{stderr}"
    );

    // The owner migrates, with the configuration's store.url overridden.
    let migrated = std::process::Command::new(BIN)
        .args(["migrate", "--config"])
        .arg(&path)
        .env("DESKBRIDGE_STORE__URL", &owner_url)
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );

    // deskbridge runs as the runtime role: it takes, stores and delivers conversations.
    let running = TestApp::spawn_in(tempfile::tempdir().unwrap(), &config).await;
    assert_eq!(
        running
            .post_hook(sample("chat.json").to_string())
            .await
            .status(),
        200
    );
    requests_at(&mock, 1).await;
    running.stop().await;
    let denied = exec(&app_url, "CREATE TABLE intruder (a INTEGER)").unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");
    let denied = exec(&app_url, "ALTER TABLE deliveries ADD COLUMN x INTEGER").unwrap_err();
    assert!(denied.contains("must be owner"), "{denied}");

    exec(
        &admin,
        &format!("DROP DATABASE {db} WITH (FORCE); DROP ROLE {app_role}; DROP ROLE {owner};"),
    )
    .unwrap();
}
