//! `docker stats`: one sample of a container's cgroup counters in dockerd's
//! JSON shape (cgroup v1 files, or v2's where the v1 ones are absent). The CLI
//! computes CPU% from the difference between `precpu_stats` and `cpu_stats`
//! against the host's CPU time, so each sample carries the host's too.

use serde_json::{json, Value};

use crate::drivers::exec::bundle::running_cgroup;
use crate::events::projection::{ContainerRecord, ContainerStatus, Projection};

/// Nanoseconds per USER_HZ tick (/proc/stat, cpuacct.stat count in 1/100 s).
const NS_PER_TICK: u64 = 10_000_000;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn number(path: &str) -> Option<u64> {
    read(path).and_then(|s| s.trim().parse().ok())
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
fn keyed(text: &str) -> serde_json::Map<String, Value> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| {
            v.trim()
                .parse::<u64>()
                .ok()
                .map(|n| (k.to_string(), json!(n)))
        })
        .collect()
}

/// The host's CPU time in ns and the number of CPUs, from /proc/stat.
pub fn host_cpu() -> (u64, u64) {
    let text = read("/proc/stat").unwrap_or_default();
    let total = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
        })
        .unwrap_or(0);
    let cpus = text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count() as u64;
    (total * NS_PER_TICK, cpus.max(1))
}

fn host_memory() -> u64 {
    read("/proc/meminfo")
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The cpu_stats object.
fn cpu_stats(rel: &str) -> Value {
    let (system, cpus) = host_cpu();
    let v1 = format!("/sys/fs/cgroup/cpu,cpuacct/{rel}");
    let (total, percpu, user, kernel, throttling) =
        if let Some(total) = number(&format!("{v1}/cpuacct.usage")) {
            let percpu: Vec<u64> = read(&format!("{v1}/cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let st = keyed(&read(&format!("{v1}/cpuacct.stat")).unwrap_or_default());
            let ticks = |k: &str| st.get(k).and_then(Value::as_u64).unwrap_or(0) * NS_PER_TICK;
            let th = keyed(&read(&format!("{v1}/cpu.stat")).unwrap_or_default());
            (total, Some(percpu), ticks("user"), ticks("system"), th)
        } else {
            let st = keyed(&read(&format!("/sys/fs/cgroup/{rel}/cpu.stat")).unwrap_or_default());
            let us = |k: &str| st.get(k).and_then(Value::as_u64).unwrap_or(0) * 1000;
            let mut th = serde_json::Map::new();
            for (k, from) in [
                ("nr_periods", "nr_periods"),
                ("nr_throttled", "nr_throttled"),
            ] {
                th.insert(k.into(), st.get(from).cloned().unwrap_or(json!(0)));
            }
            th.insert("throttled_time".into(), json!(us("throttled_usec")));
            (
                us("usage_usec"),
                None,
                us("user_usec"),
                us("system_usec"),
                th,
            )
        };
    json!({
        "cpu_usage": {
            "total_usage": total,
            "percpu_usage": percpu,
            "usage_in_kernelmode": kernel,
            "usage_in_usermode": user,
        },
        "system_cpu_usage": system,
        "online_cpus": cpus,
        "throttling_data": {
            "periods": throttling.get("nr_periods").cloned().unwrap_or(json!(0)),
            "throttled_periods": throttling.get("nr_throttled").cloned().unwrap_or(json!(0)),
            "throttled_time": throttling.get("throttled_time").cloned().unwrap_or(json!(0)),
        },
    })
}

fn memory_stats(rel: &str) -> Value {
    let host = host_memory();
    let v1 = format!("/sys/fs/cgroup/memory/{rel}");
    let clamp = |limit: u64| {
        if host > 0 && limit > host {
            host
        } else {
            limit
        }
    };
    if let Some(usage) = number(&format!("{v1}/memory.usage_in_bytes")) {
        return json!({
            "usage": usage,
            "max_usage": number(&format!("{v1}/memory.max_usage_in_bytes")).unwrap_or(0),
            "failcnt": number(&format!("{v1}/memory.failcnt")).unwrap_or(0),
            "limit": clamp(number(&format!("{v1}/memory.limit_in_bytes")).unwrap_or(u64::MAX)),
            "stats": keyed(&read(&format!("{v1}/memory.stat")).unwrap_or_default()),
        });
    }
    let v2 = format!("/sys/fs/cgroup/{rel}");
    let limit = read(&format!("{v2}/memory.max"))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    json!({
        "usage": number(&format!("{v2}/memory.current")).unwrap_or(0),
        "limit": clamp(limit),
        "stats": keyed(&read(&format!("{v2}/memory.stat")).unwrap_or_default()),
    })
}

fn pids_stats(rel: &str) -> Value {
    for dir in [
        format!("/sys/fs/cgroup/pids/{rel}"),
        format!("/sys/fs/cgroup/{rel}"),
    ] {
        if let Some(current) = number(&format!("{dir}/pids.current")) {
            let limit = number(&format!("{dir}/pids.max"));
            return json!({ "current": current, "limit": limit });
        }
    }
    json!({})
}

/// One sample of a container's counters, taken at `read_ns`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub read_ns: u64,
    pub cpu: Value,
    pub memory: Value,
    pub pids: Value,
    /// Per interface, as dockerd reports a container with endpoints of its
    /// own; None for one without (`--network none`, `host`, `container:`).
    pub networks: Option<Value>,
}

/// What a container's samples read: its cgroup, and the interface counters
/// of its network namespace when it has one of its own (none for host and
/// container: networking). Worked out once per stats request.
pub struct Source {
    cgroup: String,
    net_dev: Option<String>,
}

impl Source {
    pub fn of(c: &ContainerRecord, exec_root: &std::path::Path) -> Source {
        let mode = crate::containers::render::body(c)
            .host_config
            .and_then(|h| h.network_mode)
            .unwrap_or_default();
        let own_network = c.pid != 0 && mode != "host" && !mode.starts_with("container:");
        Source {
            cgroup: running_cgroup(exec_root, &c.id),
            net_dev: own_network.then(|| format!("/proc/{}/net/dev", c.pid)),
        }
    }
}

/// A sample of the container's cgroups and interfaces.
pub fn sample(src: &Source) -> Sample {
    let rel = src.cgroup.trim_start_matches('/');
    Sample {
        read_ns: crate::clock::now_ns(),
        cpu: cpu_stats(rel),
        memory: memory_stats(rel),
        pids: pids_stats(rel),
        networks: src
            .net_dev
            .as_deref()
            .and_then(read)
            .map(|text| interfaces(&text))
            .filter(|v| v.as_object().is_some_and(|m| !m.is_empty())),
    }
}

/// /proc/<pid>/net/dev as dockerd's `networks`: each interface but lo.
fn interfaces(net_dev: &str) -> Value {
    let mut out = serde_json::Map::new();
    for line in net_dev.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let n: Vec<u64> = counters
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        if name == "lo" || n.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                "tx_bytes": n[8], "tx_packets": n[9], "tx_errors": n[10], "tx_dropped": n[11],
            }),
        );
    }
    Value::Object(out)
}

