//! Daemon configuration: dockerd's flag names and daemon.json keys, merged as
//! dockerd merges them. A key given both as a flag and in the file is an error,
//! and so is a key dockerd does not know.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::warn;

use crate::error::{Error, Result};

/// The name of the built-in runtime in HostConfig.Runtime and `docker info`:
/// runc's, as dockerd's default is named. It drives containers with runc's
/// command line and semantics, and clients compare these fields with "runc"
/// (e.g. `docker info --format '{{.DefaultRuntime}}'` in scripts, moby's and
/// docker-py's tests); a host's runc binary is one more runtime in
/// daemon.json, under a name of its own.
pub const BUILTIN_RUNTIME: &str = "runc";

/// The built-in runtime's name in containers created before it took runc's.
pub const EARLIER_BUILTIN_RUNTIME: &str = "berth";

pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";
pub const DEFAULT_SOCKET: &str = "/var/run/berth.sock";

#[derive(Parser, Debug, Default)]
#[command(
    name = "berthd",
    about = "A container engine for Linux that speaks the Docker Engine API",
    disable_version_flag = true
)]
pub struct Flags {
    /// Daemon socket(s) to listen on: unix:///path, tcp://host:port, fd://
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Root of persistent state
    #[arg(long = "data-root", value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Root of the daemon's runtime state (sockets, bundles)
    #[arg(long = "exec-root", value_name = "DIR")]
    pub exec_root: Option<PathBuf>,
    /// Daemon configuration file
    #[arg(long = "config-file", value_name = "FILE", default_value = DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,
    /// Preferred registry mirror
    #[arg(long = "registry-mirror", value_name = "URL")]
    pub registry_mirrors: Vec<String>,
    /// Registry to reach over plain HTTP
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    pub insecure_registries: Vec<String>,
    /// Address and prefix of the default bridge (e.g. 172.29.0.1/16)
    #[arg(long = "bip", value_name = "CIDR")]
    pub bip: Option<String>,
    /// Enable IPv6 on the default bridge
    #[arg(long = "ipv6")]
    pub ipv6: bool,
    /// IPv6 subnet of the default bridge (with --ipv6)
    #[arg(long = "fixed-cidr-v6", value_name = "CIDR")]
    pub fixed_cidr_v6: Option<String>,
    /// Parent cgroup of every container without its own --cgroup-parent
    /// (default /berth; a relative path is under the daemon's own cgroup)
    #[arg(long = "cgroup-parent", value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// Logging level: debug, info, warn, error, fatal
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Debug mode (log level debug)
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Use TLS on tcp:// listeners; implied by --tlsverify
    #[arg(long = "tls")]
    pub tls: bool,
    /// Use TLS and require client certificates signed by --tlscacert
    #[arg(long = "tlsverify")]
    pub tlsverify: bool,
    /// Trust certs signed only by this CA
    #[arg(long = "tlscacert", value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file
    #[arg(long = "tlscert", value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file
    #[arg(long = "tlskey", value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// Keep containers running while the daemon is down
    #[arg(long = "live-restore")]
    pub live_restore: bool,
    /// Storage driver (overlay2, vfs)
    #[arg(short = 's', long = "storage-driver", value_name = "NAME")]
    pub storage_driver: Option<String>,
    /// Maximum concurrent layer downloads per pull
    #[arg(long = "max-concurrent-downloads", value_name = "N")]
    pub max_concurrent_downloads: Option<u32>,
    /// Write the daemon's pid to this file
    #[arg(short = 'p', long = "pidfile", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Group that owns the unix socket
    #[arg(short = 'G', long = "group", value_name = "GROUP")]
    pub group: Option<String>,
    /// Run containers in a user namespace mapped to this user's /etc/subuid
    /// and /etc/subgid ranges ("default": the dockremap user, made when missing)
    #[arg(long = "userns-remap", value_name = "USER[:GROUP]")]
    pub userns_remap: Option<String>,
    /// How much event history to keep: age=DURATION,size=BYTES (e.g.
    /// age=720h,size=1GB; none lifts a limit). Default: size=1GB
    #[arg(long = "events-retention", value_name = "age=DURATION,size=BYTES")]
    pub events_retention: Option<String>,
    /// Engine labels (key=value), shown by `docker info`
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Runtime of containers that name none (default runc, the built-in one)
    #[arg(long = "default-runtime", value_name = "NAME")]
    pub default_runtime: Option<String>,
    /// Maximum concurrent layer uploads per push
    #[arg(long = "max-concurrent-uploads", value_name = "N")]
    pub max_concurrent_uploads: Option<i64>,
    /// Default ulimits of containers (name=soft[:hard])
    #[arg(long = "default-ulimit", value_name = "ULIMIT")]
    pub default_ulimits: Vec<String>,
    /// Seconds to wait for containers at shutdown (berthd leaves them running)
    #[arg(long = "shutdown-timeout", value_name = "SECONDS")]
    pub shutdown_timeout: Option<i64>,
    /// Serve Prometheus metrics on this TCP address (host:port) at /metrics
    #[arg(long = "metrics-addr", value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Check the flags and configuration file, then exit
    #[arg(long = "validate")]
    pub validate: bool,
    /// Print version information and exit
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// Where docker.io images come from when no mirror has them (tests point it
    /// at a local registry; users never need it)
    #[arg(long = "docker-hub-endpoint", value_name = "HOST[:PORT]", hide = true)]
    pub docker_hub_endpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AddressPool {
    pub base: String,
    pub size: u8,
}

/// One of `default-ulimits`, as daemon.json spells it
/// (`{"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ulimit {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Soft", default)]
    pub soft: i64,
    #[serde(rename = "Hard", default)]
    pub hard: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RuntimeConfig {
    pub path: String,
    #[serde(rename = "runtimeArgs", default)]
    pub runtime_args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Require and verify client certificates.
    pub verify: bool,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The merged configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub hosts: Vec<String>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub registry_mirrors: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub bip: Option<String>,
    /// IPv6 on the default bridge, and its v6 subnet.
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<String>,
    pub default_address_pools: Vec<AddressPool>,
    /// Where containers' cgroups go unless their own HostConfig.CgroupParent
    /// says otherwise.
    pub cgroup_parent: String,
    /// `--log-level` (or daemon.json's), "info" when none; `debug` wins over it.
    pub log_level: String,
    pub debug: bool,
    pub live_restore: bool,
    pub storage_driver: String,
    pub max_concurrent_downloads: u32,
    pub max_concurrent_uploads: u32,
    pub runtimes: BTreeMap<String, RuntimeConfig>,
    /// The runtime of a container that names none (`runc`: the built-in one).
    pub default_runtime: String,
    /// `default-ulimits` by name, each container's unless it sets its own.
    pub default_ulimits: BTreeMap<String, Ulimit>,
    /// Engine labels (`docker info`), "key=value", each key once.
    pub labels: Vec<String>,
    /// dockerd's shutdown-timeout (seconds); berthd leaves containers running
    /// when it stops, so it is only reported.
    pub shutdown_timeout: i64,
    /// daemon.json `features`.
    pub features: BTreeMap<String, bool>,
    /// Where `/metrics` is served (host:port), if anywhere.
    pub metrics_addr: Option<String>,
    /// The daemon.json this came from (SIGHUP reads it again).
    pub config_file: PathBuf,
    pub tls: Option<TlsConfig>,
    pub pidfile: Option<PathBuf>,
    pub group: Option<String>,
    /// `userns-remap` as given (resolved to ranges at start: `drivers::userns`).
    pub userns_remap: Option<String>,
    /// None: registry-1.docker.io.
    pub docker_hub_endpoint: Option<String>,
    /// How much of the event log `docker events` can reach back through.
    pub events_retention: crate::store::retention::Retention,
}

/// Where containers' cgroups go by default (dockerd's is /docker).
pub const DEFAULT_CGROUP_PARENT: &str = "/berth";

/// daemon.json as dockerd spells it. Only keys this berthd acts on.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileConfig {
    hosts: Option<Vec<String>>,
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    registry_mirrors: Option<Vec<String>>,
    insecure_registries: Option<Vec<String>>,
    bip: Option<String>,
    ipv6: Option<bool>,
    fixed_cidr_v6: Option<String>,
    default_address_pools: Option<Vec<AddressPool>>,
    cgroup_parent: Option<String>,
    log_level: Option<String>,
    debug: Option<bool>,
    live_restore: Option<bool>,
    storage_driver: Option<String>,
    max_concurrent_downloads: Option<u32>,
    runtimes: Option<BTreeMap<String, RuntimeConfig>>,
    default_runtime: Option<String>,
    max_concurrent_uploads: Option<i64>,
    default_ulimits: Option<BTreeMap<String, Ulimit>>,
    labels: Option<Vec<String>>,
    shutdown_timeout: Option<i64>,
    features: Option<BTreeMap<String, bool>>,
    metrics_addr: Option<String>,
    tls: Option<bool>,
    tlsverify: Option<bool>,
    tlscacert: Option<PathBuf>,
    tlscert: Option<PathBuf>,
    tlskey: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    group: Option<String>,
    userns_remap: Option<String>,
    events_retention: Option<String>,
}

