//! Task outcomes, their classes, and the backoff policy for transient failures.

use std::time::Duration;

pub use crate::error::is_transient;

/// Whether trying again may help. Maps 1:1 to S3 Batch Operations' `TemporaryFailure` /
/// `PermanentFailure` result codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    Transient,
    Permanent,
}

/// A task that did not succeed, as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskFailure {
    pub http_status: u16,
    pub error_code: String,
    pub message: String,
    pub class: FailureClass,
}

impl TaskFailure {
    pub fn permanent(http_status: u16, code: &str, message: impl Into<String>) -> Self {
        TaskFailure { http_status, error_code: code.into(), message: message.into(), class: FailureClass::Permanent }
    }

    pub fn transient(http_status: u16, code: &str, message: impl Into<String>) -> Self {
        TaskFailure { http_status, error_code: code.into(), message: message.into(), class: FailureClass::Transient }
    }

    /// Classifies an S3 or Lambda answer by [`is_transient`]: throttling, timeouts and 5xx are
    /// retried; anything else (NoSuchKey, AccessDenied, InvalidRequest ...) is permanent.
    pub fn classify(http_status: u16, code: &str, message: impl Into<String>) -> Self {
        let transient = is_transient(http_status, code);
        let class = if transient { FailureClass::Transient } else { FailureClass::Permanent };
        TaskFailure { http_status, error_code: code.into(), message: message.into(), class }
    }
}

impl TaskFailure {
    /// True when the service asked to slow down (S3's `SlowDown` / 503, a 429, Lambda's
    /// throttling): the request rate, not the request, is at fault.
    pub fn is_throttle(&self) -> bool {
        self.http_status == 429
            || self.http_status == 503
            || matches!(
                self.error_code.as_str(),
                "SlowDown"
                    | "Throttling"
                    | "ThrottlingException"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "ServiceUnavailable"
            )
    }
}

/// The result of one task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// HTTP 200 and the message the report's ResultMessage carries.
    Succeeded {
        message: String,
    },
    Failed(TaskFailure),
}

/// The failed attempts of one task so far, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tries {
    pub throttles: u32,
    pub errors: u32,
}

impl Tries {
    /// Attempts made, for the backoff.
    pub fn total(&self) -> u32 {
        self.throttles + self.errors
    }
}

/// Exponential backoff with full jitter, bounded in attempts and in delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// Attempts in all for a task that keeps being throttled: throttling says "later", not
    /// "never", so it gets more (the adaptive limiter meanwhile lowers the request rate).
    pub throttle_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            throttle_attempts: 12,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// The longest a message that failed waits before it is delivered again.
pub const MAX_REDELIVERY_DELAY: Duration = Duration::from_secs(300);

/// How long a message whose delivery number `attempt` failed on a transient error waits
/// before it comes again: `base`, doubled with each delivery, at most
/// [`MAX_REDELIVERY_DELAY`]. A queue's five receives then span minutes (with a 5 s base,
/// 75 s of waits before the fifth), so a throttling burst of a minute does not send the
/// message to its dead-letter queue.
pub fn redelivery_delay(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(MAX_REDELIVERY_DELAY)
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (attempt counts from 1): a random duration in
    /// `[0, min(max_delay, base_delay * 2^(attempt-1))]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self.ceiling(attempt);
        let ms = cap.as_millis() as u64;
        Duration::from_millis(if ms == 0 { 0 } else { crate::clock::random_to(ms) })
    }

    /// The upper bound of [`RetryPolicy::delay`] for `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        self.base_delay.saturating_mul(1u32 << exp).min(self.max_delay)
    }

    /// Counts `fail` in `tries` and says whether the task gets another attempt: throttles
    /// and other transient failures each have their own budget, so a task that was mostly
    /// throttled still gets its `max_attempts` for errors (and the other way round).
    pub fn again(&self, fail: &TaskFailure, tries: &mut Tries) -> bool {
        if fail.class != FailureClass::Transient {
            return false;
        }
        let (used, budget) = if fail.is_throttle() {
            tries.throttles += 1;
            (tries.throttles, self.throttle_attempts)
        } else {
            tries.errors += 1;
            (tries.errors, self.max_attempts)
        };
        used < budget
    }

    /// Runs `f` until it succeeds, fails permanently, or runs out of attempts.
    pub async fn run<F, Fut>(&self, f: F) -> Outcome
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Outcome>,
    {
        self.run_until(f, || false).await
    }

    /// [`RetryPolicy::run`], trying no more once `stop()` (the job was cancelled or failed):
    /// the attempt in flight ends, and the task keeps its last outcome.
    pub async fn run_until<F, Fut>(&self, mut f: F, stop: impl Fn() -> bool) -> Outcome
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Outcome>,
    {
        let mut tries = Tries::default();
        loop {
            let outcome = f().await;
            match &outcome {
                Outcome::Failed(fail) if !stop() && self.again(fail, &mut tries) => {
                    tokio::time::sleep(self.delay(tries.total())).await;
                    if stop() {
                        return outcome;
                    }
                }
                _ => return outcome,
            }
        }
    }
}

