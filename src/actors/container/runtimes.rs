//! How containers are run: the shim binary and the OCI runtimes it drives.

use super::*;
use crate::error::{Error, Result};

/// How containers are run: the shim binary and the OCI runtimes it can drive.
/// Clones share the settings a reload changes (`reload`).
#[derive(Clone)]
pub struct RuntimeCommand {
    /// The shim binary (`berth-shim`, beside berthd).
    pub shim: PathBuf,
    /// The built-in runtime's command line up to its subcommand.
    pub runtime: Vec<String>,
    /// The parent of a container's cgroup unless its HostConfig names one
    /// (the daemon's --cgroup-parent).
    pub cgroup_parent: String,
    live: std::sync::Arc<std::sync::RwLock<Live>>,
    exec_root: PathBuf,
}

/// What a reload of daemon.json can change.
#[derive(Default)]
struct Live {
    /// Other runtimes by name (daemon.json `runtimes`), each with its own
    /// state root under the exec root.
    others: std::collections::BTreeMap<String, Vec<String>>,
    /// The runtime of a container created without one.
    default_runtime: String,
    /// `default-ulimits`: each container's unless it sets that one itself.
    default_ulimits: Vec<crate::config::Ulimit>,
}

pub use crate::config::{BUILTIN_RUNTIME, EARLIER_BUILTIN_RUNTIME};

impl RuntimeCommand {
    /// berth-shim beside berthd, driving `berthd runtime` (libcontainer) with
    /// its state under `<exec-root>/runtime`, and the configured runtimes.
    pub fn new(config: &crate::config::Config) -> Result<Self> {
        use crate::error::Context as _;
        let exe = std::env::current_exe().context("finding berthd")?;
        let exec_root = config.exec_root.clone();
        let command = RuntimeCommand {
            shim: exe.with_file_name("berth-shim"),
            runtime: vec![
                exe.display().to_string(),
                "runtime".into(),
                "--root".into(),
                exec_root.join("runtime").display().to_string(),
            ],
            cgroup_parent: config.cgroup_parent.clone(),
            live: Default::default(),
            exec_root,
        };
        command.reload(config);
        Ok(command)
    }

    /// Takes the runtimes, the default runtime and the default ulimits of
    /// `config` (at start, and when a reload changed them): containers
    /// created or started from now on use them.
    pub fn reload(&self, config: &crate::config::Config) {
        let root = |name: &str| {
            self.exec_root
                .join("runtimes")
                .join(name)
                .display()
                .to_string()
        };
        let mut others = std::collections::BTreeMap::new();
        for (name, r) in &config.runtimes {
            let mut argv = vec![r.path.clone()];
            argv.extend(r.runtime_args.iter().cloned());
            argv.extend(["--root".to_string(), root(name)]);
            others.insert(name.clone(), argv);
        }
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        *live = Live {
            others,
            default_runtime: config.default_runtime.clone(),
            default_ulimits: config.default_ulimits.values().cloned().collect(),
        };
    }

    /// The command line of the runtime `name` (empty: the built-in one).
    pub fn argv(&self, name: &str) -> Option<Vec<String>> {
        if name.is_empty() || name == BUILTIN_RUNTIME || name == EARLIER_BUILTIN_RUNTIME {
            return Some(self.runtime.clone());
        }
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.others.get(name).cloned()
    }

    /// The runtime of a container created without one (daemon.json's
    /// `default-runtime`, else the built-in one).
    pub fn default_runtime(&self) -> String {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.default_runtime.clone()
    }

    /// The daemon's `default-ulimits`.
    pub fn default_ulimits(&self) -> Vec<crate::config::Ulimit> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.default_ulimits.clone()
    }

    /// The runtime a container was created with.
    pub fn of(&self, c: &crate::events::projection::ContainerRecord) -> Result<Vec<String>> {
        let name = crate::containers::render::body(c)
            .host_config
            .and_then(|h| h.runtime)
            .unwrap_or_default();
        self.argv(&name)
            .ok_or_else(|| Error::invalid(format!("unknown or invalid runtime name: {name}")))
    }
}
