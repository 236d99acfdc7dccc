//! Flow control of a job's requests: an adaptive limit on the requests in flight per job and
//! bucket (additive increase; a decrease in proportion to the share of requests throttled,
//! as DCTCP cuts its window by the share of packets marked), and a token bucket for a
//! job's `MaxTasksPerSecond`. One process holds one limiter per (job, bucket); processes
//! share throttling through the job record (see [`crate::ports::JobRecords::note_throttle`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::now_ms;
use crate::job::{Job, JobId};
use crate::ports::ChunkLedger;
use crate::retry::Outcome;
use crate::Result;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A limit decreases at most once per this long: the throttles of requests sent before the
/// last decrease are answers to the old rate, not the new one.
const DECREASE_COOLDOWN: Duration = Duration::from_millis(250);

/// What one decrease keeps of the limit (or of the request rate, with a gap) when `share` of
/// the responses since the last decrease were throttles: all throttled halves it, one in ten
/// takes 5 % off. Throttling that does not depend on the rate (a store that sheds a fixed
/// share of requests) then settles where the growth of one per cooldown matches the cut,
/// instead of collapsing to one request a second; overload throttles more, and cuts more.
fn kept(share: f64) -> f64 {
    1.0 - share.clamp(0.0, 1.0) / 2.0
}

/// A throttle another process published counts as this share: it says the store is loaded,
/// not how much.
const HEARD_SHARE: f64 = 0.5;

/// Answers after a cut awaited (no other cut made) before its share of throttles is compared
/// with the share before it: [`JUDGED`] within [`JUDGE_WITHIN`], else [`FEWEST_JUDGED`]
/// within [`JUDGE_SLOW_WITHIN`] (a slow request stream, down to one a second); fewer than
/// that: cut as usual.
const JUDGED: u32 = 50;
const JUDGE_WITHIN: Duration = Duration::from_secs(2);
const FEWEST_JUDGED: u32 = 10;
const JUDGE_SLOW_WITHIN: Duration = Duration::from_secs(12);

/// The largest share of throttles ever tolerated: a store refusing nearly everything is
/// always cut for.
const MOST_TOLERATED: f64 = 0.8;

/// How long a share of throttles that cutting did not lower is tolerated (see
/// [`Aimd::on_throttle`]) before a cut is tried again.
const TOLERATE_FOR: Duration = Duration::from_secs(10);

/// The share of throttles a cut to `kept(share)` of the rate leaves when the store throttles
/// what exceeds its capacity (`share = 1 - capacity / rate`).
fn after_cut(share: f64) -> f64 {
    (1.0 - (1.0 - share) / kept(share)).max(0.0)
}

/// The most throttles of `n` answers tolerated once cutting did not lower `share`: a quarter
/// more, or two standard deviations of a share of `n` answers when that is more (a handful
/// of answers says little).
fn tolerated(share: f64, n: u32) -> f64 {
    let spread = 2.0 * (share * (1.0 - share) / f64::from(n.max(1))).sqrt();
    share + (share * 0.25 + 0.02).max(spread)
}

/// The gap between requests once the limit is down to one in flight and throttling goes on.
const MIN_GAP: Duration = Duration::from_millis(2);
const MAX_GAP: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct AimdState {
    limit: f64,
    in_flight: usize,
    /// Below one request in flight the limit is a gap between requests: a fast store can
    /// throttle a single request stream.
    gap: Duration,
    /// When the next request may start (with a gap).
    next: Instant,
    last_decrease: Option<Instant>,
    /// The last change of the limit or gap, either way.
    last_change: Option<Instant>,
    /// Throttled since the last publication (another process should hear of it).
    unpublished: bool,
    /// Responses and throttles since the last decrease.
    responses: u32,
    throttles: u32,
    /// The last local decrease, whose next window shows whether it lowered the share.
    probe: Option<Probe>,
    /// A share of throttles cutting did not lower, tolerated without cutting until then.
    tolerate: Option<(f64, Instant)>,
    /// Since the last cut, a request found the limit reached (or waited for the gap): only
    /// then did the cut change the rate, and can its answers tell anything.
    bound: bool,
}

impl AimdState {
    /// The share of throttles tolerated now, if any.
    fn tolerated(&self, now: Instant) -> Option<f64> {
        self.tolerate.filter(|(_, until)| now < *until).map(|(share, _)| share)
    }

