//! Exec instances (`docker exec`): what was asked for, whether it runs, how it
//! ended. As in dockerd they live in memory only: an exec does not outlive the
//! daemon's interest in it, and its record is not state the engine replays.
//! The registry is shared: reads (`GET /exec/{id}/json`) never wait on an actor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

use crate::drivers::exec::spec::{self, ResolvedUser};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct ExecRecord {
    pub id: String,
    pub container_id: String,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub privileged: bool,
    pub detach_keys: String,
    pub console_size: Option<(u16, u16)>,
    pub started: bool,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub pid: u32,
}

impl ExecRecord {
    /// A new exec of `container_id` from POST /containers/{id}/exec, checked
    /// as dockerd checks it.
    pub fn from_config(container_id: &str, cfg: bollard_stubs::models::ExecConfig) -> Result<Self> {
        let cmd = cfg.cmd.unwrap_or_default();
        if cmd.is_empty() {
            return Err(Error::invalid("No exec command specified"));
        }
        let working_dir = cfg.working_dir.unwrap_or_default();
        if !working_dir.is_empty() && !working_dir.starts_with('/') {
            return Err(Error::invalid(format!(
                "the working directory '{working_dir}' is invalid, it needs to be an absolute path"
            )));
        }
        let console_size = match cfg.console_size.as_deref() {
            Some([h, w]) if *h > 0 || *w > 0 => Some((*h as u16, *w as u16)),
            _ => None,
        };
        Ok(ExecRecord {
            id: new_id()?,
            container_id: container_id.to_string(),
            cmd,
            env: cfg.env.unwrap_or_default(),
            user: cfg.user.unwrap_or_default(),
            working_dir,
            tty: cfg.tty.unwrap_or(false),
            attach_stdin: cfg.attach_stdin.unwrap_or(false),
            attach_stdout: cfg.attach_stdout.unwrap_or(false),
            attach_stderr: cfg.attach_stderr.unwrap_or(false),
            privileged: cfg.privileged.unwrap_or(false),
            detach_keys: cfg.detach_keys.unwrap_or_default(),
            console_size,
            ..Default::default()
        })
    }
}

/// How many ended execs a container keeps for inspection (dockerd keeps them
/// until the container goes; a loop of execs must not grow without bound).
const KEEP_ENDED: usize = 64;

#[derive(Clone, Default)]
pub struct ExecRegistry(Arc<Mutex<HashMap<String, ExecRecord>>>);

impl ExecRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, ExecRecord>> {
        // A panic while holding the lock leaves plain data; go on with it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, rec: ExecRecord) {
        let mut map = self.lock();
        let mut ended: Vec<(String, String)> = map
            .values()
            .filter(|r| r.container_id == rec.container_id && r.exit_code.is_some())
            .map(|r| (r.id.clone(), r.container_id.clone()))
            .collect();
        if ended.len() >= KEEP_ENDED {
            ended.truncate(ended.len() + 1 - KEEP_ENDED);
            for (id, _) in ended {
                map.remove(&id);
            }
        }
        map.insert(rec.id.clone(), rec);
    }

    pub fn get(&self, id: &str) -> Result<ExecRecord> {
        self.lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {id}")))
    }

    /// Marks an exec started; a second start is refused as dockerd does.
    pub fn begin(&self, id: &str) -> Result<ExecRecord> {
        let mut map = self.lock();
        let rec = map
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {id}")))?;
        if rec.started {
            return Err(Error::conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        rec.started = true;
        Ok(rec.clone())
    }

    pub fn running(&self, id: &str, pid: u32) {
        if let Some(r) = self.lock().get_mut(id) {
            r.running = true;
            r.pid = pid;
        }
    }

    pub fn ended(&self, id: &str, code: i64) {
        if let Some(r) = self.lock().get_mut(id) {
            r.running = false;
            r.exit_code = Some(code);
        }
    }

    /// The container went: its execs go too.
    pub fn forget_container(&self, container_id: &str) {
        self.lock().retain(|_, r| r.container_id != container_id);
    }

    pub fn ids_of(&self, container_id: &str) -> Vec<String> {
        self.lock()
            .values()
            .filter(|r| r.container_id == container_id)
            .map(|r| r.id.clone())
            .collect()
    }
}

/// A new exec ID: 32 random bytes in hex, as dockerd makes them.
pub fn new_id() -> Result<String> {
    use crate::error::Context as _;
    let mut b = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut b,
    )
    .context("reading /dev/urandom")?;
    Ok(hex::encode(b))
}

/// `GET /exec/{id}/json`, in dockerd's shape.
pub fn inspect(r: &ExecRecord) -> Value {
    let (entrypoint, arguments) = match r.cmd.split_first() {
        Some((e, a)) => (e.clone(), a.to_vec()),
        None => (String::new(), Vec::new()),
    };
    json!({
        "ID": r.id,
        "Running": r.running,
        "ExitCode": r.exit_code,
        "ProcessConfig": {
            "tty": r.tty,
            "entrypoint": entrypoint,
            "arguments": arguments,
            "privileged": r.privileged,
            "user": r.user,
        },
        "OpenStdin": r.attach_stdin,
        "OpenStderr": r.attach_stderr,
        "OpenStdout": r.attach_stdout,
        "CanRemove": false,
        "ContainerID": r.container_id,
        "DetachKeys": r.detach_keys,
        "Pid": r.pid,
    })
}

