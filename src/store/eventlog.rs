//! The event log on RocksDB.
//!
//! Column families: `log` (sequence -> envelope), `snapshots` (sequence -> folded
//! state), `meta`. Appends are written as one WriteBatch with sync=true, so a batch
//! is durable (fsync of the WAL) before it is acknowledged, and atomic: after a
//! crash it is there whole or not at all. RocksDB replays its WAL up to the last
//! whole record (PointInTime recovery); on top of that every envelope carries a CRC
//! and replay stops at the first record that fails it, truncating the tail.

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, DBRecoveryMode, Direction,
    IteratorMode, LogLevel, Options, WriteBatch, WriteOptions, DB,
};
use tracing::{info, warn};

use super::envelope::{self, Envelope};
use crate::error::{Context, Error, Result};
use crate::events::{self, projection::State};

const CF_LOG: &str = "log";
const CF_SNAPSHOTS: &str = "snapshots";
const CF_META: &str = "meta";

/// Bump when `State` changes shape: older snapshots are then ignored and the
/// state is rebuilt from the log, which is always the source of truth.
const SNAPSHOT_FORMAT: u16 = 12;
/// The schema of the record retention leaves at sequence 1 once it cut the
/// log's start: no event. A berthd from before retention reads neither the
/// snapshots nor the base, so it replays from sequence 1; there it meets a
/// record "of a newer schema" and refuses to start, where a gap would have
/// made it cut the whole log as a damaged tail. This build skips the record.
pub const CUT_MARKER_SCHEMA: u16 = u16::MAX;
/// Snapshots kept; older ones are deleted when a new one is written.
const SNAPSHOTS_KEPT: usize = 2;
/// In `meta`: the state the log goes on from once retention dropped its
/// start, as JSON, which a later berthd reads even after the snapshots'
/// format changed (new fields of `State` take `#[serde(default)]`).
const META_BASE: &[u8] = b"base";

pub struct EventStore {
    db: DB,
    path: PathBuf,
}

/// What replay found.
#[derive(Debug)]
pub struct Replayed {
    pub state: State,
    pub last_seq: u64,
    pub last_time_ns: u64,
    /// Sequence of the snapshot replay started from, if any.
    pub snapshot_seq: Option<u64>,
    /// Events folded in after the snapshot.
    pub events_replayed: u64,
    /// Records dropped from a damaged tail.
    pub dropped: Option<Dropped>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub from_seq: u64,
    pub count: u64,
    pub reason: String,
}

fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Recover to the last whole WAL record instead of refusing to open after a crash.
    opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    // A small daemon: keep RocksDB's memory and file handles modest.
    opts.set_max_open_files(256);
    opts.set_keep_log_file_num(2);
    opts.set_max_log_file_size(1 << 20);
    opts.set_log_level(LogLevel::Warn);
    opts.set_max_background_jobs(2);
    opts.set_max_total_wal_size(64 << 20);
    opts
}

fn cf_options() -> Options {
    let mut opts = Options::default();
    opts.set_write_buffer_size(4 << 20);
    opts.set_max_write_buffer_number(2);
    opts.set_compression_type(DBCompressionType::None);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(2 << 20));
    opts.set_block_based_table_factory(&table);
    opts
}

fn descriptors() -> Vec<ColumnFamilyDescriptor> {
    [CF_LOG, CF_SNAPSHOTS, CF_META]
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, cf_options()))
        .collect()
}

