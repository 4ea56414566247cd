//! Why an admin request failed, answered as JSON by the API and as a page by the dashboard.

use crate::store::StoreError;
use actix_web::http::StatusCode;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The dashboard is off, or nothing has that id or key.
    #[error("{0}")]
    NotFound(String),
    /// A parameter is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// No valid session or token.
    #[error(
        "sign in first: send the admin token as Authorization: Bearer, or sign in at /admin/login"
    )]
    Unauthorized,
    /// A state-changing request without a valid CSRF token, or from another site.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed sign-ins from this address.
    #[error("too many failed sign-ins from this address; try again in {0} seconds")]
    TooMany(u64),
    /// The request body is larger than this many bytes.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The request body did not arrive in time.
    #[error("the request body did not arrive in time")]
    SlowBody,
    /// The store cannot answer.
    #[error("{0}")]
    Unavailable(#[from] StoreError),
    /// A page could not be rendered.
    #[error("the page could not be rendered: {0}")]
    Render(String),
}

impl AdminError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::SlowBody => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The dashboard is off (answered as if there were no such page).
    pub fn off() -> Self {
        Self::NotFound("not found".into())
    }

    /// A state-changing request failed the CSRF or same-origin check.
    pub fn csrf() -> Self {
        Self::Forbidden(
            "this request did not come from a deskbridge admin page (missing or wrong CSRF token, or another site's origin); reload the page and try again".into(),
        )
    }
}
