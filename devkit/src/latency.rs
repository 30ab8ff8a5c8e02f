//! Added latency for the emulators, so a run on loopback can behave like one against the real
//! services: a fixed delay (the median) and an optional tail, drawn from a small seeded
//! pseudo-random generator so two runs see the same sequence of delays. Zero by default: the
//! emulators answer at once unless a latency is set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long an emulated service takes to answer: `base` for most calls, and for a share
/// `tail_share` (0.0–1.0) of them a delay drawn uniformly from `tail_min..=tail_max` instead.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub base: Duration,
    pub tail_share: f64,
    pub tail_min: Duration,
    pub tail_max: Duration,
}

impl Latency {
    /// No added latency (the default).
    pub const ZERO: Latency = Latency {
        base: Duration::ZERO,
        tail_share: 0.0,
        tail_min: Duration::ZERO,
        tail_max: Duration::ZERO,
    };

    /// The same delay for every call.
    pub fn fixed(base: Duration) -> Self {
        Self { base, ..Self::ZERO }
    }

    /// `base` for most calls; for `share` of them a delay from `min..=max`.
    pub fn with_tail(base: Duration, share: f64, min: Duration, max: Duration) -> Self {
        Self {
            base,
            tail_share: share.clamp(0.0, 1.0),
            tail_min: min,
            tail_max: max.max(min),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.base.is_zero() && (self.tail_share == 0.0 || self.tail_max.is_zero())
    }

    /// The expected delay of one call.
    pub fn mean(&self) -> Duration {
        let tail = (self.tail_min + self.tail_max) / 2;
        self.base.mul_f64(1.0 - self.tail_share) + tail.mul_f64(self.tail_share)
    }

    /// One call's delay.
    pub fn sample(&self, rng: &Jitter) -> Duration {
        if self.tail_share > 0.0 && rng.next_f64() < self.tail_share {
            let span = (self.tail_max - self.tail_min).as_secs_f64();
            return self.tail_min + Duration::from_secs_f64(span * rng.next_f64());
        }
        self.base
    }

    /// Waits one call's delay (nothing when zero).
    pub async fn wait(&self, rng: &Jitter) {
        if self.is_zero() {
            return;
        }
        let d = self.sample(rng);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

/// SplitMix64 behind an atomic counter: deterministic for a given seed and order of calls,
/// shareable between tasks without a lock.
#[derive(Debug)]
pub struct Jitter(AtomicU64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::new(0x5EED_1A7E_2026)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_by_default_and_tails_in_range() {
        assert!(Latency::default().is_zero());
        let rng = Jitter::new(7);
        let l = Latency::with_tail(
            Duration::from_millis(400),
            0.1,
            Duration::from_millis(800),
            Duration::from_millis(1200),
        );
        let samples: Vec<Duration> = (0..10_000).map(|_| l.sample(&rng)).collect();
        let tail = samples.iter().filter(|d| **d > l.base).count();
        assert!((800..1200).contains(&tail), "{tail}");
        assert!(
            samples
                .iter()
                .all(|d| *d == l.base || (l.tail_min..=l.tail_max).contains(d))
        );
        let again: Vec<Duration> = {
            let rng = Jitter::new(7);
            (0..100).map(|_| l.sample(&rng)).collect()
        };
        assert_eq!(again, samples[..100]);
    }
}
