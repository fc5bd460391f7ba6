//! One `GET /events` subscriber: history from the log, then live batches from
//! the EventLog, as Docker's JSON lines.
//!
//! Every event has a sequence; the feed remembers the next one it owes the
//! client, so the seam between history and live has no gap (a batch that skips
//! ahead is filled from the log) and no duplicate (what it already sent is
//! skipped). Live batches come through a bounded broadcast: a subscriber that
//! falls behind (a client that does not read) never slows the engine or the
//! other subscribers; it is told it lagged and continues from the log.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tracing::debug;

use crate::chan::Chunk;
use crate::events::docker::{translate, Filter, Names};
use crate::events::projection::Projection;
use crate::events::{self, Event};
use crate::store::eventlog::EventStore;

/// Events committed together, as the EventLog broadcasts them.
#[derive(Debug)]
pub struct Batch {
    pub first: u64,
    pub time_ns: u64,
    pub events: Vec<Event>,
}

/// What a subscriber asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// Read history from this time (ns); None: live events only.
    pub since_ns: Option<u64>,
    /// End the stream after this time (ns).
    pub until_ns: Option<u64>,
    pub filter: Filter,
}

/// Events one read of the log takes (one chunk to the client).
const READ_BATCH: usize = 4096;

/// Starts a feed; returns the body it writes. `next_seq` is the first
/// sequence not yet committed when `live` was subscribed.
pub fn start(
    store: Arc<EventStore>,
    projection: Projection,
    live: broadcast::Receiver<Arc<Batch>>,
    next_seq: u64,
    req: Request,
) -> mpsc::Receiver<Chunk> {
    let (tx, rx) = mpsc::channel(16);
    actix::spawn(async move {
        let feed = Feed {
            store,
            projection,
            tx,
            req,
            names: Some(Names::default()),
        };
        feed.run(live, next_seq).await;
    });
    rx
}

struct Feed {
    store: Arc<EventStore>,
    projection: Projection,
    tx: mpsc::Sender<Chunk>,
    req: Request,
    /// Moved into the blocking reader and back.
    names: Option<Names>,
}

/// Why a feed stops.
enum End {
    /// `until` passed, the client left, or the engine stopped.
    Done,
}

impl Feed {
    async fn run(mut self, mut live: broadcast::Receiver<Arc<Batch>>, live_from: u64) {
        let mut next = live_from;
        // dockerd: `until` alone reads history from the start too.
        let since = self.req.since_ns.or(self.req.until_ns.map(|_| 0));
        if let Some(since) = since {
            let store = Arc::clone(&self.store);
            next = match tokio::task::spawn_blocking(move || store.seq_at_time(since)).await {
                Ok(Ok(seq)) => seq,
                _ => live_from,
            };
            if self.catch_up(&mut next).await.is_err() {
                return;
            }
        }
        let until = self.req.until_ns.map(|u| {
            let now = crate::clock::now_ns();
            tokio::time::Instant::now() + Duration::from_nanos(u.saturating_sub(now))
        });
        loop {
            let received = tokio::select! {
                r = live.recv() => r,
                _ = self.tx.closed() => return,
                _ = sleep_until(until) => return,
            };
            match received {
                Ok(batch) => {
                    if batch.first > next && self.catch_up(&mut next).await.is_err() {
                        return;
                    }
                    if self.send_batch(&batch, &mut next).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    debug!(missed, "an events subscriber fell behind; reading the log");
                    if self.catch_up(&mut next).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Sends what the log holds from `next` to its end (or to `until`).
    async fn catch_up(&mut self, next: &mut u64) -> Result<(), End> {
        loop {
            let store = Arc::clone(&self.store);
            let state = self.projection.current();
            let (from, filter, until) = (*next, self.req.filter.clone(), self.req.until_ns);
            let mut names = self.names.take().unwrap_or_default();
            let read = tokio::task::spawn_blocking(move || {
                let mut out = String::new();
                let mut next = from;
                let mut passed_until = false;
                let mut count = 0;
                let iter = match store.read_from(from) {
                    Ok(iter) => iter,
                    Err(_) => return (names, out, next, true, true),
                };
                for env in iter {
                    let Ok(env) = env else { break };
                    if until.is_some_and(|u| env.time_ns > u) {
                        passed_until = true;
                        break;
                    }
                    if let Ok(event) = events::decode(env.schema, &env.payload) {
                        for m in translate(&mut names, &state, env.time_ns, &event) {
                            if filter.matches(&m) {
                                out.push_str(&m.to_json());
                                out.push('\n');
                            }
                        }
                    }
                    next = env.seq + 1;
                    count += 1;
                    if count == READ_BATCH {
                        return (names, out, next, false, false);
                    }
                }
                (names, out, next, true, passed_until)
            })
            .await;
            let Ok((names, out, read_to, at_end, passed_until)) = read else {
                return Err(End::Done);
            };
            self.names = Some(names);
            *next = read_to;
            self.send(out).await?;
            if passed_until {
                return Err(End::Done);
            }
            if at_end {
                return Ok(());
            }
        }
    }

    async fn send_batch(&mut self, batch: &Batch, next: &mut u64) -> Result<(), End> {
        if self.req.until_ns.is_some_and(|u| batch.time_ns > u) {
            return Err(End::Done);
        }
        let state = self.projection.current();
        let names = self.names.get_or_insert_with(Names::default);
        let mut out = String::new();
        for (i, event) in batch.events.iter().enumerate() {
            let seq = batch.first + i as u64;
            if seq < *next {
                continue; // sent from the log already
            }
            for m in translate(names, &state, batch.time_ns, event) {
                if self.req.filter.matches(&m) {
                    out.push_str(&m.to_json());
                    out.push('\n');
                }
            }
            *next = seq + 1;
        }
        self.send(out).await
    }

    async fn send(&self, out: String) -> Result<(), End> {
        if out.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Ok(bytes::Bytes::from(out)))
            .await
            .map_err(|_| End::Done)
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
