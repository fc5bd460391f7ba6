//! The event log: durability of acknowledged appends across SIGKILL, group commit,
//! damaged tails, snapshots.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use berth::actors::event_log::{Append, EventLog};
use berth::events::projection::{Projection, State};
use berth::events::{self, Event};
use berth::store::envelope::Envelope;
use berth::store::eventlog::EventStore;

const CHILD_ENV: &str = "BERTH_TEST_CRASH_CHILD_DIR";

fn tagged(writer: u32, n: u64) -> Event {
    Event::DaemonStarted {
        version: format!("w{writer}-{n}"),
        pid: writer,
    }
}

/// Every record in the log, decoded: seq -> (time, event).
fn all_events(store: &EventStore) -> BTreeMap<u64, (u64, Event)> {
    store
        .read_from(1)
        .expect("read")
        .map(|e| {
            let e: Envelope = e.expect("intact record");
            (
                e.seq,
                (
                    e.time_ns,
                    events::decode(e.schema, &e.payload).expect("decodes"),
                ),
            )
        })
        .collect()
}

fn start_log(store: Arc<EventStore>, snapshot_every: u64) -> (actix::Addr<EventLog>, Projection) {
    let replayed = store.replay().expect("replay");
    let projection = Projection::default();
    let addr = EventLog::new(store, replayed, projection.clone(), snapshot_every).start();
    (addr, projection)
}

/// The child role: 16 writers append until killed; each acknowledged append is
/// recorded as "seq writer n" in acks.txt, after the acknowledgement.
fn crash_child(dir: &Path) -> ! {
    let acks = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("acks.txt"))
        .expect("acks");
    let acks = Arc::new(std::sync::Mutex::new(acks));
    actix::System::new().block_on(async move {
        let store = Arc::new(EventStore::open(&dir.join("events")).expect("open"));
        let (log, _) = start_log(store, 500);
        let mut tasks = Vec::new();
        for w in 0..16u32 {
            let (log, acks) = (log.clone(), Arc::clone(&acks));
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let done = log
                        .send(Append(tagged(w, n)))
                        .await
                        .expect("mailbox")
                        .expect("append");
                    let line = format!("{} {w} {n}\n", done.seq);
                    acks.lock()
                        .expect("lock")
                        .write_all(line.as_bytes())
                        .expect("record ack");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    std::process::exit(0)
}

#[test]
fn acknowledged_appends_survive_sigkill_at_a_random_moment() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        crash_child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args([
                "--exact",
                "acknowledged_appends_survive_sigkill_at_a_random_moment",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .subsec_nanos() as u64;
        let wait = Duration::from_millis(300 + (nanos + round * 7919) % 1200);
        // Kill only once the writers are really running.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(dir.path().join("acks.txt"))
            .map(|m| m.len())
            .unwrap_or(0)
            == 0
        {
            assert!(
                Instant::now() < deadline,
                "child never acknowledged an append"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(wait);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");

        let acks = std::fs::read_to_string(dir.path().join("acks.txt")).expect("acks");
        let store = EventStore::open(&dir.path().join("events")).expect("reopen after SIGKILL");
        let replayed = store.replay().expect("replay after SIGKILL");
        assert!(
            replayed.dropped.is_none(),
            "an fsynced log has no damaged tail: {:?}",
            replayed.dropped
        );
        let logged = all_events(&store);
        let mut checked = 0;
        // A line cut by the kill has no newline yet: it was not fully recorded.
        for line in acks.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let f: Vec<u64> = line
                .split_whitespace()
                .map(|x| x.parse().expect("number"))
                .collect();
            let (seq, w, n) = (f[0], f[1] as u32, f[2]);
            let (_, event) = logged
                .get(&seq)
                .unwrap_or_else(|| panic!("acknowledged seq {seq} lost after SIGKILL"));
            assert_eq!(event, &tagged(w, n), "seq {seq} holds another event");
            checked += 1;
        }
        assert!(checked > 0);
        // Sequences are contiguous: no holes, no duplicates.
        let seqs: Vec<u64> = logged.keys().copied().collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(replayed.last_seq, seqs.len() as u64);
        eprintln!("round {round}: killed after {wait:?}; {checked} acknowledged appends all present of {} logged", seqs.len());
    }
}

#[test]
fn concurrent_writers_share_fsyncs_and_get_distinct_sequences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EventStore::open(&dir.path().join("events")).expect("open"));
    let seqs = actix::System::new().block_on({
        let store = Arc::clone(&store);
        async move {
            let (log, projection) = start_log(store, 1_000_000);
            let mut tasks = Vec::new();
            for w in 0..16u32 {
                let log = log.clone();
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for n in 0..50 {
                        mine.push(
                            log.send(Append(tagged(w, n)))
                                .await
                                .expect("mailbox")
                                .expect("append")
                                .seq,
                        );
                    }
                    mine
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.expect("task"));
            }
            assert_eq!(
                projection.current().last_seq,
                800,
                "the projection saw every event"
            );
            all
        }
    });
    let unique: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), 800);
    assert_eq!(unique, (1..=800).collect());
    let logged = all_events(&store);
    // Events of one batch share its time: fewer distinct times than events means
    // several appends went through one write and one fsync.
    let batches: HashSet<u64> = logged.values().map(|(t, _)| *t).collect();
    assert!(
        batches.len() < 400,
        "16 concurrent writers should share fsyncs; {} batches for 800 events",
        batches.len()
    );
}

