//! Per-connection token buckets, one per class of message, and an abuse counter.
//!
//! Buckets refill continuously at `rate` per second up to a burst of twice the rate. The time is
//! passed in, so the arithmetic is tested without sleeping.

use crate::config::RateLimits;
use std::time::{Duration, Instant};
use wagu_proto::client::RateClass;

#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate);
        Bucket {
            rate,
            burst: rate * 2.0,
            tokens: rate * 2.0,
            last: now,
        }
    }

    /// A bucket refilling at `per_minute / 60` a second, holding at most a minute's worth.
    pub(crate) fn per_minute(per_minute: u32, now: Instant) -> Self {
        let burst = f64::from(per_minute.max(1));
        Bucket {
            rate: burst / 60.0,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether the bucket has refilled completely (its state is then the same as a new one's).
    pub(crate) fn is_full(&self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + dt * self.rate >= self.burst
    }

    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
pub struct Limiter {
    presence: Bucket,
    chat: Bucket,
    commands: Bucket,
    media: Bucket,
    /// Times of recent refusals (rate-limited or malformed frames).
    strikes: std::collections::VecDeque<Instant>,
    abuse_threshold: usize,
}

const ABUSE_WINDOW: Duration = Duration::from_secs(10);

impl Limiter {
    pub fn new(cfg: &RateLimits, now: Instant) -> Self {
        Limiter {
            presence: Bucket::new(cfg.presence_per_sec, now),
            chat: Bucket::new(cfg.chat_per_sec, now),
            commands: Bucket::new(cfg.commands_per_sec, now),
            media: Bucket::new(cfg.media_per_sec, now),
            strikes: Default::default(),
            abuse_threshold: cfg.abuse_threshold as usize,
        }
    }

    /// Whether a message of this class may pass now.
    pub fn allow(&mut self, class: RateClass, now: Instant) -> bool {
        match class {
            RateClass::Presence => self.presence.take(now),
            RateClass::Chat => self.chat.take(now),
            RateClass::Media => self.media.take(now),
            RateClass::Command => self.commands.take(now),
        }
    }

    /// Records a refusal; returns true when the connection has crossed the abuse threshold.
    pub fn strike(&mut self, now: Instant) -> bool {
        self.strikes.push_back(now);
        while self
            .strikes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > ABUSE_WINDOW)
        {
            self.strikes.pop_front();
        }
        self.strikes.len() > self.abuse_threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let cfg = RateLimits {
            chat_per_sec: 5,
            ..RateLimits::default()
        };
        let mut l = Limiter::new(&cfg, t0);
        let passed = (0..20).filter(|_| l.allow(RateClass::Chat, t0)).count();
        assert_eq!(passed, 10, "burst is twice the rate");
        assert!(!l.allow(RateClass::Chat, t0));
        assert!(
            l.allow(RateClass::Chat, t0 + Duration::from_millis(200)),
            "refills at 5/s"
        );
        // Other kinds have their own buckets.
        assert!(l.allow(RateClass::Presence, t0));
    }

    #[test]
    fn strikes_trip_after_threshold_within_window() {
        let t0 = Instant::now();
        let cfg = RateLimits {
            abuse_threshold: 3,
            ..RateLimits::default()
        };
        let mut l = Limiter::new(&cfg, t0);
        assert!(!l.strike(t0));
        assert!(!l.strike(t0));
        assert!(!l.strike(t0));
        assert!(l.strike(t0));
        let mut l = Limiter::new(&cfg, t0);
        for i in 0..10 {
            assert!(
                !l.strike(t0 + Duration::from_secs(11 * i)),
                "old strikes expire"
            );
        }
    }
}
