//! `metrics-addr`: Prometheus' text format on `GET /metrics`, on a TCP
//! listener of its own (plain HTTP, as dockerd's), with dockerd's metric
//! names where they apply and berthd's own (`berth_*`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::context::ApiContext;
use crate::buildinfo;
use crate::error::{Context, Result};
use crate::events::projection::ContainerStatus;
use crate::metrics::{
    Exposition, LabeledHistogram, CONTAINER_ACTIONS, CONTAINER_ACTION_NAMES, EVENTS,
    EVENT_SUBSCRIBERS, LOG_APPENDS, LOG_WRITES, NETWORK_ACTIONS, REPLAY_MICROS,
};

/// The histogram and action an API request is timed under when it succeeds,
/// as dockerd times its container and network actions.
pub fn timed_action(
    method: &Method,
    path: &str,
) -> Option<(&'static LabeledHistogram, &'static str)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let action = match (method, parts.as_slice()) {
        (&Method::POST, ["containers", "create"]) => (&CONTAINER_ACTIONS, "create"),
        (&Method::POST, ["containers", _, "start"]) => (&CONTAINER_ACTIONS, "start"),
        (&Method::POST, ["containers", _, "stop"]) => (&CONTAINER_ACTIONS, "stop"),
        (&Method::DELETE, ["containers", _]) => (&CONTAINER_ACTIONS, "delete"),
        (&Method::GET, ["containers", _, "changes"]) => (&CONTAINER_ACTIONS, "changes"),
        (&Method::POST, ["commit"]) => (&CONTAINER_ACTIONS, "commit"),
        (&Method::POST, ["networks", "create"]) => (&NETWORK_ACTIONS, "create"),
        (&Method::POST, ["networks", _, "connect"]) => (&NETWORK_ACTIONS, "connect"),
        (&Method::POST, ["networks", _, "disconnect"]) => (&NETWORK_ACTIONS, "disconnect"),
        (&Method::DELETE, ["networks", _]) => (&NETWORK_ACTIONS, "delete"),
        _ => return None,
    };
    Some(action)
}

/// The page `/metrics` answers with.
pub fn page(ctx: &ApiContext) -> String {
    let state = ctx.projection.current();
    let (mut running, mut paused, mut stopped) = (0.0, 0.0, 0.0);
    for c in state.containers.values() {
        // As dockerd's state counter: a container waiting for its restart
        // policy is stopped.
        match c.status {
            ContainerStatus::Running if c.paused => paused += 1.0,
            ContainerStatus::Running => running += 1.0,
            _ => stopped += 1.0,
        }
    }
    let config = ctx.config.get();
    let host = &ctx.host;
    let mut m = Exposition::default();
    // dockerd's, in its (alphabetical) order.
    for a in CONTAINER_ACTION_NAMES {
        CONTAINER_ACTIONS.with(a);
    }
    m.histogram(
        "engine_daemon_container_actions_seconds",
        "The number of seconds it takes to process each container action",
        "action",
        &CONTAINER_ACTIONS.values(),
    );
    m.labeled_gauge(
        "engine_daemon_container_states_containers",
        "The count of containers in various states",
        &[
            (vec![("state", "paused")], paused),
            (vec![("state", "running")], running),
            (vec![("state", "stopped")], stopped),
        ],
    );
    m.gauge(
        "engine_daemon_engine_cpus_cpus",
        "The number of cpus that the host system of the engine has",
        host.ncpu as f64,
    );
    let id = state.engine.id.clone().unwrap_or_default();
    m.labeled_gauge(
        "engine_daemon_engine_info",
        "The information related to the engine and the OS it is running on",
        &[(
            vec![
                ("architecture", host.architecture.as_str()),
                ("commit", buildinfo::GIT_COMMIT),
                ("daemon_id", id.as_str()),
                ("graphdriver", config.storage_driver.as_str()),
                ("kernel", host.kernel_version.as_str()),
                ("os", host.operating_system.as_str()),
                ("os_type", "linux"),
                ("os_version", host.os_version.as_str()),
                ("version", buildinfo::VERSION),
            ],
            1.0,
        )],
    );
    m.gauge(
        "engine_daemon_engine_memory_bytes",
        "The number of bytes of memory that the host system of the engine has",
        host.mem_total as f64,
    );
    m.gauge(
        "engine_daemon_events_subscribers_total",
        "The number of current subscribers to events",
        EVENT_SUBSCRIBERS.load(Relaxed) as f64,
    );
    m.counter(
        "engine_daemon_events_total",
        "The number of events logged",
        EVENTS.load(Relaxed) as f64,
    );
    m.histogram(
        "engine_daemon_network_actions_seconds",
        "The number of seconds it takes to process each network action",
        "action",
        &NETWORK_ACTIONS.values(),
    );
    // berthd's own.
    m.counter(
        "berth_eventlog_appends_total",
        "The number of events appended to the event log",
        LOG_APPENDS.load(Relaxed) as f64,
    );
    m.histogram(
        "berth_eventlog_fsync_seconds",
        "The number of seconds one batch of the event log takes to write and fsync",
        "",
        &[(String::new(), LOG_WRITES.values())],
    );
    m.gauge(
        "berth_eventlog_replay_seconds",
        "The number of seconds the start's replay of the event log took",
        REPLAY_MICROS.load(Relaxed) as f64 / 1e6,
    );
    m.gauge(
        "berth_shims_alive",
        "The number of berth-shim processes serving containers",
        crate::metrics::shims_alive(&config.exec_root) as f64,
    );
    process_metrics(&mut m);
    m.finish()
}

