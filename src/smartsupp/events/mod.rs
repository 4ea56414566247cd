//! Smartsupp's Webhooks API: signed events, one per POST. [`envelope`] reads what the route
//! stores them by, [`signature`] checks `X-Smartsupp-Hmac`, [`assemble`] builds a closed
//! conversation into the legacy hook's model, and [`api`] completes it from the REST API.

pub mod api;
pub mod assemble;
pub mod envelope;
pub mod signature;

pub use api::{Api, ApiError};
pub use assemble::{assemble, is_closed, ApiData, ContactLookup, Inputs, Source};
pub use envelope::Envelope;