    /// Whether `share` calls for a cut: always, unless a share is tolerated; then `None`
    /// until enough answers came to tell, and only when it is beyond the tolerated share.
    fn beyond_tolerance(&mut self, share: f64, now: Instant) -> Option<bool> {
        let Some(t) = self.tolerated(now) else { return Some(true) };
        let n = self.responses;
        if n < FEWEST_JUDGED {
            return None;
        }
        (self.responses, self.throttles, self.last_decrease) = (0, 0, Some(now));
        Some(share > tolerated(t, n))
    }
}

/// Whether `share` of `n` answers after the cut `p` is lower than the share before it: nearer
/// what a rate-driven store would leave (`after_cut`) than the share before, or lower by more
/// than chance (two standard deviations of the difference of the two shares).
fn lowered(p: Probe, share: f64, n: u32) -> bool {
    let variance = p.share * (1.0 - p.share) * (1.0 / f64::from(p.answers.max(1)) + 1.0 / f64::from(n.max(1)));
    share <= (p.share + after_cut(p.share)) / 2.0 || share < p.share - 2.0 * variance.sqrt()
}

/// What a decrease left behind: the share that drove it, and the limit and gap before it.
#[derive(Clone, Copy, Debug)]
struct Probe {
    share: f64,
    /// Answers the share was counted from.
    answers: u32,
    limit: f64,
    gap: Duration,
    at: Instant,
}

/// The adaptive limit on requests in flight for one job and bucket.
#[derive(Debug)]
pub struct Aimd {
    state: Mutex<AimdState>,
    freed: Notify,
    max: usize,
}

/// A request in flight; dropping it frees its place.
pub struct Slot<'a>(&'a Aimd);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).in_flight -= 1;
        self.0.freed.notify_one();
    }
}

impl Aimd {
    pub fn new(max: usize) -> Aimd {
        let max = max.max(1);
        Aimd {
            state: Mutex::new(AimdState {
                limit: max as f64,
                in_flight: 0,
                gap: Duration::ZERO,
                next: Instant::now(),
                last_decrease: None,
                last_change: None,
                unpublished: false,
                responses: 0,
                throttles: 0,
                probe: None,
                tolerate: None,
                bound: false,
            }),
            freed: Notify::new(),
            max,
        }
    }