/// daemon.json keys and the flag (clap id) each one shares a value with.
const KEYS: &[(&str, Option<&str>)] = &[
    ("hosts", Some("hosts")),
    ("data-root", Some("data_root")),
    ("exec-root", Some("exec_root")),
    ("registry-mirrors", Some("registry_mirrors")),
    ("insecure-registries", Some("insecure_registries")),
    ("bip", Some("bip")),
    ("ipv6", Some("ipv6")),
    ("fixed-cidr-v6", Some("fixed_cidr_v6")),
    ("default-address-pools", None),
    ("cgroup-parent", Some("cgroup_parent")),
    ("log-level", Some("log_level")),
    ("debug", Some("debug")),
    ("live-restore", Some("live_restore")),
    ("storage-driver", Some("storage_driver")),
    ("max-concurrent-downloads", Some("max_concurrent_downloads")),
    ("runtimes", None),
    ("default-runtime", Some("default_runtime")),
    ("max-concurrent-uploads", Some("max_concurrent_uploads")),
    ("default-ulimits", Some("default_ulimits")),
    ("labels", Some("labels")),
    ("shutdown-timeout", Some("shutdown_timeout")),
    ("features", None),
    ("metrics-addr", Some("metrics_addr")),
    ("tls", Some("tls")),
    ("tlsverify", Some("tlsverify")),
    ("tlscacert", Some("tlscacert")),
    ("tlscert", Some("tlscert")),
    ("tlskey", Some("tlskey")),
    ("pidfile", Some("pidfile")),
    ("group", Some("group")),
    ("userns-remap", Some("userns_remap")),
    ("events-retention", Some("events_retention")),
];

