//! `Retry-After` values and configured durations: parsing never panics, results stay
//! bounded, and the worker's arithmetic on them (the next attempt's time, a destination's
//! pause) cannot overflow.
#![no_main]

use deskbridge::config::HumanDuration;
use deskbridge::destinations::http::{parse_retry_after, MAX_RETRY_AFTER};
use deskbridge::worker::backoff::{next_delay, JITTER};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant, SystemTime};

/// The longest configured duration: ten years.
const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 86_400);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A `now` anywhere from 1970 to about 2106, taken from the input's length and bytes.
    let seconds = data
        .iter()
        .fold(data.len() as u64, |a, b| a.wrapping_mul(31) ^ u64::from(*b));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds % (1 << 32));
    let retry_after = parse_retry_after(text, now);
    if let Some(wait) = retry_after {
        assert!(wait <= MAX_RETRY_AFTER, "{text:?} gives {wait:?}");
        assert!(Instant::now().checked_add(wait).is_some());
    }
    let mut schedule = Vec::new();
    for part in text.split(',') {
        if let Ok(d) = HumanDuration::parse(part) {
            assert!(d.0 <= MAX_DURATION, "{part:?} gives {d:?}");
            let now_ms = 1_800_000_000_000_i64;
            assert!(d.before(now_ms) >= now_ms - MAX_DURATION.as_millis() as i64);
            schedule.push(d.0);
        }
    }
    for attempts in 0..=schedule.len() as i64 + 1 {
        for jitter in [0.0, 0.999_999] {
            if let Some(wait) = next_delay(attempts, &schedule, retry_after, jitter) {
                let longest = MAX_DURATION.mul_f64(1.0 + JITTER).max(MAX_RETRY_AFTER);
                assert!(wait <= longest, "{wait:?}");
                let ms = i64::try_from(wait.as_millis()).expect("fits in i64");
                assert!(1_800_000_000_000_i64.checked_add(ms).is_some());
            }
        }
    }
});
