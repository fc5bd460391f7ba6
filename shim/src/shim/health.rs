//! Health checks: the container's probe run as an exec of the shim's own
//! every interval, its results kept where inspect reads them, and each change
//! of status told to the daemon's `watch_health` connection when it has one.
//! Probes go on while no daemon runs; the daemon learns the status now when
//! it watches again.
//!
//! The rules are dockerd's (daemon/health.go): exit code 0 is healthy, any
//! other result a failure; failures in the start period do not count while
//! the container has not yet been healthy; `retries` failures in a row make
//! it unhealthy; a probe that outlives its timeout is killed and fails.

use super::*;
use crate::proto::{HealthLine, HealthProbe, HealthResult, HealthState};

/// Results kept (dockerd's maxLogEntries).
const KEEP_RESULTS: usize = 5;
/// Output kept of each probe (dockerd's maxOutputLen).
pub(super) const MAX_OUTPUT: usize = 4096;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

pub(super) struct Health {
    probe: HealthProbe,
    state: HealthState,
    /// When the container started: the start period counts from here.
    started: Instant,
    next: Instant,
    running: Option<Running>,
    probes: u64,
}

struct Running {
    key: u64,
    pid: i32,
    deadline: Instant,
    start_ns: u64,
    /// Whether it started in the start period (dockerd asks at the probe's start).
    in_start_period: bool,
    timed_out: bool,
}

impl Health {
    /// The check of a container that starts now. The results of its earlier
    /// starts stay in the log, as dockerd keeps them; the status starts over.
    pub(super) fn new(probe: HealthProbe) -> Health {
        let old: HealthState = std::fs::read(&probe.state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let now = Instant::now();
        let mut health = Health {
            state: HealthState {
                status: STARTING.into(),
                failing_streak: 0,
                log: old.log,
            },
            started: now,
            next: now,
            running: None,
            probes: 0,
            probe,
        };
        health.next = now + health.interval();
        health.save();
        health
    }

    fn in_start_period(&self) -> bool {
        self.started.elapsed() < Duration::from_millis(self.probe.start_period_ms)
    }

    /// The wait before the next probe: the start interval while a starting
    /// container is in its start period, the interval otherwise.
    fn interval(&self) -> Duration {
        let ms = if self.state.status == STARTING
            && self.in_start_period()
            && self.probe.start_interval_ms > 0
        {
            self.probe.start_interval_ms
        } else {
            self.probe.interval_ms
        };
        Duration::from_millis(ms.max(1))
    }

    /// The next moment something is due: a probe to start or to time out.
    pub(super) fn deadline(&self) -> Instant {
        match &self.running {
            Some(r) if !r.timed_out => r.deadline,
            Some(_) => self.next.max(Instant::now() + Duration::from_millis(100)),
            None => self.next,
        }
    }

    pub(super) fn status(&self) -> &str {
        &self.state.status
    }

    fn save(&self) {
        if let Ok(bytes) = serde_json::to_vec(&self.state) {
            write_atomic(&self.probe.state_path, &bytes);
        }
    }

    /// Takes one result; true when the status changed.
    fn record(&mut self, result: HealthResult, in_start_period: bool) -> bool {
        let before = self.state.status.clone();
        apply_result(&mut self.state, result, in_start_period, self.probe.retries);
        self.save();
        self.state.status != before
    }
}

/// dockerd's handleProbeResult on the state (the log trimmed to its last
/// `KEEP_RESULTS`).
fn apply_result(
    state: &mut HealthState,
    result: HealthResult,
    in_start_period: bool,
    retries: u32,
) {
    if result.exit_code == 0 {
        state.failing_streak = 0;
        state.status = HEALTHY.into();
    } else if !(state.status == STARTING && in_start_period) {
        state.failing_streak += 1;
        if state.failing_streak >= retries {
            state.status = UNHEALTHY.into();
        }
    }
    state.log.push(result);
    let extra = state.log.len().saturating_sub(KEEP_RESULTS);
    state.log.drain(..extra);
}

impl Shim {
    /// The container started: its health check begins (the first probe
    /// one interval later, as in dockerd).
    pub(super) fn start_health(&mut self) {
        self.health = self.config.health.clone().map(Health::new);
        self.tell_watchers();
    }

    /// Starts a probe that is due, or kills one that is late.
    pub(super) fn health_tick(&mut self) {
        if self.main_done() {
            return;
        }
        let Some(h) = self.health.as_mut() else {
            return;
        };
        let now = Instant::now();
        if let Some(r) = h.running.as_mut() {
            if !r.timed_out && now >= r.deadline {
                r.timed_out = true;
                let _ = nix::sys::signal::kill(Pid::from_raw(r.pid), Signal::SIGKILL);
            }
            return;
        }
        if now < h.next {
            return;
        }
        h.probes += 1;
        let exec_id = format!("health{}", h.probes);
        let process = h.probe.process.clone();
        let timeout = Duration::from_millis(h.probe.timeout_ms.max(1));
        let start_ns = crate::time::now_ns();
        let in_start_period = h.in_start_period();
        match self.exec(&exec_id, &process, false) {
            Ok((key, pid)) => {
                if let Some(p) = self.procs.get_mut(&key) {
                    p.capture = Some(Vec::new());
                }
                if let Some(h) = self.health.as_mut() {
                    h.running = Some(Running {
                        key,
                        pid,
                        deadline: Instant::now() + timeout,
                        start_ns,
                        in_start_period,
                        timed_out: false,
                    });
                }
            }
            // As dockerd: a probe that cannot start fails with the reason.
            Err(e) => {
                let words = crate::proto::exec_words(&e);
                self.probe_result(start_ns, in_start_period, -1, words)
            }
        }
    }

