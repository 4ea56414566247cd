//! `kind: email`: the transcript as a multipart/alternative message (plain text and HTML)
//! sent over SMTP to any help desk's support address. Every version of a conversation has a
//! stable `Message-ID`; a later version answers the first (`In-Reply-To`, `References`), so
//! help desks that thread by those headers add it to the same ticket. The visitor is the
//! `Reply-To` when their address is usable; a transcript too long for `max_message_bytes` is
//! cut with a notice in the message.

pub mod message;
mod settings;
pub mod smtp;

pub use settings::{EmailKind, EmailSettings, EmailTls, ReplyTo, MIN_MESSAGE_BYTES};

use super::{BoxFuture, Delivered, DeliveryError, Destination, Job, Request, Shared};
use crate::render::RenderError;
use handlebars::Context;
use lettre::message::Mailbox;
use message::{Envelope, MessageError, MAX_HEADER_CHARS, MAX_NAME_CHARS, MAX_SUBJECT_CHARS};
use serde_json::{json, Map, Value};
use std::time::{Duration, SystemTime};

/// An email destination.
pub struct Email {
    name: String,
    settings: EmailSettings,
    shared: Shared,
    /// The SMTP transport, or why it could not be built (a `ca_file` gone since validation).
    transport: Result<smtp::Transport, String>,
    /// The domain of `from`: the right side of every Message-ID.
    domain: String,
    /// Longest SMTP session, from connecting to the server's answer to the message.
    timeout: Duration,
}

/// A message ready to send, and what it says about itself.
struct Built {
    /// The message as sent.
    bytes: Vec<u8>,
    /// Sender and recipients.
    envelope: lettre::address::Envelope,
    /// Its `Message-ID`.
    message_id: String,
    /// Transcript messages left out to fit `max_message_bytes`.
    omitted: usize,
}

impl Email {
    /// Builds the destination; `timeout` bounds each SMTP session as a whole. The settings
    /// were validated with the configuration.
    pub fn new(name: &str, settings: &EmailSettings, shared: Shared, timeout: Duration) -> Self {
        let domain = settings
            .from
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "deskbridge.invalid".into());
        Self {
            name: name.to_string(),
            settings: settings.clone(),
            shared,
            transport: smtp::transport(settings, timeout),
            domain,
            timeout,
        }
    }

    /// Connects, starts TLS and authenticates as deliveries would, and sends nothing.
    pub async fn probe(&self) -> Result<(), DeliveryError> {
        smtp::probe(self.transport()?, self.timeout).await
    }

    fn transport(&self) -> Result<&smtp::Transport, DeliveryError> {
        self.transport
            .as_ref()
            .map_err(|reason| DeliveryError::Retryable {
                reason: format!("the SMTP connection cannot be set up: {reason}"),
                status: None,
                retry_after: None,
                excerpt: None,
            })
    }

    fn inline(&self, key: &str, context: &Context) -> Result<String, RenderError> {
        self.shared.renderer.render_inline(&self.name, key, context)
    }

    /// A problem with what the inline template at `key` rendered, as a render error of it.
    fn rendered_wrong(&self, key: &str, e: &MessageError) -> RenderError {
        RenderError::Render {
            name: format!("destinations.{}.{key}", self.name),
            message: e.to_string(),
        }
    }

    fn recipients(
        &self,
        key: &str,
        list: &[String],
        ctx: &Context,
    ) -> Result<Vec<Mailbox>, RenderError> {
        let mut out = Vec::new();
        for i in 0..list.len() {
            let at = format!("{key}[{i}]");
            let rendered = self.inline(&at, ctx)?;
            out.extend(message::recipients(&rendered).map_err(|e| self.rendered_wrong(&at, &e))?);
        }
        Ok(out)
    }

    /// `Reply-To`: the visitor's address (with their name) when usable, none, or a fixed one.
    fn reply_to(&self, data: &Value) -> Option<Mailbox> {
        match &self.settings.reply_to {
            ReplyTo::None => None,
            ReplyTo::Visitor => {
                let email = data["meta"]["email"].as_str()?;
                let name = data["visitor"]["name"].as_str();
                let mailbox = message::mailbox(name, email);
                if mailbox.is_none() {
                    tracing::warn!(
                        "the visitor's email address cannot be a Reply-To header (not a plain ASCII address); sending without Reply-To"
                    );
                }
                mailbox
            }
            ReplyTo::Address(fixed) => message::mailbox(None, fixed),
        }
    }

    /// Everything but the bodies, rendered for this conversation version; `ids` are its
    /// Message-ID and, for a later version, the first version's.
    fn envelope(
        &self,
        job: &Job<'_>,
        ctx: &Context,
        ids: (String, Option<String>),
    ) -> Result<Envelope, RenderError> {
        let s = &self.settings;
        let from_name = one_line(&self.inline("from_name", ctx)?, MAX_NAME_CHARS);
        let from = message::mailbox(Some(&from_name), &s.from).ok_or_else(|| {
            self.rendered_wrong(
                "from",
                &MessageError::Recipients {
                    text: s.from.clone(),
                },
            )
        })?;
        let mut headers = Vec::new();
        for name in s.headers.keys() {
            let value = one_line(
                &self.inline(&format!("headers.{name}"), ctx)?,
                MAX_HEADER_CHARS,
            );
            if !value.is_empty() {
                headers.push((name.clone(), value));
            }
        }
        let received = u64::try_from(job.conversation.received_at).unwrap_or(0);
        Ok(Envelope {
            from,
            to: self.recipients("to", &s.to, ctx)?,
            cc: self.recipients("cc", &s.cc, ctx)?,
            bcc: self.recipients("bcc", &s.bcc, ctx)?,
            reply_to: self.reply_to(ctx.data()),
            subject: one_line(&self.inline("subject", ctx)?, MAX_SUBJECT_CHARS),
            message_id: ids.0,
            in_reply_to: ids.1,
            date: SystemTime::UNIX_EPOCH + Duration::from_millis(received),
            headers,
        })
    }

    /// Renders and formats the message, with as much of the transcript as fits.
    fn build(&self, job: &Job<'_>) -> Result<Built, RenderError> {
        let mut ctx = job.context.clone();
        let (key, version) = (&job.conversation.key, job.conversation.version);
        let message_id = message::message_id(key, version, &self.domain);
        let in_reply_to = (version > 1).then(|| message::message_id(key, 1, &self.domain));
        let all: Vec<Value> = ctx.data()["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ctx.data_mut()["email"] = json!({
            "messageId": message_id,
            "inReplyTo": in_reply_to,
            "omittedMessages": 0,
            "maxMessageBytes": self.settings.max_message_bytes,
        });
        let envelope = self.envelope(job, &ctx, (message_id.clone(), in_reply_to))?;
        let total = all.len();
        let fitted = message::fit(total, self.settings.max_message_bytes, |kept| {
            let mut ctx = ctx.clone();
            let data = ctx.data_mut();
            data["messages"] = Value::Array(all[..kept].to_vec());
            data["email"]["omittedMessages"] = json!(total - kept);
            let text = self
                .shared
                .renderer
                .render(&self.settings.text_template, &ctx)?;
            let html = self
                .shared
                .renderer
                .render(&self.settings.html_template, &ctx)?;
            message::build(&envelope, text, html)
                .map(|m| m.formatted())
                .map_err(|e| self.rendered_wrong("to", &e))
        })?;
        let (bytes, kept) = fitted.map_err(|e| RenderError::Render {
            name: self.settings.text_template.clone(),
            message: e.to_string(),
        })?;
        let smtp_envelope =
            message::smtp_envelope(&envelope).map_err(|e| self.rendered_wrong("to", &e))?;
        Ok(Built {
            bytes,
            envelope: smtp_envelope,
            message_id,
            omitted: total - kept,
        })
    }
}

