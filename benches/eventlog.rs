//! The event log benchmark (not a test): `cargo bench --bench eventlog`.
//!
//! - appends per second with 1 writer and with 16 concurrent writers (each append
//!   acknowledged only once fsynced; group commit lets the 16 share fsyncs);
//! - the time to replay 1,000,000 events from an empty state (no snapshot);
//! - the resident memory of an idle berthd.
//!
//! `--quick` shortens every measurement (a smoke run, not figures to quote).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use berth::actors::event_log::{Append, EventLog};
use berth::events::projection::Projection;
use berth::events::{self, Event};
use berth::store::envelope::Envelope;
use berth::store::eventlog::EventStore;

fn appends_per_sec(dir: &Path, writers: u32, window: Duration) -> f64 {
    let store = Arc::new(EventStore::open(&dir.join(format!("w{writers}"))).expect("open"));
    actix::System::new().block_on(async move {
        let replayed = store.replay().expect("replay");
        let log = EventLog::new(store, replayed, Projection::default(), 1_000_000).start();
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (log, done, stop) = (log.clone(), Arc::clone(&done), Arc::clone(&stop));
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let e = Event::DaemonStarted {
                        version: format!("bench-{w}-{n}"),
                        pid: w,
                    };
                    log.send(Append(e)).await.expect("mailbox").expect("append");
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            }));
        }
        tokio::time::sleep(window).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
    })
}

fn replay_seconds(dir: &Path, events_count: u64) -> f64 {
    let path = dir.join("replay");
    {
        let store = EventStore::open(&path).expect("open");
        let mut seq = 1;
        let mut batch = Vec::with_capacity(10_000);
        while seq <= events_count {
            batch.clear();
            for _ in 0..10_000.min(events_count - seq + 1) {
                let e = Event::DaemonStarted {
                    version: format!("0.1.{seq}"),
                    pid: seq as u32,
                };
                let payload = events::encode(&e).expect("encode");
                batch.push(Envelope {
                    seq,
                    time_ns: 1_700_000_000_000_000_000 + seq,
                    schema: events::CURRENT_SCHEMA,
                    payload,
                });
                seq += 1;
            }
            store.append(&batch, false).expect("bulk append");
        }
    }
    let started = Instant::now();
    let store = EventStore::open(&path).expect("reopen");
    let replayed = store.replay().expect("replay");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(replayed.last_seq, events_count);
    assert_eq!(replayed.state.engine.starts, events_count);
    secs
}

fn idle_rss_kib(dir: &Path, settle: Duration) -> u64 {
    let sock = dir.join("bench.sock");
    std::fs::write(dir.join("none.json"), "{}").expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--config-file")
        .arg(dir.join("none.json"))
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berthd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // A few requests, as a client's first contact would make.
    for path in ["/_ping", "/version", "/info"] {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
            use std::io::{Read, Write};
            let _ = write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
    }
    std::thread::sleep(settle);
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    rss
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let window = if quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let replay_n = if quick { 50_000 } else { 1_000_000 };
    let dir = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir()
        .expect("tempdir");

    let one = appends_per_sec(dir.path(), 1, window);
    let sixteen = appends_per_sec(dir.path(), 16, window);
    let replay = replay_seconds(dir.path(), replay_n);
    let rss = idle_rss_kib(
        dir.path(),
        if quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3)
        },
    );

    println!("| measure | value | bar |");
    println!("|---|---|---|");
    println!("| appends/s, 1 writer (fsync each) | {one:.0} | |");
    println!("| appends/s, 16 writers (group commit) | {sixteen:.0} | |");
    println!(
        "| 16 writers / 1 writer | {:.1}x | >= 5x {} |",
        sixteen / one,
        verdict(sixteen / one >= 5.0)
    );
    println!(
        "| replay of {replay_n} events | {replay:.2} s | < 2 s {} |",
        verdict(replay < 2.0 || quick)
    );
    println!(
        "| idle berthd RSS | {:.1} MiB | < 20 MiB {} |",
        rss as f64 / 1024.0,
        verdict(rss < 20 * 1024)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "(met)"
    } else {
        "(NOT met)"
    }
}
