//! Retries of `unavailable` answers, as a wrapper around any backend.
//!
//! Only `unavailable` is retried: the contract says the backend did not act and trying
//! again may work (a throttle, a network blip, a full disk). Every other answer, including
//! `deadline_exceeded`, goes back to the caller at once. Waits grow exponentially with full
//! jitter, honour the backend's `retry_after` (a backend asking for more than the longest
//! wait gets no retry: its answer, hint included, goes to the caller), and never end past
//! the operation's deadline: a retry whose wait would end after it is not made, and the
//! last answer is returned instead.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use stowage_protocol::{
    Bytes, CountQuery, Document, DocumentKey, ErrorCode, ListPage, ListQuery, PluginError,
    PluginInfo, Precondition, SecretBytes, SecretListQuery, SecretPage, SecretRef,
};

use crate::backend::{SecretsBackend, StorageBackend};
use crate::error::{Error, Result};

/// How retries are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub retries: u32,
    /// The first wait's ceiling; each further wait's ceiling doubles.
    pub base: Duration,
    /// The largest wait.
    pub max_wait: Duration,
    /// The whole operation's deadline, measured from its start.
    pub deadline: Duration,
}

impl RetryPolicy {
    /// `retries` retries within `deadline`, waits from 100 ms up to 5 s.
    pub fn new(retries: u32, deadline: Duration) -> Self {
        RetryPolicy {
            retries,
            base: Duration::from_millis(100),
            max_wait: Duration::from_secs(5),
            deadline,
        }
    }

    /// The wait before retry number `attempt` (1-based): the backend's hint if it gave
    /// one, else a random wait up to the exponential ceiling (full jitter, so that many
    /// clients throttled together do not retry together). `None` when the backend asked
    /// for a longer wait than [`max_wait`](Self::max_wait): the caller gets the answer,
    /// hint included, rather than a retry that ignores it.
    pub fn wait(&self, attempt: u32, hint: Option<Duration>) -> Option<Duration> {
        match hint {
            Some(hint) => (hint <= self.max_wait).then_some(hint),
            None => Some(self.backoff(attempt)),
        }
    }

    /// A random wait up to the exponential ceiling of retry number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_wait);
        ceiling.mul_f64(random_fraction())
    }
}

fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// The `unavailable` error inside a host error, if that is what it is.
fn unavailable(e: &Error) -> Option<&PluginError> {
    match e {
        Error::Backend { error, .. } if error.code == ErrorCode::Unavailable => Some(error),
        _ => None,
    }
}

/// Runs `op` until it succeeds, fails with something other than `unavailable`, runs out
/// of retries, or would wait past the deadline.
pub async fn with_retries<T, F, Fut>(policy: &RetryPolicy, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = Instant::now() + policy.deadline;
    let mut attempt = 0;
    loop {
        let error = match op().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(refusal) = unavailable(&error) else {
            return Err(error);
        };
        attempt += 1;
        if attempt > policy.retries {
            return Err(error);
        }
        let Some(wait) = policy.wait(attempt, refusal.retry_after()) else {
            return Err(error);
        };
        if Instant::now() + wait >= deadline {
            return Err(error);
        }
        tracing::debug!(
            attempt,
            wait_ms = wait.as_millis() as u64,
            "backend unavailable; retrying: {error}"
        );
        tokio::time::sleep(wait).await;
    }
}

/// Any backend, with `unavailable` answers retried under a [`RetryPolicy`].
pub struct Retrying<B: ?Sized> {
    policy: RetryPolicy,
    inner: Arc<B>,
}

impl<B: ?Sized> Retrying<B> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<B>, policy: RetryPolicy) -> Self {
        Retrying { policy, inner }
    }
}

#[async_trait]
impl StorageBackend for Retrying<dyn StorageBackend> {
    async fn info(&self) -> Result<PluginInfo> {
        self.inner.info().await
    }
    async fn get(&self, key: &DocumentKey) -> Result<Document> {
        with_retries(&self.policy, || self.inner.get(key)).await
    }
    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String> {
        with_retries(&self.policy, || {
            self.inner.put(key, value.clone(), precondition.clone())
        })
        .await
    }
    async fn delete(&self, key: &DocumentKey, precondition: Precondition) -> Result<()> {
        with_retries(&self.policy, || {
            self.inner.delete(key, precondition.clone())
        })
        .await
    }
    async fn list(&self, query: &ListQuery) -> Result<ListPage> {
        with_retries(&self.policy, || self.inner.list(query)).await
    }
    async fn count(&self, query: &CountQuery) -> Result<u64> {
        with_retries(&self.policy, || self.inner.count(query)).await
    }
    async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}

#[async_trait]
impl SecretsBackend for Retrying<dyn SecretsBackend> {
    async fn info(&self) -> Result<PluginInfo> {
        self.inner.info().await
    }
    async fn resolve(&self, refs: &[SecretRef]) -> Result<Vec<Result<SecretBytes, PluginError>>> {
        with_retries(&self.policy, || self.inner.resolve(refs)).await
    }
    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>> {
        with_retries(&self.policy, || self.inner.put(key, value.clone())).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        with_retries(&self.policy, || self.inner.delete(key)).await
    }
    async fn list(&self, query: &SecretListQuery) -> Result<SecretPage> {
        with_retries(&self.policy, || self.inner.list(query)).await
    }
    async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn unavailable_error(after: Option<Duration>) -> Error {
        let mut e = PluginError::unavailable("throttled");
        if let Some(a) = after {
            e = e.with_retry_after(a);
        }
        Error::backend("b", e)
    }

    #[tokio::test]
    async fn unavailable_is_retried_until_it_succeeds() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::new(3, Duration::from_secs(10));
        let v = with_retries(&policy, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(unavailable_error(Some(Duration::from_millis(1)))),
                _ => Ok(7),
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_errors_and_exhausted_retries_come_back() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::new(2, Duration::from_secs(10));
        let e = with_retries(&policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Error::backend("b", PluginError::conflict("no")))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "conflict is not retried");

        calls.store(0, Ordering::SeqCst);
        let e = with_retries(&policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(unavailable_error(Some(Duration::from_millis(1))))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Unavailable);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "one try and two retries");
    }

    #[tokio::test]
    async fn no_wait_ends_past_the_deadline() {
        let calls = AtomicU32::new(0);
        // The backend asks for 2 s; the operation has 100 ms: no retry is made.
        let policy = RetryPolicy::new(5, Duration::from_millis(100));
        let started = Instant::now();
        let e = with_retries(&policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(unavailable_error(Some(Duration::from_secs(2))))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Unavailable);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn waits_grow_with_jitter_and_hints_are_capped() {
        let p = RetryPolicy::new(5, Duration::from_secs(60));
        for attempt in 1..=8 {
            let ceiling = (p.base * (1 << (attempt - 1))).min(p.max_wait);
            assert!(p.wait(attempt, None).unwrap() <= ceiling);
        }
        // A backend asking for more than the longest wait is not retried behind its back.
        assert_eq!(p.wait(1, Some(Duration::from_secs(60))), None);
        assert_eq!(
            p.wait(1, Some(Duration::from_millis(300))),
            Some(Duration::from_millis(300))
        );
    }
}