/// dockerd keys berthd accepts without acting on them yet (a warning says so), so
/// that an existing daemon.json does not stop it.
const ACCEPTED_IGNORED: &[&str] = &[
    "log-driver",
    "log-opts",
    "dns",
    "dns-opts",
    "dns-search",
    "experimental",
    "iptables",
    "ip-forward",
    "ip-masq",
    "userland-proxy",
    "mtu",
    "exec-opts",
    "icc",
    "fixed-cidr",
    "default-gateway",
    "init",
    "no-new-privileges",
    "storage-opts",
    "default-shm-size",
    "seccomp-profile",
    "builder",
    "containerd",
];

const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error", "fatal"];

impl Flags {
    /// Parses the process's arguments; exits with clap's message on bad flags.
    pub fn parse_with_sources() -> (Flags, ArgMatches) {
        let matches = Flags::command().get_matches();
        match Flags::from_arg_matches(&matches) {
            Ok(flags) => (flags, matches),
            Err(e) => e.exit(),
        }
    }
}

impl Config {
    /// Merges flags with the config file. `matches` tells which flags were given.
    pub fn load(flags: Flags, matches: &ArgMatches) -> Result<Config> {
        Config::load_with_file(flags, matches).map(|(config, _)| config)
    }

    /// `load`, also giving the keys the file set (a reload applies those).
    fn load_with_file(
        flags: Flags,
        matches: &ArgMatches,
    ) -> Result<(Config, Option<Map<String, Value>>)> {
        let explicit_file = matches.value_source("config_file") == Some(ValueSource::CommandLine);
        let file_map = read_config_file(&flags.config_file, explicit_file)?;
        let file = match &file_map {
            None => FileConfig::default(),
            Some(map) => check_file_keys(&flags.config_file, map, matches)
                .and_then(|_| {
                    serde_json::from_value::<FileConfig>(Value::Object(map.clone()))
                        .map_err(|e| Error::invalid(e.to_string()))
                })
                .map_err(|e| {
                    e.context(format_args!(
                        "unable to configure berthd with file {}",
                        flags.config_file.display()
                    ))
                })?,
        };
        Ok((Config::merge(flags, file)?, file_map))
    }