/// Prometheus' process collector's metrics, from /proc/self.
fn process_metrics(m: &mut Exposition) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf takes a constant and returns a number.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        m.counter(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            (utime + stime) / ticks,
        );
    }
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<f64>().ok())
        });
    if let Some(max) = max_fds {
        m.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max,
        );
    }
    m.gauge(
        "process_open_fds",
        "Number of open file descriptors.",
        crate::hostinfo::open_fds() as f64,
    );
    if let Some(rss) = field(24) {
        m.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss * page,
        );
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(boot), Some(start)) = (boot, field(22)) {
        m.gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            boot + start / ticks,
        );
    }
    if let Some(vsize) = field(23) {
        m.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            vsize,
        );
    }
}

/// Binds `addr` (host:port). A non-loopback address is served, as dockerd
/// serves it, with a warning: the page tells who runs what.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .context(format_args!(
            "failed to start metrics server: listen tcp {addr}"
        ))?;
    if !crate::config::is_loopback_addr(addr) {
        warn!(
            addr,
            "metrics-addr is not a loopback address: anyone who can reach it reads the engine's metrics"
        );
    }
    Ok(listener)
}

/// Serves `/metrics` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: ApiContext,
    mut stop: watch::Receiver<bool>,
) {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    info!(addr = ?local, "metrics API listening");
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                debug!(error = %e, "metrics: accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&ctx, &req)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
}

fn answer<B>(ctx: &ApiContext, req: &Request<B>) -> Response<Body> {
    let started = Instant::now();
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            page(ctx),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n".to_string(),
        ),
    };
    debug!(
        path = req.uri().path(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "metrics request"
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response.headers_mut().insert("Content-Type", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_timed_as_dockerds_actions() {
        let t = |m: Method, p: &str| timed_action(&m, p).map(|(_, a)| a);
        assert_eq!(t(Method::POST, "/containers/create"), Some("create"));
        assert_eq!(t(Method::POST, "/containers/abc/start"), Some("start"));
        assert_eq!(t(Method::DELETE, "/containers/abc"), Some("delete"));
        assert_eq!(t(Method::GET, "/containers/abc/json"), None);
        assert_eq!(t(Method::POST, "/networks/n1/connect"), Some("connect"));
        assert_eq!(t(Method::DELETE, "/networks/n1"), Some("delete"));
        assert!(std::ptr::eq(
            timed_action(&Method::DELETE, "/networks/n1")
                .map(|(h, _)| h)
                .expect("timed"),
            &NETWORK_ACTIONS
        ));
    }
}
