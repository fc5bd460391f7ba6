//! Health checks as dockerd configures them: the container's Healthcheck
//! over the image's, field by field; the probe's command from its test
//! (`CMD`, `CMD-SHELL`, `NONE`); dockerd's defaults and limits. The shim runs
//! the probes (see `berth_shim::shim::health`); inspect reads the state it
//! keeps in the container's directory.

use std::path::{Path, PathBuf};

use bollard_stubs::models::{ContainerCreateBody, HealthConfig};

use crate::drivers::exec::bundle::{HealthCheck, HEALTH_FILE};
use crate::drivers::exec::proto::HealthState;
use crate::error::{Error, Result};

const DEFAULT_INTERVAL_NS: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT_NS: i64 = 30_000_000_000;
const DEFAULT_START_INTERVAL_NS: i64 = 5_000_000_000;
const DEFAULT_RETRIES: i64 = 3;
/// The shortest interval, timeout and start period dockerd takes.
const MINIMUM_NS: i64 = 1_000_000;

/// The file, in the container's directory, that holds `State.Health`.
pub fn state_path(container_dir: &Path) -> PathBuf {
    container_dir.join(HEALTH_FILE)
}

/// `State.Health` as the shim last wrote it.
pub fn read_state(container_dir: &Path) -> Option<HealthState> {
    let bytes = std::fs::read(state_path(container_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// dockerd's checks of a create's Healthcheck (400, in its words).
pub fn validate(hc: Option<&HealthConfig>) -> Result<()> {
    let Some(hc) = hc else { return Ok(()) };
    let below_minimum = |v: Option<i64>| v.is_some_and(|v| v != 0 && v < MINIMUM_NS);
    for (field, value) in [
        ("Interval", hc.interval),
        ("Timeout", hc.timeout),
        ("StartPeriod", hc.start_period),
        ("StartInterval", hc.start_interval),
    ] {
        if below_minimum(value) {
            return Err(Error::invalid(format!(
                "{field} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if hc.retries.is_some_and(|r| r < 0) {
        return Err(Error::invalid("Retries in Healthcheck cannot be negative"));
    }
    Ok(())
}

/// The container's Healthcheck over the image's: what the container leaves
/// empty (no test, a zero duration) the image's fills (dockerd's merge).
pub fn merge(
    container: Option<HealthConfig>,
    image: Option<&HealthConfig>,
) -> Option<HealthConfig> {
    let Some(image) = image else {
        return container;
    };
    let Some(mut c) = container else {
        return Some(image.clone());
    };
    if c.test.as_ref().is_none_or(|t| t.is_empty()) {
        c.test = image.test.clone();
    }
    let unset = |v: Option<i64>| v.unwrap_or(0) == 0;
    if unset(c.interval) {
        c.interval = image.interval;
    }
    if unset(c.timeout) {
        c.timeout = image.timeout;
    }
    if unset(c.start_period) {
        c.start_period = image.start_period;
    }
    if unset(c.start_interval) {
        c.start_interval = image.start_interval;
    }
    if unset(c.retries) {
        c.retries = image.retries;
    }
    Some(c)
}

/// The probe the container's shim runs, if it has one: `CMD` runs its
/// arguments, `CMD-SHELL` runs them through the container's shell; `NONE`, an
/// empty test and a test of another kind have none (dockerd only warns of
/// the last).
pub fn check(body: &ContainerCreateBody) -> Option<HealthCheck> {
    let hc = body.healthcheck.as_ref()?;
    let test = hc.test.as_ref()?;
    let (kind, rest) = test.split_first()?;
    let args: Vec<String> = match kind.as_str() {
        "CMD" => rest.to_vec(),
        "CMD-SHELL" => {
            let shell = body
                .shell
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            shell.into_iter().chain(rest.iter().cloned()).collect()
        }
        "NONE" => return None,
        other => {
            tracing::warn!(kind = %other, "unknown healthcheck type (expected CMD): no health check");
            return None;
        }
    };
    if args.is_empty() {
        return None;
    }
    let ms = |v: Option<i64>, default: i64| {
        let ns = v.filter(|v| *v > 0).unwrap_or(default);
        (ns / 1_000_000).max(1) as u64
    };
    Some(HealthCheck {
        args,
        interval_ms: ms(hc.interval, DEFAULT_INTERVAL_NS),
        timeout_ms: ms(hc.timeout, DEFAULT_TIMEOUT_NS),
        start_period_ms: hc.start_period.filter(|v| *v > 0).unwrap_or(0) as u64 / 1_000_000,
        start_interval_ms: ms(hc.start_interval, DEFAULT_START_INTERVAL_NS),
        retries: hc
            .retries
            .filter(|r| *r > 0)
            .unwrap_or(DEFAULT_RETRIES)
            .min(u32::MAX as i64) as u32,
    })
}

/// Whether the container has a health check at all (its create body as the
/// projection keeps it, JSON).
pub fn has_check(config_json: &str) -> bool {
    serde_json::from_str::<ContainerCreateBody>(config_json)
        .ok()
        .and_then(|b| check(&b))
        .is_some()
}

/// `docker ps`'s words after "Up ...": " (healthy)", " (health: starting)".
pub fn ps_suffix(status: &str) -> String {
    match status {
        "starting" => " (health: starting)".into(),
        "" => String::new(),
        s => format!(" ({s})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(test: &[&str]) -> ContainerCreateBody {
        ContainerCreateBody {
            healthcheck: Some(HealthConfig {
                test: Some(test.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn tests_become_probes_with_dockerd_defaults() {
        let c = check(&body(&["CMD-SHELL", "test -f /ok"])).expect("a probe");
        assert_eq!(c.args, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!(
            (c.interval_ms, c.timeout_ms, c.start_period_ms, c.retries),
            (30_000, 30_000, 0, 3)
        );
        assert_eq!(
            check(&body(&["CMD", "true", "x"])).expect("probe").args,
            ["true", "x"]
        );
        assert!(check(&body(&["NONE"])).is_none());
        assert!(check(&body(&["WHAT", "x"])).is_none());
        assert!(check(&body(&[])).is_none());
        let mut shelled = body(&["CMD-SHELL", "x"]);
        shelled.shell = Some(vec!["/bin/bash".into(), "-ec".into()]);
        assert_eq!(
            check(&shelled).expect("probe").args,
            ["/bin/bash", "-ec", "x"]
        );
    }

    #[test]
    fn the_container_fills_what_it_sets_over_the_image() {
        let image = HealthConfig {
            test: Some(vec!["CMD".into(), "img".into()]),
            interval: Some(5_000_000_000),
            retries: Some(7),
            ..Default::default()
        };
        let mine = HealthConfig {
            interval: Some(2_000_000_000),
            ..Default::default()
        };
        let m = merge(Some(mine), Some(&image)).expect("merged");
        assert_eq!(m.test, image.test);
        assert_eq!((m.interval, m.retries), (Some(2_000_000_000), Some(7)));
        assert_eq!(merge(None, Some(&image)), Some(image.clone()));
    }

    #[test]
    fn limits_are_refused_in_dockerd_words() {
        let hc = |f: fn(&mut HealthConfig)| {
            let mut h = HealthConfig::default();
            f(&mut h);
            validate(Some(&h)).err().map(|e| e.message().to_string())
        };
        assert_eq!(
            hc(|h| h.interval = Some(999_999)).as_deref(),
            Some("Interval in Healthcheck cannot be less than 1ms")
        );
        assert_eq!(
            hc(|h| h.retries = Some(-1)).as_deref(),
            Some("Retries in Healthcheck cannot be negative")
        );
        assert_eq!(hc(|h| h.interval = Some(0)), None);
    }
}
