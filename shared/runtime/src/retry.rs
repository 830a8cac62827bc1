//! Bounded exponential backoff with jitter that honours a server's `Retry-After`.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    /// Fraction of each delay that is randomised (0 = none, 1 = full jitter).
    pub jitter: f64,
    /// The longest `Retry-After` honoured; longer hints are capped to it.
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1 = first retry). A server's `Retry-After` hint
    /// replaces the exponential delay (it knows when it will be ready), with up to 10 % jitter so
    /// that many clients told the same moment do not return at once.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with(attempt, retry_after, &mut rand::rng())
    }

    pub fn delay_with(&self, attempt: u32, retry_after: Option<Duration>, rng: &mut impl Rng) -> Duration {
        if let Some(hint) = retry_after {
            let hint = hint.min(self.max_retry_after);
            return hint + hint.mul_f64(0.1 * rng.random::<f64>());
        }
        let exponent = attempt.saturating_sub(1).min(32) as i32;
        let base = (self.initial.as_secs_f64() * self.multiplier.powi(exponent)).min(self.max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let delay = base * (1.0 - jitter * rng.random::<f64>());
        Duration::from_secs_f64(delay.max(0.0))
    }
}

/// Sleeps unless `cancel` fires first; returns false when cancelled.
pub async fn sleep_or_cancel(delay: Duration, cancel: &tokio_util::sync::CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = cancel.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn delays_stay_within_bounds(attempt in 0u32..100, hint in proptest::option::of(0u64..1_000), seed in any::<u64>()) {
            let b = Backoff::default();
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            let hint = hint.map(Duration::from_secs);
            let d = b.delay_with(attempt, hint, &mut rng);
            match hint {
                Some(h) => {
                    let h = h.min(b.max_retry_after);
                    prop_assert!(d >= h && d <= h.mul_f64(1.1));
                }
                None => prop_assert!(d <= b.max),
            }
        }
    }

    #[test]
    fn grows_exponentially_without_jitter() {
        let b = Backoff { jitter: 0.0, ..Backoff::default() };
        assert_eq!(b.delay(1, None), Duration::from_millis(200));
        assert_eq!(b.delay(3, None), Duration::from_millis(800));
        assert_eq!(b.delay(30, None), Duration::from_secs(30));
    }
}
