//! deskbridge carries Smartsupp conversations into help desks, CRMs and webhooks.
//!
//! # Path of a conversation
//!
//! 1. [`receiver`] answers `POST /hooks/smartsupp/{token}`: it checks the token in constant
//!    time, reads at most `server.max_body_bytes`, and extracts the conversation's identity
//!    ([`smartsupp::Identity`]) without building a JSON tree unless routing needs one.
//! 2. [`routing`] picks the destinations whose `when` expression matches.
//! 3. [`store`] commits the raw body and one delivery per routed destination in one
//!    transaction (group commit, fsynced); only then does the receiver answer 200.
//! 4. [`worker`] lanes (one per destination) claim due deliveries with a short lease, build
//!    the template context ([`smartsupp::context`]), let the destination [`render`] and
//!    deliver its request(s), and record the attempt: done, retry at a later time, or dead.
//!    No database transaction is ever held across an outbound call.
//!
//! [`admin`] serves the dashboard and its JSON API over the same store.
//!
//! Nothing acknowledged is lost: a crash leaves leased deliveries that are retried at the next
//! start, and dead deliveries stay in the store with every attempt recorded.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod destinations;
pub mod limiter;
pub mod metrics;
pub mod oauth;
pub mod receiver;
pub mod redact;
pub mod render;
pub mod routing;
pub mod samples;
pub mod smartsupp;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod tokens;
pub mod worker;
