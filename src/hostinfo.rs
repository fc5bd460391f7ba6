//! Facts about this host that `GET /info` and `GET /version` report. Read once at
//! start (they do not change while the daemon runs), except the per-call counters.

use std::path::Path;

/// Host facts gathered at start.
#[derive(Debug, Clone)]
pub struct HostInfo {
    pub hostname: String,
    pub kernel_version: String,
    pub architecture: String,
    pub operating_system: String,
    pub os_version: String,
    pub ncpu: i64,
    pub mem_total: i64,
    pub cgroup_version: &'static str,
    pub cgroups: CgroupSupport,
    pub ipv4_forwarding: bool,
    pub backing_filesystem: String,
    pub seccomp: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupSupport {
    pub memory: bool,
    pub swap: bool,
    pub cpu_cfs_quota: bool,
    pub cpu_cfs_period: bool,
    pub cpu_shares: bool,
    pub cpuset: bool,
    pub pids: bool,
    pub oom_kill_disable: bool,
    /// memory.kmem.limit_in_bytes and memory.kmem.tcp.limit_in_bytes (v1 only).
    pub kernel_memory: bool,
    pub kernel_memory_tcp: bool,
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

impl HostInfo {
    pub fn gather(data_root: &Path) -> HostInfo {
        let uts = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let (operating_system, os_version) = os_release();
        let cgroup_version = if cgroup_v2() { "2" } else { "1" };
        HostInfo {
            hostname: field(|u| u.nodename()),
            kernel_version: field(|u| u.release()),
            architecture: field(|u| u.machine()),
            operating_system,
            os_version,
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get() as i64)
                .unwrap_or(1),
            mem_total: nix::sys::sysinfo::sysinfo()
                .map(|s| s.ram_total() as i64)
                .unwrap_or(0),
            cgroup_version,
            cgroups: if cgroup_version == "2" {
                cgroup_v2_support()
            } else {
                cgroup_v1_support()
            },
            ipv4_forwarding: read_flag("/proc/sys/net/ipv4/ip_forward"),
            backing_filesystem: backing_filesystem(data_root),
            seccomp: std::fs::read_to_string("/proc/self/status")
                .map(|s| s.contains("\nSeccomp:"))
                .unwrap_or(false),
        }
    }
}

fn read_flag(path: &str) -> bool {
    std::fs::read_to_string(path)
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

/// PRETTY_NAME and VERSION_ID from /etc/os-release, as dockerd reports them.
fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    (
        get("PRETTY_NAME").unwrap_or_else(|| "Linux".into()),
        get("VERSION_ID").unwrap_or_default(),
    )
}

/// Whether /sys/fs/cgroup is the unified (v2) hierarchy (asked of the
/// kernel once: every create reads it).
pub fn cgroup_v2() -> bool {
    static V2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V2.get_or_init(|| fs_magic(Path::new("/sys/fs/cgroup")) == Some(CGROUP2_SUPER_MAGIC))
}

/// Whether bridged traffic goes through iptables and ip6tables
/// (net.bridge.bridge-nf-call-ip{,6}tables; read each time, as dockerd
/// does: loading br_netfilter turns them on).
pub fn bridge_nf() -> (bool, bool) {
    let on = |f: &str| {
        std::fs::read_to_string(Path::new("/proc/sys/net/bridge").join(f))
            .is_ok_and(|v| v.trim() == "1")
    };
    (
        on("bridge-nf-call-iptables"),
        on("bridge-nf-call-ip6tables"),
    )
}

/// The daemon's own cgroup, which a relative cgroup parent is under: the
/// unified path on v2, the memory controller's on v1 (where the kernel
/// shows one per controller; the memory one is where limits are read).
pub fn own_cgroup() -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    own_cgroup_in(&text, cgroup_v2())
}

fn own_cgroup_in(proc_cgroup: &str, v2: bool) -> String {
    proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let wanted = if v2 {
                controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == "memory")
            };
            wanted.then(|| path.to_string())
        })
        .next()
        .unwrap_or_else(|| "/".into())
}

fn fs_magic(path: &Path) -> Option<i64> {
    nix::sys::statfs::statfs(path)
        .ok()
        .map(|s| s.filesystem_type().0 as i64)
}

/// The data root's filesystem, named as dockerd names it in DriverStatus.
fn backing_filesystem(path: &Path) -> String {
    let name = match fs_magic(path) {
        Some(0xEF53) => "extfs",
        Some(0x5846_5342) => "xfs",
        Some(0x9123_683E) => "btrfs",
        Some(0x0102_1994) => "tmpfs",
        Some(0x794c_7630) => "overlayfs",
        Some(0x2FC1_2FC1) => "zfs",
        Some(_) => "unknown",
        None => "unknown",
    };
    name.to_string()
}

fn cgroup_v1_support() -> CgroupSupport {
    let has = |p: &str| Path::new("/sys/fs/cgroup").join(p).exists();
    CgroupSupport {
        memory: has("memory/memory.limit_in_bytes"),
        swap: has("memory/memory.memsw.limit_in_bytes"),
        cpu_cfs_quota: has("cpu/cpu.cfs_quota_us"),
        cpu_cfs_period: has("cpu/cpu.cfs_period_us"),
        cpu_shares: has("cpu/cpu.shares"),
        cpuset: has("cpuset/cpuset.cpus"),
        pids: has("pids"),
        oom_kill_disable: has("memory/memory.oom_control"),
        kernel_memory: has("memory/memory.kmem.limit_in_bytes"),
        kernel_memory_tcp: has("memory/memory.kmem.tcp.limit_in_bytes"),
    }
}

fn cgroup_v2_support() -> CgroupSupport {
    let controllers =
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    CgroupSupport {
        memory: has("memory"),
        swap: has("memory") && Path::new("/sys/fs/cgroup/memory.swap.max").exists(),
        cpu_cfs_quota: has("cpu"),
        cpu_cfs_period: has("cpu"),
        cpu_shares: has("cpu"),
        cpuset: has("cpuset"),
        pids: has("pids"),
        oom_kill_disable: false,
        kernel_memory: false,
        kernel_memory_tcp: false,
    }
}

/// Open file descriptors of this process (`NFd`).
pub fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as i64)
        .unwrap_or(0)
}

/// Threads of this process (reported as `NGoroutines`, its nearest equivalent).
pub fn threads() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Threads:")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Go's names for the architecture, as clients expect in /version.
pub fn go_arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" | "armv6l" => "arm",
        "i686" | "i386" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_is_the_memory_one_on_v1_and_the_unified_one_on_v2() {
        let text = "4:memory:/process_api/63ff\n1:cpu,cpuacct:/\n0::/user.slice\n";
        assert_eq!(own_cgroup_in(text, false), "/process_api/63ff");
        assert_eq!(own_cgroup_in(text, true), "/user.slice");
        assert_eq!(own_cgroup_in("", false), "/");
    }
}
