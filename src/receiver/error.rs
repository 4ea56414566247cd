//! `ReceiveError`: every way a hook request can be refused, and its HTTP answer.

use crate::metrics::HookOutcome;
use crate::smartsupp::IdentityError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// Why a hook was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The token in the URL is not one of `server.hook_tokens`.
    #[error("unauthorized")]
    Unauthorized,
    /// A Webhooks API event whose `X-Smartsupp-Hmac` is missing or wrong.
    #[error("bad signature")]
    BadSignature,
    /// Too many wrong tokens from this client lately; wait this many seconds.
    #[error("too many failed attempts from this address; try again in {0} seconds")]
    TooMany(u64),
    /// The body did not arrive within `server.body_timeout`.
    #[error("the body did not arrive within {}", crate::config::HumanDuration(*.0))]
    SlowBody(std::time::Duration),
    /// The body is larger than `server.max_body_bytes`.
    #[error("body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// The body could not be read from the connection.
    #[error("cannot read the body: {0}")]
    Read(String),
    /// Not JSON, not an object, or not a conversation.
    #[error(transparent)]
    Body(#[from] IdentityError),
    /// The store could not commit; nothing was acknowledged.
    #[error("the store cannot accept the conversation now; try again later")]
    Unavailable(#[source] crate::store::StoreError),
}

impl ReceiveError {
    /// The metric outcome of this refusal.
    pub fn outcome(&self) -> HookOutcome {
        match self {
            Self::Unauthorized | Self::BadSignature => HookOutcome::Unauthorized,
            Self::TooMany(_) => HookOutcome::Limited,
            Self::SlowBody(_) => HookOutcome::BadRequest,
            Self::TooLarge(_) => HookOutcome::TooLarge,
            Self::Read(_) => HookOutcome::BadRequest,
            Self::Body(IdentityError::NotConversation(_)) => HookOutcome::Unprocessable,
            Self::Body(_) => HookOutcome::BadRequest,
            Self::Unavailable(_) => HookOutcome::Unavailable,
        }
    }
}

impl ResponseError for ReceiveError {
    fn status_code(&self) -> StatusCode {
        match self {
            // No detail: a wrong token learns nothing.
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            // No detail either: a forged event learns nothing.
            Self::BadSignature => StatusCode::UNAUTHORIZED,
            // Tokens cannot be guessed at full speed; Retry-After says when to come back.
            Self::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            // The sender stalled; nothing was stored.
            Self::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
            // Refused before parsing.
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            // The connection broke or the body was malformed on the wire.
            Self::Read(_) => StatusCode::BAD_REQUEST,
            // Valid JSON object that is not a conversation: the sender's data is wrong.
            Self::Body(IdentityError::NotConversation(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            // Not JSON, or not an object.
            Self::Body(_) => StatusCode::BAD_REQUEST,
            // Nothing stored; Smartsupp may retry.
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let Self::Unauthorized | Self::BadSignature = self {
            return HttpResponse::build(status).finish();
        }
        if let Self::TooMany(seconds) = self {
            return HttpResponse::build(status)
                .insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()))
                .json(serde_json::json!({ "status": "error", "error": self.to_string() }));
        }
        HttpResponse::build(status).json(serde_json::json!({
            "status": "error",
            "error": self.to_string(),
        }))
    }
}