    /// Whether `key` is the running probe.
    pub(super) fn is_probe(&self, key: u64) -> bool {
        self.health
            .as_ref()
            .and_then(|h| h.running.as_ref())
            .is_some_and(|r| r.key == key)
    }

    /// The running probe ended with `code` and printed `output`.
    pub(super) fn probe_ended(&mut self, code: i32, output: Vec<u8>) {
        let Some(r) = self.health.as_mut().and_then(|h| h.running.take()) else {
            return;
        };
        let timeout_ms = self.health.as_ref().map_or(0, |h| h.probe.timeout_ms);
        let (code, output) = if r.timed_out {
            (
                -1,
                format!(
                    "Health check exceeded timeout ({})",
                    go_duration(timeout_ms)
                ),
            )
        } else {
            (code as i64, String::from_utf8_lossy(&output).into_owned())
        };
        self.probe_result(r.start_ns, r.in_start_period, code, output);
    }

    fn probe_result(
        &mut self,
        start_ns: u64,
        in_start_period: bool,
        exit_code: i64,
        output: String,
    ) {
        let Some(h) = self.health.as_mut() else {
            return;
        };
        let result = HealthResult {
            start: crate::time::rfc3339(start_ns),
            end: crate::time::rfc3339(crate::time::now_ns()),
            exit_code,
            output,
        };
        let changed = h.record(result, in_start_period);
        h.next = Instant::now() + h.interval();
        if changed {
            self.tell_watchers();
        }
    }

    /// Writes the status now to every `watch_health` connection.
    pub(super) fn tell_watchers(&mut self) {
        let Some(status) = self.health.as_ref().map(|h| h.status().to_string()) else {
            return;
        };
        let Ok(mut line) = serde_json::to_vec(&HealthLine { status }) else {
            return;
        };
        line.push(b'\n');
        let keys: Vec<u64> = self
            .clients
            .iter_mut()
            .filter(|(_, c)| matches!(c.role, Role::Watch))
            .map(|(k, c)| {
                c.out.extend_from_slice(&line);
                *k
            })
            .collect();
        for key in keys {
            self.write_client(key);
        }
    }
}

/// Go's time.Duration String for whole milliseconds ("30s", "1.5s", "500ms",
/// "1m0s"), as dockerd words the timeout.
fn go_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = |ms: u64| {
        let (s, frac) = (ms / 1000, ms % 1000);
        if frac == 0 {
            format!("{s}s")
        } else {
            format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
        }
    };
    let (h, m, rest) = (ms / 3_600_000, (ms / 60_000) % 60, ms % 60_000);
    match (h, m) {
        (0, 0) => secs(rest),
        (0, m) => format!("{m}m{}", secs(rest)),
        (h, m) => format!("{h}h{m}m{}", secs(rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i64) -> HealthResult {
        HealthResult {
            exit_code: code,
            ..Default::default()
        }
    }

    #[test]
    fn failures_count_after_the_start_period_and_retries_make_unhealthy() {
        let mut s = HealthState {
            status: STARTING.into(),
            ..Default::default()
        };
        apply_result(&mut s, result(1), true, 2);
        assert_eq!((s.status.as_str(), s.failing_streak), (STARTING, 0));
        apply_result(&mut s, result(1), false, 2);
        assert_eq!((s.status.as_str(), s.failing_streak), (STARTING, 1));
        apply_result(&mut s, result(0), false, 2);
        assert_eq!((s.status.as_str(), s.failing_streak), (HEALTHY, 0));
        // Once healthy, the start period no longer forgives.
        apply_result(&mut s, result(1), true, 2);
        assert_eq!((s.status.as_str(), s.failing_streak), (HEALTHY, 1));
        apply_result(&mut s, result(-1), true, 2);
        assert_eq!((s.status.as_str(), s.failing_streak), (UNHEALTHY, 2));
        for _ in 0..4 {
            apply_result(&mut s, result(0), false, 2);
        }
        assert_eq!(s.log.len(), KEEP_RESULTS);
        assert_eq!(s.log[0].exit_code, -1);
    }

    #[test]
    fn durations_are_worded_as_go_does() {
        assert_eq!(go_duration(30_000), "30s");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(go_duration(500), "500ms");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(3_723_000), "1h2m3s");
    }
}