    /// What SIGHUP makes of this configuration: the flags berthd was started
    /// with (`args`, its whole command line) and daemon.json read again, the
    /// keys dockerd applies live taken from it as dockerd takes them (most
    /// only when the file sets them; max-concurrent-downloads/-uploads and
    /// features back to their defaults when it does not). Any error leaves
    /// the running configuration as it is: the caller keeps `self`.
    pub fn reloaded(&self, args: &[std::ffi::OsString]) -> Result<Reloaded> {
        let matches = Flags::command()
            .try_get_matches_from(args)
            .map_err(|e| Error::invalid(e.to_string()))?;
        let flags = Flags::from_arg_matches(&matches).map_err(|e| Error::invalid(e.to_string()))?;
        let (new, file) = Config::load_with_file(flags, &matches).map_err(|e| {
            if e.message().starts_with("unable to configure berthd") {
                e
            } else {
                e.context("file configuration validation failed")
            }
        })?;
        let set = |key: &str| file.as_ref().is_some_and(|m| m.contains_key(key));
        let mut next = self.clone();
        if set("debug") {
            next.debug = new.debug;
        }
        if set("log-level") {
            next.log_level = new.log_level.clone();
        }
        next.max_concurrent_downloads = new.max_concurrent_downloads;
        next.max_concurrent_uploads = new.max_concurrent_uploads;
        next.features = new.features.clone();
        if set("shutdown-timeout") {
            next.shutdown_timeout = new.shutdown_timeout;
        }
        if set("labels") {
            next.labels = new.labels.clone();
        }
        if set("insecure-registries") {
            next.insecure_registries = new.insecure_registries.clone();
        }
        if set("registry-mirrors") {
            next.registry_mirrors = new.registry_mirrors.clone();
        }
        if set("live-restore") {
            next.live_restore = new.live_restore;
        }
        if set("runtimes") {
            next.runtimes = new.runtimes.clone();
        }
        if set("default-runtime") {
            next.default_runtime = new.default_runtime.clone();
        }
        if set("default-ulimits") {
            next.default_ulimits = new.default_ulimits.clone();
        }
        // The merged result must hold together (a default runtime that the
        // new runtimes still name).
        check_default_runtime(&next.default_runtime, &next.runtimes)
            .map_err(|e| e.context("file configuration validation failed"))?;
        let mut restart_needed = Vec::new();
        let old = self;
        let mut differs = |key: &'static str, a: String, b: String| {
            if a != b {
                restart_needed.push(key);
            }
        };
        macro_rules! cmp {
            ($key:literal, $field:ident) => {
                differs(
                    $key,
                    format!("{:?}", old.$field),
                    format!("{:?}", new.$field),
                )
            };
        }
        cmp!("hosts", hosts);
        cmp!("data-root", data_root);
        cmp!("exec-root", exec_root);
        cmp!("bip", bip);
        cmp!("ipv6", ipv6);
        cmp!("fixed-cidr-v6", fixed_cidr_v6);
        cmp!("default-address-pools", default_address_pools);
        cmp!("cgroup-parent", cgroup_parent);
        cmp!("storage-driver", storage_driver);
        cmp!("tls", tls);
        cmp!("pidfile", pidfile);
        cmp!("group", group);
        cmp!("userns-remap", userns_remap);
        cmp!("events-retention", events_retention);
        cmp!("metrics-addr", metrics_addr);
        Ok(Reloaded {
            config: next,
            restart_needed,
        })
    }

    /// The level berthd logs at: `debug` wins over `log-level`.
    pub fn effective_log_level(&self) -> &str {
        if self.debug {
            "debug"
        } else {
            &self.log_level
        }
    }

    /// The attributes of dockerd 20.10's `daemon reload` event, in its words
    /// and formats (JSON lists, Go's `%v` of a map, `name:path` runtimes),
    /// for this configuration; what berthd has no setting for is dockerd's
    /// default. `name` is the host's name, as `docker info` gives it.
    pub fn reload_attributes(&self, name: &str) -> Vec<(String, String)> {
        let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let mut runtimes = vec![format!("{BUILTIN_RUNTIME}:{BUILTIN_RUNTIME}")];
        runtimes.extend(self.runtimes.iter().map(|(n, r)| format!("{n}:{}", r.path)));
        let features: Vec<String> = self
            .features
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        // dockerd's default cgroup namespace mode: private on cgroup v2, host on v1.
        let cgroupns = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "private"
        } else {
            "host"
        };
        let mut attrs: Vec<(String, String)> = [
            ("allow-nondistributable-artifacts", "[]".to_string()),
            ("cluster-advertise", String::new()),
            ("cluster-store", String::new()),
            ("cluster-store-opts", "null".into()),
            ("debug", self.debug.to_string()),
            ("default-cgroupns-mode", cgroupns.into()),
            ("default-ipc-mode", "private".into()),
            ("default-runtime", self.default_runtime.clone()),
            ("default-shm-size", "67108864".into()),
            ("features", format!("map[{}]", features.join(" "))),
            ("insecure-registries", json(&self.insecure_registries)),
            ("labels", json(&self.labels)),
            ("live-restore", self.live_restore.to_string()),
            (
                "max-concurrent-downloads",
                self.max_concurrent_downloads.to_string(),
            ),
            (
                "max-concurrent-uploads",
                self.max_concurrent_uploads.to_string(),
            ),
            ("max-download-attempts", "5".into()),
            ("registry-mirrors", json(&self.registry_mirrors)),
            ("runtimes", runtimes.join(" ")),
            ("shutdown-timeout", self.shutdown_timeout.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if !name.is_empty() {
            attrs.push(("name".into(), name.into()));
            attrs.sort();
        }
        attrs
    }

    fn merge(flags: Flags, file: FileConfig) -> Result<Config> {
        let debug = flags.debug || file.debug.unwrap_or(false);
        let log_level = flags
            .log_level
            .or(file.log_level)
            .unwrap_or_else(|| "info".into());
        if !LOG_LEVELS.contains(&log_level.as_str()) {
            return Err(Error::invalid(format!(
                "unable to parse logging level: {log_level}"
            )));
        }
        let tlsverify = flags.tlsverify || file.tlsverify.unwrap_or(false);
        let tls_on = tlsverify || flags.tls || file.tls.unwrap_or(false);
        let tls = if tls_on {
            let cert_dir = std::env::var_os("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .unwrap_or_default()
                        .join(".docker")
                });
            Some(TlsConfig {
                verify: tlsverify,
                ca: flags
                    .tlscacert
                    .or(file.tlscacert)
                    .unwrap_or_else(|| cert_dir.join("ca.pem")),
                cert: flags
                    .tlscert
                    .or(file.tlscert)
                    .unwrap_or_else(|| cert_dir.join("cert.pem")),
                key: flags
                    .tlskey
                    .or(file.tlskey)
                    .unwrap_or_else(|| cert_dir.join("key.pem")),
            })
        } else {
            None
        };
        let storage_driver = match flags.storage_driver.or(file.storage_driver) {
            Some(d) if d == "overlay2" || d == "vfs" => d,
            Some(d) => {
                return Err(Error::invalid(format!(
                    "error initializing graphdriver: driver not supported: {d} (berthd supports overlay2 and vfs)"
                )))
            }
            // As dockerd: overlay2 where the kernel has overlayfs, else vfs.
            None if overlay_supported() => "overlay2".into(),
            None => {
                tracing::warn!("overlayfs is not available; using the vfs storage driver");
                "vfs".into()
            }
        };
        let bip = flags.bip.or(file.bip);
        if let Some(bip) = &bip {
            parse_cidr(bip).map_err(|e| Error::invalid(format!("invalid bip {bip}: {e}")))?;
        }
        let fixed_cidr_v6 = flags.fixed_cidr_v6.or(file.fixed_cidr_v6);
        if let Some(c) = &fixed_cidr_v6 {
            parse_cidr6(c)
                .map_err(|e| Error::invalid(format!("invalid fixed-cidr-v6 {c}: {e}")))?;
        }
        let default_address_pools = file.default_address_pools.unwrap_or_default();
        for pool in &default_address_pools {
            if pool.base.contains(':') {
                parse_cidr6(&pool.base).map_err(|e| {
                    Error::invalid(format!(
                        "invalid default-address-pools base {}: {e}",
                        pool.base
                    ))
                })?;
                continue;
            }
            parse_cidr(&pool.base).map_err(|e| {
                Error::invalid(format!(
                    "invalid default-address-pools base {}: {e}",
                    pool.base
                ))
            })?;
        }
        let events_retention = match flags.events_retention.or(file.events_retention) {
            Some(s) => crate::store::retention::Retention::parse(&s)
                .map_err(|e| Error::invalid(format!("invalid events-retention {s:?}: {e}")))?,
            None => Default::default(),
        };
        let runtimes = file.runtimes.unwrap_or_default();
        if runtimes.contains_key(BUILTIN_RUNTIME) {
            return Err(Error::invalid(format!(
                "runtime name '{}' is reserved",
                BUILTIN_RUNTIME
            )));
        }
        let default_runtime = flags
            .default_runtime
            .or(file.default_runtime)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| BUILTIN_RUNTIME.into());
        check_default_runtime(&default_runtime, &runtimes)?;
        let max_concurrent_uploads = flags
            .max_concurrent_uploads
            .or(file.max_concurrent_uploads)
            .unwrap_or(5);
        if max_concurrent_uploads < 0 {
            return Err(Error::invalid(format!(
                "invalid max concurrent uploads: {max_concurrent_uploads}"
            )));
        }
        let labels = conflict_free_labels(if flags.labels.is_empty() {
            file.labels.unwrap_or_default()
        } else {
            flags.labels
        })?;
        let mut default_ulimits = BTreeMap::new();
        for spec in &flags.default_ulimits {
            let u = parse_ulimit(spec)?;
            default_ulimits.insert(u.name.clone(), u);
        }
        for (key, mut u) in file.default_ulimits.unwrap_or_default() {
            if u.name.is_empty() {
                u.name = key;
            }
            check_ulimit(&u)?;
            default_ulimits.insert(u.name.clone(), u);
        }
        let metrics_addr = flags
            .metrics_addr
            .or(file.metrics_addr)
            .filter(|a| !a.is_empty());
        if let Some(addr) = &metrics_addr {
            check_tcp_addr(addr)?;
        }
        let pick = |flag: Vec<String>, file: Option<Vec<String>>| {
            if flag.is_empty() {
                file.unwrap_or_default()
            } else {
                flag
            }
        };
        Ok(Config {
            hosts: pick(flags.hosts, file.hosts),
            data_root: flags
                .data_root
                .or(file.data_root)
                .unwrap_or_else(|| DEFAULT_DATA_ROOT.into()),
            exec_root: flags
                .exec_root
                .or(file.exec_root)
                .unwrap_or_else(|| DEFAULT_EXEC_ROOT.into()),
            registry_mirrors: pick(flags.registry_mirrors, file.registry_mirrors),
            insecure_registries: pick(flags.insecure_registries, file.insecure_registries),
            bip,
            ipv6: flags.ipv6 || file.ipv6.unwrap_or(false),
            fixed_cidr_v6,
            default_address_pools,
            cgroup_parent: flags
                .cgroup_parent
                .or(file.cgroup_parent)
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_CGROUP_PARENT.into()),
            log_level,
            debug,
            live_restore: flags.live_restore || file.live_restore.unwrap_or(false),
            storage_driver,
            max_concurrent_downloads: flags
                .max_concurrent_downloads
                .or(file.max_concurrent_downloads)
                .unwrap_or(3),
            max_concurrent_uploads: max_concurrent_uploads as u32,
            runtimes,
            default_runtime,
            default_ulimits,
            labels,
            shutdown_timeout: flags
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(15),
            features: file.features.unwrap_or_default(),
            metrics_addr,
            config_file: flags.config_file.clone(),
            tls,
            pidfile: flags.pidfile.or(file.pidfile),
            group: flags.group.or(file.group),
            userns_remap: flags
                .userns_remap
                .or(file.userns_remap)
                .filter(|u| !u.is_empty()),
            docker_hub_endpoint: flags.docker_hub_endpoint,
            events_retention,
        })
    }
}