impl RetryPolicy {
    /// For an optimistic write that lost a race (`Error::Conflict`): many quick tries.
    pub fn optimistic() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 20,
            throttle_attempts: 20,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(100),
        }
    }

    /// For a backend that asked for a request again (unprocessed batch items, a transaction
    /// conflict, refused queue entries).
    pub fn backend() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            throttle_attempts: 8,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
        }
    }

    /// The one retry loop of the backends: runs `f(attempt)` until it gives `Some`, sleeping
    /// a jittered backoff between tries; an `Err` stops at once; after the last try, a
    /// transient error that names `what`.
    pub async fn until<T, F, Fut>(&self, what: impl std::fmt::Display, mut f: F) -> crate::Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = crate::Result<Option<T>>>,
    {
        for attempt in 1..=self.max_attempts.max(1) {
            if let Some(done) = f(attempt).await? {
                return Ok(done);
            }
            if attempt < self.max_attempts {
                tokio::time::sleep(self.delay(attempt)).await;
            }
        }
        Err(crate::Error::transient(what.to_string(), format!("still refused after {} attempts", self.max_attempts)))
    }

    /// Runs `f` again while it fails with a transient error (throttling, an outage, an answer
    /// lost), up to the policy's attempts with its backoff; then returns what it last gave.
    /// For the steps that must not be redone from the start once work is done (recording a
    /// chunk whose tasks ran).
    pub async fn transient<T, E, F, Fut>(&self, mut f: F) -> Result<T, E>
    where
        E: Passing,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if e.passing() && attempt < self.max_attempts => {
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Runs a batch of `n` tasks with `f(indexes)` (one outcome per index, in order) and runs
    /// again only the tasks that failed transiently, until none is left or attempts run out.
    pub async fn run_batch<F, Fut>(&self, n: usize, f: F) -> Vec<Outcome>
    where
        F: FnMut(Vec<usize>) -> Fut,
        Fut: std::future::Future<Output = Vec<Outcome>>,
    {
        self.run_batch_until(n, f, || false).await
    }

    /// [`RetryPolicy::run_batch`], trying no more once `stop()`: each task keeps its last
    /// outcome.
    pub async fn run_batch_until<F, Fut>(&self, n: usize, mut f: F, stop: impl Fn() -> bool) -> Vec<Outcome>
    where
        F: FnMut(Vec<usize>) -> Fut,
        Fut: std::future::Future<Output = Vec<Outcome>>,
    {
        let mut results: Vec<Option<Outcome>> = vec![None; n];
        let mut tries: Vec<Tries> = vec![Tries::default(); n];
        let mut pending: Vec<usize> = (0..n).collect();
        let mut round = 1;
        while !pending.is_empty() {
            let outcomes = f(pending.clone()).await;
            let mut again = Vec::new();
            for (i, outcome) in pending.iter().zip(outcomes) {
                match outcome {
                    Outcome::Failed(fail) if !stop() && self.again(&fail, &mut tries[*i]) => {
                        results[*i] = Some(Outcome::Failed(fail));
                        again.push(*i);
                    }
                    other => results[*i] = Some(other),
                }
            }
            pending = again;
            if !pending.is_empty() {
                tokio::time::sleep(self.delay(round)).await;
                round += 1;
                if stop() {
                    break;
                }
            }
        }
        results
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Failed(TaskFailure::permanent(500, "InternalError", "no outcome"))))
            .collect()
    }
}

