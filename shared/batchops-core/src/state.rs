//! The job state machine: every status change in batchops is checked here first, then written
//! with a conditional write on the old status (so two writers cannot both move a job).
//!
//! ```text
//! New -> Preparing -+-> Ready -> Active -+-> Completing -> Complete
//!                   +-> Suspended -> Ready  +-> Pausing -> Paused -> Active (Pausing -> Active too)
//!                   |                       +-> Failing -> Failed
//! (any non-terminal) -> Cancelling -> Cancelled;  New/Preparing/Suspended/Ready -> Failing
//! ```
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-job-status.html>

use crate::job::{JobId, JobStatus};
use crate::{Error, Result};

/// The statuses a job may move to from `from`.
pub fn next_statuses(from: JobStatus) -> &'static [JobStatus] {
    use JobStatus::*;
    match from {
        New => &[Preparing, Cancelling, Failing],
        Preparing => &[Suspended, Ready, Cancelling, Failing],
        Suspended => &[Ready, Cancelling, Failing],
        Ready => &[Active, Cancelling, Failing],
        Active => &[Completing, Pausing, Cancelling, Failing],
        Pausing => &[Paused, Active, Cancelling, Failing],
        Paused => &[Active, Cancelling, Failing],
        Completing => &[Complete, Failing],
        Cancelling => &[Cancelled],
        Failing => &[Failed],
        Complete | Cancelled | Failed => &[],
    }
}

pub fn can_transition(from: JobStatus, to: JobStatus) -> bool {
    next_statuses(from).contains(&to)
}

/// The statuses a job may move to `to` from.
pub fn statuses_leading_to(to: JobStatus) -> Vec<JobStatus> {
    JobStatus::ALL.into_iter().filter(|s| can_transition(*s, to)).collect()
}

/// Checks a transition, with an error that says what the job is and what was asked.
pub fn check(job_id: &JobId, from: JobStatus, to: JobStatus) -> Result<()> {
    if can_transition(from, to) {
        Ok(())
    } else {
        Err(Error::StatusConflict { job_id: job_id.clone(), actual: from, message: format!("it cannot move to {to}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobStatus::*;

    #[test]
    fn the_happy_path_is_allowed() {
        for pair in [New, Preparing, Ready, Active, Completing, Complete].windows(2) {
            assert!(can_transition(pair[0], pair[1]), "{:?}", pair);
        }
        assert!(can_transition(Preparing, Suspended) && can_transition(Suspended, Ready));
    }

    #[test]
    fn terminal_statuses_never_move() {
        for t in [Complete, Cancelled, Failed] {
            assert!(t.is_terminal());
            for to in JobStatus::ALL {
                assert!(!can_transition(t, to), "{t} -> {to}");
            }
        }
    }

    #[test]
    fn every_live_status_can_be_cancelled_or_reach_an_end() {
        for s in JobStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert!(
                can_transition(s, Cancelling)
                    || can_transition(s, Failing)
                    || can_transition(s, Cancelled)
                    || can_transition(s, Failed),
                "{s}"
            );
        }
    }

    #[test]
    fn illegal_moves_are_refused_with_the_current_status() {
        let id = JobId::parse("job-12345").unwrap();
        assert!(check(&id, Active, Suspended).is_err());
        assert!(check(&id, Suspended, Active).is_err(), "a suspended job goes through Ready");
        match check(&id, Complete, Cancelling) {
            Err(Error::StatusConflict { actual, .. }) => assert_eq!(actual, Complete),
            other => panic!("{other:?}"),
        }
    }
}