/// The stats JSON dockerd sends, with `pre` the previous sample (none for the
/// first).
pub fn render(id: &str, name: &str, now: &Sample, pre: Option<&Sample>) -> Value {
    let zero_cpu = json!({ "cpu_usage": { "total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0 }, "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 } });
    let (preread, precpu) = match pre {
        Some(p) => (crate::clock::rfc3339(p.read_ns), p.cpu.clone()),
        None => ("0001-01-01T00:00:00Z".to_string(), zero_cpu),
    };
    let empty_blkio = json!({
        "io_service_bytes_recursive": null, "io_serviced_recursive": null,
        "io_queue_recursive": null, "io_service_time_recursive": null,
        "io_wait_time_recursive": null, "io_merged_recursive": null,
        "io_time_recursive": null, "sectors_recursive": null,
    });
    let mut v = json!({
        "read": crate::clock::rfc3339(now.read_ns),
        "preread": preread,
        "pids_stats": now.pids,
        "blkio_stats": empty_blkio,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": now.cpu,
        "precpu_stats": precpu,
        "memory_stats": now.memory,
        "name": format!("/{name}"),
        "id": id,
    });
    if let Some(networks) = &now.networks {
        v["networks"] = networks.clone();
    }
    v
}

/// How often dockerd's collector samples.
const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// `stream=0`: one sample; unless `one_shot`, a second after a first, so that
/// the CLI can compute CPU% from the two.
pub async fn once(c: &ContainerRecord, exec_root: &std::path::Path, one_shot: bool) -> Value {
    let src = Source::of(c, exec_root);
    let pre = if one_shot {
        None
    } else {
        let first = sample(&src);
        tokio::time::sleep(INTERVAL).await;
        Some(first)
    };
    render(&c.id, &c.name, &sample(&src), pre.as_ref())
}

/// `stream=1`: a JSON line a second, each with the one before as `precpu`,
/// until the container no longer runs (the line that finds it stopped is
/// the last).
pub fn stream(
    c: ContainerRecord,
    projection: Projection,
    exec_root: &std::path::Path,
) -> impl futures_util::Stream<Item = String> + Send {
    let src = std::sync::Arc::new(Source::of(&c, exec_root));
    futures_util::stream::unfold((None::<Sample>, true), move |(pre, go_on)| {
        let (c, projection, src) = (c.clone(), projection.clone(), src.clone());
        async move {
            if !go_on {
                return None;
            }
            if pre.is_some() {
                tokio::time::sleep(INTERVAL).await;
            }
            let now = sample(&src);
            let line = render(&c.id, &c.name, &now, pre.as_ref()).to_string() + "\n";
            let running = projection
                .current()
                .containers
                .get(&c.id)
                .is_some_and(|r| r.status == ContainerStatus::Running);
            Some((line, (Some(now), running)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_but_lo() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo:  10 1 0 0 0 0 0 0  10 1 0 0 0 0 0 0\n  eth0:  266 3 1 2 0 0 0 0  90 4 5 6 0 0 0 0\n";
        let v = interfaces(text);
        assert_eq!(
            v,
            json!({ "eth0": { "rx_bytes": 266, "rx_packets": 3, "rx_errors": 1, "rx_dropped": 2,
                              "tx_bytes": 90, "tx_packets": 4, "tx_errors": 5, "tx_dropped": 6 } })
        );
    }

    #[test]
    fn keyed_files_and_the_host_cpu() {
        let m = keyed("cache 4096\nrss 8192\nbad x\n");
        assert_eq!(m.get("rss"), Some(&json!(8192)));
        assert!(!m.contains_key("bad"));
        let (total, cpus) = host_cpu();
        assert!(total > 0 && cpus >= 1);
        let c = ContainerRecord {
            id: "no-such-container".into(),
            ..Default::default()
        };
        let now = sample(&Source::of(&c, std::path::Path::new("/nonexistent")));
        assert!(now.networks.is_none());
        let v = render("abc", "web", &now, None);
        assert_eq!(v["name"], "/web");
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert!(v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0);
    }
}
