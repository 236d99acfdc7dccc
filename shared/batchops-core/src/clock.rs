//! The one clock of the domain: every "now" the pipeline, the ports' claims and the in-memory
//! store read comes from here, so a test on tokio's paused clock moves them all together.

use std::time::Duration;

use time::OffsetDateTime;

/// The time since the Unix epoch: the system clock, shifted by the whole milliseconds tokio's
/// clock stands away from the real one.
///
/// Claims are Unix times because other processes read them, yet they must lapse in the time
/// the pipeline sleeps in, which is tokio's. In a running process the two clocks agree and this
/// is the system clock; under a paused runtime (tests) it moves only when tokio's time is
/// advanced, so a claim lapses when virtual time says so, not when a loaded machine does.
fn unix_now() -> Duration {
    let real = std::time::Instant::now();
    let tokio = tokio::time::Instant::now().into_std();
    let system = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let whole_ms = |d: Duration| Duration::from_millis(d.as_millis() as u64);
    (system + whole_ms(tokio.saturating_duration_since(real)))
        .saturating_sub(whole_ms(real.saturating_duration_since(tokio)))
}

/// Now, as a timestamp (job records, reports, generator windows).
pub fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + unix_now()
}

/// Now in Unix milliseconds, as [`ChunkLease`](crate::ports::ChunkLease)s count it.
pub fn now_ms() -> u64 {
    unix_now().as_millis() as u64
}
