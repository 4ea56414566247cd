//! When to try again: a pure function of the attempt count, the schedule, the destination's
//! `Retry-After` and a jitter draw.

use std::time::Duration;

/// The longest any delivery waits for its next attempt, whatever a schedule step, a
/// `Retry-After` or a deferral asks for.
pub const MAX_WAIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// The epoch ms `wait` after `now_ms`, with `wait` clamped to [`MAX_WAIT`].
pub fn due_at(now_ms: i64, wait: Duration) -> i64 {
    let ms = wait.min(MAX_WAIT).as_millis();
    now_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Largest share added to a scheduled wait, so retries of many deliveries spread out.
pub const JITTER: f64 = 0.1;

/// The wait before the next attempt after `attempts` failed attempts, or `None` when the
/// schedule is used up (the delivery is dead). The wait is the schedule's step plus up to
/// 10% (`jitter` in `[0, 1)`), and never shorter than `retry_after`.
pub fn next_delay(
    attempts: i64,
    schedule: &[Duration],
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let step = schedule.get(index)?;
    let jittered = step.mul_f64(1.0 + JITTER * jitter.clamp(0.0, 1.0));
    Some(jittered.max(retry_after.unwrap_or(Duration::ZERO)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: &[u64]) -> Vec<Duration> {
        secs.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn follows_the_schedule_then_gives_up() {
        let schedule = s(&[10, 60]);
        assert_eq!(
            next_delay(1, &schedule, None, 0.0),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            next_delay(2, &schedule, None, 0.0),
            Some(Duration::from_secs(60))
        );
        assert_eq!(next_delay(3, &schedule, None, 0.0), None);
        assert_eq!(next_delay(0, &schedule, None, 0.0), None);
    }

    #[test]
    fn jitter_adds_at_most_ten_percent() {
        let schedule = s(&[100]);
        let most = next_delay(1, &schedule, None, 0.999).unwrap();
        assert!(most >= Duration::from_secs(100) && most <= Duration::from_secs(110));
    }

    #[test]
    fn due_times_are_clamped_and_never_overflow() {
        assert_eq!(due_at(1_000, Duration::from_secs(2)), 3_000);
        let most = MAX_WAIT.as_millis() as i64;
        assert_eq!(due_at(1_000, Duration::MAX), 1_000 + most);
        assert_eq!(due_at(i64::MAX - 1, Duration::from_secs(1)), i64::MAX);
        let huge = next_delay(1, &s(&[1]), Some(Duration::from_secs(u64::MAX)), 0.9).unwrap();
        assert_eq!(due_at(0, huge), most);
    }

    #[test]
    fn retry_after_is_never_undercut() {
        let schedule = s(&[10]);
        let wait = next_delay(1, &schedule, Some(Duration::from_secs(120)), 0.5).unwrap();
        assert_eq!(wait, Duration::from_secs(120));
        let wait = next_delay(1, &schedule, Some(Duration::from_secs(1)), 0.0).unwrap();
        assert_eq!(wait, Duration::from_secs(10));
    }
}