    /// Waits for a place under the current limit (and, with a gap, for its turn).
    pub async fn acquire(&self) -> Slot<'_> {
        loop {
            let notified = self.freed.notified();
            let start = {
                let mut s = lock(&self.state);
                if (s.in_flight as f64) < s.limit.floor().max(1.0) {
                    s.in_flight += 1;
                    let now = Instant::now();
                    let start = s.next.max(now);
                    s.next = start + s.gap;
                    // The limit binds: this request takes its last place, or waits its turn.
                    s.bound |= start > now || s.in_flight as f64 >= s.limit.floor().max(1.0);
                    Some(start)
                } else {
                    s.bound = true;
                    None
                }
            };
            if let Some(start) = start {
                tokio::time::sleep_until(start).await;
                return Slot(self);
            }
            notified.await;
        }
    }

    /// A request succeeded: at most once per cooldown, one more request in flight, or with a
    /// gap a request rate 5 % higher (and one more a second; half higher while throttling
    /// is tolerated). Growth goes by time, not by successes: a fast store
    /// answers many requests per cooldown.
    pub fn on_success(&self) {
        let grew = {
            let mut s = lock(&self.state);
            s.responses = s.responses.saturating_add(1);
            if s.last_change.is_some_and(|t| t.elapsed() < DECREASE_COOLDOWN) {
                return;
            }
            if s.probe.is_some() && s.throttles == 0 {
                // A cooldown without throttles: the cut did what it should.
                s.probe = None;
            }
            let now = Instant::now();
            s.last_change = Some(now);
            // While the store is known to shed requests whatever the rate, a gap closes fast
            // (back from cuts made before that was known within seconds, not minutes).
            let faster_by = if s.tolerated(now).is_some() { 1.5 } else { 1.05 };
            if !s.gap.is_zero() {
                let faster = 1.0 / s.gap.as_secs_f64() * faster_by + 1.0;
                s.gap = Duration::from_secs_f64(1.0 / faster);
                if s.gap < MIN_GAP {
                    s.gap = Duration::ZERO;
                }
                return;
            }
            let before = s.limit;
            s.limit = (s.limit + 1.0).min(self.max as f64);
            s.limit > before
        };
        if grew {
            self.freed.notify_one();
        }
    }

    /// The service throttled a request (`local`) or another process said it did: once per
    /// cooldown the limit decreases by the share of responses throttled since the last
    /// decrease (see [`kept`]). A store that throttles what exceeds its capacity throttles a
    /// smaller share after a cut; one that sheds a share of requests whatever the rate (as S3
    /// does while it splits a partition) does not, and cutting for it only loses goodput. So
    /// after a cut no other is made until enough answers came ([`JUDGED`]): when their share is
    /// nearer what it was than what a cut leaves, the cut is undone and that share tolerated,
    /// not cut for, for [`TOLERATE_FOR`] (throttles heard from other processes too); a share
    /// above it (the rate matters again) is cut for as before.
    pub fn on_throttle(&self, local: bool) {
        let mut s = lock(&self.state);
        if local {
            s.unpublished = true;
            s.responses = s.responses.saturating_add(1);
            s.throttles = s.throttles.saturating_add(1);
        }
        if s.last_decrease.is_some_and(|t| t.elapsed() < DECREASE_COOLDOWN) {
            return;
        }
        let now = Instant::now();
        // Another process's throttle says the store is loaded, not that the rate matters.
        if !local && (s.tolerated(now).is_some() || s.probe.is_some()) {
            return;
        }
        let share = match local {
            true => f64::from(s.throttles) / f64::from(s.responses.max(1)),
            false => HEARD_SHARE,
        };
        let answers = s.responses;
        let cut = match s.probe {
            Some(p) => self.judge(&mut s, p, share, now),
            None => s.beyond_tolerance(share, now),
        };
        if cut != Some(true) {
            return;
        }
        let before = Probe { share, answers, limit: s.limit, gap: s.gap, at: now };
        (s.responses, s.throttles) = (0, 0);
        (s.last_change, s.last_decrease) = (Some(now), Some(now));
        (s.limit, s.gap) = decrease(s.limit, s.gap, share);
        // Only a cut that changes the rate tells anything: a tenth fewer requests in flight
        // (counted whole), or a tenth longer gap between them.
        let fewer = s.limit.floor() <= (before.limit.floor() * 0.9).floor();
        let slower = !before.gap.is_zero() && s.gap >= before.gap.mul_f64(1.1);
        s.probe = (local && share <= MOST_TOLERATED && (fewer || slower)).then_some(before);
        s.bound = false;
    }

    /// What the answers since the cut `p` say: `None` while too few came to tell, `Some(false)`
    /// when the share did not fall as a rate-driven store's would (the cut is undone and the
    /// share tolerated from now), `Some(true)` when it did (or too few came in the time).
    fn judge(&self, s: &mut AimdState, p: Probe, share: f64, now: Instant) -> Option<bool> {
        let waited = now.duration_since(p.at);
        let n = s.responses;
        if (n < JUDGED && waited < JUDGE_WITHIN) || (n < FEWEST_JUDGED && waited < JUDGE_SLOW_WITHIN) {
            return None;
        }
        s.probe = None;
        // Nearer the share before the cut than the share a rate-driven store would leave; a
        // cut that never bound (the requests are fewer than it: retries waiting out their
        // backoff set the pace) tells nothing.
        if n < FEWEST_JUDGED || !s.bound || lowered(p, share, n) {
            return Some(true);
        }
        (s.limit, s.gap) = (s.limit.max(p.limit), s.gap.min(p.gap));
        s.tolerate = Some((share, now + TOLERATE_FOR));
        (s.responses, s.throttles) = (0, 0);
        (s.last_change, s.last_decrease) = (Some(now), Some(now));
        self.freed.notify_waiters();
        Some(false)
    }

    /// True once after this process was throttled: time to tell the others.
    pub fn take_unpublished(&self) -> bool {
        std::mem::take(&mut lock(&self.state).unpublished)
    }

    pub fn limit(&self) -> usize {
        lock(&self.state).limit.floor() as usize
    }

    /// The gap between requests (zero while the limit is above one in flight).
    pub fn gap(&self) -> Duration {
        lock(&self.state).gap
    }
}

/// The limit and gap after one decrease with `share` of the responses throttled: first the
/// requests in flight shrink, down to one; then the gap between requests grows.
fn decrease(limit: f64, gap: Duration, share: f64) -> (f64, Duration) {
    if limit >= 2.0 {
        return ((limit * kept(share)).max(1.0), gap);
    }
    if gap.is_zero() {
        return (limit, MIN_GAP);
    }
    (limit, gap.div_f64(kept(share)).clamp(MIN_GAP, MAX_GAP))
}