/// A reload's outcome: the configuration to run with from now on, and the
/// keys whose new value waits for a restart (dockerd ignores them silently).
#[derive(Debug)]
pub struct Reloaded {
    pub config: Config,
    pub restart_needed: Vec<&'static str>,
}

/// The running configuration, shared by what reads it while a reload may
/// replace it: readers take the current one whole (`get`) and keep it as
/// long as they need.
#[derive(Clone, Debug)]
pub struct SharedConfig(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Config>>>);

impl SharedConfig {
    pub fn new(config: Config) -> SharedConfig {
        SharedConfig(std::sync::Arc::new(std::sync::RwLock::new(
            std::sync::Arc::new(config),
        )))
    }

    pub fn get(&self) -> std::sync::Arc<Config> {
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        std::sync::Arc::clone(&guard)
    }

    pub fn set(&self, config: Config) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        *guard = std::sync::Arc::new(config);
    }
}

/// dockerd's check: a default runtime other than the built-in one must be
/// among `runtimes`.
fn check_default_runtime(name: &str, runtimes: &BTreeMap<String, RuntimeConfig>) -> Result<()> {
    if name == BUILTIN_RUNTIME || name == EARLIER_BUILTIN_RUNTIME || runtimes.contains_key(name) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "specified default runtime '{name}' does not exist"
    )))
}

