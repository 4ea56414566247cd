//! Sending a rendered request and classifying the response (DESIGN.md, delivery semantics).

use super::{Delivered, DeliveryError, Request};
use std::time::{Duration, SystemTime};

/// Longest response excerpt kept in the attempt log.
pub const EXCERPT_CHARS: usize = 512;
/// The most of a response body that is read; the rest is dropped unread, so a hostile or
/// broken destination cannot exhaust memory with an endless answer.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A response as a destination sees it.
#[derive(Debug)]
pub struct Exchange {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, parsed.
    pub retry_after: Option<Duration>,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Response body as text: at most [`MAX_RESPONSE_BYTES`] of it.
    pub body: String,
}

impl Exchange {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `request`; a network error or timeout is a retryable failure, any response is
/// returned for the destination to classify. Under a traced attempt, the request is a span of
/// its own and carries it as W3C `traceparent`, so the receiver's spans join the trace.
pub async fn exchange(
    client: &reqwest::Client,
    request: &Request,
) -> Result<Exchange, DeliveryError> {
    let mut span = crate::telemetry::spans::http_request(&request.method, &request.url);
    let result = send_request(client, request, span.context()).await;
    match &result {
        Ok(response) => {
            span.set("http.response.status_code", response.status);
            if response.status >= 400 {
                span.fail(format!("HTTP {}", response.status));
            }
        }
        Err(e) => span.fail(crate::telemetry::spans::reason(&e.to_string())),
    }
    result
}

async fn send_request(
    client: &reqwest::Client,
    request: &Request,
    trace: Option<crate::telemetry::trace::SpanContext>,
) -> Result<Exchange, DeliveryError> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
        DeliveryError::Permanent {
            reason: format!("{:?} is not an HTTP method", request.method),
            status: None,
            excerpt: None,
        }
    })?;
    let mut builder = client.request(method, &request.url);
    for (name, value, _) in &request.headers {
        builder = builder.header(name, value);
    }
    if let Some(trace) = trace {
        builder = builder.header("traceparent", trace.traceparent());
    }
    if !request.body.is_empty() {
        builder = builder.body(request.body.clone());
    }
    let response = builder.send().await.map_err(network_error)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = read_capped(response, MAX_RESPONSE_BYTES)
        .await
        .map_err(network_error)?;
    Ok(Exchange {
        status,
        retry_after,
        headers,
        body,
    })
}

/// Reads at most `cap` bytes of the body (as UTF-8, invalid sequences replaced) and drops the
/// connection with the rest unread.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Sends `request` and classifies the outcome by status alone.
pub async fn send(client: &reqwest::Client, request: &Request) -> Result<Delivered, DeliveryError> {
    let response = exchange(client, request).await?;
    classify(
        response.status,
        response.retry_after,
        excerpt(&response.body),
    )
}

/// A failed exchange as a retryable error. The URL is left out: it may carry credentials
/// (userinfo, a token in the query string), and the attempt log, the admin pages and the logs
/// show this text.
fn network_error(e: reqwest::Error) -> DeliveryError {
    let e = e.without_url();
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    DeliveryError::Retryable {
        reason: format!("{what}: {}", error_chain(&e)),
        status: None,
        retry_after: None,
        excerpt: None,
    }
}

/// The error and its causes on one line; a cause that its error already quotes (as
/// tokio-postgres errors do) is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = s.source();
    }
    text
}

/// The start of a response body, cut at a character boundary.
pub fn excerpt(body: &str) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    Some(crate::text::truncate(body, EXCERPT_CHARS, "…"))
}

/// 2xx done; 408, 425, 429 and 5xx except 501 retryable; anything else permanent.
pub fn classify(
    status: u16,
    retry_after: Option<Duration>,
    excerpt: Option<String>,
) -> Result<Delivered, DeliveryError> {
    match status {
        200..=299 => Ok(Delivered {
            status: Some(status),
            excerpt,
            result: None,
        }),
        408 | 425 | 429 | 500 | 502..=599 => Err(DeliveryError::Retryable {
            reason: format!("HTTP {status}"),
            status: Some(status),
            retry_after,
            excerpt,
        }),
        300..=399 => Err(DeliveryError::Permanent {
            reason: format!("HTTP {status}: redirects are not followed; configure the final URL"),
            status: Some(status),
            excerpt,
        }),
        _ => Err(DeliveryError::Permanent {
            reason: format!("HTTP {status}"),
            status: Some(status),
            excerpt,
        }),
    }
}

/// Longest `Retry-After` honoured: one day (HubSpot's daily quota is the longest wait any
/// destination asks for). A longer one is read as this, so a destination cannot park
/// deliveries for years, and adding it to a clock can never overflow.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// `Retry-After` as delay seconds or an HTTP date (relative to `now`), at most
/// [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_designed() {
        let retry = |s| {
            matches!(
                classify(s, None, None),
                Err(DeliveryError::Retryable { .. })
            )
        };
        let dead = |s| {
            matches!(
                classify(s, None, None),
                Err(DeliveryError::Permanent { .. })
            )
        };
        for s in [200, 201, 204, 299] {
            assert!(classify(s, None, None).is_ok(), "{s}");
        }
        for s in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert!(retry(s), "{s} should be retried");
        }
        for s in [301, 400, 401, 403, 404, 409, 422, 501] {
            assert!(dead(s), "{s} should be dead");
        }
    }

    #[test]
    fn a_cause_the_error_already_quotes_is_not_repeated() {
        #[derive(Debug)]
        struct Quoting(std::io::Error);
        impl std::fmt::Display for Quoting {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "handshake failed: {}", self.0)
            }
        }
        impl std::error::Error for Quoting {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Quoting(std::io::Error::other("bad certificate"));
        assert_eq!(error_chain(&e), "handshake failed: bad certificate");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    /// Found by fuzzing (fuzz/fuzz_targets/durations.rs): a huge delay made Zendesk's and
    /// HubSpot's `Instant::now() + wait` panic and the worker's next-attempt time overflow.
    #[test]
    fn retry_after_is_bounded() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        for value in [
            "77777777777777777",
            "18446744073709551615",
            "86401",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            let wait = parse_retry_after(value, now).unwrap();
            assert_eq!(wait, MAX_RETRY_AFTER, "{value}");
            assert!(std::time::Instant::now().checked_add(wait).is_some());
        }
        assert_eq!(
            parse_retry_after("86400", now),
            Some(Duration::from_secs(86_400))
        );
    }
}
