//! `berthd network-cleanup` never touches a running daemon's network: it is
//! refused on a data root a daemon holds (naming its pid), `--help` only
//! prints, and an argument it does not know is an error, never taken as "the
//! default roots".

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use berth::drivers::network::Names;
use common::{http, TestDaemon, BERTHD};

fn cleanup(args: &[&str]) -> Output {
    Command::new(BERTHD)
        .arg("network-cleanup")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run berthd network-cleanup")
}

/// The default bridge of `d` (on the host while it runs).
fn bridge_of(d: &TestDaemon) -> String {
    Names::new(&d.data_root(), &d.exec_root()).default_bridge()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Whether `d`'s FORWARD chain is there (iptables lists it).
fn chain_exists(d: &TestDaemon) -> bool {
    let chain = format!(
        "{}-FORWARD",
        Names::new(&d.data_root(), &d.exec_root()).chain_prefix()
    );
    Command::new("iptables")
        .args(["-w", "-S", &chain])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn network_cleanup_refuses_a_running_daemon_and_names_its_pid() {
    let d = TestDaemon::start();
    let bridge = bridge_of(&d);
    assert!(link_exists(&bridge), "{bridge} is not there: {}", d.log());
    assert!(chain_exists(&d), "no chains of the daemon");
    let (data, exec) = (d.data_root(), d.exec_root());
    let out = cleanup(&[
        "--data-root",
        &data.display().to_string(),
        "--exec-root",
        &exec.display().to_string(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(&format!("is in use by berthd (pid {})", d.pid())),
        "stderr: {err}"
    );
    // Nothing was removed, and the daemon goes on.
    assert!(link_exists(&bridge), "{bridge} was removed");
    assert!(chain_exists(&d), "the chains were removed");
    assert_eq!(http(&d.socket(), "GET", "/_ping").expect("ping").0, 200);
}

#[test]
fn network_cleanup_help_prints_and_bad_arguments_are_errors() {
    let d = TestDaemon::start();
    let bridge = bridge_of(&d);
    assert!(link_exists(&bridge), "{bridge} is not there: {}", d.log());
    let (data, exec) = (
        d.data_root().display().to_string(),
        d.exec_root().display().to_string(),
    );
    // With the daemon's roots given (so that a cleanup would show on its
    // bridge): --help only prints.
    for help in ["--help", "-h"] {
        let out = cleanup(&["--data-root", &data, "--exec-root", &exec, help]);
        assert_eq!(out.status.code(), Some(0), "{help}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("Usage:  berthd network-cleanup"),
            "{help}: {}",
            text(&out.stdout)
        );
        assert!(link_exists(&bridge), "{help} removed {bridge}");
    }
    // A word it does not know, a flag it does not know, a flag without its
    // value: exit 2 naming it, nothing removed.
    let cases: [(&[&str], &str); 6] = [
        (
            &["--data-root", &data, "--exec-root", &exec, "stray"],
            "\"stray\"",
        ),
        (
            &["--data-root", &data, "--exec-root", &exec, "--bogus"],
            "--bogus",
        ),
        (&["stray", "--data-root", &data], "\"stray\""),
        (&["--data-root", &data, "--exec-root"], "--exec-root"),
        (&["--data-root", "--exec-root", &exec], "--data-root"),
        (&["--data-root", &data, "--data-root", &data], "given twice"),
    ];
    for (args, named) in cases {
        let out = cleanup(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
        assert!(err.contains("Usage:"), "{args:?}: {err}");
        assert!(link_exists(&bridge), "{args:?} removed {bridge}");
    }
    // Alone, neither takes the default roots.
    for help in ["--help", "-h"] {
        let out = cleanup(&[help]);
        assert_eq!(out.status.code(), Some(0), "{help}: {}", text(&out.stderr));
    }
    assert_eq!(cleanup(&["--bogus"]).status.code(), Some(2));
    assert!(link_exists(&bridge));
    assert!(chain_exists(&d));
}

#[test]
fn network_cleanup_after_the_daemon_stopped_removes_its_network() {
    let mut d = TestDaemon::start();
    let bridge = bridge_of(&d);
    assert!(link_exists(&bridge), "{bridge} is not there: {}", d.log());
    d.stop_with(libc::SIGTERM);
    let out = cleanup(&[
        "--data-root",
        &d.data_root().display().to_string(),
        "--exec-root",
        &d.exec_root().display().to_string(),
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(!link_exists(&bridge), "{bridge} is still there");
    assert!(!chain_exists(&d), "the chains are still there");
    // A data root that does not exist: nothing to do, and no lock file made.
    let gone = d.dir.path().join("never");
    let out = cleanup(&[
        "--data-root",
        &gone.display().to_string(),
        "--exec-root",
        &d.dir.path().join("never-exec").display().to_string(),
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(!gone.exists());
}
