//! How containers are run: the shim binary and the OCI runtimes it drives.

use super::*;
use crate::error::{Error, Result};

/// How containers are run: the shim binary and the OCI runtimes it can drive.
#[derive(Clone)]
pub struct RuntimeCommand {
    /// The shim binary (`berth-shim`, beside berthd).
    pub shim: PathBuf,
    /// The built-in runtime's command line up to its subcommand.
    pub runtime: Vec<String>,
    /// Other runtimes by name (daemon.json `runtimes`), each with its own
    /// state root under the exec root.
    pub others: std::collections::BTreeMap<String, Vec<String>>,
    /// The parent of a container's cgroup unless its HostConfig names one
    /// (the daemon's --cgroup-parent).
    pub cgroup_parent: String,
}

pub use crate::config::{BUILTIN_RUNTIME, EARLIER_BUILTIN_RUNTIME};

impl RuntimeCommand {
    /// berth-shim beside berthd, driving `berthd runtime` (libcontainer) with
    /// its state under `<exec-root>/runtime`, and the configured runtimes.
    pub fn new(config: &crate::config::Config) -> Result<Self> {
        let (exec_root, configured) = (&config.exec_root, &config.runtimes);
        use crate::error::Context as _;
        let exe = std::env::current_exe().context("finding berthd")?;
        let root = |name: &str| exec_root.join("runtimes").join(name).display().to_string();
        let mut others = std::collections::BTreeMap::new();
        for (name, r) in configured {
            let mut argv = vec![r.path.clone()];
            argv.extend(r.runtime_args.iter().cloned());
            argv.extend(["--root".to_string(), root(name)]);
            others.insert(name.clone(), argv);
        }
        Ok(RuntimeCommand {
            shim: exe.with_file_name("berth-shim"),
            runtime: vec![
                exe.display().to_string(),
                "runtime".into(),
                "--root".into(),
                exec_root.join("runtime").display().to_string(),
            ],
            others,
            cgroup_parent: config.cgroup_parent.clone(),
        })
    }

    /// The command line of the runtime `name` (empty: the built-in one).
    pub fn argv(&self, name: &str) -> Option<&Vec<String>> {
        if name.is_empty() || name == BUILTIN_RUNTIME || name == EARLIER_BUILTIN_RUNTIME {
            return Some(&self.runtime);
        }
        self.others.get(name)
    }

    /// The runtime a container was created with.
    pub fn of(&self, c: &crate::events::projection::ContainerRecord) -> Result<&Vec<String>> {
        let name = crate::containers::render::body(c)
            .host_config
            .and_then(|h| h.runtime)
            .unwrap_or_default();
        self.argv(&name)
            .ok_or_else(|| Error::invalid(format!("unknown or invalid runtime name: {name}")))
    }
}
