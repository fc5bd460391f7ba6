//! The event log benchmark (not a test): `cargo bench --bench eventlog`.
//!
//! - appends per second with 1 writer and with 16 concurrent writers (each append
//!   acknowledged only once fsynced; group commit lets the 16 share fsyncs);
//! - the time to replay 1,000,000 events from an empty state (no snapshot);
//! - the resident memory of an idle berthd;
//! - `GET /events?since=0&until=now` of a berthd whose log holds 1,000,000
//!   events (250,000 containers created, started, exited and removed).
//!
//! `--quick` shortens every measurement (a smoke run, not figures to quote);
//! `--history` runs only the `GET /events` measurement.

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

/// Writes a data root whose log holds `events_count` container events, starts
/// berthd on it, and times one `GET /events` of the whole log. Returns the
/// seconds and the number of lines received.
fn events_history_seconds(dir: &Path, events_count: u64) -> (f64, u64) {
    let data = dir.join("history-data");
    write_history(&data, events_count);
    let (mut child, sock) = start_berthd(dir, &data, "history");
    let all = timed_events(&sock, "");
    // The same read with a filter that passes nothing: the log's side alone.
    let none = timed_events(&sock, "&filters=%7B%22event%22%3A%5B%22none%22%5D%7D");
    eprintln!(
        "events: whole stream {:.2} s ({} lines); read and filter only {:.2} s",
        all.0, all.1, none.0
    );
    stop(&mut child);
    all
}

/// Writes a log of `events_count` container events (created, started,
/// exited, removed in turn) into a new data root.
fn write_history(data: &Path, events_count: u64) {
    let base_ns = crate_now_ns() - events_count * 1_000;
    {
        let store = EventStore::open(&data.join("events")).expect("open");
        let mut seq = 1;
        let mut batch = Vec::with_capacity(10_000);
        while seq <= events_count {
            batch.clear();
            while batch.len() < 10_000 && seq <= events_count {
                let id = format!("{:064x}", (seq - 1) / 4);
                let e = match (seq - 1) % 4 {
                    0 => Event::ContainerCreated {
                        id: id.clone(),
                        name: format!("c{}", (seq - 1) / 4),
                        image: format!("sha256:{:064x}", 1),
                        image_name: "busybox".into(),
                        config: format!(
                            r#"{{"Image":"busybox","Cmd":["true"],"Labels":{{"n":"{}"}},"HostConfig":{{"NetworkMode":"none"}}}}"#,
                            seq
                        ),
                    },
                    1 => Event::ContainerStarted { id, pid: 1000 },
                    2 => Event::ContainerExited {
                        id,
                        exit_code: 0,
                        oom_killed: false,
                        error: String::new(),
                    },
                    _ => Event::ContainerRemoved { id },
                };
                batch.push(Envelope {
                    seq,
                    time_ns: base_ns + seq * 1_000,
                    schema: events::CURRENT_SCHEMA,
                    payload: events::encode(&e).expect("encode"),
                });
                seq += 1;
            }
            store.append(&batch, false).expect("bulk append");
        }
    }
}

/// Times one `GET /events?since=0&until=now{extra}`: seconds and lines.
fn timed_events(sock: &Path, extra: &str) -> (f64, u64) {
    let started = Instant::now();
    let mut lines = 0u64;
    if let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) {
        use std::io::{Read, Write};
        let until = crate_now_ns();
        let _ = write!(
            s,
            "GET /events?since=0&until={}.{:09}{extra} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            until / 1_000_000_000,
            until % 1_000_000_000
        );
        // Counted as fast as they come, so the client is not what is
        // measured: every line ends in "\n", and only the chunked encoding's
        // lines end in "\r\n" (JSON escapes a carriage return); the headers
        // are a handful of those too.
        let mut buf = vec![0u8; 1 << 20];
        let (mut newlines, mut returns) = (0u64, 0u64);
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            returns += buf[..n].iter().filter(|&&b| b == b'\r').count() as u64;
        }
        lines = newlines - returns.min(newlines);
    }
    (started.elapsed().as_secs_f64(), lines)
}

fn crate_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Starts berthd on `data` and waits for its socket to answer.
fn start_berthd(dir: &Path, data: &Path, name: &str) -> (std::process::Child, std::path::PathBuf) {
    let sock = dir.join(format!("{name}.sock"));
    std::fs::write(dir.join("none.json"), "{}").expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .arg("--data-root")
        .arg(data)
        .arg("--exec-root")
        .arg(dir.join(format!("{name}-exec")))
        .arg("--config-file")
        .arg(dir.join("none.json"))
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berthd");
    // The socket is bound before the log is replayed: ready is when /_ping
    // answers, not when a connect succeeds (the kernel queues that one).
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if ping(&sock) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, sock)
}

/// Whether berthd on `sock` answers `GET /_ping` with 200.
fn ping(sock: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn stop(child: &mut std::process::Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

fn idle_rss_kib(dir: &Path, settle: Duration) -> u64 {
    let (mut child, sock) = start_berthd(dir, &dir.join("data"), "bench");
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
    stop(&mut child);
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
    // `--history`: only the GET /events read, for working on that path.
    if std::env::args().any(|a| a == "--history") {
        let (history, lines) = events_history_seconds(dir.path(), replay_n);
        println!("| GET /events?since=0&until=now over {replay_n} events ({lines} lines) | {history:.2} s | <= 2 s |");
        return;
    }

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

    let (history, lines) = events_history_seconds(dir.path(), replay_n);

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
        "| GET /events?since=0&until=now over {replay_n} events ({lines} lines) | {history:.2} s | <= 2 s {} |",
        verdict((history <= 2.0 && lines >= replay_n) || quick)
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
