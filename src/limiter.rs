//! Failed credentials per client: admin sign-ins, admin Bearer tokens and hook tokens share one
//! limiter, so no secret can be guessed online at full speed. Bounded: at most
//! [`MAX_CLIENTS`] addresses are tracked (IPv6 clients by their /64, which one host usually
//! owns whole), clients beyond that share one bucket, and expired entries are pruned by a timer
//! ([`Limiter::prune`]), never on the request path.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per client within [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most clients tracked one by one.
pub const MAX_CLIENTS: usize = 10_000;

/// Failures of one client (or of the overflow) since `since`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    failures: u32,
    since: Instant,
    /// When the log last said that this address forwards for others.
    warned: Option<Instant>,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            since: now,
            warned: None,
        }
    }
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.since) >= WINDOW
    }
}

#[derive(Default)]
struct Inner {
    clients: HashMap<IpAddr, Bucket>,
    overflow: Option<Bucket>,
}

/// Counts failed credentials per client and refuses a client after [`MAX_FAILURES`] in
/// [`WINDOW`].
#[derive(Default)]
pub struct Limiter {
    inner: Mutex<Inner>,
    /// Whether anything is counted at all: the request path takes no lock while nobody failed.
    counting: AtomicBool,
}

/// Who a request comes from, as the limiter counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client address (after trusted-proxy handling).
    pub ip: IpAddr,
    /// Whether the request named other clients (`X-Forwarded-For`, `X-Real-IP`) from a peer
    /// that is not a trusted proxy: the peer is probably a proxy missing from
    /// `server.trusted_proxies`, and everyone behind it shares its count.
    pub untrusted_proxy: bool,
}

/// The key a client is counted under: IPv4 addresses whole, IPv6 addresses by their /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Limiter {
    /// `Err(seconds to wait)` when `client` has failed too often.
    pub fn check(&self, client: Option<Client>) -> Result<(), u64> {
        let Some(client) = client else { return Ok(()) };
        if !self.counting.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let ip = key(client.ip);
        let full = inner.clients.len() >= MAX_CLIENTS;
        let bucket = match inner.clients.get_mut(&ip) {
            Some(bucket) => bucket,
            None if full => match inner.overflow.as_mut() {
                Some(bucket) => bucket,
                None => return Ok(()),
            },
            None => return Ok(()),
        };
        if bucket.failures < MAX_FAILURES || bucket.expired(now) {
            return Ok(());
        }
        if client.untrusted_proxy
            && bucket
                .warned
                .is_none_or(|at| now.duration_since(at) >= WINDOW)
        {
            bucket.warned = Some(now);
            tracing::warn!(
                address = %client.ip,
                "failed credentials from an address that forwards for other clients lock out everyone behind it; if it is your proxy, add it to server.trusted_proxies"
            );
        }
        Err((WINDOW - now.duration_since(bucket.since)).as_secs().max(1))
    }

    /// Counts a failure of `client`.
    pub fn failed(&self, client: Option<Client>) {
        let Some(client) = client else { return };
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        self.counting.store(true, Ordering::Relaxed);
        let ip = key(client.ip);
        let full = inner.clients.len() >= MAX_CLIENTS;
        let bucket = if full && !inner.clients.contains_key(&ip) {
            inner.overflow.get_or_insert_with(|| Bucket::new(now))
        } else {
            inner.clients.entry(ip).or_insert_with(|| Bucket::new(now))
        };
        if bucket.expired(now) {
            *bucket = Bucket::new(now);
        }
        bucket.failures = bucket.failures.saturating_add(1);
    }

    /// Drops the counts whose window has passed; returns how many clients are still counted.
    pub fn prune(&self) -> usize {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        inner.clients.retain(|_, b| !b.expired(now));
        if inner.overflow.is_some_and(|b| b.expired(now)) {
            inner.overflow = None;
        }
        let left = inner.clients.len() + usize::from(inner.overflow.is_some());
        self.counting.store(left > 0, Ordering::Relaxed);
        left
    }

    /// Prunes every minute, for as long as the runtime runs.
    pub fn prune_every_minute(limiter: std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                limiter.prune();
            }
        })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        lock(&self.inner).clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ip: &str) -> Option<Client> {
        Some(Client {
            ip: ip.parse().unwrap(),
            untrusted_proxy: false,
        })
    }

    #[test]
    fn failures_are_limited_per_address() {
        let limiter = Limiter::default();
        for _ in 0..MAX_FAILURES {
            assert!(limiter.check(client("10.0.0.1")).is_ok());
            limiter.failed(client("10.0.0.1"));
        }
        assert!(limiter.check(client("10.0.0.1")).is_err());
        assert!(limiter.check(client("10.0.0.2")).is_ok());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let limiter = Limiter::default();
        for i in 0..MAX_FAILURES {
            limiter.failed(client(&format!("2001:db8:1:2::{i:x}")));
        }
        assert!(
            limiter.check(client("2001:db8:1:2:ffff::1")).is_err(),
            "fresh addresses in the same /64 share one count"
        );
        assert!(limiter.check(client("2001:db8:1:3::1")).is_ok());
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn the_map_is_bounded_and_clients_beyond_it_share_one_count() {
        let limiter = Limiter::default();
        for i in 0..MAX_CLIENTS as u32 {
            limiter.failed(client(
                &std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string(),
            ));
        }
        assert_eq!(limiter.tracked(), MAX_CLIENTS);
        for i in 0..MAX_FAILURES {
            limiter.failed(client(&format!("192.0.2.{i}")));
        }
        assert_eq!(limiter.tracked(), MAX_CLIENTS, "never more entries");
        assert!(
            limiter.check(client("198.51.100.1")).is_err(),
            "beyond the bound, strangers share the overflow's count"
        );
        assert!(
            limiter.check(client("10.0.0.5")).is_ok(),
            "known clients keep their own"
        );
    }

    #[test]
    fn pruning_keeps_counts_within_their_window() {
        let limiter = Limiter::default();
        limiter.failed(client("10.0.0.1"));
        assert_eq!(limiter.prune(), 1);
        assert!(limiter.check(client("10.0.0.1")).is_ok());
    }
}