/// A token bucket: `rate` tokens per second, holding at most a fifth of a second's worth (so
/// a chunk that waited cannot burst much over its share).
#[derive(Debug)]
pub struct Pace {
    state: Mutex<(f64, f64, Instant)>,
}

impl Pace {
    pub fn new(rate: f64) -> Pace {
        Pace { state: Mutex::new((rate, 0.0, Instant::now())) }
    }

    /// Changes the rate (another share of the job's rate, or the job's rate changed).
    pub fn set_rate(&self, rate: f64) {
        lock(&self.state).0 = rate;
    }

    /// Waits for a token.
    pub async fn take(&self) {
        loop {
            let wait = {
                let mut s = lock(&self.state);
                let (rate, tokens, at) = &mut *s;
                let now = Instant::now();
                *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * *rate).min((*rate / 5.0).max(1.0));
                *at = now;
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    return;
                }
                if *rate <= 0.0 {
                    Duration::from_millis(200)
                } else {
                    // At least a millisecond, the timer's tick: a shorter sleep can end on the
                    // tick it started in, and then this loop spins without time passing.
                    Duration::from_secs_f64(((1.0 - *tokens) / *rate).clamp(0.001, 1.0))
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The limiters of one process, by job and bucket.
#[derive(Debug, Default)]
pub struct Limiters {
    by_bucket: Mutex<HashMap<(JobId, String), Arc<Aimd>>>,
    /// Last throttle time (Unix ms) of each (job, bucket) this process has heard of.
    heard: Mutex<HashMap<(JobId, String), u64>>,
}

impl Limiters {
    pub fn for_bucket(&self, job: &JobId, bucket: &str, max: usize) -> Arc<Aimd> {
        lock(&self.by_bucket)
            .entry((job.clone(), bucket.to_string()))
            .or_insert_with(|| Arc::new(Aimd::new(max)))
            .clone()
    }

    /// The buckets of `job` this process was throttled on since it last said so.
    pub fn unpublished(&self, job: &JobId) -> Vec<String> {
        lock(&self.by_bucket)
            .iter()
            .filter(|((j, _), aimd)| j == job && aimd.take_unpublished())
            .map(|((_, b), _)| b.clone())
            .collect()
    }

    /// Applies throttles other processes recorded on the job (bucket -> Unix ms): each one
    /// not heard of before halves this process's limit for that bucket.
    pub fn hear(&self, job: &JobId, throttled: &std::collections::BTreeMap<String, u64>, max: usize) {
        for (bucket, at) in throttled {
            let key = (job.clone(), bucket.clone());
            let fresh = {
                let mut heard = lock(&self.heard);
                let last = heard.entry(key).or_insert(0);
                let fresh = *at > *last && *last != 0;
                let first = *last == 0;
                *last = (*last).max(*at);
                fresh || (first && now_ms().saturating_sub(*at) < 10_000)
            };
            if fresh {
                self.for_bucket(job, bucket, max).on_throttle(false);
            }
        }
    }

    /// Marks a throttle this process published as heard, so it does not halve twice.
    pub fn published(&self, job: &JobId, bucket: &str, at: u64) {
        let mut heard = lock(&self.heard);
        let last = heard.entry((job.clone(), bucket.to_string())).or_insert(0);
        *last = (*last).max(at);
    }

    /// Forgets a job's limiters (its chunk ended and no other runs here).
    pub fn forget(&self, job: &JobId) {
        lock(&self.by_bucket).retain(|(j, _), _| j != job);
        lock(&self.heard).retain(|(j, _), _| j != job);
    }
}

/// Flow control of one chunk: the process's adaptive limits per bucket of its job, and its
/// share of the job's `MaxTasksPerSecond`.
pub(super) struct Flow<'a> {
    limits: &'a Limiters,
    job: &'a JobId,
    /// The most requests in flight per bucket (the chunk's task concurrency).
    pub(super) max: usize,
    pace: Pace,
    limited: std::sync::atomic::AtomicBool,
}

impl<'a> Flow<'a> {
    pub(super) fn new(limits: &'a Limiters, job: &'a JobId, max: usize) -> Self {
        Flow { limits, job, max: max.max(1), pace: Pace::new(0.0), limited: Default::default() }
    }

    pub(super) fn aimd(&self, bucket: &str) -> Arc<Aimd> {
        self.limits.for_bucket(self.job, bucket, self.max)
    }

    /// Waits until `n` more tasks may start under the job's rate.
    pub(super) async fn pace(&self, n: usize) {
        if self.limited.load(std::sync::atomic::Ordering::Relaxed) {
            for _ in 0..n {
                self.pace.take().await;
            }
        }
    }

    /// Takes this chunk's share of the job's rate: the rate over the chunks running now.
    pub(super) async fn share(&self, store: &dyn ChunkLedger, job: &Job) -> Result<()> {
        let Some(rate) = job.max_tasks_per_second else {
            self.limited.store(false, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        };
        let now = now_ms();
        let running = store.chunk_leases(&job.id).await?.iter().filter(|l| l.live(now)).count().max(1);
        self.pace.set_rate(rate as f64 / running as f64);
        self.limited.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Tells the limiter how a request went.
pub(super) fn observe(aimd: &Aimd, outcome: Outcome) -> Outcome {
    match &outcome {
        Outcome::Failed(f) if f.is_throttle() => aimd.on_throttle(true),
        _ => aimd.on_success(),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    // A paused clock jumps over the cooldowns exactly, so their edges are checked to the
    // millisecond.
    #[tokio::test(start_paused = true)]
    async fn the_limit_halves_on_throttling_and_grows_back_one_at_a_time() {
        let a = Aimd::new(64);
        assert_eq!(a.limit(), 64);
        a.on_throttle(true);
        assert_eq!(a.limit(), 32);
        a.on_throttle(true);
        assert_eq!(a.limit(), 32, "once per cooldown");
        assert!(a.take_unpublished() && !a.take_unpublished());
        for _ in 0..100 {
            a.on_success();
        }
        assert_eq!(a.limit(), 32, "no growth within a cooldown of the last change, however many successes");
        tokio::time::sleep(DECREASE_COOLDOWN - Duration::from_millis(1)).await;
        a.on_success();
        a.on_throttle(false);
        assert_eq!(a.limit(), 32, "neither growth nor a decrease a millisecond early");
        tokio::time::sleep(Duration::from_millis(1)).await;
        a.on_success();
        a.on_success();
        assert_eq!(a.limit(), 33, "then one more per cooldown");
        tokio::time::sleep(DECREASE_COOLDOWN).await;
        a.on_throttle(false);
        assert_eq!(a.limit(), 24, "a quarter off for a throttle heard of");
        assert!(!a.take_unpublished(), "a throttle heard from another process is not passed on");
    }

    #[tokio::test(start_paused = true)]
    async fn at_one_request_in_flight_throttling_spaces_the_requests_out() {
        let a = Aimd::new(2);
        a.on_throttle(true);
        assert_eq!((a.limit(), a.gap()), (1, Duration::ZERO));
        tokio::time::sleep(DECREASE_COOLDOWN).await;
        a.on_throttle(true);
        assert_eq!(a.gap(), MIN_GAP);
        tokio::time::sleep(DECREASE_COOLDOWN).await;
        a.on_throttle(true);
        let slower = a.gap();
        assert_eq!(slower, MIN_GAP.mul_f64(2.0), "every response since the last decrease was throttled");
        tokio::time::sleep(DECREASE_COOLDOWN).await;
        a.on_success();
        assert!(a.gap() < slower && a.limit() == 1, "the gap closes before the limit grows");
        for _ in 0..20 {
            tokio::time::sleep(DECREASE_COOLDOWN).await;
            a.on_success();
        }
        assert_eq!(a.gap(), Duration::ZERO, "below 2 ms the gap is gone");
    }

    #[test]
    fn a_fixed_share_of_throttles_settles_the_limit_where_overload_drives_it_down() {
        // One decrease and one growth per cooldown, as under steady throttling (no growth
        // without a success).
        let settle = |share: f64| {
            let (mut limit, mut gap) = (64.0, Duration::ZERO);
            for _ in 0..200 {
                (limit, gap) = decrease(limit, gap, share);
                if gap.is_zero() && share < 1.0 {
                    limit = (limit + 1.0_f64).min(64.0);
                }
            }
            (limit, gap)
        };
        // A store that sheds one request in five whatever the rate: about 10 in flight.
        let (limit, gap) = settle(0.2);
        assert!((9.0..=11.0).contains(&limit) && gap.is_zero(), "{limit} {gap:?}");
        // One in a hundred: barely slowed.
        assert!(settle(0.01).0 > 60.0);
        // Everything throttled: one request at a time, spaced out.
        let (limit, gap) = settle(1.0);
        assert_eq!(limit, 1.0);
        assert_eq!(gap, MAX_GAP);
    }

    /// The next draw in [0, 1) of a task's own random sequence (xorshift64).
    fn xorshift(seed: &mut u64) -> f64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Plays `workers` request loops through `a` for `span` against a store answering in
    /// `LATENCY` on average, which throttles a request when `throttled(in flight, a random draw)` says
    /// so; returns (successes, throttles).
    async fn drive(a: Arc<Aimd>, workers: u64, span: Duration, throttled: fn(usize, f64) -> bool) -> (u64, u64) {
        const LATENCY: Duration = Duration::from_millis(20);
        let in_flight = Arc::new(Mutex::new(0usize));
        let counts = Arc::new(Mutex::new((0u64, 0u64)));
        let end = Instant::now() + span;
        let mut tasks = Vec::new();
        for w in 0..workers {
            let (a, in_flight, counts) = (a.clone(), in_flight.clone(), counts.clone());
            tasks.push(tokio::spawn(async move {
                let mut seed = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                while Instant::now() < end {
                    let slot = a.acquire().await;
                    let now_in_flight = {
                        let mut n = lock(&in_flight);
                        *n += 1;
                        *n
                    };
                    let draw = xorshift(&mut seed);
                    // 10-30 ms: answers that all come at one instant would make the store's
                    // count of requests in flight depend on the order they are handled in.
                    let jitter = (seed & 0xFFFF) as f64 / 65_536.0;
                    tokio::time::sleep(LATENCY.mul_f64(0.5 + jitter)).await;
                    *lock(&in_flight) -= 1;
                    drop(slot);
                    let mut c = lock(&counts);
                    match throttled(now_in_flight, draw) {
                        true => (c.1 += 1, a.on_throttle(true)),
                        false => (c.0 += 1, a.on_success()),
                    };
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let c = *lock(&counts);
        c
    }

    /// Plays `workers` tasks through `a` for `span` against a store that takes `rate`
    /// requests a second (a token bucket holding `burst`): a refusal comes back at once and
    /// its task waits its retry backoff (full jitter, 100 ms doubling to 5 s) before it tries
    /// again; an accepted request takes 20-60 ms. Returns (successes, throttles).
    async fn drive_rate(a: Arc<Aimd>, workers: u64, span: Duration, rate: f64, burst: f64) -> (u64, u64) {
        let tokens = Arc::new(Mutex::new((burst, Instant::now())));
        let counts = Arc::new(Mutex::new((0u64, 0u64)));
        let end = Instant::now() + span;
        let mut tasks = Vec::new();
        for w in 0..workers {
            let (a, tokens, counts) = (a.clone(), tokens.clone(), counts.clone());
            tasks.push(tokio::spawn(async move {
                let mut seed = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut draw = move || xorshift(&mut seed);
                let mut refused = 0u32;
                while Instant::now() < end {
                    let slot = a.acquire().await;
                    let accepted = {
                        let mut t = lock(&tokens);
                        let now = Instant::now();
                        t.0 = (t.0 + now.duration_since(t.1).as_secs_f64() * rate).min(burst);
                        t.1 = now;
                        let ok = t.0 >= 1.0;
                        if ok {
                            t.0 -= 1.0;
                        }
                        ok
                    };
                    let took = if accepted {
                        Duration::from_millis(20).mul_f64(1.0 + 2.0 * draw())
                    } else {
                        Duration::from_millis(2)
                    };
                    tokio::time::sleep(took).await;
                    drop(slot);
                    if accepted {
                        lock(&counts).0 += 1;
                        a.on_success();
                        refused = 0;
                        continue;
                    }
                    lock(&counts).1 += 1;
                    a.on_throttle(true);
                    refused += 1;
                    let ceiling =
                        Duration::from_millis(100).saturating_mul(1 << refused.min(6)).min(Duration::from_secs(5));
                    tokio::time::sleep(ceiling.mul_f64(draw())).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let c = *lock(&counts);
        c
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_takes_a_fixed_rate_is_used_at_that_rate() {
        // GIVEN stores that take 400 and 60 requests a second, and 256 tasks that would send
        // far more
        for (rate, burst) in [(400.0, 40.0), (60.0, 60.0)] {
            let a = Arc::new(Aimd::new(64));
            let (ok, throttled) = drive_rate(a.clone(), 256, Duration::from_secs(60), rate, burst).await;
            let share = throttled as f64 / (ok + throttled) as f64;
            eprintln!(
                "rate {rate}/s: {ok} successes of {} possible, {throttled} throttles ({share:.3}), limit {}",
                rate * 60.0,
                a.limit()
            );
            // THEN the rate is used
            assert!(ok as f64 >= 0.9 * rate * 60.0, "{ok} successes, {throttled} throttles ({share:.3})");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_that_does_not_follow_the_rate_keeps_the_goodput_the_store_gives() {
        // GIVEN a store that throttles 60 % of requests at random, whatever the rate (as S3
        // does while it splits a partition), 64 requests allowed in flight, 20 ms each
        let a = Arc::new(Aimd::new(64));
        let (ok, throttled) = drive(a.clone(), 64, Duration::from_secs(30), |_, draw| draw < 0.6).await;
        // THEN the limiter keeps near all 64 in flight: at least 80 % of the 40 % of 3,200
        // requests a second the store lets through (cutting for it settled near 3 in flight:
        // about 5 %)
        let best = 0.4 * 64.0 * 30.0 / 0.020;
        eprintln!("random 60 %: {ok} successes of {best} possible, {throttled} throttles");
        assert!(ok as f64 >= 0.8 * best, "{ok} successes of {best} possible, {throttled} throttles");
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_cut_down_to_a_gap_by_throttling_that_does_not_follow_the_rate_comes_back() {
        // GIVEN a limit driven down to one request in flight, spaced out (throttles heard
        // from other processes), before the store is seen to shed 60 % whatever the rate
        let a = Arc::new(Aimd::new(64));
        for _ in 0..24 {
            a.on_throttle(false);
            tokio::time::sleep(DECREASE_COOLDOWN).await;
        }
        assert!(a.limit() == 1 && !a.gap().is_zero(), "{} {:?}", a.limit(), a.gap());
        // WHEN its own requests meet that store for a minute
        let (ok, _) = drive(a.clone(), 64, Duration::from_secs(60), |_, draw| draw < 0.6).await;
        // THEN it finds its way back to most of the goodput the store gives
        let best = 0.4 * 64.0 * 60.0 / 0.020;
        eprintln!("back from a gap: {ok} successes of {best} possible, limit {}", a.limit());
        assert!(ok as f64 >= 0.5 * best, "{ok} successes of {best} possible, limit {}", a.limit());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_that_follows_the_rate_is_still_cut_for() {
        // GIVEN a store that takes 16 requests at once and throttles any beyond
        let a = Arc::new(Aimd::new(64));
        let (ok, throttled) = drive(a.clone(), 64, Duration::from_secs(30), |n, _| n > 16).await;
        // THEN the limiter stays near 16: most of the store's capacity used, few throttles
        let best = 16.0 * 30.0 / 0.020;
        let share = throttled as f64 / (ok + throttled) as f64;
        eprintln!("capacity 16: {ok} successes of {best} possible, {throttled} throttles, limit {}", a.limit());
        assert!(ok as f64 >= 0.6 * best, "{ok} successes of {best} possible");
        assert!(share < 0.25, "{throttled} throttles of {} responses", ok + throttled);
        assert!(a.limit() <= 24, "limit {}", a.limit());
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_requests_than_the_limit_are_in_flight() {
        let a = Arc::new(Aimd::new(4));
        a.on_throttle(true);
        let peak = Arc::new(Mutex::new((0usize, 0usize)));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (a, peak) = (a.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = a.acquire().await;
                {
                    let mut p = lock(&peak);
                    p.0 += 1;
                    p.1 = p.1.max(p.0);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                lock(&peak).0 -= 1;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(lock(&peak).1, 2, "the halved limit of 4");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pace_of_200_per_second_takes_about_a_quarter_second_for_50() {
        let p = Pace::new(200.0);
        let start = Instant::now();
        for _ in 0..50 {
            p.take().await;
        }
        // Virtual time: what the pace waited, not what the machine took.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "never faster than the rate: {took:?}");
        assert!(took < Duration::from_millis(300), "nor much slower: {took:?}");
    }
}
