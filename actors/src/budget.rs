//! What one WebSocket connection may send: frames per second and bytes per
//! second, each a token bucket (`governor`'s GCRA, one second's worth of
//! burst). A frame over either budget is refused; a client that keeps going
//! over it is told to stop.
//!
//! Pure bookkeeping, no I/O: the connection actor asks [`FrameBudget::take`]
//! for every frame it reads and acts on the [`Verdict`].

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// How long refused frames are counted together before the count restarts.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(10);

/// Refused frames tolerated within [`STRIKE_WINDOW`] at the least (at the
/// most: one second's frame budget).
pub const MIN_STRIKES: u32 = 16;

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget: handle it.
    Accept,
    /// Over budget: answer `rate_limited` and drop it.
    Refuse,
    /// Over budget for too long: answer `error rate_limited` and close
    /// (1008).
    Close,
}

/// The budgets of one connection.
pub struct FrameBudget {
    frames: Option<DefaultDirectRateLimiter>,
    bytes: Option<DefaultDirectRateLimiter>,
    /// Refused frames tolerated per window before [`Verdict::Close`].
    tolerance: u32,
    refused: u32,
    window_start: Instant,
}

impl FrameBudget {
    /// `frames_per_sec` and `bytes_per_sec` per second (0: unlimited). The
    /// byte bucket holds at least `max_message_bytes`, so one message of
    /// the largest allowed size always fits into a full bucket.
    pub fn new(frames_per_sec: u32, bytes_per_sec: u32, max_message_bytes: usize) -> Self {
        let frames = NonZeroU32::new(frames_per_sec)
            .map(|rate| RateLimiter::direct(Quota::per_second(rate).allow_burst(rate)));
        let bytes = NonZeroU32::new(bytes_per_sec).map(|rate| {
            let largest = u32::try_from(max_message_bytes).unwrap_or(u32::MAX);
            let burst = NonZeroU32::new(largest.max(rate.get())).unwrap_or(rate);
            RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            frames,
            bytes,
            tolerance: frames_per_sec.max(MIN_STRIKES),
            refused: 0,
            window_start: Instant::now(),
        }
    }

    /// Takes one frame of `len` bytes from the budgets.
    pub fn take(&mut self, len: usize) -> Verdict {
        let frame_ok = self.frames.as_ref().is_none_or(|l| l.check().is_ok());
        let bytes_ok = frame_ok
            && self.bytes.as_ref().is_none_or(|l| {
                let n = u32::try_from(len.max(1)).unwrap_or(u32::MAX);
                let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
                matches!(l.check_n(n), Ok(Ok(())))
            });
        if frame_ok && bytes_ok {
            return Verdict::Accept;
        }
        let now = Instant::now();
        if now.duration_since(self.window_start) > STRIKE_WINDOW {
            self.window_start = now;
            self.refused = 0;
        }
        self.refused += 1;
        if self.refused > self.tolerance {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_accepts_everything() {
        let mut b = FrameBudget::new(0, 0, 1024);
        for _ in 0..10_000 {
            assert_eq!(b.take(1 << 20), Verdict::Accept);
        }
    }

    #[test]
    fn a_burst_over_the_frame_budget_is_refused_then_closed() {
        let mut b = FrameBudget::new(20, 0, 1024);
        // One second's worth passes at once (the burst).
        for _ in 0..20 {
            assert_eq!(b.take(10), Verdict::Accept);
        }
        // Then refusals, up to the tolerance (the frame budget, at least 16).
        let tolerance = 20;
        for _ in 0..tolerance {
            assert_eq!(b.take(10), Verdict::Refuse);
        }
        assert_eq!(b.take(10), Verdict::Close);
    }

    #[test]
    fn the_byte_budget_counts_bytes_and_fits_the_largest_message() {
        let mut b = FrameBudget::new(0, 100, 1000);
        // A full bucket holds the largest message even above the rate.
        assert_eq!(b.take(1000), Verdict::Accept);
        assert_eq!(b.take(1000), Verdict::Refuse);
        // Larger than any bucket: always refused.
        let mut b = FrameBudget::new(0, 100, 1000);
        assert_eq!(b.take(5000), Verdict::Refuse);
    }
}
