//! The clock of the pipeline and of the claims the stores compare (chunk leases, the
//! dispatcher's and finalizer's checks of them): their "now" comes from here, so a test on
//! tokio's paused clock moves them together. (Times shown to people, S3's LastModified in the
//! in-memory store and the API's elapsed times, read the system clock: in a running process
//! the two are the same.)

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
    // Tokio's clock read between two reads of the real one: in a running process it falls
    // between them and the offset is exactly zero, however the thread is scheduled.
    let before = std::time::Instant::now();
    let tokio = tokio::time::Instant::now().into_std();
    let after = std::time::Instant::now();
    let system = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let whole_ms = |d: Duration| Duration::from_millis(d.as_millis() as u64);
    if tokio > after {
        system + whole_ms(tokio - after)
    } else {
        system.saturating_sub(whole_ms(before.saturating_duration_since(tokio)))
    }
}

/// Now, as a timestamp (job records, reports, generator windows).
pub fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + unix_now()
}

/// Now in Unix milliseconds, as [`ChunkLease`](crate::ports::ChunkLease)s count it.
pub fn now_ms() -> u64 {
    unix_now().as_millis() as u64
}
