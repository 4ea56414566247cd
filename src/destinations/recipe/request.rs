//! Building a step's request from the recipe (the one description both `render` and delivery
//! use), with the recipe's credentials, and sending it (through the OAuth token source for
//! `oauth2`).

use super::format::{self, RequestSpec};
use super::{At, RecipeDestination};
use crate::config::{OAuthGrant, OAuthSettings, Secret};
use crate::destinations::{http, note_sent, DeliveryError, Job, Request};
use crate::oauth::{Encoding, Endpoint, TokenSource};
use crate::render::escape::EscapeMode;
use crate::render::RenderError;
use serde_json::Value;

impl RecipeDestination {
    pub(super) fn with_secrets(&self, data: &Value) -> handlebars::Context {
        let mut data = data.clone();
        if let Value::Object(map) = &mut data {
            map.insert("secret".into(), Value::Object(self.settings.secret.clone()));
        }
        handlebars::Context::from(data)
    }

    pub(super) fn inline(
        &self,
        key: &str,
        ctx: &handlebars::Context,
    ) -> Result<String, RenderError> {
        self.shared
            .renderer
            .render_inline(&self.name, &format!("recipe.{key}"), ctx)
    }

    /// Builds one request of a step: the one description both `render` and delivery use.
    pub(super) fn request(
        &self,
        at: &At<'_>,
        spec: &RequestSpec,
        job: &Job<'_>,
        data: &Value,
    ) -> Result<Request, RenderError> {
        // One copy of the data: with `secret` for the URL, headers and auth, then without it
        // for the body.
        let mut context = self.with_secrets(data);
        let mut url = self.inline(&format!("{}.url", at.key), &context)?;
        let mut headers = Vec::with_capacity(spec.headers.len() + 3);
        if let Some(body) = &spec.body {
            if EscapeMode::for_name(body) == EscapeMode::Json
                && !spec
                    .headers
                    .keys()
                    .any(|h| h.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("content-type".into(), "application/json".into(), false));
            }
        }
        for name in spec.headers.keys() {
            let value = self.inline(&format!("{}.headers.{name}", at.key), &context)?;
            let secret = self.uses_secret(spec.headers.get(name).map(String::as_str));
            headers.push((name.clone(), value, secret));
        }
        if let Some(header) = &at.step.idempotency_header {
            let item = at.index.map(|i| format!("-{i}")).unwrap_or_default();
            let key = format!("{}-{}{item}", job.idempotency_key, at.step.id);
            headers.push((header.clone(), key, false));
        }
        self.authenticate(&context, &mut url, &mut headers)?;
        if let Some(map) = context.data_mut().as_object_mut() {
            map.shift_remove("secret");
        }
        let body = match &spec.body {
            Some(template) => self.shared.renderer.render(template, &context)?,
            None => String::new(),
        };
        Ok(Request {
            method: spec.method.to_ascii_uppercase(),
            url,
            headers,
            body,
            secret_path: self.uses_secret(Some(&spec.url)),
        })
    }

    pub(super) fn uses_secret(&self, template: Option<&str>) -> bool {
        template.is_some_and(|t| t.contains("secret."))
    }

    /// Adds the recipe's credentials to a request.
    pub(super) fn authenticate(
        &self,
        ctx: &handlebars::Context,
        url: &mut String,
        headers: &mut Vec<(String, String, bool)>,
    ) -> Result<(), RenderError> {
        use base64::Engine as _;
        let Some(auth) = &self.recipe.auth else {
            return Ok(());
        };
        match auth {
            format::AuthSpec::Basic { .. } => {
                let user = self.inline("auth.username", ctx)?;
                let password = self.inline("auth.password", ctx)?;
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                headers.push(("authorization".into(), format!("Basic {encoded}"), true));
            }
            format::AuthSpec::Bearer { .. } => {
                let token = self.inline("auth.token", ctx)?;
                headers.push(("authorization".into(), format!("Bearer {token}"), true));
            }
            format::AuthSpec::Header { name, .. } => {
                let value = self.inline("auth.value", ctx)?;
                headers.push((name.clone(), value, true));
            }
            format::AuthSpec::Query { name, .. } => {
                let value = self.inline("auth.value", ctx)?;
                if let Ok(mut parsed) = reqwest::Url::parse(url) {
                    parsed.query_pairs_mut().append_pair(name, &value);
                    *url = parsed.to_string();
                }
            }
            format::AuthSpec::Oauth2 { .. } => {
                // The token source replaces this with the current access token when sending.
                headers.push(("authorization".into(), "Bearer <access token>".into(), true));
            }
        }
        Ok(())
    }

    /// The OAuth token source, made on first use from the rendered `auth` block.
    pub(super) fn token_source(&self) -> Result<Option<&TokenSource>, DeliveryError> {
        let Some(format::AuthSpec::Oauth2 { scope, .. }) = &self.recipe.auth else {
            return Ok(None);
        };
        if let Some(tokens) = self.tokens.get() {
            return Ok(Some(tokens));
        }
        let ctx = self.with_secrets(&serde_json::json!({"destination": self.settings.public}));
        let token_url = self.inline("auth.token_url", &ctx)?;
        let settings = OAuthSettings {
            grant: OAuthGrant::ClientCredentials,
            client_id: self.inline("auth.client_id", &ctx)?,
            client_secret: Secret::new(self.inline("auth.client_secret", &ctx)?),
            scope: scope.clone(),
            refresh_token: None,
            token_url: crate::config::HttpUrl::parse(&token_url).ok(),
        };
        let endpoint = Endpoint {
            token_url,
            encoding: Encoding::Form,
            default_scope: "",
            who: self.recipe.name.clone(),
            fresh_token_refused: "check the OAuth client's id, secret and permissions",
        };
        let tokens = TokenSource::new(&self.name, &settings, endpoint, self.shared.client.clone());
        if let Some(store) = self.store.get() {
            tokens.attach(store);
        }
        Ok(Some(self.tokens.get_or_init(|| tokens)))
    }

    pub(super) async fn send(&self, request: &Request) -> Result<http::Exchange, DeliveryError> {
        note_sent(request);
        match self.token_source()? {
            Some(tokens) => tokens.send(&self.shared.client, request).await,
            None => http::exchange(&self.shared.client, request).await,
        }
    }
}