/// The OCI `process` an exec runs: the container's own (capabilities, rlimits,
/// no-new-privileges) with the exec's command, environment, user and
/// directory, as moby's daemon/exec.go builds it.
pub fn process(
    container_process: &Value,
    rec: &ExecRecord,
    user: Option<ResolvedUser>,
) -> Result<Value> {
    if rec.cmd.is_empty() {
        return Err(Error::invalid("No exec command specified"));
    }
    let mut p = container_process.clone();
    if !p.is_object() {
        return Err(Error::internal("the container's spec has no process"));
    }
    let mut env: Vec<String> = p["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for e in &rec.env {
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    if rec.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    p["args"] = json!(rec.cmd);
    p["env"] = json!(env);
    p["terminal"] = json!(rec.tty);
    if !rec.working_dir.is_empty() {
        p["cwd"] = json!(rec.working_dir);
    }
    if let Some(u) = user {
        p["user"] = json!({ "uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids });
    }
    if rec.privileged {
        let caps = spec::host_capabilities();
        p["capabilities"] = json!({ "bounding": caps, "effective": caps, "permitted": caps });
    }
    if let Some((h, w)) = rec.console_size {
        p["consoleSize"] = json!({ "height": h, "width": w });
    }
    Ok(p)
}

/// Detach keys as the CLI writes them ("ctrl-p,ctrl-q", "a,ctrl-@"): the
/// bytes they type. Empty: dockerd's default, ctrl-p ctrl-q.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    if spec.is_empty() {
        return Ok(vec![0x10, 0x11]);
    }
    let bad = || Error::invalid(format!("Invalid detach keys ({spec}) provided"));
    spec.split(',')
        .map(|k| {
            let k = k.trim();
            if let Some(c) = k.strip_prefix("ctrl-") {
                let c = c.as_bytes();
                match c {
                    [b] if b.is_ascii_lowercase() => Ok(b - b'a' + 1),
                    [b'@'] => Ok(0),
                    [b @ b'['..=b'_'] => Ok(b - b'[' + 27),
                    _ => Err(bad()),
                }
            } else if k.len() == 1 {
                Ok(k.as_bytes()[0])
            } else {
                Err(bad())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exec_inherits_the_containers_process_and_overrides_what_it_asks() {
        let container = json!({
            "args": ["sleep", "100"],
            "env": ["PATH=/bin", "A=1"],
            "cwd": "/",
            "user": { "uid": 0, "gid": 0 },
            "capabilities": { "bounding": ["CAP_CHOWN"] },
            "terminal": false,
        });
        let rec = ExecRecord {
            cmd: vec!["sh".into(), "-c".into(), "id".into()],
            env: vec!["A=2".into(), "B=3".into()],
            working_dir: "/tmp".into(),
            tty: true,
            ..Default::default()
        };
        let user = ResolvedUser {
            uid: 65534,
            gid: 65534,
            additional_gids: vec![],
            home: "/".into(),
        };
        let p = process(&container, &rec, Some(user)).unwrap();
        assert_eq!(p["args"], json!(["sh", "-c", "id"]));
        assert_eq!(p["env"], json!(["PATH=/bin", "A=2", "B=3", "TERM=xterm"]));
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(p["user"]["uid"], 65534);
        assert_eq!(p["terminal"], true);
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_CHOWN"]));
        assert!(process(&container, &ExecRecord::default(), None).is_err());
    }

    #[test]
    fn exec_configs_are_checked_as_dockerd_checks_them() {
        use bollard_stubs::models::ExecConfig;
        let cfg = |cmd: &[&str], wd: &str| ExecConfig {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            working_dir: Some(wd.to_string()),
            console_size: Some(vec![24, 80]),
            ..Default::default()
        };
        let r = ExecRecord::from_config("c", cfg(&["ls"], "/tmp")).unwrap();
        assert_eq!(
            (r.id.len(), r.container_id.as_str(), r.console_size),
            (64, "c", Some((24, 80)))
        );
        let empty = ExecRecord::from_config("c", cfg(&[], "")).unwrap_err();
        assert_eq!(empty.message(), "No exec command specified");
        assert!(ExecRecord::from_config("c", cfg(&["ls"], "tmp")).is_err());
    }

    #[test]
    fn a_second_start_is_refused_and_ended_execs_are_bounded() {
        let reg = ExecRegistry::default();
        for i in 0..(KEEP_ENDED + 10) {
            let id = format!("e{i}");
            reg.insert(ExecRecord {
                id: id.clone(),
                container_id: "c".into(),
                ..Default::default()
            });
            reg.begin(&id).unwrap();
            reg.ended(&id, 0);
        }
        assert!(reg.ids_of("c").len() <= KEEP_ENDED);
        let last = format!("e{}", KEEP_ENDED + 9);
        assert!(reg.begin(&last).is_err());
        assert_eq!(reg.get(&last).unwrap().exit_code, Some(0));
        reg.forget_container("c");
        assert!(reg.get(&last).is_err());
    }

    #[test]
    fn detach_keys_parse_as_the_cli_writes_them() {
        assert_eq!(parse_detach_keys("").unwrap(), [0x10, 0x11]);
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [0x10, 0x11]);
        assert_eq!(
            parse_detach_keys("a,ctrl-@,ctrl-\\").unwrap(),
            [b'a', 0, 28]
        );
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
    }
}