/// Engine labels checked as dockerd's ValidateLabel and GetConflictFreeLabels:
/// each `key=value`, none in docker's reserved namespaces, a key given twice
/// only with one value (kept once, in the order given).
fn conflict_free_labels(labels: Vec<String>) -> Result<Vec<String>> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for label in &labels {
        let Some((k, v)) = label.split_once('=') else {
            return Err(Error::invalid(format!("bad attribute format: {label}")));
        };
        let lowered = label.to_ascii_lowercase();
        if ["com.docker.", "io.docker.", "org.dockerproject."]
            .iter()
            .any(|p| lowered.starts_with(p))
        {
            return Err(Error::invalid(format!(
                "label {label} is not allowed: the namespaces com.docker.*, io.docker.*, and org.dockerproject.* are reserved for internal use"
            )));
        }
        match seen.iter().find(|(sk, _)| sk == k) {
            Some((_, sv)) if sv != v => {
                return Err(Error::invalid(format!(
                    "conflict labels for {k}={v} and {k}={sv}"
                )))
            }
            Some(_) => {}
            None => seen.push((k.to_string(), v.to_string())),
        }
    }
    Ok(seen.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// The rlimits a ulimit may name (go-units' list).
const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

fn check_ulimit(u: &Ulimit) -> Result<()> {
    if !ULIMIT_NAMES.contains(&u.name.as_str()) {
        return Err(Error::invalid(format!("invalid ulimit type: {}", u.name)));
    }
    if u.soft > u.hard && u.hard >= 0 {
        return Err(Error::invalid(format!(
            "ulimit soft limit must be less than or equal to hard limit: {} > {}",
            u.soft, u.hard
        )));
    }
    Ok(())
}

/// `--default-ulimit name=soft[:hard]`, as go-units parses it.
fn parse_ulimit(spec: &str) -> Result<Ulimit> {
    let bad = || Error::invalid(format!("invalid ulimit argument: {spec}"));
    let (name, limits) = spec.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (s, h),
        None => (limits, limits),
    };
    let num = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| Error::invalid(format!("invalid ulimit argument: {spec}")))
    };
    let u = Ulimit {
        name: name.to_string(),
        soft: num(soft)?,
        hard: num(hard)?,
    };
    check_ulimit(&u)?;
    Ok(u)
}

/// A TCP listen address as Go's net.Listen takes it: `host:port`, the host
/// may be empty (every address) or a name.
fn check_tcp_addr(addr: &str) -> Result<()> {
    let port = match addr.rsplit_once(':') {
        Some((_, port)) => port,
        None => {
            return Err(Error::invalid(format!(
                "listen tcp: address {addr}: missing port in address"
            )))
        }
    };
    if port.parse::<u16>().is_err() {
        return Err(Error::invalid(format!(
            "listen tcp: address {addr}: invalid port"
        )));
    }
    Ok(())
}

/// Whether a `host:port` names only loopback addresses ("localhost" does;
/// an empty host, 0.0.0.0 or [::] means every address).
pub fn is_loopback_addr(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn overlay_supported() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|f| {
            f.lines()
                .any(|l| l.split_whitespace().last() == Some("overlay"))
        })
        .unwrap_or(false)
}

/// Reads daemon.json. The default path may be absent; a path given with
/// --config-file must exist.
fn read_config_file(path: &Path, explicit: bool) -> Result<Option<Map<String, Value>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => {
            return Err(Error::invalid(format!(
                "unable to configure berthd with file {}: {e}",
                path.display()
            )))
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(Error::invalid(format!(
            "unable to configure berthd with file {}: the configuration must be a JSON object",
            path.display()
        ))),
        Err(e) => Err(Error::invalid(format!(
            "unable to configure berthd with file {}: {e}",
            path.display()
        ))),
    }
}

/// dockerd's two checks, with its wording: unknown keys, then keys set twice.
fn check_file_keys(path: &Path, map: &Map<String, Value>, matches: &ArgMatches) -> Result<()> {
    let mut unknown: Vec<&str> = Vec::new();
    for key in map.keys() {
        if ACCEPTED_IGNORED.contains(&key.as_str()) {
            warn!(key = %key, file = %path.display(), "daemon.json key is not supported by berthd yet; ignored");
        } else if !KEYS.iter().any(|(k, _)| k == key) {
            unknown.push(key);
        }
    }
    if !unknown.is_empty() {
        return Err(Error::invalid(format!(
            "the following directives don't match any configuration option: {}",
            unknown.join(", ")
        )));
    }
    let mut conflicts = Vec::new();
    for (key, flag) in KEYS {
        let (Some(flag), Some(file_value)) = (flag, map.get(*key)) else {
            continue;
        };
        if matches.value_source(flag) != Some(ValueSource::CommandLine) {
            continue;
        }
        let flag_value: Vec<String> = matches
            .get_raw(flag)
            .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let flag_value = match flag_value.len() {
            0 => "true".to_string(),
            1 => flag_value[0].clone(),
            _ => format!("[{}]", flag_value.join(" ")),
        };
        conflicts.push(format!(
            "{key}: (from flag: {flag_value}, from file: {})",
            render_json(file_value)
        ));
    }
    if !conflicts.is_empty() {
        return Err(Error::invalid(format!(
            "the following directives are specified both as a flag and in the configuration file: {}",
            conflicts.join(", ")
        )));
    }
    Ok(())
}

