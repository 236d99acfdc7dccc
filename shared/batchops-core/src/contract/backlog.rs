//! The contract of [`Backlog`]: chunks waiting by job, answered as many as asked for however
//! large; a runnable mark whose push count makes clearing it lose to a push; one dispatcher
//! lock holder at a time, until its hold lapses.

use std::time::Duration;

use crate::job::JobId;
use crate::ports::{Backlog, Waiting};
use crate::Result;

/// Runs every case of the contract on `store`.
pub async fn backlog(store: &dyn Backlog) -> Result<()> {
    every_waiting_chunk_asked_for_is_answered(store).await?;
    a_push_since_the_count_was_read_keeps_the_mark(store).await?;
    backlogs_are_kept_by_job(store).await?;
    the_lock_has_one_holder_until_its_hold_lapses(store).await
}

fn indexes(waiting: &[Waiting]) -> Vec<u64> {
    waiting.iter().map(|w| w.index).collect()
}

/// Bodies of inventory chunks are 80-160 KB: a 1 MB query page holds a handful, and the
/// dispatcher reads a short answer as "nothing more waits".
async fn every_waiting_chunk_asked_for_is_answered(store: &dyn Backlog) -> Result<()> {
    let id = JobId::new_random();
    let body = |i: u64| format!("{i:03}{}", "x".repeat(120 * 1024));
    store.push(&id, (0..24).rev().map(|index| Waiting { index, body: body(index) }).collect()).await?;
    let all = store.peek(&id, 24).await?;
    assert_eq!(indexes(&all), (0..24).collect::<Vec<_>>(), "3 MB of bodies, lowest index first");
    assert!(all.iter().all(|w| w.body == body(w.index)));
    assert_eq!(store.peek(&id, 100).await?.len(), 24, "all that wait, no more");
    assert_eq!(indexes(&store.peek(&id, 5).await?), [0, 1, 2, 3, 4]);
    store.remove(&id, &(0..20).collect::<Vec<_>>()).await?;
    assert_eq!(indexes(&store.peek(&id, 24).await?), [20, 21, 22, 23]);
    store.remove(&id, &[5, 20]).await?;
    assert_eq!(indexes(&store.peek(&id, 24).await?), [21, 22, 23], "removing what is gone is no error");
    // A chunk pushed again (a dispatcher that took it back) replaces the one waiting.
    store.push(&id, vec![Waiting { index: 22, body: "again".into() }]).await?;
    let waiting = store.peek(&id, 24).await?;
    assert_eq!((indexes(&waiting), waiting[1].body.as_str()), (vec![21, 22, 23], "again"));
    Ok(())
}

async fn a_push_since_the_count_was_read_keeps_the_mark(store: &dyn Backlog) -> Result<()> {
    let id = JobId::new_random();
    let one = |index| vec![Waiting { index, body: format!("chunk {index}") }];
    store.push(&id, one(0)).await?;
    assert!(store.runnable().await?.contains(&(id.clone(), 1)));
    store.push(&id, one(1)).await?;
    store.unmark(&id, 1).await?;
    assert!(store.runnable().await?.contains(&(id.clone(), 2)), "a push after the count was read");
    store.unmark(&id, 2).await?;
    assert!(!store.runnable().await?.iter().any(|(j, _)| *j == id), "cleared with the count as it is");
    assert_eq!(store.peek(&id, 10).await?.len(), 2, "clearing the mark leaves the chunks");
    store.push(&id, one(2)).await?;
    assert!(store.runnable().await?.iter().any(|(j, _)| *j == id), "marked again");
    Ok(())
}

async fn backlogs_are_kept_by_job(store: &dyn Backlog) -> Result<()> {
    let (a, b) = (JobId::new_random(), JobId::new_random());
    store.push(&a, vec![Waiting { index: 7, body: "a7".into() }]).await?;
    store.push(&b, vec![Waiting { index: 7, body: "b7".into() }]).await?;
    store.remove(&a, &[7]).await?;
    assert!(store.peek(&a, 5).await?.is_empty());
    assert_eq!(store.peek(&b, 5).await?, vec![Waiting { index: 7, body: "b7".into() }], "the other job's stays");
    let runnable = store.runnable().await?;
    assert!([&a, &b].iter().all(|id| runnable.iter().any(|(j, _)| j == *id)), "{runnable:?}");
    Ok(())
}

async fn the_lock_has_one_holder_until_its_hold_lapses(store: &dyn Backlog) -> Result<()> {
    let hold = Duration::from_secs(60);
    assert!(store.lock("d1", hold).await?);
    assert!(!store.lock("d2", hold).await?, "held by d1");
    assert!(store.lock("d1", hold).await?, "its holder takes it again");
    store.unlock("d2").await?;
    assert!(!store.lock("d2", hold).await?, "only its holder unlocks it");
    store.unlock("d1").await?;
    assert!(store.lock("d2", Duration::from_millis(1)).await?);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(store.lock("d1", hold).await?, "a hold that lapsed is taken over");
    assert!(!store.lock("d2", hold).await?);
    store.unlock("d1").await
}
