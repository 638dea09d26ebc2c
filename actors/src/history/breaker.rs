//! The writer's circuit breaker and retry backoff: pure state, no I/O.

use std::time::{Duration, Instant};

/// Circuit breaker states; the metric exports 0, 1, 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// Closed: try. `threshold` consecutive failures open it: do not try for
/// `open_for`. Then half-open: one probe; success closes, failure reopens.
#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    failures: u32,
    threshold: u32,
    open_for: Duration,
    opened_at: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            state: BreakerState::Closed,
            failures: 0,
            threshold: threshold.max(1),
            open_for,
            opened_at: None,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether an attempt may be made at `now` (moves open to half-open
    /// once the open period is over).
    pub fn allows(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed | BreakerState::HalfOpen => true,
            BreakerState::Open => {
                if self
                    .opened_at
                    .is_some_and(|t| now.duration_since(t) >= self.open_for)
                {
                    self.state = BreakerState::HalfOpen;
                    true
                } else {
                    false
                }
            }
        }
    }

    pub fn success(&mut self) {
        self.state = BreakerState::Closed;
        self.failures = 0;
        self.opened_at = None;
    }

    pub fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.state == BreakerState::HalfOpen || self.failures >= self.threshold {
            self.state = BreakerState::Open;
            self.opened_at = Some(now);
        }
    }
}

/// Delay before retry number `attempt` (0-based): `base * 2^attempt`,
/// capped at 2 s, then "equal jitter" (between half and all of it) so nodes
/// that lost the database together do not retry in lockstep.
pub fn backoff(base_ms: u64, attempt: u32, random: u64) -> Duration {
    let exp = base_ms
        .max(1)
        .saturating_mul(1u64 << attempt.min(16))
        .min(2000);
    let half = exp / 2;
    Duration::from_millis(half + random % (exp - half + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_probes_after_the_open_period() {
        let t0 = Instant::now();
        let open_for = Duration::from_millis(100);
        let mut b = Breaker::new(3, open_for);
        assert!(b.allows(t0));
        b.failure(t0);
        b.failure(t0);
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure(t0);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allows(t0 + Duration::from_millis(50)));
        assert!(b.allows(t0 + open_for));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // A failed probe reopens at once.
        b.failure(t0 + open_for);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allows(t0 + open_for + Duration::from_millis(1)));
        assert!(b.allows(t0 + open_for * 2));
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        b.failure(t0);
        assert_eq!(b.state(), BreakerState::Closed, "the count restarted");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for random in [0, 1, 7, u64::MAX] {
            let d0 = backoff(50, 0, random).as_millis();
            assert!((25..=50).contains(&d0), "{d0}");
            let d2 = backoff(50, 2, random).as_millis();
            assert!((100..=200).contains(&d2), "{d2}");
            let big = backoff(50, 30, random).as_millis();
            assert!((1000..=2000).contains(&big), "{big}");
        }
        assert_ne!(backoff(50, 3, 1), backoff(50, 3, 150), "jitter");
    }
}
