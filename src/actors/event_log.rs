//! The EventLog actor: the one writer of the event log and of the projection.
//!
//! Group commit: appends queue in `pending`; while one batch is being written
//! and fsynced (on a blocking thread), new appends wait, and the next write takes
//! all of them at once. So N concurrent writers share one fsync instead of paying
//! N. Sequences are assigned when a batch is formed; a failed write hands its
//! sequences back, so the log never has holes. A batch is applied to the
//! projection and acknowledged only after it is durable.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::clock::now_ns;
use crate::error::{Error, Result};
use crate::events::docker::{self, Names};
use crate::events::projection::{Projection, State};
use crate::events::{self, Event};
use crate::store::envelope::Envelope;
use crate::store::eventlog::{EventStore, Replayed};
use crate::store::retention::Retention;

use super::event_feed::Batch;

/// The most events one write takes.
const MAX_BATCH: usize = 1024;
/// Default distance between snapshots, in events.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10_000;

/// Append one event; resolves once it is durable and folded into the projection.
#[derive(Message)]
#[rtype(result = "Result<Appended>")]
pub struct Append(pub Event);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub time_ns: u64,
}

/// Appends `event` through the EventLog and waits until it is durable.
pub async fn append(events: &Addr<EventLog>, event: Event) -> Result<Appended> {
    events
        .send(Append(event))
        .await
        .map_err(|e| Error::unavailable(format!("event log: {e}")))?
}

/// Records a container action that changes no state (kill, stop, attach,
/// exec_*): a docker event only, so nobody waits for it to be durable; it
/// goes out with the next write, in order with this sender's other appends.
pub fn note_container(
    events: &Addr<EventLog>,
    id: &str,
    action: String,
    attributes: Vec<(String, String)>,
) {
    events.do_send(Append(Event::ContainerAction {
        id: id.to_string(),
        action,
        attributes,
    }));
}

/// Append several events in order, written together (one batch, one fsync,
/// when they fit); resolves once the last is durable.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct AppendAll(pub Vec<Event>);

/// Appends `list` through the EventLog as one write and waits until it is durable.
pub async fn append_all(events: &Addr<EventLog>, list: Vec<Event>) -> Result<()> {
    events
        .send(AppendAll(list))
        .await
        .map_err(|e| Error::unavailable(format!("event log: {e}")))?
}

/// Subscribes to the docker-events view; resolves to the body of the stream.
#[derive(Message)]
#[rtype(result = "tokio::sync::mpsc::Receiver<crate::chan::Chunk>")]
pub struct Subscribe(pub super::event_feed::Request);

/// Live batches a subscriber may fall behind by before it reads the log instead.
const LIVE_BATCHES: usize = 256;

/// Resolves when every append received before it is written (for shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

struct Pending {
    event: Event,
    reply: oneshot::Sender<Result<Appended>>,
    /// The last event of its `AppendAll` (or a lone one): a batch never
    /// ends inside a group, so a group is written whole or not at all.
    group_end: bool,
}

pub struct EventLog {
    store: Arc<EventStore>,
    projection: Projection,
    state: Arc<State>,
    next_seq: u64,
    last_time_ns: u64,
    pending: Vec<Pending>,
    flushing: bool,
    snapshot_every: u64,
    last_snapshot_seq: u64,
    snapshotting: bool,
    drain_waiters: Vec<oneshot::Sender<()>>,
    /// Committed batches, for `GET /events` subscribers.
    live: tokio::sync::broadcast::Sender<Arc<Batch>>,
    retention: Retention,
    compacting: bool,
    /// What the Docker events of committed events are named after (they
    /// are counted for `/metrics`).
    names: Names,
}

impl EventLog {
    /// Continues the log that `replayed` describes.
    pub fn new(
        store: Arc<EventStore>,
        replayed: Replayed,
        projection: Projection,
        snapshot_every: u64,
    ) -> Self {
        let state = Arc::new(replayed.state);
        projection.replace(Arc::clone(&state));
        EventLog {
            store,
            projection,
            next_seq: replayed.last_seq + 1,
            last_time_ns: replayed.last_time_ns,
            last_snapshot_seq: replayed.snapshot_seq.unwrap_or(0),
            state,
            pending: Vec::new(),
            flushing: false,
            snapshot_every: snapshot_every.max(1),
            snapshotting: false,
            drain_waiters: Vec::new(),
            live: tokio::sync::broadcast::channel(LIVE_BATCHES).0,
            retention: Retention::default(),
            compacting: false,
            names: Names::default(),
        }
    }

