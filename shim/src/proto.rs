//! What the daemon and a shim say to each other on `<bundle>/shim.sock`.
//!
//! A connection carries one request: a JSON line from the daemon, a JSON line
//! back (`Reply`). For `attach` and `exec` the connection then becomes the
//! container's raw stream, exactly as the Docker API hijacks it: what the daemon
//! writes is stdin; what the shim writes is output, in the Docker multiplexed
//! framing without a tty and raw with one. The daemon splices it onto the
//! client's upgraded HTTP connection without looking inside.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the daemon writes into `<bundle>/shim.json` before starting the shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    /// The OCI runtime command line up to the subcommand: `berthd runtime --root R`
    /// (ours) or `runc --root R`.
    pub runtime: Vec<String>,
    /// The json-file log of the main process.
    pub log_path: PathBuf,
    /// cgroup path of the container ("/berth/<id>"), to read OOM kills.
    pub cgroup_path: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// json-file rotation: the log is rotated once it reaches this size (0:
    /// never), keeping `log_max_files` files in all (`<log>.1` the newest
    /// rotated one).
    #[serde(default)]
    pub log_max_size: u64,
    #[serde(default)]
    pub log_max_files: u32,
    /// The tty's size at start, `[height, width]` (HostConfig.ConsoleSize).
    #[serde(default)]
    pub console_size: Option<[u16; 2]>,
    /// Execs are done by the shim itself (`exec`), not by the runtime: for
    /// the built-in runtime, whose containers are plain OCI ones.
    #[serde(default)]
    pub direct_exec: bool,
    /// The container's seccomp filter compiled to BPF, which direct execs get.
    #[serde(default)]
    pub seccomp_program: Option<PathBuf>,
    /// The health check, when the container has one: the shim runs it, so
    /// it costs the daemon nothing and goes on while no daemon runs.
    #[serde(default)]
    pub health: Option<HealthProbe>,
}

/// A container's health check as the shim runs it (dockerd's defaults already
/// filled in).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthProbe {
    /// The OCI process of each probe: the container's, with the test's args.
    pub process: serde_json::Value,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub start_period_ms: u64,
    /// The interval while the container is in its start period (API 1.44).
    pub start_interval_ms: u64,
    pub retries: u32,
    /// Where the state is kept (`State.Health` as inspect shows it): in the
    /// container's directory, so that the log of earlier starts stays.
    pub state_path: PathBuf,
}

/// `State.Health` of inspect, which the shim keeps in `HealthProbe::state_path`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthState {
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
}

/// One probe's result, as dockerd keeps it (RFC 3339 times).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// A line the shim writes on a `watch_health` connection: the status now,
/// then each change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthLine {
    pub status: String,
}

/// The JSON line the shim writes on its stdout once: the container is created
/// (its init waits for `start`) or could not be.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Created {
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Stream the main process: stdin from this connection, output to it.
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Let the created init run.
    Start,
    /// Run a process in the container (an OCI `process` object) and stream it.
    Exec {
        exec_id: String,
        process: serde_json::Value,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Stream the health status: a `HealthLine` now and one at each change,
    /// until the main process ends.
    WatchHealth,
    /// Set the terminal size of the main process (no exec_id) or of an exec.
    Resize {
        #[serde(default)]
        exec_id: Option<String>,
        height: u16,
        width: u16,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The process started (`start`, `exec`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What the shim leaves in `<bundle>/exit.json` for the main process and in
/// `<bundle>/exec/<exec_id>.exit` for an exec.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExitStatus {
    pub exit_code: i32,
    #[serde(default)]
    pub oom_killed: bool,
    #[serde(default)]
    pub error: String,
}

pub const SHIM_CONFIG: &str = "shim.json";
pub const SHIM_SOCKET: &str = "shim.sock";
pub const EXIT_FILE: &str = "exit.json";
pub const EXEC_DIR: &str = "exec";

/// An exec that could not start, in runc's words (which dockerd passes on):
/// for `docker exec` and for health probes alike.
pub fn exec_words(e: &str) -> String {
    format!(
        "OCI runtime exec failed: exec failed: unable to start container process: {}: unknown",
        runc_detail(e)
    )
}

/// The part of a start or exec failure runc words after "unable to start
/// container process: ".
pub fn runc_detail(e: &str) -> String {
    let named = |tail: &str| {
        e.split_once("executable '")
            .and_then(|(_, r)| r.split_once(tail))
            .map(|(binary, _)| binary.to_string())
    };
    if let Some(binary) = named("' not found") {
        // A path is not looked up: runc's stat fails on it.
        if binary.contains('/') {
            return format!("exec: \"{binary}\": stat {binary}: no such file or directory");
        }
        return format!("exec: \"{binary}\": executable file not found in $PATH");
    }
    // A file that is there but not executable: runc's EACCES (the CLI exits 126).
    if let Some(binary) =
        named("' at path").filter(|_| e.contains("does not have correct permissions"))
    {
        return format!("exec: \"{binary}\": permission denied");
    }
    e.to_string()
}

/// Stream numbers of the Docker multiplexed framing.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// One frame of the Docker multiplexed stream: `[stream, 0, 0, 0, len (u32 BE)]`
/// then the bytes.
pub fn frame(stream: u8, data: &[u8], out: &mut Vec<u8>) {
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_lines() {
        let r = Request::Resize {
            exec_id: None,
            height: 24,
            width: 80,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"op":"resize","exec_id":null,"height":24,"width":80}"#
        );
        let back: Request = serde_json::from_str(r#"{"op":"start"}"#).unwrap();
        assert!(matches!(back, Request::Start));
        let mut out = Vec::new();
        frame(STDERR, b"hi", &mut out);
        assert_eq!(out, [2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn runtime_errors_read_as_runc_words() {
        assert_eq!(
            runc_detail("error in executing process : executable 'nope' not found in $PATH"),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(
            runc_detail("error in executing process : executable '/etc/passwd' at path '\"/etc/passwd\"' does not have correct permissions"),
            "exec: \"/etc/passwd\": permission denied"
        );
    }
}
