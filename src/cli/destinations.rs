//! `deskbridge destinations test NAME`: proves a destination's credentials without sending a
//! conversation, saying what it did and how it went, and never printing a secret; and the
//! warnings `check` prints about credentials that are about to stop working.

use super::runtime;
use crate::app::Prepared;
use crate::config::{OAuthGrant, Problems};
use crate::destinations::email::EmailSettings;
use crate::destinations::http::{self, Exchange};
use crate::destinations::hubspot::HubspotSettings;
use crate::destinations::zendesk::Zendesk;
use crate::destinations::zendesk::ZendeskSettings;
use crate::destinations::{DeliveryError, Request, Shared};
use crate::oauth::TokenError;
use crate::redact;
use crate::store::Store;
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

/// Exit code: the credentials were refused, or the destination could not be reached.
const FAILED: u8 = 1;
/// Exit code: no destination of that name, or nothing to test for its kind.
const NOTHING_TO_TEST: u8 = 2;

/// What `check` says of a Zendesk destination that uses an API token.
const API_TOKEN_WARNING: &str = "warning: Zendesk deactivates API tokens on 2027-04-30; use auth: kind: oauth (docs/destinations/zendesk.md)";

/// `deskbridge destinations …`
#[derive(Debug, Subcommand)]
pub enum Destinations {
    /// Prove a destination's credentials without sending a conversation.
    ///
    /// Zendesk: an OAuth access token (with `auth: {kind: oauth}`), then
    /// `GET /api/v2/users/me.json`, which must name an agent or admin. HubSpot: one contact
    /// read. Exit codes: 0 they work, 1 refused or unreachable, 2 unknown destination or
    /// nothing to test (webhook, file).
    Test {
        /// Destination name from the configuration.
        name: String,
    },
}

/// How a test ended.
enum Outcome {
    Worked,
    Failed,
}

/// Runs `deskbridge destinations …`.
pub fn run(prepared: Prepared, command: Destinations) -> anyhow::Result<ExitCode> {
    let Destinations::Test { name } = command;
    let Some(settings) = prepared.settings.destinations.get(&name) else {
        let known: Vec<&str> = prepared
            .settings
            .destinations
            .keys()
            .map(String::as_str)
            .collect();
        eprintln!(
            "no destination {name:?} in {} (known: {})",
            prepared.config_path.display(),
            known.join(", ")
        );
        return Ok(ExitCode::from(NOTHING_TO_TEST));
    };
    let shared = Shared::new(prepared.renderer.clone(), &prepared.settings)
        .context("building the HTTP client")?;
    let outcome = if let Some(z) = settings.settings::<ZendeskSettings>() {
        println!("testing the credentials of {name} (kind: zendesk)");
        runtime()?.block_on(zendesk(&prepared, &name, z, shared))?
    } else if let Some(h) = settings.settings::<HubspotSettings>() {
        println!("testing the credentials of {name} (kind: hubspot)");
        runtime()?.block_on(hubspot(h, &shared))
    } else if let Some(e) = settings.settings::<EmailSettings>() {
        {
            println!("testing the SMTP connection of {name} (kind: email): connect, TLS, log in, send nothing");
            let timeout = prepared.settings.delivery.request_timeout.0;
            let email = crate::destinations::email::Email::new(&name, e, shared, timeout);
            match runtime()?.block_on(email.probe()) {
                Ok(()) => Outcome::Worked,
                Err(e) => {
                    eprintln!("failed: {}", redact::urls_in(&e.to_string()));
                    Outcome::Failed
                }
            }
        }
    } else {
        return Ok(nothing_to_test(&name, settings.kind()));
    };
    Ok(match outcome {
        Outcome::Worked => {
            println!("ok: the credentials of {name} work");
            ExitCode::SUCCESS
        }
        Outcome::Failed => ExitCode::from(FAILED),
    })
}

/// Says why a destination of `kind` has no test.
fn nothing_to_test(name: &str, kind: &str) -> ExitCode {
    eprintln!(
        "{name} (kind: {kind}): nothing to test without sending a conversation; use `deskbridge render --destination {name} FILE.json` (destinations test supports kind: zendesk, kind: hubspot and kind: email)"
    );
    ExitCode::from(NOTHING_TO_TEST)
}

/// Zendesk: with OAuth, an access token (refresh tokens through the store, so a rotated one
/// is kept); then who the credentials identify, which must be an agent or admin.
async fn zendesk(
    prepared: &Prepared,
    name: &str,
    settings: &ZendeskSettings,
    shared: Shared,
) -> anyhow::Result<Outcome> {
    let zendesk = Zendesk::new(name, settings, shared);
    if let Some(tokens) = zendesk.oauth() {
        let store = Store::open(&prepared.settings.store.url, 1)
            .await
            .context("opening the store")?;
        tokens.attach(&store);
        let token_url = redact::url(tokens.token_url());
        match settings.auth.as_ref().map(|crate::config::AuthSettings::Oauth(o)| o.grant) {
            Some(OAuthGrant::RefreshToken) => println!(
                "OAuth grant refresh_token: the refresh token is the store's (seeded from auth.refresh_token the first time)"
            ),
            _ => println!("OAuth grant client_credentials"),
        }
        match tokens.token().await {
            Ok(_) => println!("obtained an OAuth access token from {token_url}"),
            Err(TokenError::Refused(reason)) => {
                eprintln!("refused: {reason}");
                return Ok(Outcome::Failed);
            }
            Err(TokenError::Unavailable { reason, .. }) => {
                eprintln!("no OAuth access token from {token_url}: {reason}");
                return Ok(Outcome::Failed);
            }
        }
    } else if settings.api_token.is_some() {
        println!("authenticating with email and API token");
        eprintln!("{API_TOKEN_WARNING}");
    } else {
        println!("authenticating with the fixed OAuth access token (oauth_token)");
    }
    let (url, answer) = zendesk.current_user().await;
    let url = redact::url(&url);
    let response = match answer {
        Ok(response) => response,
        Err(DeliveryError::Unauthorized { reason, .. }) => {
            eprintln!("GET {url}: refused: {reason}");
            return Ok(Outcome::Failed);
        }
        Err(e) => {
            eprintln!("GET {url}: Zendesk could not be reached: {e}");
            return Ok(Outcome::Failed);
        }
    };
    Ok(zendesk_user(&url, &response))
}

