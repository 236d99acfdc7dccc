//! The contract of [`JobRecords`]: a job created once per token, written whole and
//! conditionally on its version (its counters and throttles aside), listed newest first in
//! pages, and the sweep's sightings kept beside it.

use std::collections::BTreeMap;

use super::fixtures::{account, create, job, set_status, stored_job};
use crate::job::{Job, JobId, JobStatus};
use crate::ports::{CreateOutcome, JobFilter, JobRecords, Sighting};
use crate::{Error, Result};

/// Runs every case of the contract on `store`.
pub async fn job_records(store: &dyn JobRecords) -> Result<()> {
    a_job_is_created_once_per_token(store).await?;
    of_two_racing_creates_with_one_token_one_creates(store).await?;
    a_write_of_a_stale_version_loses(store).await?;
    of_two_racing_writes_one_wins(store).await?;
    a_write_keeps_the_counters_and_throttles(store).await?;
    jobs_are_listed_newest_first_in_pages_that_go_on(store).await?;
    jobs_are_listed_by_status_and_while_open(store).await?;
    the_sweeps_sightings_are_kept_per_job(store).await
}

fn ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id.clone()).collect()
}

async fn a_job_is_created_once_per_token(store: &dyn JobRecords) -> Result<()> {
    let acct = account();
    let (first, token) = (job(&acct, 0), format!("{acct}#tok"));
    assert_eq!(store.create(&first, &token, "h1").await?, CreateOutcome::Created);
    assert_eq!(store.create(&job(&acct, 0), &token, "h1").await?, CreateOutcome::Existing(first.id.clone()));
    assert_eq!(store.create(&job(&acct, 0), &token, "h2").await?, CreateOutcome::Conflict, "another request");
    assert_eq!(store.create(&job(&acct, 0), &format!("{acct}#tok2"), "h1").await?, CreateOutcome::Created);
    let got = store.get(&first.id).await?;
    assert_eq!((got.id, got.status, got.priority, got.version), (first.id, JobStatus::New, 3, 0));
    assert!(matches!(store.get(&JobId::new_random()).await, Err(Error::JobNotFound { .. })));
    Ok(())
}

/// Two deliveries of one CreateJob at once (a client retrying on a timeout) make one job.
async fn of_two_racing_creates_with_one_token_one_creates(store: &dyn JobRecords) -> Result<()> {
    let acct = account();
    let (a, b, token) = (job(&acct, 0), job(&acct, 0), format!("{acct}#raced"));
    let (ra, rb) = futures::join!(store.create(&a, &token, "h"), store.create(&b, &token, "h"));
    let outcomes = [ra?, rb?];
    let winner = match &outcomes {
        [CreateOutcome::Created, CreateOutcome::Existing(id)]
        | [CreateOutcome::Existing(id), CreateOutcome::Created] => id.clone(),
        other => panic!("one create, one answer naming it: {other:?}"),
    };
    assert!(winner == a.id || winner == b.id, "{winner}");
    assert!(store.get(&winner).await.is_ok());
    let loser = if winner == a.id { &b.id } else { &a.id };
    assert!(matches!(store.get(loser).await, Err(Error::JobNotFound { .. })), "the other job was not stored");
    Ok(())
}

async fn a_write_of_a_stale_version_loses(store: &dyn JobRecords) -> Result<()> {
    let read = stored_job(store, JobStatus::New).await?;
    let mut preparing = read.clone();
    preparing.status = JobStatus::Preparing;
    let stored = store.put(&preparing).await?;
    assert_eq!(stored.version, read.version + 1);
    let mut stale = read.clone();
    stale.status = JobStatus::Cancelled;
    assert!(matches!(store.put(&stale).await, Err(Error::Conflict { .. })), "a stale version loses");
    assert_eq!(store.get(&read.id).await?.status, JobStatus::Preparing, "and changes nothing");
    Ok(())
}

/// Two writers that read the same version: one write stands, the other is told.
async fn of_two_racing_writes_one_wins(store: &dyn JobRecords) -> Result<()> {
    let read = stored_job(store, JobStatus::Active).await?;
    let (mut a, mut b) = (read.clone(), read.clone());
    (a.priority, b.priority) = (10, 20);
    let (ra, rb) = futures::join!(store.put(&a), store.put(&b));
    let won = match (ra, rb) {
        (Ok(j), Err(Error::Conflict { .. })) | (Err(Error::Conflict { .. }), Ok(j)) => j,
        other => panic!("one write and one conflict: {other:?}"),
    };
    assert_eq!(won.version, read.version + 1);
    assert_eq!(store.get(&read.id).await?.priority, won.priority, "the write that won is the one stored");
    Ok(())
}

