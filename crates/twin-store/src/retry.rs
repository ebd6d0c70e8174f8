//! Retrying transient failures with exponential backoff. Every store call is
//! idempotent (upserts are keyed by deterministic point ids), so a call that may or
//! may not have reached the server can simply be sent again.

use std::future::Future;
use std::time::Duration;

use crate::error::StoreError;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Delay before the first retry; doubled each time.
    pub base_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based): `base · 2^attempt`, capped,
    /// plus up to 25 % jitter so that many clients do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX));
        let capped = exp.min(self.max_delay);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = capped.mul_f64(f64::from(nanos % 1000) / 4000.0);
        capped + jitter
    }

    /// Runs `attempt` until it succeeds, fails with a non-transient error, or the
    /// retries are used up (then the last error is returned).
    pub async fn run<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_transient() && tries < self.retries => {
                    let delay = self.delay(tries);
                    tracing::warn!(
                        call = what,
                        attempt = tries + 1,
                        delay_ms = delay.as_millis() as u64,
                        error = %err,
                        "store call failed, retrying"
                    );
                    tokio::time::sleep(delay).await;
                    tries += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn delays_double_and_are_capped() {
        let policy = RetryPolicy {
            retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        let d0 = policy.delay(0);
        let d1 = policy.delay(1);
        let d5 = policy.delay(5);
        assert!(d0 >= Duration::from_millis(100) && d0 <= Duration::from_millis(125));
        assert!(d1 >= Duration::from_millis(200) && d1 <= Duration::from_millis(250));
        assert!(d5 >= Duration::from_millis(350) && d5 <= Duration::from_millis(438));
        assert!(policy.delay(40) <= Duration::from_millis(438));
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_others_are_not() {
        let policy = RetryPolicy {
            retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = policy
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::Unavailable("down".into()))
            })
            .await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let result: Result<(), _> = policy
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::InvalidArgument("bad".into()))
            })
            .await;
        assert!(matches!(result, Err(StoreError::InvalidArgument(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let result = policy
            .run("t", || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(StoreError::Unavailable("blip".into()))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(result.expect("second try works"), 7);
    }
}