    /// Keeps history as `retention` says (checked at start and then now and then).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Drops the events beyond retention, off the actor's thread; then
    /// records that it did (which forgets the names only they needed).
    fn apply_retention(&mut self, ctx: &mut Context<Self>) {
        if self.compacting {
            return;
        }
        self.compacting = true;
        let (store, state, retention) = (
            Arc::clone(&self.store),
            Arc::clone(&self.state),
            self.retention,
        );
        let now = now_ns();
        let work = tokio::task::spawn_blocking(move || -> Result<Option<(u64, u64, u64)>> {
            let (first, last) = (store.first_seq()?, state.last_seq);
            if first == 0 || last <= first {
                return Ok(None);
            }
            let first_young = match retention.max_age {
                Some(age) => {
                    let age = u64::try_from(age.as_nanos()).unwrap_or(u64::MAX);
                    let since = now.saturating_sub(age);
                    Some(store.seq_at_time(since)?).filter(|s| *s <= last)
                }
                None => None,
            };
            let keep = retention.keep_from(first, last, store.log_bytes(), first_young);
            if keep <= first {
                return Ok(None);
            }
            let kept_from_ns = store
                .read_from(keep)?
                .next()
                .transpose()?
                .map_or(now, |e| e.time_ns);
            store.compact(&state, keep)?;
            Ok(Some((keep - first, keep, kept_from_ns)))
        });
        ctx.spawn(work.into_actor(self).map(|res, act, ctx| {
            act.compacting = false;
            match res {
                Ok(Ok(Some((dropped, before_seq, before_ns)))) => {
                    info!(
                        dropped,
                        keep_from = before_seq,
                        "events-retention: dropped the oldest events"
                    );
                    // Recorded when it lets the state forget something.
                    if !act
                        .state
                        .departed
                        .values()
                        .any(|d| d.removed_ns < before_ns)
                    {
                        return;
                    }
                    let (reply, _) = oneshot::channel();
                    act.pending.push(Pending {
                        event: Event::EventsCompacted {
                            before_seq,
                            before_ns,
                        },
                        reply,
                        group_end: true,
                    });
                    act.flush(ctx);
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => warn!(error = %e, "events-retention"),
                Err(e) => warn!(error = %e, "events-retention"),
            }
        }));
    }

    /// Starts writing the queued appends unless a write is already under way.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.pending.is_empty() {
            self.notify_drained();
            return;
        }
        let mut take = self.pending.len().min(MAX_BATCH);
        while take < self.pending.len() && !self.pending[take - 1].group_end {
            take += 1;
        }
        let batch: Vec<Pending> = self.pending.drain(..take).collect();
        // Event times never go backwards, so `--since` windows stay exact.
        let time_ns = now_ns().max(self.last_time_ns);
        let mut envelopes = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for p in batch {
            match events::encode(&p.event) {
                Ok(payload) => {
                    let seq = self.next_seq + envelopes.len() as u64;
                    envelopes.push(Envelope {
                        seq,
                        time_ns,
                        schema: events::CURRENT_SCHEMA,
                        payload,
                    });
                    waiting.push(p);
                }
                Err(e) => {
                    let _ = p.reply.send(Err(e));
                }
            }
        }
        if envelopes.is_empty() {
            return self.flush(ctx);
        }
        self.flushing = true;
        self.next_seq += envelopes.len() as u64;
        let store = Arc::clone(&self.store);
        let write = async move {
            let count = envelopes.len();
            let first = envelopes[0].seq;
            let res = tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let res = store.append(&envelopes, true);
                crate::metrics::LOG_WRITES.since(started);
                res
            })
            .await
            .unwrap_or_else(|e| Err(Error::internal(format!("event log writer: {e}"))));
            (first, count, res)
        };
        ctx.spawn(
            write
                .into_actor(self)
                .map(move |(first, count, res), act, ctx| {
                    act.flushing = false;
                    match res {
                        Ok(()) => act.commit(first, time_ns, waiting),
                        Err(e) => {
                            warn!(first, count, error = %e, "event log write failed");
                            // Nothing of this batch was applied: hand its sequences back.
                            act.next_seq = first;
                            for p in waiting {
                                let _ = p.reply.send(Err(e.clone()));
                            }
                        }
                    }
                    act.flush(ctx);
                    act.maybe_snapshot(ctx);
                }),
        );
    }

    /// Folds a durable batch into the projection, then acknowledges it.
    fn commit(&mut self, first: u64, time_ns: u64, batch: Vec<Pending>) {
        let state = Arc::make_mut(&mut self.state);
        for (i, p) in batch.iter().enumerate() {
            state.apply(first + i as u64, time_ns, &p.event);
        }
        self.last_time_ns = time_ns;
        self.projection.replace(Arc::clone(&self.state));
        use std::sync::atomic::Ordering::Relaxed;
        crate::metrics::LOG_APPENDS.fetch_add(batch.len() as u64, Relaxed);
        // engine_daemon_events_total: the Docker events these stand for.
        let told: usize = batch
            .iter()
            .map(|p| docker::translate(&mut self.names, &self.state, time_ns, &p.event).len())
            .sum();
        crate::metrics::EVENTS.fetch_add(told as u64, Relaxed);
        debug!(first, count = batch.len(), "events committed");
        // Only when someone listens: a feed costs nothing otherwise.
        let live = (self.live.receiver_count() > 0).then(|| Batch {
            first,
            time_ns,
            events: batch.iter().map(|p| p.event.clone()).collect(),
        });
        for (i, p) in batch.into_iter().enumerate() {
            let _ = p.reply.send(Ok(Appended {
                seq: first + i as u64,
                time_ns,
            }));
        }
        if let Some(b) = live {
            let _ = self.live.send(Arc::new(b));
        }
    }

    fn maybe_snapshot(&mut self, ctx: &mut Context<Self>) {
        if self.snapshotting || self.state.last_seq < self.last_snapshot_seq + self.snapshot_every {
            return;
        }
        self.snapshotting = true;
        let store = Arc::clone(&self.store);
        let state = Arc::clone(&self.state);
        let seq = state.last_seq;
        let write = async move {
            tokio::task::spawn_blocking(move || store.write_snapshot(&state))
                .await
                .unwrap_or_else(|e| Err(Error::internal(format!("snapshot writer: {e}"))))
        };
        ctx.spawn(write.into_actor(self).map(move |res, act, _| {
            act.snapshotting = false;
            match res {
                Ok(()) => {
                    act.last_snapshot_seq = seq;
                    debug!(seq, "snapshot written");
                }
                // A missed snapshot only lengthens the next replay.
                Err(e) => warn!(seq, error = %e, "snapshot failed"),
            }
        }));
    }

    fn notify_drained(&mut self) {
        if !self.flushing && self.pending.is_empty() {
            for w in self.drain_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

impl Actor for EventLog {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Appends arrive in bursts (16 writers, a compose up): a deep mailbox lets
        // them queue here, where group commit can take them all.
        ctx.set_mailbox_capacity(4096);
        self.apply_retention(ctx);
        ctx.run_interval(self.retention.check_every(), |act, ctx| {
            act.apply_retention(ctx)
        });
    }
}

impl Handler<Append> for EventLog {
    type Result = ResponseFuture<Result<Appended>>;

    fn handle(&mut self, msg: Append, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.pending.push(Pending {
            event: msg.0,
            reply,
            group_end: true,
        });
        self.flush(ctx);
        Box::pin(async move {
            answer
                .await
                .unwrap_or_else(|_| Err(Error::unavailable("the event log has stopped")))
        })
    }
}

impl Handler<AppendAll> for EventLog {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: AppendAll, ctx: &mut Context<Self>) -> Self::Result {
        let mut answers = Vec::with_capacity(msg.0.len());
        for event in msg.0 {
            let (reply, answer) = oneshot::channel();
            self.pending.push(Pending {
                event,
                reply,
                group_end: false,
            });
            answers.push(answer);
        }
        if let Some(last) = self.pending.last_mut() {
            last.group_end = true;
        }
        self.flush(ctx);
        Box::pin(async move {
            for answer in answers {
                answer
                    .await
                    .unwrap_or_else(|_| Err(Error::unavailable("the event log has stopped")))?;
            }
            Ok(())
        })
    }
}

impl Handler<Subscribe> for EventLog {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        // Subscribed before the feed reads the log's end: nothing falls between.
        let live = self.live.subscribe();
        MessageResult(super::event_feed::start(
            Arc::clone(&self.store),
            self.projection.clone(),
            live,
            self.state.last_seq + 1,
            msg.0,
        ))
    }
}

impl Handler<Drain> for EventLog {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.notify_drained();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
