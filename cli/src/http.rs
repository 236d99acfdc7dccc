//! The HTTP server in front of `batchops local`'s API. `axum::serve` sets no timer, so a client
//! that sends its headers a byte a minute, or opens connections and sends nothing, holds a task
//! and a socket for ever, and nothing bounds how many it holds. This server is hyper's HTTP/1
//! with the bounds a shared endpoint needs (API Gateway enforces its own in front of Lambda):
//!
//! - a request's head (request line and headers) within [`HEADER_READ_TIMEOUT`] of the
//!   connection opening or of the last answer on it (an idle keep-alive connection is closed),
//!   in at most [`MAX_HEAD_BYTES`] (hyper answers 431 beyond);
//! - its body within the API's own deadline ([`job_intake::api::BODY_DEADLINE`], 408);
//! - at most [`MAX_CONNECTIONS`] open at once: one more is closed as soon as it is accepted,
//!   so the process's sockets and memory stay bounded whatever the clients do;
//! - a connection lives at most [`MAX_CONNECTION_LIFE`], then ends after its request in hand
//!   (or [`CLOSE_GRACE`] later): a client that never reads its answers holds a slot no longer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// Connections served at once; a connection beyond them is closed on accept.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a connection may take to send a request's head (and may stay idle between requests).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head read (request line and headers); hyper answers 431 beyond it.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The longest a connection is served; clients open another.
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(300);
/// How long connections still open at a stop may finish their requests.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let refused = AtomicU64::new(0);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => break,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: let connections end before accepting more.
                warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                warn!(refused = n, limit = MAX_CONNECTIONS, "connections over the limit are closed on accept");
            }
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).max_buf_size(MAX_HEAD_BYTES);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let ended = tokio::select! {
                served = conn.as_mut() => Some(served),
                _ = stopped(&mut stop) => None,
                _ = tokio::time::sleep(MAX_CONNECTION_LIFE) => None,
            };
            // A stop, or the connection's time is up: it ends after the request in hand.
            let served = match ended {
                Some(served) => served,
                None => {
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(CLOSE_GRACE, conn).await.unwrap_or(Ok(()))
                }
            };
            if let Err(e) = served {
                debug!(error = %e, "connection ended");
            }
        });
    }
    // No more connections are taken while those open finish.
    drop(listener);
    let _ = tokio::time::timeout(CLOSE_GRACE, async { while connections.join_next().await.is_some() {} }).await;
}

/// Returns when `stop` turns true (its guard dropped here, so callers stay `Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