/// Counters belong to the ledger and throttles to `note_throttle`: a job written whole
/// never overwrites them, and noting a throttle conflicts with no write.
async fn a_write_keeps_the_counters_and_throttles(store: &dyn JobRecords) -> Result<()> {
    let read = stored_job(store, JobStatus::Active).await?;
    store.note_throttle(&read.id, "bucket-a", 1_000).await?;
    store.note_throttle(&read.id, "bucket-b", 2_000).await?;
    store.note_throttle(&read.id, "bucket-a", 3_000).await?;
    let throttled = BTreeMap::from([("bucket-a".to_string(), 3_000), ("bucket-b".to_string(), 2_000)]);
    assert_eq!(store.get(&read.id).await?.throttled, throttled);
    // The job as read before the throttles, its counters made up: its version still holds.
    let mut written = read.clone();
    written.progress.succeeded = 99;
    written.progress.chunks_done = 7;
    written.progress.cut.files = 3;
    written.priority = 9;
    let stored = store.put(&written).await?;
    let p = &stored.progress;
    assert_eq!((p.succeeded, p.chunks_done, p.cut.files, stored.priority), (0, 0, 0, 9));
    assert_eq!(stored.throttled, throttled, "the throttles noted are kept");
    assert_eq!(store.get(&read.id).await?.progress.succeeded, 0);
    let missing = store.note_throttle(&JobId::new_random(), "bucket-a", 1).await;
    assert!(matches!(missing, Err(Error::JobNotFound { .. })), "{missing:?}");
    Ok(())
}

async fn jobs_are_listed_newest_first_in_pages_that_go_on(store: &dyn JobRecords) -> Result<()> {
    let (acct, other) = (account(), account());
    let jobs: Vec<Job> = [0, 10, 20, 30, 40].iter().map(|offset| job(&acct, *offset)).collect();
    for j in &jobs {
        create(store, j).await?;
    }
    // The newest job of all is another account's: skipped, and the pages stay full.
    let theirs = job(&other, 50);
    create(store, &theirs).await?;
    let mine = JobFilter { account: Some(&acct), ..JobFilter::default() };
    let (mut seen, mut token, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = store.list(&mine, 2, token.as_deref()).await?;
        assert!(page.jobs.len() <= 2, "{} jobs in a page of 2", page.jobs.len());
        assert!(pages > 0 || page.jobs.len() == 2, "the first page is full");
        seen.extend(ids(&page.jobs));
        pages += 1;
        assert!(pages <= 4, "the pages end");
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let newest_first: Vec<JobId> = ids(&jobs).into_iter().rev().collect();
    assert_eq!(seen, newest_first);
    let listed = store.list(&JobFilter { account: Some(&other), ..JobFilter::default() }, 5, None).await?;
    assert_eq!((ids(&listed.jobs), listed.next_token), (vec![theirs.id.clone()], None));
    assert!(store.list(&mine, 2, Some("not a token this API gave")).await.is_err());
    Ok(())
}

async fn jobs_are_listed_by_status_and_while_open(store: &dyn JobRecords) -> Result<()> {
    let acct = account();
    let (active, ended, suspended) = (job(&acct, 0), job(&acct, 10), job(&acct, 20));
    for (j, status) in
        [(&active, JobStatus::Active), (&ended, JobStatus::Cancelled), (&suspended, JobStatus::Suspended)]
    {
        create(store, j).await?;
        set_status(store, &j.id, status).await?;
    }
    let of = |statuses, open| JobFilter { statuses, account: Some(&acct), open };
    let listed = store.list(&of(&[JobStatus::Active, JobStatus::Cancelled], false), 10, None).await?;
    assert_eq!(ids(&listed.jobs), vec![ended.id.clone(), active.id.clone()]);
    assert_eq!(listed.jobs[1].status, JobStatus::Active);
    let open = store.list(&of(&[], true), 10, None).await?;
    assert_eq!(ids(&open.jobs), vec![suspended.id.clone(), active.id.clone()], "the ended job is not open");
    set_status(store, &suspended.id, JobStatus::Failed).await?;
    let open = store.list(&of(&[], true), 10, None).await?;
    assert_eq!(ids(&open.jobs), vec![active.id.clone()], "a job that ends leaves the open jobs");
    Ok(())
}

async fn the_sweeps_sightings_are_kept_per_job(store: &dyn JobRecords) -> Result<()> {
    let (a, b) = (stored_job(store, JobStatus::Active).await?, stored_job(store, JobStatus::Active).await?);
    assert_eq!(store.sighting(&a.id).await?, None);
    let seen = Sighting { fingerprint: u64::MAX >> 1, since_ms: crate::ports::now_ms(), nudges: 0 };
    store.put_sighting(&a.id, &seen).await?;
    let nudged = Sighting { nudges: 1, ..seen };
    store.put_sighting(&a.id, &nudged).await?;
    assert_eq!(store.sighting(&a.id).await?, Some(nudged));
    assert_eq!(store.sighting(&b.id).await?, None, "another job's");
    let after = store.get(&a.id).await?;
    assert_eq!((after.status, after.version), (a.status, a.version), "the job itself is untouched");
    Ok(())
}
