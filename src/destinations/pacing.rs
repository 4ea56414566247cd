//! Pacing: at most N requests per period to one destination (a sliding window), waiting
//! rather than being refused.

use crate::config::RateLimit;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::time::Instant;

/// A sliding-window limiter shared by the attempts of one destination.
pub struct Pacer {
    limit: RateLimit,
    sent: Mutex<VecDeque<Instant>>,
}

impl Pacer {
    /// A limiter for `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            sent: Mutex::new(VecDeque::with_capacity(limit.requests as usize)),
        }
    }

    /// Waits until one more request fits in the window, and counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.limit.per)
                {
                    sent.pop_front();
                }
                if sent.len() < self.limit.requests as usize {
                    sent.push_back(now);
                    return;
                }
                match sent.front() {
                    Some(oldest) => self.limit.per.saturating_sub(now.duration_since(*oldest)),
                    None => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_over_a_window() {
        let pacer = Pacer::new(RateLimit {
            requests: 3,
            per: Duration::from_secs(10),
        });
        let start = tokio::time::Instant::now();
        for _ in 0..7 {
            pacer.acquire().await;
        }
        // 3 at once, 3 more after 10 s, the seventh after 20 s.
        assert!(start.elapsed() >= Duration::from_secs(20));
        assert!(start.elapsed() < Duration::from_secs(21));
    }
}