#[test]
fn a_corrupt_tail_record_is_dropped_and_the_log_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events");
    {
        let store = Arc::new(EventStore::open(&path).expect("open"));
        actix::System::new().block_on({
            let store = Arc::clone(&store);
            async move {
                let (log, _) = start_log(store, 1_000_000);
                for n in 0..5 {
                    log.send(Append(tagged(1, n)))
                        .await
                        .expect("mailbox")
                        .expect("append");
                }
            }
        });
        // A record torn by a crash: right key, half a value; and garbage after it.
        let whole = Envelope {
            seq: 6,
            time_ns: 1,
            schema: 1,
            payload: events::encode(&tagged(1, 5)).expect("enc"),
        };
        let value = whole.encode_value();
        store
            .put_raw_for_tests(6, &value[..value.len() - 3])
            .expect("raw");
        store
            .put_raw_for_tests(7, b"not an envelope at all")
            .expect("raw");
    }
    let store = Arc::new(EventStore::open(&path).expect("reopen"));
    let replayed = store.replay().expect("replay recovers");
    let dropped = replayed.dropped.clone().expect("the damage is reported");
    assert_eq!((dropped.from_seq, dropped.count), (6, 2));
    assert_eq!(replayed.last_seq, 5);
    // Appending goes on from the last whole record.
    let seq = actix::System::new().block_on({
        let store = Arc::clone(&store);
        async move {
            let (log, _) = start_log(store, 1_000_000);
            log.send(Append(tagged(2, 0)))
                .await
                .expect("mailbox")
                .expect("append")
                .seq
        }
    });
    assert_eq!(seq, 6);
    assert_eq!(all_events(&store).len(), 6);
    assert!(store.replay().expect("replay").dropped.is_none());
}