/// Renders a JSON value the way Go's %v prints it in dockerd's message.
fn render_json(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(render_json).collect::<Vec<_>>().join(" ")
        ),
        other => other.to_string(),
    }
}

/// Parses "a.b.c.d/n".
/// "2001:db8::/64" as an address and prefix length (the network's own
/// checks, host bits and all, are the NetworkController's).
pub fn parse_cidr6(s: &str) -> std::result::Result<(std::net::Ipv6Addr, u8), String> {
    parse_prefixed(s, 128)
}

pub fn parse_cidr(s: &str) -> std::result::Result<(std::net::Ipv4Addr, u8), String> {
    parse_prefixed(s, 32)
}

/// "ADDR/N" with N at most `max` (32 for v4, 128 for v6).
fn parse_prefixed<A: std::str::FromStr>(s: &str, max: u8) -> std::result::Result<(A, u8), String>
where
    A::Err: std::fmt::Display,
{
    let (addr, prefix) = s.split_once('/').ok_or("missing /prefix")?;
    let addr: A = addr.parse().map_err(|e| format!("{e}"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| "bad prefix length".to_string())?;
    if prefix > max {
        return Err(format!("prefix length over {max}"));
    }
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str], file: Option<&str>) -> Result<Config> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, file.unwrap_or("{}")).expect("write");
        let mut argv = vec![
            "berthd".to_string(),
            "--config-file".into(),
            path.display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let matches = Flags::command()
            .try_get_matches_from(argv)
            .expect("flags parse");
        let flags = Flags::from_arg_matches(&matches).expect("flags");
        Config::load(flags, &matches)
    }

    #[test]
    fn file_values_apply_and_flags_fill_the_rest() {
        let cfg = load(
            &["--data-root", "/tmp/x"],
            Some(r#"{"hosts":["unix:///tmp/a.sock"],"registry-mirrors":["http://127.0.0.1:5000"],"max-concurrent-downloads":5,"runtimes":{"crun":{"path":"/usr/bin/crun"}},"default-address-pools":[{"base":"10.99.0.0/16","size":24}]}"#),
        )
        .expect("loads");
        assert_eq!(cfg.hosts, vec!["unix:///tmp/a.sock"]);
        assert_eq!(cfg.data_root, PathBuf::from("/tmp/x"));
        assert_eq!(cfg.max_concurrent_downloads, 5);
        assert_eq!(cfg.runtimes["crun"].path, "/usr/bin/crun");
        assert_eq!(cfg.default_address_pools[0].size, 24);
        assert_eq!(cfg.storage_driver, "overlay2");
    }

    #[test]
    fn runcs_name_is_the_built_in_runtimes() {
        let err = load(
            &[],
            Some(r#"{"runtimes":{"runc":{"path":"/usr/sbin/runc"}}}"#),
        )
        .expect_err("reserved");
        assert!(
            err.to_string().contains("runtime name 'runc' is reserved"),
            "{err}"
        );
    }

    #[test]
    fn a_key_in_both_places_is_dockerds_conflict_error() {
        let err = load(
            &["-H", "unix:///tmp/b.sock", "--debug"],
            Some(r#"{"hosts":["unix:///tmp/a.sock"],"debug":true}"#),
        )
        .expect_err("conflict");
        let msg = err.to_string();
        assert!(
            msg.contains("the following directives are specified both as a flag and in the configuration file: hosts: (from flag: unix:///tmp/b.sock, from file: [unix:///tmp/a.sock]), debug: (from flag: true, from file: true)"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let err = load(&[], Some(r#"{"hostz":[]}"#)).expect_err("unknown");
        assert!(
            err.to_string()
                .contains("the following directives don't match any configuration option: hostz"),
            "{err}"
        );
        let err = load(&["--log-level", "loud"], None).expect_err("level");
        assert_eq!(err.to_string(), "unable to parse logging level: loud");
        let err = load(&[], Some("{not json")).expect_err("json");
        assert!(
            err.to_string()
                .contains("unable to configure berthd with file"),
            "{err}"
        );
        let err = load(&["--bip", "10.1.2.3"], None).expect_err("bip");
        assert!(err.to_string().contains("invalid bip"), "{err}");
        let err = load(&["--storage-driver", "zfs"], None).expect_err("zfs");
        assert!(
            err.to_string().contains("driver not supported: zfs"),
            "{err}"
        );
        let cfg = load(&[], Some(r#"{"storage-driver": "vfs"}"#)).expect("vfs");
        assert_eq!(cfg.storage_driver, "vfs");
        // A known dockerd key that berthd does not act on yet is accepted.
        load(&[], Some(r#"{"log-driver":"json-file"}"#)).expect("accepted");
    }

    /// A config from `args` and the file's `text`, then reloaded after the
    /// file became `next`.
    fn reload(args: &[&str], text: &str, next: &str) -> (Config, Result<Reloaded>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, text).expect("write");
        let mut argv = vec![
            "berthd".to_string(),
            "--config-file".into(),
            path.display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let matches = Flags::command()
            .try_get_matches_from(&argv)
            .expect("flags parse");
        let flags = Flags::from_arg_matches(&matches).expect("flags");
        let cfg = Config::load(flags, &matches).expect("first load");
        std::fs::write(&path, next).expect("write");
        let os: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
        let r = cfg.reloaded(&os);
        (cfg, r)
    }

    #[test]
    fn a_reload_applies_what_dockerd_applies_and_keeps_the_rest() {
        let (_, r) = reload(
            &["--max-concurrent-downloads", "4"],
            r#"{"registry-mirrors":["http://a"],"labels":["x=1"],"max-concurrent-uploads":9,"bip":"10.1.0.1/24","debug":true}"#,
            r#"{"registry-mirrors":["http://b"],"insecure-registries":["r:5000"],"default-ulimits":{"nofile":{"Name":"nofile","Soft":10,"Hard":20}},"bip":"10.2.0.1/24","features":{"buildkit":true}}"#,
        );
        let r = r.expect("reloads");
        let c = &r.config;
        assert_eq!(c.registry_mirrors, vec!["http://b"]);
        assert_eq!(c.insecure_registries, vec!["r:5000"]);
        // Not in the new file: kept (labels, debug) or back to the default
        // (uploads), as dockerd; a flag's value stays.
        assert_eq!(c.labels, vec!["x=1"]);
        assert!(c.debug);
        assert_eq!(c.max_concurrent_uploads, 5);
        assert_eq!(c.max_concurrent_downloads, 4);
        assert_eq!(c.default_ulimits["nofile"].hard, 20);
        // bip needs a restart: the running value stays, and the key is named.
        assert_eq!(c.bip.as_deref(), Some("10.1.0.1/24"));
        assert_eq!(r.restart_needed, vec!["bip"]);
        let attrs: std::collections::BTreeMap<_, _> =
            c.reload_attributes("host").into_iter().collect();
        assert_eq!(attrs["registry-mirrors"], r#"["http://b"]"#);
        assert_eq!(attrs["labels"], r#"["x=1"]"#);
        assert_eq!(attrs["features"], "map[buildkit:true]");
        assert_eq!(attrs["runtimes"], "runc:runc");
        assert_eq!(attrs["debug"], "true");
        assert_eq!(attrs["name"], "host");
        assert_eq!(attrs.len(), 20);
    }

    #[test]
    fn a_bad_file_on_reload_is_refused_in_dockerds_words() {
        let ok = r#"{"labels":["a=b"]}"#;
        for (next, words) in [
            ("{bad", "unable to configure berthd with file"),
            (
                r#"{"nope":1}"#,
                "the following directives don't match any configuration option: nope",
            ),
            (
                r#"{"data-root":"/x"}"#,
                "the following directives are specified both as a flag and in the configuration file: data-root: (from flag: /tmp/d, from file: /x)",
            ),
            (
                r#"{"labels":["a"]}"#,
                "file configuration validation failed: bad attribute format: a",
            ),
            (
                r#"{"labels":["a=b","a=c"]}"#,
                "file configuration validation failed: conflict labels for a=c and a=b",
            ),
            (
                r#"{"default-runtime":"crun"}"#,
                "file configuration validation failed: specified default runtime 'crun' does not exist",
            ),
        ] {
            let (_, r) = reload(&["--data-root", "/tmp/d"], ok, next);
            let err = r.expect_err(next).to_string();
            assert!(err.contains(words), "{next}: {err}");
        }
    }

    #[test]
    fn new_keys_are_checked_as_dockerd_checks_them() {
        let cfg = load(
            &["--default-ulimit", "nproc=10:20", "--metrics-addr", "127.0.0.1:9323"],
            Some(r#"{"default-runtime":"crun","runtimes":{"crun":{"path":"/usr/bin/crun"}},"shutdown-timeout":3}"#),
        )
        .expect("loads");
        assert_eq!(cfg.default_runtime, "crun");
        assert_eq!(cfg.default_ulimits["nproc"].soft, 10);
        assert_eq!(cfg.shutdown_timeout, 3);
        assert_eq!(cfg.metrics_addr.as_deref(), Some("127.0.0.1:9323"));
        let err = load(&["--default-ulimit", "bogus=1"], None).expect_err("ulimit");
        assert_eq!(err.to_string(), "invalid ulimit type: bogus");
        let err = load(&["--metrics-addr", "127.0.0.1"], None).expect_err("addr");
        assert!(err.to_string().contains("missing port in address"), "{err}");
        let err = load(&["--label", "com.docker.x=1"], None).expect_err("label");
        assert!(
            err.to_string().contains("are reserved for internal use"),
            "{err}"
        );
        assert!(is_loopback_addr("127.0.0.1:1") && is_loopback_addr("localhost:1"));
        assert!(is_loopback_addr("[::1]:1") && !is_loopback_addr(":9323"));
        assert!(!is_loopback_addr("0.0.0.0:1"));
    }

    #[test]
    fn an_explicit_config_file_must_exist() {
        let matches = Flags::command()
            .try_get_matches_from(["berthd", "--config-file", "/nonexistent/berth/daemon.json"])
            .expect("flags parse");
        let flags = Flags::from_arg_matches(&matches).expect("flags");
        assert!(Config::load(flags, &matches).is_err());
    }
}
