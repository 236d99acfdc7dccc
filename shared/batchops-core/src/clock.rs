//! The clock of the pipeline and of the claims the stores compare (chunk leases, the
//! dispatcher's and finalizer's checks of them): their "now" comes from here, so a test on
//! tokio's paused clock moves them together. (Times shown to people, S3's LastModified in the
//! in-memory store and the API's elapsed times, read the system clock: in a running process
//! the two are the same.)

use std::time::Duration;

use jiff::Timestamp;

/// The time since the Unix epoch: the system clock, shifted by the whole milliseconds tokio's
/// clock stands away from the real one.
///
/// Claims are Unix times because other processes read them, yet they must lapse in the time
/// the pipeline sleeps in, which is tokio's. In a running process the two clocks agree and this
/// is the system clock; under a paused runtime (tests) it moves only when tokio's time is
/// advanced, so a claim lapses when virtual time says so, not when a loaded machine does.
fn unix_now() -> Duration {
    if let Some(now) =
        SIMULATED.with(|s| s.borrow().as_ref().map(|s| s.epoch + (tokio::time::Instant::now() - s.start)))
    {
        return now;
    }
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
pub fn now() -> Timestamp {
    Timestamp::UNIX_EPOCH + unix_now()
}

/// Now in Unix milliseconds, as [`ChunkLease`](crate::ports::ChunkLease)s count it.
pub fn now_ms() -> u64 {
    unix_now().as_millis() as u64
}

/// A simulation's clock and randomness (see `sim/`): wholly virtual, so one seed replays
/// exactly. Set for the thread that runs the simulation (its runtime is single-threaded);
/// never set in a running process.
struct Simulated {
    /// Unix time at `start`.
    epoch: Duration,
    start: tokio::time::Instant,
    /// SplitMix64 state.
    state: u64,
}

thread_local! {
    static SIMULATED: std::cell::RefCell<Option<Simulated>> = const { std::cell::RefCell::new(None) };
}

/// Makes this thread's clock start at `epoch` (Unix time) and move with tokio's paused clock
/// only, and its random numbers come from `seed`. Call from inside the runtime.
pub fn simulate(epoch: Duration, seed: u64) {
    SIMULATED.with(|s| *s.borrow_mut() = Some(Simulated { epoch, start: tokio::time::Instant::now(), state: seed }));
}

/// Back to the system's clock and randomness.
pub fn stop_simulating() {
    SIMULATED.with(|s| *s.borrow_mut() = None);
}

/// A random number: the simulation's when simulating.
pub fn random_u64() -> u64 {
    let simulated = SIMULATED.with(|s| {
        s.borrow_mut().as_mut().map(|s| {
            // SplitMix64.
            s.state = s.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    });
    simulated.unwrap_or_else(rand::random)
}

/// A random number in `0..=max`.
pub fn random_to(max: u64) -> u64 {
    match max {
        0 => 0,
        u64::MAX => random_u64(),
        m => random_u64() % (m + 1),
    }
}

/// A version 4 UUID (job IDs, claim owners, lock holders): the simulation's when simulating.
pub fn uuid() -> uuid::Uuid {
    let bytes = ((random_u64() as u128) << 64 | random_u64() as u128).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
