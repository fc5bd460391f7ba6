//! Restart policies, decided as dockerd's restart manager decides them
//! (moby's restartmanager): `always`, `unless-stopped`, `on-failure[:N]`, with
//! a delay that starts at 100 ms and doubles at each restart up to a minute,
//! back to 100 ms once a run lasted 10 s.

use std::time::Duration;

use bollard_stubs::models::{RestartPolicy, RestartPolicyNameEnum};

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the delay.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// What a container's policy is asked about one exit.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub code: i32,
    /// A user stopped or killed it at some point (`unless-stopped` stays down).
    pub manually_stopped: bool,
    /// Restarts by the policy since a user last started it.
    pub restart_count: u64,
    pub ran_for: Duration,
}

impl Exit {
    /// The last exit of a container as its record tells it.
    pub fn of(c: &crate::events::projection::ContainerRecord) -> Exit {
        Exit {
            code: c.exit_code,
            manually_stopped: c.manually_stopped,
            restart_count: c.restart_count,
            ran_for: Duration::from_nanos(c.finished_ns.saturating_sub(c.started_ns)),
        }
    }
}

/// The container's restart policy, from its config.
pub fn policy_of(c: &crate::events::projection::ContainerRecord) -> Option<RestartPolicy> {
    crate::containers::render::body(c)
        .host_config
        .and_then(|h| h.restart_policy)
}

/// The delay before the next restart, kept by the container's actor: it
/// grows while the container keeps failing fast.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backoff(Option<Duration>);

impl Backoff {
    /// The delay after which to restart, or None when the policy says no.
    /// The delay grows even when it says no, as dockerd's does.
    pub fn decide(&mut self, policy: Option<&RestartPolicy>, exit: Exit) -> Option<Duration> {
        let name = policy
            .and_then(|p| p.name)
            .unwrap_or(RestartPolicyNameEnum::EMPTY);
        if matches!(
            name,
            RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO
        ) {
            return None;
        }
        if exit.ran_for >= STABLE_RUN {
            self.0 = None;
        }
        let delay = match self.0 {
            None => FIRST_DELAY,
            Some(d) => (d * 2).min(MAX_DELAY),
        };
        self.0 = Some(delay);
        let restart = match name {
            RestartPolicyNameEnum::ALWAYS => true,
            RestartPolicyNameEnum::UNLESS_STOPPED => !exit.manually_stopped,
            RestartPolicyNameEnum::ON_FAILURE => {
                let max = policy.and_then(|p| p.maximum_retry_count).unwrap_or(0);
                exit.code != 0 && (max <= 0 || exit.restart_count < max as u64)
            }
            _ => false,
        };
        restart.then_some(delay)
    }
}

/// Whether a daemon that starts finds this stopped container to start again
/// (dockerd's restore: `always` even when stopped by a user, `unless-stopped`
/// unless it was, `on-failure` after a failure within its retries), for a
/// container that ran before.
pub fn at_daemon_start(policy: Option<&RestartPolicy>, exit: Exit) -> bool {
    Backoff::default().decide(policy, exit).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: RestartPolicyNameEnum, max: i64) -> RestartPolicy {
        RestartPolicy {
            name: Some(name),
            maximum_retry_count: Some(max),
        }
    }

    fn exit(code: i32, count: u64) -> Exit {
        Exit {
            code,
            manually_stopped: false,
            restart_count: count,
            ran_for: Duration::from_millis(50),
        }
    }

    #[test]
    fn the_delay_doubles_up_to_a_minute_and_resets_after_a_stable_run() {
        let p = policy(RestartPolicyNameEnum::ALWAYS, 0);
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..12)
            .map(|_| b.decide(Some(&p), exit(0, 0)).unwrap().as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        let long = Exit {
            ran_for: Duration::from_secs(10),
            ..exit(0, 0)
        };
        assert_eq!(b.decide(Some(&p), long), Some(Duration::from_millis(100)));
    }

    #[test]
    fn on_failure_restarts_only_failures_within_its_retries() {
        let p = policy(RestartPolicyNameEnum::ON_FAILURE, 2);
        let mut b = Backoff::default();
        assert!(b.decide(Some(&p), exit(0, 0)).is_none());
        assert!(b.decide(Some(&p), exit(1, 0)).is_some());
        assert!(b.decide(Some(&p), exit(1, 1)).is_some());
        assert!(b.decide(Some(&p), exit(1, 2)).is_none());
        let unbounded = policy(RestartPolicyNameEnum::ON_FAILURE, 0);
        assert!(b.decide(Some(&unbounded), exit(1, 1000)).is_some());
    }

    #[test]
    fn unless_stopped_honours_a_manual_stop_and_always_does_not() {
        let stopped = Exit {
            manually_stopped: true,
            ..exit(0, 0)
        };
        let us = policy(RestartPolicyNameEnum::UNLESS_STOPPED, 0);
        let always = policy(RestartPolicyNameEnum::ALWAYS, 0);
        assert!(!at_daemon_start(Some(&us), stopped));
        assert!(at_daemon_start(Some(&us), exit(0, 0)));
        assert!(at_daemon_start(Some(&always), stopped));
    }

    #[test]
    fn no_policy_never_restarts() {
        let mut b = Backoff::default();
        assert!(b.decide(None, exit(1, 0)).is_none());
        let no = policy(RestartPolicyNameEnum::NO, 0);
        assert!(b.decide(Some(&no), exit(1, 0)).is_none());
    }
}
