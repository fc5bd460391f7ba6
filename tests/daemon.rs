//! The daemon's life as an operator sees it: identity across restarts, the data
//! root lock, clean and unclean stops, a damaged log, and its listeners.

mod common;

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{http, run_berthd_expect_exit, TestDaemon, BERTHD};

fn engine_id(socket: &Path) -> String {
    let (status, _, body) = http(socket, "GET", "/info").expect("info");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("info json");
    v["ID"].as_str().expect("ID").to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn clean_stop_exits_zero_and_identity_survives() {
    let mut d = TestDaemon::start();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.socket())
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660, "the API socket is rw for owner and group only");
    let id = engine_id(&d.socket());
    let status = d.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "log:\n{}", d.log());
    assert!(
        !d.socket().exists(),
        "the socket is removed on a clean stop"
    );
    d.spawn();
    assert_eq!(engine_id(&d.socket()), id);
    // Initialized, started, the three built-in networks (one batch), stopped
    // (acknowledged before exit), started again.
    assert!(
        d.log().contains("events=6"),
        "replay should find the 6 events of the first run:\n{}",
        d.log()
    );
    let status = d.stop_with(libc::SIGINT);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_second_daemon_on_the_same_data_root_exits_at_once() {
    let d = TestDaemon::start();
    let other_sock = d.dir.path().join("other.sock");
    let (code, err) = run_berthd_expect_exit(
        &[
            "-H",
            &format!("unix://{}", other_sock.display()),
            "--data-root",
            &d.data_root().display().to_string(),
            "--exec-root",
            &d.dir.path().join("exec2").display().to_string(),
            "--config-file",
            &d.dir.path().join("daemon.json").display().to_string(),
        ],
        Duration::from_secs(5),
    );
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(err.contains("is in use by berthd (pid"), "stderr: {err}");
    // The first one is untouched.
    assert_eq!(http(&d.socket(), "GET", "/_ping").expect("ping").0, 200);
}

#[test]
fn a_socket_in_use_is_not_stolen() {
    let d = TestDaemon::start();
    let (code, err) = run_berthd_expect_exit(
        &[
            "-H",
            &format!("unix://{}", d.socket().display()),
            "--data-root",
            &d.dir.path().join("data2").display().to_string(),
            "--exec-root",
            &d.dir.path().join("exec2").display().to_string(),
            "--config-file",
            &d.dir.path().join("daemon.json").display().to_string(),
        ],
        Duration::from_secs(5),
    );
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(err.contains("in use by a running daemon"), "stderr: {err}");
    assert_eq!(http(&d.socket(), "GET", "/_ping").expect("ping").0, 200);
}

/// The newest RocksDB write-ahead log of a data root.
fn newest_wal(data_root: &Path) -> PathBuf {
    let mut wals: Vec<PathBuf> = std::fs::read_dir(data_root.join("events"))
        .expect("events dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    wals.sort();
    wals.pop().expect("a WAL file")
}

#[test]
fn kill_9_then_a_torn_log_tail_still_starts_with_the_same_identity() {
    let mut d = TestDaemon::start();
    let id = engine_id(&d.socket());
    let status = d.stop_with(libc::SIGKILL);
    assert_eq!(status.code(), None);
    // Restart after the crash: the stale socket is replaced, state is replayed.
    d.spawn();
    assert_eq!(engine_id(&d.socket()), id);
    d.stop_with(libc::SIGKILL);

    // Tear the last record, as a crash in the middle of a write would.
    let wal = newest_wal(&d.data_root());
    let len = std::fs::metadata(&wal).expect("wal").len();
    assert!(len > 20, "the WAL holds the unflushed events");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .expect("open wal");
    f.set_len(len - 7).expect("truncate");
    drop(f);

    d.spawn();
    assert_eq!(
        engine_id(&d.socket()),
        id,
        "the identity, written first, survives a torn tail"
    );
}

#[test]
fn non_loopback_tcp_without_tlsverify_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("none.json"), "{}").expect("config");
    let port = free_port();
    let (code, err) = run_berthd_expect_exit(
        &[
            "-H",
            &format!("tcp://0.0.0.0:{port}"),
            "--data-root",
            &dir.path().join("data").display().to_string(),
            "--exec-root",
            &dir.path().join("exec").display().to_string(),
            "--config-file",
            &dir.path().join("none.json").display().to_string(),
        ],
        Duration::from_secs(5),
    );
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(
        err.contains("refusing to listen on tcp://0.0.0.0"),
        "stderr: {err}"
    );
    assert!(err.contains("--tlsverify"), "stderr: {err}");
    assert!(
        !dir.path().join("data/events").exists(),
        "nothing is written when a listener is refused"
    );
}

#[test]
fn loopback_tcp_is_served_in_plain_http() {
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let d = TestDaemon::start_with(&["-H", &host]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /v1.41/_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let (status, _, body) = common::parse_response(&raw).expect("response");
    assert_eq!((status, body.as_str()), (200, "OK"));
    drop(d);
}

#[test]
fn conflicting_flag_and_file_exit_with_dockerds_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, r#"{"data-root": "/tmp/somewhere"}"#).expect("write");
    let (code, err) = run_berthd_expect_exit(
        &[
            "--data-root",
            &dir.path().join("d").display().to_string(),
            "--config-file",
            &cfg.display().to_string(),
        ],
        Duration::from_secs(5),
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the following directives are specified both as a flag and in the configuration file: data-root"),
        "stderr: {err}"
    );
}

#[test]
fn socket_activation_with_fd() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("none.json"), "{}").expect("config");
    let sock = dir.path().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let logf = std::fs::File::create(dir.path().join("log")).expect("log");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\"")
        .arg(BERTHD)
        .args(["-H", "fd://", "--data-root"])
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("--config-file")
        .arg(dir.path().join("none.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn");
    drop(listener);
    let mut ok = false;
    for _ in 0..200 {
        if let Ok((200, _, _)) = http(&sock, "GET", "/_ping") {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    common::network_cleanup(&dir.path().join("data"), &dir.path().join("exec"));
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert!(ok, "berthd did not serve the activated socket; log:\n{log}");
    assert_eq!(status.code(), Some(0), "log:\n{log}");
}