fn one_line(text: &str, max: usize) -> String {
    message::one_line(text, max)
}

impl Destination for Email {
    fn name(&self) -> &str {
        &self.name
    }

    fn requests(&self, job: &Job<'_>) -> Result<Vec<Request>, RenderError> {
        let built = self.build(job)?;
        let mut headers = vec![(
            "tls".to_string(),
            match self.settings.tls_mode() {
                EmailTls::Starttls => "starttls (required)",
                EmailTls::Tls => "tls",
                EmailTls::None => "none",
            }
            .to_string(),
            false,
        )];
        if let (Some(user), Some(_)) = (&self.settings.username, &self.settings.password) {
            headers.push(("auth".into(), user.expose().to_string(), true));
        }
        let from = built
            .envelope
            .from()
            .map(ToString::to_string)
            .unwrap_or_default();
        headers.push(("mail-from".into(), from, false));
        for to in built.envelope.to() {
            headers.push(("rcpt-to".into(), to.to_string(), false));
        }
        Ok(vec![Request {
            secret_path: false,
            method: "SEND".into(),
            url: self.settings.smtp_url.clone(),
            headers,
            body: String::from_utf8_lossy(&built.bytes).into_owned(),
        }])
    }

    fn deliver<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(async move {
            let built = self.build(job)?;
            if built.omitted > 0 {
                tracing::info!(
                    omitted = built.omitted,
                    bytes = built.bytes.len(),
                    "the transcript was cut to fit max_message_bytes"
                );
            }
            let mut delivered = smtp::send(
                self.transport()?,
                self.timeout,
                &built.envelope,
                &built.bytes,
            )
            .await?;
            tracing::info!(message_id = %built.message_id, "email accepted by the SMTP server");
            delivered.result = Some(json!({ "message_id": built.message_id }).to_string());
            Ok(delivered)
        })
    }

    fn sample_previous(&self) -> Option<String> {
        Some(r#"{"message_id": "<sample-v1@example.com>"}"#.into())
    }

    fn links(&self, result: &Value) -> Vec<super::Link> {
        result["message_id"]
            .as_str()
            .map(|id| super::Link {
                label: "message".into(),
                id: id.to_string(),
                url: None,
            })
            .into_iter()
            .collect()
    }

    fn template_vars(&self) -> Map<String, Value> {
        let mut vars = Map::new();
        vars.insert("kind".into(), json!("email"));
        vars.insert("timeZone".into(), json!(self.settings.time_zone.name()));
        vars
    }
}