/// Judges Zendesk's answer to `GET /api/v2/users/me.json`.
fn zendesk_user(url: &str, response: &Exchange) -> Outcome {
    let status = response.status;
    if !(200..300).contains(&status) {
        let why = match status {
            401 => "Zendesk refused the credentials: check email and api_token, or oauth_token",
            403 => "Zendesk denied permission: the user must be an agent, and OAuth scopes must include read",
            300..=399 => "redirects are not followed: subdomain or base_url must be the API host itself",
            _ => "the answer is not the current user",
        };
        eprintln!("GET {url}: HTTP {status}{}: {why}", said(&response.body));
        return Outcome::Failed;
    }
    let body: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    let user = &body["user"];
    let role = user["role"].as_str();
    let email = user["email"].as_str().unwrap_or("no email");
    let Some(role) = role else {
        println!("GET {url}: HTTP {status} (the answer names no user role)");
        return Outcome::Worked;
    };
    println!("GET {url}: HTTP {status}: user {email}, role {role}");
    if role == "end-user" || user["id"].is_null() {
        eprintln!(
            "the credentials do not identify an agent (Zendesk answers as an anonymous user or an end user): use an agent's or admin's credentials"
        );
        return Outcome::Failed;
    }
    Outcome::Worked
}

/// ` (Zendesk's error text)`, when its answer has a short one.
fn said(body: &str) -> String {
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let text = body["error"]
        .as_str()
        .or_else(|| body["error"]["title"].as_str())
        .or_else(|| body["description"].as_str());
    match text {
        Some(t) if !t.is_empty() && t.chars().count() <= 200 => format!(" ({t})"),
        _ => String::new(),
    }
}

/// HubSpot: one contact read with the access token.
async fn hubspot(settings: &HubspotSettings, shared: &Shared) -> Outcome {
    let token = settings
        .access_token
        .as_ref()
        .map(|t| t.expose())
        .unwrap_or("");
    let request = Request {
        secret_path: false,
        method: "GET".into(),
        url: format!(
            "{}/crm/v3/objects/contacts?limit=1",
            settings.base_url.as_str().trim_end_matches('/')
        ),
        headers: vec![
            (
                "authorization".into(),
                format!("Bearer {}", token.trim()),
                true,
            ),
            ("accept".into(), "application/json".into(), false),
        ],
        body: String::new(),
    };
    let url = redact::url(&request.url);
    let response = match http::exchange(&shared.client, &request).await {
        Ok(response) => response,
        Err(e) => {
            eprintln!("GET {url}: HubSpot could not be reached: {e}");
            return Outcome::Failed;
        }
    };
    let status = response.status;
    if (200..300).contains(&status) {
        println!("GET {url}: HTTP {status}");
        return Outcome::Worked;
    }
    let why = match status {
        401 => {
            "HubSpot refused the access token: create a new private app token and set access_token"
        }
        403 => {
            "HubSpot denied permission: the private app needs the crm.objects.contacts.read scope"
        }
        _ => "HubSpot did not answer the contact read",
    };
    eprintln!("GET {url}: HTTP {status}: {why}");
    Outcome::Failed
}

/// One line per Zendesk destination that uses an API token, in the `file:line: key: message`
/// shape of configuration errors (`check` prints them and still succeeds).
pub(super) fn warnings(config: &Path, prepared: &Prepared, text: &str) -> Vec<String> {
    // The line where `key` stands in the file (or its nearest ancestor's).
    let line_of = |key: &str| {
        let mut probe = Problems::new(text);
        probe.add(key, "");
        probe
            .finish(config)
            .err()
            .and_then(|e| e.problems.first().and_then(|p| p.line))
    };
    let mut found = Problems::new(text);
    let mut any = false;
    for (name, settings) in &prepared.settings.destinations {
        let Some(z) = settings.settings::<ZendeskSettings>() else {
            continue;
        };
        if z.api_token.is_none() {
            continue;
        }
        let at = format!("destinations.{name}");
        let direct = format!("{at}.api_token");
        let from_file = format!("{at}.api_token_file");
        // The key as written: `api_token`, `api_token_file`, or (set from the environment)
        // `api_token` at the destination's line.
        let key = if line_of(&direct) == line_of(&at) && line_of(&from_file) != line_of(&at) {
            from_file
        } else {
            direct
        };
        found.add(&key, API_TOKEN_WARNING);
        any = true;
    }
    if !any {
        return Vec::new();
    }
    match found.finish(config) {
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
        Ok(()) => Vec::new(),
    }
}