impl EventStore {
    /// Opens (or creates) the log at `path`. A log RocksDB cannot open is repaired;
    /// one that cannot be repaired is moved aside and a new one started, loudly:
    /// berthd never refuses to start because of its own log.
    pub fn open(path: &Path) -> Result<EventStore> {
        std::fs::create_dir_all(path).context(format_args!("creating {}", path.display()))?;
        let opts = db_options();
        let db = match DB::open_cf_descriptors(&opts, path, descriptors()) {
            Ok(db) => db,
            Err(first) => {
                warn!(path = %path.display(), error = %first, "event log does not open; repairing it");
                let repaired = DB::repair(&opts, path)
                    .and_then(|_| DB::open_cf_descriptors(&opts, path, descriptors()));
                match repaired {
                    Ok(db) => db,
                    Err(second) => {
                        let aside =
                            path.with_extension(format!("damaged-{}", crate::clock::now_ns()));
                        warn!(path = %path.display(), aside = %aside.display(), error = %second,
                            "event log cannot be repaired; moving it aside and starting a new one");
                        std::fs::rename(path, &aside)
                            .context(format_args!("moving {} aside", path.display()))?;
                        DB::open_cf_descriptors(&opts, path, descriptors()).context(
                            format_args!("creating a new event log at {}", path.display()),
                        )?
                    }
                }
            }
        };
        Ok(EventStore {
            db,
            path: path.to_path_buf(),
        })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::internal(format!("event log has no column family {name}")))
    }

    /// Writes a batch of envelopes atomically; with `sync`, durable on return.
    pub fn append(&self, envelopes: &[Envelope], sync: bool) -> Result<()> {
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        for e in envelopes {
            batch.put_cf(cf, envelope::key(e.seq), e.encode_value());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db
            .write_opt(batch, &wo)
            .context("appending to the event log")
    }

    /// Envelopes from `from_seq` on, in order. Stops at the first damaged record.
    pub fn read_from(&self, from_seq: u64) -> Result<impl Iterator<Item = Result<Envelope>> + '_> {
        let cf = self.cf(CF_LOG)?;
        let start = envelope::key(from_seq);
        let iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward));
        Ok(iter
            .map(|item| {
                let (k, v) = item.context("reading the event log")?;
                Envelope::decode(&k, &v).map_err(|e| Error::internal(e.to_string()))
            })
            .filter(|env| !matches!(env, Ok(env) if env.schema == CUT_MARKER_SCHEMA)))
    }

    /// The first sequence whose event was committed at or after `time_ns`
    /// (one past the end when none was): event times never go backwards, so a
    /// binary search over the sequences finds it in a few reads.
    pub fn seq_at_time(&self, time_ns: u64) -> Result<u64> {
        let cf = self.cf(CF_LOG)?;
        let first = match self.first_seq()? {
            0 => return Ok(1),
            first => first,
        };
        let (mut lo, mut hi) = (first, self.last_seq()? + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let t = match self
                .db
                .get_cf(cf, envelope::key(mid))
                .context("reading the event log")?
            {
                Some(v) => {
                    Envelope::decode(&envelope::key(mid), &v)
                        .map_err(|e| Error::internal(e.to_string()))?
                        .time_ns
                }
                // A hole cannot be in a replayed log; treat it as early.
                None => 0,
            };
            if t < time_ns {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The highest sequence in the log (0 when empty).
    pub fn last_seq(&self) -> Result<u64> {
        self.edge_seq(IteratorMode::End)
    }

    /// The first sequence the log holds (0 when empty): past 1 once
    /// retention dropped its start.
    pub fn first_seq(&self) -> Result<u64> {
        self.edge_seq(IteratorMode::Start)
    }

    /// The sequence at one end of the log (0 when empty), past the cut marker.
    fn edge_seq(&self, end: IteratorMode) -> Result<u64> {
        let cf = self.cf(CF_LOG)?;
        for item in self.db.iterator_cf(cf, end).take(2) {
            let (k, v) = item.context("reading the event log")?;
            let seq = envelope::seq_of_key(&k).map_err(|e| Error::internal(e.to_string()))?;
            let marker = seq == 1
                && Envelope::decode(&k, &v).is_ok_and(|env| env.schema == CUT_MARKER_SCHEMA);
            if !marker {
                return Ok(seq);
            }
        }
        Ok(0)
    }

    /// Stores the state folded up to `state.last_seq`. Not synced: a snapshot is
    /// derived data and a lost one only means a longer replay.
    pub fn write_snapshot(&self, state: &State) -> Result<()> {
        let cf = self.cf(CF_SNAPSHOTS)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, envelope::key(state.last_seq), snapshot_value(state)?);
        // Keep the newest few; the log itself is never truncated.
        let older: Vec<Box<[u8]>> = self
            .db
            .iterator_cf(cf, IteratorMode::End)
            .filter_map(|item| item.ok().map(|(k, _)| k))
            .filter(|k| k.as_ref() != envelope::key(state.last_seq))
            .skip(SNAPSHOTS_KEPT - 1)
            .collect();
        for k in older {
            batch.delete_cf(cf, k);
        }
        self.db.write(batch).context("writing a snapshot")
    }

    /// About how many bytes the log's events take (files and memory).
    pub fn log_bytes(&self) -> u64 {
        let Ok(cf) = self.cf(CF_LOG) else {
            return 0;
        };
        let property = |name: &str| {
            self.db
                .property_int_value_cf(cf, name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        // Live files only: files a reader still holds after a cut are not
        // the log's size, and counting them would cut again and again.
        property("rocksdb.live-sst-files-size") + property("rocksdb.cur-size-all-mem-tables")
    }

    /// Drops the events before `keep_from` (retention). `base` is the state
    /// folded up to its `last_seq`, at or past `keep_from - 1`: it is stored
    /// first, in the same synced write, as a snapshot and as the log's base,
    /// so replay never needs what went. Older snapshots go with the events.
    pub fn compact(&self, base: &State, keep_from: u64) -> Result<()> {
        if keep_from == 0 || base.last_seq + 1 < keep_from {
            return Err(Error::internal(format!(
                "compacting the event log before {keep_from} with a state at {}",
                base.last_seq
            )));
        }
        if keep_from <= self.first_seq()? {
            return Ok(());
        }
        let (log, snapshots, meta) = (self.cf(CF_LOG)?, self.cf(CF_SNAPSHOTS)?, self.cf(CF_META)?);
        let json = serde_json::to_vec(base)
            .map_err(|e| Error::internal(format!("encoding the log's base: {e}")))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, META_BASE, json);
        batch.put_cf(
            snapshots,
            envelope::key(base.last_seq),
            snapshot_value(base)?,
        );
        batch.delete_range_cf(snapshots, envelope::key(0), envelope::key(base.last_seq));
        batch.delete_range_cf(log, envelope::key(0), envelope::key(keep_from));
        let marker = Envelope {
            seq: 1,
            time_ns: 0,
            schema: CUT_MARKER_SCHEMA,
            payload: b"events-retention cut the log's start; see the base".to_vec(),
        };
        batch.put_cf(log, envelope::key(1), marker.encode_value());
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .write_opt(batch, &wo)
            .context("dropping old events from the log")?;
        // Give the space back now rather than at RocksDB's next compaction.
        self.db
            .compact_range_cf(log, None::<&[u8]>, Some(&envelope::key(keep_from)[..]));
        Ok(())
    }

    /// The base retention left (see `compact`), if it fits a log that holds
    /// `first..=last`.
    fn base(&self, first: u64, last: u64) -> Result<Option<State>> {
        let meta = self.cf(CF_META)?;
        let Some(json) = self
            .db
            .get_cf(meta, META_BASE)
            .context("reading the log's base")?
        else {
            return Ok(None);
        };
        match serde_json::from_slice::<State>(&json) {
            Ok(s) if s.last_seq + 1 >= first && s.last_seq <= last => Ok(Some(s)),
            Ok(_) => Ok(None),
            Err(e) => {
                warn!(error = %e, "the event log's base does not decode");
                Ok(None)
            }
        }
    }

    /// Drops every snapshot. Only for tests that stand for a berthd whose
    /// snapshot format changed.
    #[doc(hidden)]
    pub fn drop_snapshots_for_tests(&self) -> Result<()> {
        let cf = self.cf(CF_SNAPSHOTS)?;
        self.db
            .delete_range_cf(cf, envelope::key(0), envelope::key(u64::MAX))
            .context("dropping snapshots")
    }

    /// The newest usable snapshot: right format, intact, within the log
    /// (not beyond its end, nor before its start).
    fn newest_snapshot(&self, first_log_seq: u64, last_log_seq: u64) -> Result<Option<State>> {
        let cf = self.cf(CF_SNAPSHOTS)?;
        for item in self.db.iterator_cf(cf, IteratorMode::End) {
            let (k, v) = item.context("reading snapshots")?;
            let Ok(seq) = envelope::seq_of_key(&k) else {
                continue;
            };
            if seq > last_log_seq || seq + 1 < first_log_seq || v.len() < 6 {
                continue;
            }
            let format = u16::from_le_bytes([v[0], v[1]]);
            let crc = u32::from_le_bytes([v[2], v[3], v[4], v[5]]);
            if format != SNAPSHOT_FORMAT || crc32fast::hash(&v[6..]) != crc {
                info!(
                    seq,
                    format, "ignoring a snapshot of another format or damaged"
                );
                continue;
            }
            match events::decode_value::<State>(&v[6..]) {
                Ok(state) if state.last_seq == seq => return Ok(Some(state)),
                _ => continue,
            }
        }
        Ok(None)
    }

    /// Rebuilds the state: the newest snapshot plus every event after it. A damaged
    /// tail (torn write, bad checksum, a gap) is cut off and reported, never fatal.
    /// A log written by a newer berthd is the one thing that stops replay: cutting it
    /// would destroy good data.
    pub fn replay(&self) -> Result<Replayed> {
        let last_log_seq = self.last_seq()?;
        let first_log_seq = self.first_seq()?;
        let mut snapshot = self.newest_snapshot(first_log_seq, last_log_seq)?;
        if snapshot.is_none() && first_log_seq > 1 {
            // Retention dropped the log's start: go on from its base.
            snapshot = self.base(first_log_seq, last_log_seq)?;
            if snapshot.is_none() {
                return Err(Error::internal(format!(
                    "the event log at {} starts at event {first_log_seq} and neither a snapshot nor its base holds the state before",
                    self.path.display()
                )));
            }
        }
        let snapshot_seq = snapshot.as_ref().map(|s| s.last_seq);
        let mut state = snapshot.unwrap_or_default();
        let mut expected = state.last_seq + 1;
        let mut last_time_ns = 0;
        let mut events_replayed = 0;
        let mut damage: Option<(u64, String)> = None;

        let cf = self.cf(CF_LOG)?;
        let start = envelope::key(expected);
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (k, v) = item.context("reading the event log")?;
            let env = match Envelope::decode(&k, &v) {
                Ok(env) => env,
                Err(e) => {
                    let seq = envelope::seq_of_key(&k).unwrap_or(expected);
                    damage = Some((seq.min(expected), e.to_string()));
                    break;
                }
            };
            if env.seq != expected {
                damage = Some((
                    expected,
                    format!("sequence gap: expected {expected}, found {}", env.seq),
                ));
                break;
            }
            if env.schema > events::CURRENT_SCHEMA {
                return Err(Error::internal(format!(
                    "the event log at {} was written by a newer berthd (event schema {} at sequence {}; this berthd reads up to {})",
                    self.path.display(),
                    env.schema,
                    env.seq,
                    events::CURRENT_SCHEMA
                )));
            }
            let event = events::decode(env.schema, &env.payload)
                .map_err(|e| e.context(format_args!("event {}", env.seq)))?;
            state.apply(env.seq, env.time_ns, &event);
            last_time_ns = env.time_ns;
            events_replayed += 1;
            expected += 1;
        }

        let dropped = match damage {
            None => None,
            Some((from_seq, reason)) => Some(self.truncate_from(from_seq, reason)?),
        };
        let last_seq = state.last_seq;
        if events_replayed == 0 && last_seq > 0 {
            // Nothing after the snapshot: the newest event's time still
            // bounds the next (event times never go backwards).
            if let Some(Ok(env)) = self.read_from(last_seq)?.next() {
                last_time_ns = env.time_ns;
            }
        }
        Ok(Replayed {
            state,
            last_seq,
            last_time_ns,
            snapshot_seq,
            events_replayed,
            dropped,
        })
    }

    /// Deletes every record from `from_seq` on (synced) and says what went.
    fn truncate_from(&self, from_seq: u64, reason: String) -> Result<Dropped> {
        let cf = self.cf(CF_LOG)?;
        let start = envelope::key(from_seq);
        let count = self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
            .count() as u64;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, envelope::key(from_seq), envelope::key(u64::MAX));
        batch.delete_cf(cf, envelope::key(u64::MAX));
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .write_opt(batch, &wo)
            .context("cutting the damaged tail of the event log")?;
        warn!(from_seq, count, %reason, "event log: dropped a damaged tail");
        Ok(Dropped {
            from_seq,
            count,
            reason,
        })
    }

    /// Writes a raw value under a sequence, bypassing the envelope. Only for tests
    /// that need to damage the log the way a crash or a bad disk would.
    #[doc(hidden)]
    pub fn put_raw_for_tests(&self, seq: u64, value: &[u8]) -> Result<()> {
        let cf = self.cf(CF_LOG)?;
        self.db
            .put_cf(cf, envelope::key(seq), value)
            .context("writing a raw record")
    }
}

/// A snapshot as stored: format, CRC of the body, the body (bincode).
fn snapshot_value(state: &State) -> Result<Vec<u8>> {
    let body = events::encode_value(state)?;
    let mut value = Vec::with_capacity(body.len() + 6);
    value.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
    value.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    value.extend_from_slice(&body);
    Ok(value)
}