/// An error that trying again soon may mend (see [`RetryPolicy::transient`]).
pub trait Passing {
    fn passing(&self) -> bool;
}

impl Passing for crate::Error {
    /// Transient, and not a hand-back (which asks for a later delivery, not a retry now).
    fn passing(&self) -> bool {
        self.is_transient() && self.retry_after().is_none()
    }
}

impl Passing for crate::objects::StorageError {
    fn passing(&self) -> bool {
        self.is_transient()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_message_waits_twice_as_long_with_each_delivery_up_to_five_minutes() {
        let base = Duration::from_secs(5);
        let delays: Vec<u64> = (1..=8).map(|a| redelivery_delay(base, a).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(redelivery_delay(base, 0), base, "a first delivery counted as 0");
        assert_eq!(redelivery_delay(base, u32::MAX), MAX_REDELIVERY_DELAY);
    }

    #[test]
    fn one_table_decides_for_tasks_storage_and_backends_alike() {
        use crate::ports::StorageError;
        let transient = [
            (0, "NetworkError"),
            (0, "RequestTimeout"),
            (503, "SlowDown"),
            (500, "InternalError"),
            (429, "TooManyRequestsException"),
            (400, "RequestTimeout"),
            (400, "ThrottlingException"),
            (400, "ProvisionedThroughputExceededException"),
            (400, "RequestLimitExceeded"),
            (403, "RequestTimeTooSkewed"),
            (200, "ResponseError"),
        ];
        let permanent = [
            (404, "NoSuchKey"),
            (403, "AccessDenied"),
            (400, "InvalidRequest"),
            (400, "ConditionalCheckFailedException"),
            (400, "ValidationException"),
            (412, "PreconditionFailed"),
        ];
        for (cases, want) in [(&transient[..], true), (&permanent[..], false)] {
            for &(status, code) in cases {
                assert_eq!(is_transient(status, code), want, "{status} {code}");
                let task = TaskFailure::classify(status, code, "");
                assert_eq!(task.class == FailureClass::Transient, want, "a task's {status} {code}");
                let storage = StorageError { http_status: status, code: code.into(), message: String::new() };
                assert_eq!(storage.is_transient(), want, "a manifest read's {status} {code}");
                assert_eq!(crate::Error::from(storage).is_transient(), want, "{status} {code} as an error");
            }
        }
        assert!(crate::Error::transient("x", "raced").is_transient());
        assert!(!crate::Error::permanent("x", "unreadable").is_transient());
    }
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A policy without delays: `errors` attempts for errors, `throttles` for throttling.
    fn instant(errors: u32, throttles: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: errors,
            throttle_attempts: throttles,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    #[test]
    fn s3_errors_are_classified_by_code_and_status() {
        assert_eq!(TaskFailure::classify(503, "SlowDown", "").class, FailureClass::Transient);
        assert_eq!(TaskFailure::classify(500, "InternalError", "").class, FailureClass::Transient);
        assert_eq!(TaskFailure::classify(400, "RequestTimeout", "").class, FailureClass::Transient);
        assert_eq!(TaskFailure::classify(404, "NoSuchKey", "").class, FailureClass::Permanent);
        assert_eq!(TaskFailure::classify(403, "AccessDenied", "").class, FailureClass::Permanent);
    }

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(3), Duration::from_millis(400));
        assert_eq!(p.ceiling(9), Duration::from_secs(1));
        for a in 1..10 {
            assert!(p.delay(a) <= p.ceiling(a));
        }
    }

    #[tokio::test]
    async fn batches_retry_only_their_transient_failures() {
        let p = instant(3, 3);
        let calls = std::sync::Mutex::new(Vec::new());
        let out = p
            .run_batch(3, |idx| {
                calls.lock().unwrap().push(idx.clone());
                async move {
                    idx.iter()
                        .map(|i| match i {
                            0 => Outcome::Succeeded { message: "ok".into() },
                            1 => Outcome::Failed(TaskFailure::permanent(403, "AccessDenied", "no")),
                            _ => Outcome::Failed(TaskFailure::transient(503, "SlowDown", "slow")),
                        })
                        .collect()
                }
            })
            .await;
        assert_eq!(*calls.lock().unwrap(), vec![vec![0, 1, 2], vec![2], vec![2]]);
        assert!(matches!(&out[0], Outcome::Succeeded { .. }));
        assert!(matches!(&out[2], Outcome::Failed(f) if f.error_code == "SlowDown"));
    }

    #[tokio::test]
    async fn until_retries_with_backoff_stops_on_an_error_and_gives_up_transiently() {
        let p = instant(4, 4);
        let tries = AtomicU32::new(0);
        let got = p
            .until("thing", |attempt| {
                tries.fetch_add(1, Ordering::SeqCst);
                async move { Ok((attempt == 3).then_some(attempt)) }
            })
            .await
            .unwrap();
        assert_eq!((got, tries.load(Ordering::SeqCst)), (3, 3));
        let gave_up = p.until("thing", |_| async { Ok(None::<()>) }).await.unwrap_err();
        assert!(gave_up.is_transient() && gave_up.to_string().contains("thing: still refused after 4 attempts"));
        tries.store(0, Ordering::SeqCst);
        let stopped = p
            .until("thing", |_| {
                tries.fetch_add(1, Ordering::SeqCst);
                async { Err::<Option<()>, _>(crate::Error::field("X", "bad")) }
            })
            .await;
        assert!(stopped.is_err() && tries.load(Ordering::SeqCst) == 1, "an error stops at once");
    }

    #[tokio::test]
    async fn transient_failures_are_retried_a_bounded_number_of_times() {
        let p = instant(3, 6);
        let calls = AtomicU32::new(0);
        let out = p
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Outcome::Failed(TaskFailure::transient(503, "SlowDown", "slow"))
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 6, "throttling has its own, larger budget");
        assert!(matches!(out, Outcome::Failed(f) if f.error_code == "SlowDown"));

        calls.store(0, Ordering::SeqCst);
        p.run(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Outcome::Failed(TaskFailure::transient(500, "InternalError", ""))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // Throttles do not use up the budget of errors: 5 throttles then 2 errors, then success.
        calls.store(0, Ordering::SeqCst);
        let out = p
            .run(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0..=4 => Outcome::Failed(TaskFailure::transient(503, "SlowDown", "")),
                    5 | 6 => Outcome::Failed(TaskFailure::transient(500, "InternalError", "")),
                    _ => Outcome::Succeeded { message: "ok".into() },
                }
            })
            .await;
        assert!(matches!(out, Outcome::Succeeded { .. }), "{out:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 8);

        calls.store(0, Ordering::SeqCst);
        let out = p
            .run(|| async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n == 0 {
                    Outcome::Failed(TaskFailure::transient(500, "InternalError", ""))
                } else {
                    Outcome::Succeeded { message: "ok".into() }
                }
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(matches!(out, Outcome::Succeeded { .. }));

        calls.store(0, Ordering::SeqCst);
        p.run(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Outcome::Failed(TaskFailure::permanent(404, "NoSuchKey", ""))
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "permanent failures are not retried");
    }
}