#[test]
fn snapshots_shorten_replay_and_agree_with_a_full_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EventStore::open(&dir.path().join("events")).expect("open"));
    actix::System::new().block_on({
        let store = Arc::clone(&store);
        async move {
            let (log, _) = start_log(store, 10);
            log.send(Append(Event::EngineInitialized {
                id: "snap-test".into(),
            }))
            .await
            .expect("mb")
            .expect("append");
            for n in 0..24 {
                let e = if n % 3 == 2 {
                    Event::DaemonStopped { pid: 1 }
                } else {
                    tagged(1, n)
                };
                log.send(Append(e)).await.expect("mailbox").expect("append");
            }
            // Snapshots are written in the background; give the last one a moment.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let replayed = store.replay().expect("replay");
    let snap = replayed.snapshot_seq.expect("a snapshot was used");
    assert!(snap >= 10 && snap <= 25, "snapshot at {snap}");
    assert_eq!(replayed.events_replayed, 25 - snap);
    let mut full = State::default();
    for (seq, (time, e)) in all_events(&store) {
        full.apply(seq, time, &e);
    }
    assert_eq!(replayed.state, full);
    assert_eq!(full.engine.id.as_deref(), Some("snap-test"));
}

/// Writes `list` as one envelope each, at `time_ns` and on, folding them into `state`.
fn write_events(store: &EventStore, state: &mut State, time_ns: u64, list: Vec<Event>) {
    let mut envelopes = Vec::new();
    for (i, e) in list.into_iter().enumerate() {
        let seq = state.last_seq + 1;
        let time = time_ns + i as u64;
        state.apply(seq, time, &e);
        envelopes.push(Envelope {
            seq,
            time_ns: time,
            schema: events::CURRENT_SCHEMA,
            payload: events::encode(&e).expect("encode"),
        });
    }
    store.append(&envelopes, true).expect("append");
}

fn created(id: &str, name: &str) -> Event {
    Event::ContainerCreated {
        id: id.into(),
        name: name.into(),
        image: "sha256:0".into(),
        image_name: "busybox".into(),
        config: "{}".into(),
    }
}

#[test]
fn retention_drops_old_events_and_replay_keeps_the_whole_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EventStore::open(&dir.path().join("events")).expect("open");
    let mut state = State::default();
    write_events(
        &store,
        &mut state,
        1_000,
        vec![
            Event::EngineInitialized { id: "kept".into() },
            created("a", "old"),
            created("b", "gone"),
            Event::ContainerRemoved { id: "b".into() },
        ],
    );
    write_events(
        &store,
        &mut state,
        5_000,
        (0..6).map(|n| tagged(1, n)).collect(),
    );
    assert_eq!(state.last_seq, 10);
    assert!(store.log_bytes() > 0, "the size retention measures");
    store.compact(&state, 7).expect("compact");
    assert_eq!(store.first_seq().expect("first"), 7);
    assert_eq!(
        all_events(&store).keys().copied().collect::<Vec<_>>(),
        vec![7, 8, 9, 10]
    );
    // History before the cut is simply not there: --since reaches the first kept.
    assert_eq!(store.seq_at_time(0).expect("seq"), 7);
    // The state the dropped events made is whole, from the snapshot written
    // with the cut, and from the base alone when no snapshot can be read (a
    // berthd whose snapshot format changed).
    assert_eq!(store.replay().expect("replay").state, state);
    store.drop_snapshots_for_tests().expect("drop");
    let replayed = store.replay().expect("replay from the base");
    assert_eq!(replayed.snapshot_seq, Some(10));
    assert_eq!(replayed.state, state);
    assert_eq!(replayed.state.engine.id.as_deref(), Some("kept"));
    assert!(replayed.state.containers.contains_key("a"));
    // The log goes on after the cut.
    write_events(
        &store,
        &mut state,
        9_000,
        vec![Event::ContainerRemoved { id: "a".into() }],
    );
    assert_eq!(store.replay().expect("replay").state, state);
    // A cut past the state it keeps would lose what the state did not fold.
    assert!(store.compact(&state, state.last_seq + 2).is_err());
}

/// A berthd from before retention (schema 1, snapshot format 9) reads neither
/// today's snapshots nor the base, so it replays from sequence 1 and cuts the
/// log at the first gap as a damaged tail: a cut log would be lost whole. What
/// it meets at sequence 1 after a cut must make it refuse instead. Its replay
/// (b6cf8e2^, src/store/eventlog.rs) refuses a record in sequence whose schema
/// is newer than its own, before it decodes the payload.
#[test]
fn a_cut_log_makes_a_berthd_from_before_retention_refuse_rather_than_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events");
    let mut state = State::default();
    {
        let store = EventStore::open(&path).expect("open");
        write_events(
            &store,
            &mut state,
            1_000,
            (0..6).map(|n| tagged(1, n)).collect(),
        );
        store.compact(&state, 4).expect("compact");
        // This build does not see the marker as an event.
        assert_eq!(store.first_seq().expect("first"), 4);
        assert_eq!(store.seq_at_time(0).expect("seq"), 4);
        assert_eq!(
            all_events(&store).keys().copied().collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        assert_eq!(store.replay().expect("replay").state, state);
    }
    // The old replay's first step, on the raw log.
    let cfs = ["log", "snapshots", "meta"];
    let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), &path, cfs, false)
        .expect("open the log read-only");
    let log = db.cf_handle("log").expect("log family");
    let (k, v) = db
        .iterator_cf(log, rocksdb::IteratorMode::Start)
        .next()
        .expect("a first record")
        .expect("readable");
    let first = Envelope::decode(&k, &v).expect("an intact envelope");
    assert_eq!(first.seq, 1, "no gap where the old replay starts");
    assert!(
        first.schema > events::CURRENT_SCHEMA,
        "the old replay refuses a newer schema (got {})",
        first.schema
    );
}

#[test]
fn retention_by_age_runs_in_the_background_and_forgets_departed_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EventStore::open(&dir.path().join("events")).expect("open"));
    let projection = actix::System::new().block_on({
        let store = Arc::clone(&store);
        async move {
            let replayed = store.replay().expect("replay");
            let projection = Projection::default();
            let retention = berth::store::retention::Retention::parse("age=1s").expect("valid");
            let log = EventLog::new(store, replayed, projection.clone(), 1_000_000)
                .with_retention(retention)
                .start();
            for e in [
                created("a", "one"),
                Event::ContainerRemoved { id: "a".into() },
            ] {
                log.send(Append(e)).await.expect("mailbox").expect("append");
            }
            assert!(projection.current().departed.contains_key("a"));
            tokio::time::sleep(Duration::from_millis(1500)).await;
            log.send(Append(tagged(1, 1)))
                .await
                .expect("mailbox")
                .expect("append");
            // Checked every second (a quarter of the age, at least 1 s).
            for _ in 0..40 {
                if !projection.current().departed.contains_key("a") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            projection
        }
    });
    let state = projection.current();
    assert!(
        !state.departed.contains_key("a"),
        "the departed name was kept"
    );
    assert!(
        store.first_seq().expect("first") >= 3,
        "old events were kept"
    );
    assert_eq!(store.replay().expect("replay").state, *state);
}
