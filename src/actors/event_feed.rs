//! One `GET /events` subscriber: history from the log, then live batches from
//! the EventLog, as Docker's JSON lines.
//!
//! Every event has a sequence; the feed remembers the next one it owes the
//! client, so the seam between history and live has no gap (a batch that skips
//! ahead is filled from the log) and no duplicate (what it already sent is
//! skipped). Live batches come through a bounded broadcast: a subscriber that
//! falls behind (a client that does not read) never slows the engine or the
//! other subscribers; it is told it lagged and continues from the log. One
//! that fell so far behind that retention dropped what it had not read yet
//! is ended with an error (its client sees the stream fail, not a gap).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tracing::debug;

use crate::chan::Chunk;
use crate::events::docker::{translate, Filter, Names};
use crate::events::projection::{Projection, State};
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

/// Bytes of history handed to the client at a time.
const CHUNK: usize = 256 * 1024;

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
        // engine_daemon_events_subscribers_total, while the feed runs.
        let _counted = crate::metrics::Subscriber::new();
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

/// The feed is over: `until` passed, the client left, or the engine stopped.
struct Ended;

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
            if self.catch_up(&mut next, false).await.is_err() {
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
                    if batch.first > next && self.catch_up(&mut next, true).await.is_err() {
                        return;
                    }
                    if self.send_batch(&batch, &mut next).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // The next batch it receives starts past `next`: the gap
                    // check above reads the missed events from the log.
                    debug!(missed, "an events subscriber fell behind; reading the log");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Sends what the log holds from `next` to its end (or to `until`). One
    /// blocking reader walks the log and hands the client a chunk as each fills,
    /// so reading and sending overlap. `owed`: the events from `next` were
    /// promised to this subscriber, so a log that no longer starts there
    /// (retention) ends the stream with an error.
    async fn catch_up(&mut self, next: &mut u64, owed: bool) -> Result<(), Ended> {
        let store = Arc::clone(&self.store);
        let state = self.projection.current();
        let (from, filter, until) = (*next, self.req.filter.clone(), self.req.until_ns);
        let mut names = self.names.take().unwrap_or_default();
        let tx = self.tx.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut out = String::with_capacity(CHUNK + 4096);
            let mut next = from;
            let mut ended = false;
            let iter = match store.read_from(from) {
                Ok(iter) => iter,
                Err(_) => return (names, next, true),
            };
            for env in iter {
                let Ok(env) = env else { break };
                if owed && next == from && env.seq > from {
                    let lost = std::io::Error::other(format!(
                        "events {from} to {} were dropped by events-retention before this subscriber read them",
                        env.seq - 1
                    ));
                    let _ = tx.blocking_send(Err(lost));
                    return (names, next, true);
                }
                if until.is_some_and(|u| env.time_ns > u) {
                    ended = true;
                    break;
                }
                if let Ok(event) = events::decode(env.schema, &env.payload) {
                    render(&mut names, &state, &filter, env.time_ns, &event, &mut out);
                }
                next = env.seq + 1;
                if out.len() >= CHUNK {
                    let chunk = std::mem::replace(&mut out, String::with_capacity(CHUNK + 4096));
                    if tx.blocking_send(Ok(bytes::Bytes::from(chunk))).is_err() {
                        return (names, next, true); // the client left
                    }
                }
            }
            if !out.is_empty() && tx.blocking_send(Ok(bytes::Bytes::from(out))).is_err() {
                ended = true;
            }
            (names, next, ended)
        })
        .await;
        let Ok((names, read_to, ended)) = read else {
            return Err(Ended);
        };
        self.names = Some(names);
        *next = read_to;
        if ended {
            return Err(Ended);
        }
        Ok(())
    }

    async fn send_batch(&mut self, batch: &Batch, next: &mut u64) -> Result<(), Ended> {
        if self.req.until_ns.is_some_and(|u| batch.time_ns > u) {
            return Err(Ended);
        }
        let state = self.projection.current();
        let names = self.names.get_or_insert_with(Names::default);
        let mut out = String::new();
        for (i, event) in batch.events.iter().enumerate() {
            let seq = batch.first + i as u64;
            if seq < *next {
                continue; // sent from the log already
            }
            render(
                names,
                &state,
                &self.req.filter,
                batch.time_ns,
                event,
                &mut out,
            );
            *next = seq + 1;
        }
        self.send(out).await
    }

    async fn send(&self, out: String) -> Result<(), Ended> {
        if out.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Ok(bytes::Bytes::from(out)))
            .await
            .map_err(|_| Ended)
    }
}

/// Appends the JSON lines of the Docker events `event` stands for that pass `filter`.
fn render(
    names: &mut Names,
    state: &State,
    filter: &Filter,
    time_ns: u64,
    event: &Event,
    out: &mut String,
) {
    for m in translate(names, state, time_ns, event) {
        if filter.matches(&m) {
            m.write_json(out);
            out.push('\n');
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
