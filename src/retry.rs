//! Waiting for something to become true, with backoff and a deadline: the one helper every
//! loop that waits uses (a service becoming usable, a reloaded certificate being served, Qdrant
//! answering after a restart, the stack directory's lock being released). An attempt says
//! whether it succeeded, may be tried again, or failed for good; the deadline turns the last
//! retryable error into the error.

use std::future::Future;
use std::time::{Duration, Instant};

/// What one attempt found.
pub enum Attempt<T> {
    Done(T),
    /// Not yet: try again after the next delay.
    Retry(anyhow::Error),
    /// Never will: stop now.
    Fail(anyhow::Error),
}

/// How to wait: the first delay, the longest (each delay is half as long again as the one
/// before, up to it), and how long in all.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub most: Duration,
    pub deadline: Duration,
}

/// The deadline passed: the last attempt's error.
#[derive(Debug, thiserror::Error)]
#[error("not so after {}s: {last:#}", .after.as_secs())]
pub struct Exhausted {
    pub after: Duration,
    pub last: anyhow::Error,
}

impl Backoff {
    /// The same delay between attempts, for at most `deadline`.
    pub const fn every(delay: Duration, deadline: Duration) -> Backoff {
        Backoff { first: delay, most: delay, deadline }
    }

    /// Runs `attempt` until it is done or fails, or the deadline passes (an attempt that would
    /// start after it is not made).
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let started = Instant::now();
        let mut delay = self.first;
        loop {
            let last = match attempt().await {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(err) => return Err(err),
                Attempt::Retry(err) => err,
            };
            if started.elapsed() + delay > self.deadline {
                return Err(Exhausted { after: self.deadline, last }.into());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(self.most);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_until_done_stops_on_a_failure_and_gives_up_at_the_deadline() {
        let backoff = Backoff::every(Duration::from_millis(1), Duration::from_secs(5));
        let mut tries = 0;
        let done = backoff
            .run(|| {
                tries += 1;
                let now = tries;
                async move { if now < 3 { Attempt::Retry(anyhow::anyhow!("not yet")) } else { Attempt::Done(now) } }
            })
            .await
            .unwrap();
        assert_eq!(done, 3);
        let failed = backoff.run(|| async { Attempt::<()>::Fail(anyhow::anyhow!("never")) }).await.unwrap_err();
        assert_eq!(failed.to_string(), "never");
        let short = Backoff::every(Duration::from_millis(10), Duration::from_millis(50));
        let exhausted = short.run(|| async { Attempt::<()>::Retry(anyhow::anyhow!("still down")) }).await.unwrap_err();
        assert!(exhausted.downcast_ref::<Exhausted>().is_some(), "{exhausted:#}");
        assert!(format!("{exhausted:#}").contains("still down"));
    }
}
