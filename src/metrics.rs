//! The daemon's measurements for `/metrics` (`metrics-addr`), and the
//! Prometheus text format (version 0.0.4) they are written in.
//!
//! Counters and histograms are process-wide statics that any layer updates
//! with an atomic add (no lock on the paths they time, except the first use
//! of a label); what can be read off the state (container counts, host
//! facts) is computed when scraped, by the facade.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bounds of the histograms' buckets, in seconds: Prometheus' default
/// buckets, which dockerd's timers use.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or under each bucket's bound (not cumulative).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// A histogram read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramValues {
    /// Cumulative counts, one per bucket of `BUCKETS`.
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observes the time since `start`.
    pub fn since(&self, start: Instant) {
        self.observe(start.elapsed());
    }

    pub fn values(&self) -> HistogramValues {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        HistogramValues {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Histograms by the value of one label (`action`).
#[derive(Debug, Default)]
pub struct LabeledHistogram {
    series: Mutex<BTreeMap<String, Arc<Histogram>>>,
}

impl LabeledHistogram {
    pub const fn new() -> LabeledHistogram {
        LabeledHistogram {
            series: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn with(&self, label: &str) -> Arc<Histogram> {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(series.entry(label.to_string()).or_default())
    }

    /// Observes the time since `start` under `label`.
    pub fn since(&self, label: &str, start: Instant) {
        self.with(label).since(start);
    }

    pub fn values(&self) -> Vec<(String, HistogramValues)> {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series
            .iter()
            .map(|(k, h)| (k.clone(), h.values()))
            .collect()
    }
}

/// `engine_daemon_container_actions_seconds{action}`: create, start, delete,
/// changes, commit (dockerd's actions; berthd times stop too).
pub static CONTAINER_ACTIONS: LabeledHistogram = LabeledHistogram::new();
/// The actions dockerd's container histogram shows from the start.
pub const CONTAINER_ACTION_NAMES: &[&str] = &["changes", "commit", "create", "delete", "start"];
/// `engine_daemon_network_actions_seconds{action}`: create, connect,
/// disconnect, delete.
pub static NETWORK_ACTIONS: LabeledHistogram = LabeledHistogram::new();
/// `engine_daemon_events_total`: Docker events logged.
pub static EVENTS: AtomicU64 = AtomicU64::new(0);
/// `engine_daemon_events_subscribers_total`: `GET /events` streams open.
pub static EVENT_SUBSCRIBERS: AtomicI64 = AtomicI64::new(0);
/// `berth_eventlog_appends_total`: domain events written to the log.
pub static LOG_APPENDS: AtomicU64 = AtomicU64::new(0);
/// `berth_eventlog_fsync_seconds`: one batch's synced write.
pub static LOG_WRITES: Histogram = Histogram::new();
/// `berth_eventlog_replay_seconds`: the start's replay, in microseconds.
pub static REPLAY_MICROS: AtomicU64 = AtomicU64::new(0);

/// Counts a `GET /events` subscriber while it lives.
pub struct Subscriber(());

impl Subscriber {
    pub fn new() -> Subscriber {
        EVENT_SUBSCRIBERS.fetch_add(1, Ordering::Relaxed);
        Subscriber(())
    }
}

impl Default for Subscriber {
    fn default() -> Self {
        Subscriber::new()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        EVENT_SUBSCRIBERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A page of metrics in the text format.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// A float as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it, which is
/// what Prometheus' clients write ("1", "0.25", "2.5276194816e+10", "+Inf").
pub fn format_float(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v.is_nan() {
        return "NaN".into();
    }
    // Rust's {:e} is the shortest round-trip mantissa, as Go's -1 precision.
    let exp_form = format!("{v:e}");
    let (mantissa, exp) = exp_form.split_once('e').unwrap_or((&exp_form, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits = mantissa.bytes().filter(u8::is_ascii_digit).count() as i32;
    // Go: %e when the exponent is < -4 or >= the precision, which is 6
    // for the shortest form unless the digits are fewer and all integral.
    let mut eprec = 6;
    if eprec > digits && digits > exp {
        eprec = digits;
    }
    if exp < -4 || exp >= eprec {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{v}")
}

/// A label value escaped as the text format wants (\\, \", \n).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: f64) {
        let _ = writeln!(self.out, "{name}{} {}", labels(pairs), format_float(value));
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.head(name, help, "gauge");
        self.sample(name, &[], value);
    }

    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.head(name, help, "counter");
        self.sample(name, &[], value);
    }

    /// One gauge with several labeled samples.
    pub fn labeled_gauge(&mut self, name: &str, help: &str, samples: &[(Vec<(&str, &str)>, f64)]) {
        self.head(name, help, "gauge");
        for (pairs, v) in samples {
            self.sample(name, pairs, *v);
        }
    }

    /// A histogram (one series per value of `label`, or one unlabeled when
    /// `label` is empty).
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: &[(String, HistogramValues)],
    ) {
        self.head(name, help, "histogram");
        for (value, h) in series {
            let mut base: Vec<(&str, &str)> = Vec::new();
            if !label.is_empty() {
                base.push((label, value.as_str()));
            }
            let bucket = format!("{name}_bucket");
            for (bound, n) in BUCKETS.iter().zip(&h.cumulative) {
                let le = format_float(*bound);
                let mut pairs = base.clone();
                pairs.push(("le", &le));
                self.sample(&bucket, &pairs, *n as f64);
            }
            let mut pairs = base.clone();
            pairs.push(("le", "+Inf"));
            self.sample(&bucket, &pairs, h.count as f64);
            self.sample(&format!("{name}_sum"), &base, h.sum_seconds);
            self.sample(&format!("{name}_count"), &base, h.count as f64);
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The `berth-shim` processes serving containers under `exec_root` (their
/// command line is `berth-shim <exec-root>/containers/<id>`).
pub fn shims_alive(exec_root: &std::path::Path) -> usize {
    let prefix = exec_root.join("containers");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                return false;
            };
            let mut args = cmdline.split(|b| *b == 0);
            let exe = args.next().unwrap_or_default();
            let bundle = args.next().unwrap_or_default();
            exe.ends_with(b"berth-shim")
                && std::path::Path::new(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bundle),
                )
                .starts_with(&prefix)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_go_writes_them() {
        for (v, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (2.0, "2"),
            (0.005, "0.005"),
            (2.5, "2.5"),
            (20000.0, "20000"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (25276194816.0, "2.5276194816e+10"),
            (1796639271.5, "1.7966392715e+09"),
            (7.502e-05, "7.502e-05"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_float(v), want, "{v}");
        }
    }

    #[test]
    fn a_histogram_is_written_cumulatively_with_its_sum_and_count() {
        let h = Histogram::new();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(300));
        h.observe(Duration::from_secs(20));
        let v = h.values();
        assert_eq!(v.count, 3);
        assert_eq!(v.cumulative[0], 1);
        assert_eq!(v.cumulative[6], 2);
        assert_eq!(v.cumulative[10], 2);
        let mut page = Exposition::default();
        page.histogram("x_seconds", "X.", "action", &[("start".into(), v)]);
        let text = page.finish();
        assert!(text.starts_with("# HELP x_seconds X.\n# TYPE x_seconds histogram\n"));
        assert!(text.contains("x_seconds_bucket{action=\"start\",le=\"0.005\"} 1\n"));
        assert!(text.contains("x_seconds_bucket{action=\"start\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("x_seconds_sum{action=\"start\"} 20.303\n"));
        assert!(text.contains("x_seconds_count{action=\"start\"} 3\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut page = Exposition::default();
        page.labeled_gauge("g", "G.", &[(vec![("os", "a \"b\"\\")], 1.0)]);
        assert!(page.finish().contains("g{os=\"a \\\"b\\\"\\\\\"} 1\n"));
    }
}
