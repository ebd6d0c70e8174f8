//! Exponential backoff with jitter for reconnect loops, so that many workers that lost
//! the broker at once do not hammer it in lockstep when it returns.

use std::time::Duration;

/// Doubling delays from `min` up to `max`, each with up to ±20 % jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            current: min,
        }
    }

    /// The delay to wait now; the next one is twice as long (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        // Jitter from the random bits of a v4 UUID: ±20 % of the base delay.
        let unit = (uuid::Uuid::new_v4().as_u128() % 1_000) as f64 / 1_000.0;
        base.mul_f64(0.8 + 0.4 * unit)
    }

    /// Back to the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
        b.next_delay();
        for _ in 0..5 {
            let d = b.next_delay();
            assert!(
                d <= Duration::from_millis(480) && d >= Duration::from_millis(320),
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }
}
