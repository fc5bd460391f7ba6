//! The OCI runtime spec (config.json) for a container, as dockerd writes it:
//! moby's oci/defaults.go and daemon/oci_linux.go are the reference for the
//! mounts, capabilities, devices and masked paths. Written as JSON so that any
//! OCI runtime (our shim's libcontainer, runc, crun) can be fed the same bundle.

use bollard_stubs::models::ContainerCreateBody;
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// dockerd's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Capability names by number (linux/capability.h): the shim's table.
use berth_shim::exec::CAPS as CAP_NAMES;

/// The names of the capabilities in a `CapBnd:` mask.
pub fn capabilities_in_mask(mask: u64) -> Vec<String> {
    CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// What `--privileged` grants: every capability this daemon may hand on (its
/// bounding set), not every capability that exists: asking the kernel for one
/// outside the bounding set fails the container.
pub fn host_capabilities() -> Vec<String> {
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    capabilities_in_mask(mask)
}

/// `--group-add` entries (names or numbers) as gids, names looked up in the
/// image's /etc/group.
pub fn group_add_gids(entries: &[String], group: &str) -> Result<Vec<u32>> {
    entries
        .iter()
        .map(|g| {
            if let Ok(n) = g.parse::<u32>() {
                return Ok(n);
            }
            group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.first() == Some(&g.as_str()))
                .and_then(|f| f.get(2).and_then(|n| n.parse().ok()))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "Unable to find group {g}: no matching entries in group file"
                    ))
                })
        })
        .collect()
}

/// The user a container runs as, resolved against the image's /etc/passwd and
/// /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Parses `user[:group]` (names or numbers) with the image's passwd and group
/// files (their contents; empty when the image has none).
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries = |file: &str| -> Vec<Vec<String>> {
        file.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split(':').map(String::from).collect())
            .collect()
    };
    let users = entries(passwd);
    let groups = entries(group);
    // A numeric user or group past Go's int32, as runc's user package refuses it.
    let out_of_range = |x: &str| {
        !x.is_empty()
            && x.bytes().all(|b| b.is_ascii_digit())
            && x.parse::<u64>().map_or(true, |n| n > 2_147_483_647)
    };
    if out_of_range(u) || g.is_some_and(out_of_range) {
        return Err(Error::internal(
            "uids and gids must be in range 0-2147483647",
        ));
    }
    let (uid, mut gid, home, name) = if u.is_empty() {
        (0, 0, "/root".to_string(), "root".to_string())
    } else {
        let found = users.iter().find(|e| {
            e.first().map(String::as_str) == Some(u)
                || (u.parse::<u32>().is_ok() && e.get(2).map(String::as_str) == Some(u))
        });
        match (found, u.parse::<u32>()) {
            (Some(e), _) => (
                e.get(2).and_then(|x| x.parse().ok()).unwrap_or(0),
                e.get(3).and_then(|x| x.parse().ok()).unwrap_or(0),
                e.get(5).cloned().unwrap_or_else(|| "/".into()),
                e[0].clone(),
            ),
            (None, Ok(n)) => (n, 0, "/".to_string(), String::new()),
            (None, Err(_)) => {
                return Err(Error::invalid(format!(
                    "unable to find user {u}: no matching entries in passwd file"
                )))
            }
        }
    };
    let explicit_group = g.is_some_and(|g| !g.is_empty());
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match groups
            .iter()
            .find(|e| e.first().map(String::as_str) == Some(g))
        {
            Some(e) => e.get(2).and_then(|x| x.parse().ok()).unwrap_or(0),
            None => g.parse().map_err(|_| {
                Error::invalid(format!(
                    "unable to find group {g}: no matching entries in group file"
                ))
            })?,
        };
    }
    // As runc: the primary group first, then (only when no group was named)
    // the groups that list the user as a member.
    let mut additional_gids = vec![gid];
    if !explicit_group {
        additional_gids.extend(
            groups
                .iter()
                .filter(|e| {
                    !name.is_empty() && e.get(3).is_some_and(|m| m.split(',').any(|x| x == name))
                })
                .filter_map(|e| e.get(2).and_then(|x| x.parse::<u32>().ok()))
                .filter(|g| *g != gid),
        );
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// The device cgroup rules dockerd allows by default.
fn default_device_rules() -> Value {
    let rule = |t: &str, major: Option<i64>, minor: Option<i64>, access: &str| json!({ "allow": true, "type": t, "major": major, "minor": minor, "access": access });
    json!([
        { "allow": false, "access": "rwm" },
        rule("c", None, None, "m"),
        rule("b", None, None, "m"),
        rule("c", Some(1), Some(3), "rwm"),
        rule("c", Some(1), Some(8), "rwm"),
        rule("c", Some(1), Some(7), "rwm"),
        rule("c", Some(5), Some(0), "rwm"),
        rule("c", Some(1), Some(5), "rwm"),
        rule("c", Some(1), Some(9), "rwm"),
        rule("c", Some(136), None, "rwm"),
        rule("c", Some(5), Some(2), "rwm"),
        rule("c", Some(10), Some(200), "rwm"),
    ])
}

/// `--device HOST[:CONTAINER[:PERMS]]`: each host device node as the spec's
/// `linux.devices` entry and the cgroup rule that lets it be used.
fn host_devices(mappings: &[bollard_stubs::models::DeviceMapping]) -> Result<Vec<(Value, Value)>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    for m in mappings {
        let host = m.path_on_host.clone().unwrap_or_default();
        let inside = m
            .path_in_container
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| host.clone());
        let perms = m
            .cgroup_permissions
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rwm".into());
        if perms.chars().any(|c| !"rwm".contains(c)) {
            return Err(Error::invalid(format!("invalid device mode: {perms}")));
        }
        let meta = std::fs::metadata(&host).map_err(|e| {
            // In Go's words ("no such file or directory"): the CLI exits
            // 127 on those, as with dockerd.
            Error::invalid(format!(
                "error gathering device information while adding custom device \"{host}\": {}",
                go_io_words(&e)
            ))
        })?;
        let kind = if meta.file_type().is_char_device() {
            "c"
        } else if meta.file_type().is_block_device() {
            "b"
        } else {
            return Err(Error::invalid(format!(
                "error gathering device information while adding custom device \"{host}\": not a device node"
            )));
        };
        let (major, minor) = (
            libc::major(meta.rdev()) as i64,
            libc::minor(meta.rdev()) as i64,
        );
        out.push((
            json!({ "path": inside, "type": kind, "major": major, "minor": minor,
                    "fileMode": meta.mode() & 0o777, "uid": meta.uid(), "gid": meta.gid() }),
            json!({ "allow": true, "type": kind, "major": major, "minor": minor, "access": perms }),
        ));
    }
    Ok(out)
}

/// `--privileged`: every device node under `dir` (the host's /dev), as runc's
/// HostDevices lists them for dockerd: the directories of other mounts (pts,
/// shm, fd, mqueue) and of container managers skipped, and /dev/console,
/// symlinks and fifos left out.
fn privileged_devices(dir: &std::path::Path, out: &mut Vec<Value>) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
            if !skip.iter().any(|s| name == *s) {
                privileged_devices(&e.path(), out);
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        let kind = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            continue;
        };
        out.push(json!({ "path": e.path(), "type": kind,
            "major": libc::major(meta.rdev()) as i64, "minor": libc::minor(meta.rdev()) as i64,
            "fileMode": meta.mode() & 0o777, "uid": meta.uid(), "gid": meta.gid() }));
    }
}

/// What dockerd masks and makes read-only in /proc and /sys by default.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
/// cgroup v1 hierarchies as they are mounted under /sys/fs/cgroup.
const CGROUP_V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpu,cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "net_cls,net_prio",
    "perf_event",
    "pids",
    "rdma",
    "systemd",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// (Path, Args) as dockerd derives them: the entrypoint, then the command.
pub fn path_and_args(body: &ContainerCreateBody) -> (String, Vec<String>) {
    let mut all: Vec<String> = body
        .entrypoint
        .iter()
        .flatten()
        .chain(body.cmd.iter().flatten())
        .cloned()
        .collect();
    if all.is_empty() {
        return (String::new(), Vec::new());
    }
    let path = all.remove(0);
    (path, all)
}

/// Where a started container's network lives: made by the network driver,
/// joined by the runtime.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// The namespace to join; None: the runtime makes an empty one (none) or
    /// none at all (host).
    pub netns: Option<std::path::PathBuf>,
    /// /etc/hosts, /etc/resolv.conf and /etc/hostname: where each is in the
    /// container, and the file bind-mounted there.
    pub etc_files: Vec<(String, std::path::PathBuf)>,
    /// Variables the network gives the process (legacy links'), before the
    /// container's own.
    pub env: Vec<String>,
    /// The hostname the network decides (`--network container:X`: X's).
    pub hostname: Option<String>,
}

/// The container's IPC and PID namespaces and its /dev/shm
/// (containers::namespaces decides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub ipc: Namespace,
    pub pid: Namespace,
    pub shm: Shm,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Namespace {
    /// A new one.
    #[default]
    New,
    /// The host's.
    Host,
    /// Another container's, by its /proc/<pid>/ns/<kind>.
    Join(std::path::PathBuf),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Shm {
    /// A tmpfs of ShmSize, the container's own.
    #[default]
    Tmpfs,
    /// A tmpfs of ShmSize mounted at this host path first (bundle::prepare),
    /// then bound in, so that other containers can bind it too.
    Shareable(std::path::PathBuf),
    /// This host directory, bound in (the host's, or a donor's).
    Bind(std::path::PathBuf),
    /// No /dev/shm at all (`--ipc none`).
    Absent,
}

/// What a mount is made of (the runtime's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Tmpfs,
}

/// A mount the container asked for (`-v`, `--mount`), checked above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountKind,
    pub source: std::path::PathBuf,
    pub destination: String,
    /// The mount's own options ("rbind", "rprivate", "ro", "size=..."); a
    /// tmpfs also gets the flags every container tmpfs has.
    pub options: Vec<String>,
    /// A missing bind source is made as a directory first (`-v`, as dockerd).
    pub create_source: bool,
}

pub struct SpecInput<'a> {
    pub id: &'a str,
    pub body: &'a ContainerCreateBody,
    pub rootfs: &'a std::path::Path,
    pub user: ResolvedUser,
    /// cgroup path relative to the hierarchy roots ("/berth/<id>").
    pub cgroup_path: String,
    /// The static binary that serves as docker-init (`--init`).
    pub init_binary: &'a std::path::Path,
    /// The network namespace made for it, and its /etc files.
    pub sandbox: &'a Sandbox,
    /// userns-remap: the container's user namespace (bound at the path,
    /// made with these mappings).
    pub remap: Option<(&'a crate::drivers::userns::Remap, std::path::PathBuf)>,
    /// Bind and tmpfs mounts, parents first.
    pub mounts: &'a [Mount],
    pub namespaces: &'a Namespaces,
}

/// A --cap-add/--cap-drop entry as the kernel names it: any case, CAP_
/// optional ("chown" is "CAP_CHOWN"; "all" is "CAP_ALL").
pub fn capability_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// Whether the kernel's headers know the capability `name` (CAP_...).
pub fn known_capability(name: &str) -> bool {
    CAP_NAMES.contains(&name)
}

/// The container's capabilities, as dockerd's TweakCapabilities makes them:
/// --privileged takes all (adds and drops aside); an added ALL takes all but
/// the dropped; a dropped ALL leaves only the added; otherwise the defaults
/// without the dropped, with the added.
fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Vec<String> {
    let add: Vec<String> = add.iter().map(|c| capability_name(c)).collect();
    let drop: Vec<String> = drop.iter().map(|c| capability_name(c)).collect();
    let all = "CAP_ALL".to_string();
    let mut caps: Vec<String> = if privileged {
        return host_capabilities();
    } else if add.contains(&all) {
        host_capabilities()
            .into_iter()
            .filter(|c| !drop.contains(c))
            .collect()
    } else if drop.contains(&all) {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if !add.contains(&all) {
        for c in add {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
    }
    caps
}

/// Where `--init` puts the init, as dockerd does.
const INIT_PATH: &str = "/sbin/docker-init";

pub fn build(input: &SpecInput<'_>) -> Result<Value> {
    let b = input.body;
    let h = b.host_config.clone().unwrap_or_default();
    let (path, args) = path_and_args(b);
    if path.is_empty() {
        return Err(Error::invalid("No command specified"));
    }
    let mut argv = vec![path];
    argv.extend(args);
    let init = h.init.unwrap_or(false);
    if init {
        argv.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let tty = b.tty.unwrap_or(false);
    let hostname = input
        .sandbox
        .hostname
        .clone()
        .or_else(|| b.hostname.clone())
        .unwrap_or_default();
    // dockerd's order: PATH, HOSTNAME, TERM, the links' variables, then the
    // container's own, each replacing a default of its name where it stands.
    // `-e NAME` of a variable the client's host lacks comes as "NAME": no
    // variable at all, as with runc.
    let key = |e: &str| e.split('=').next().unwrap_or_default().to_string();
    let has = |env: &[String], k: &str| env.iter().any(|e| key(e) == k);
    let mut env: Vec<String> = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".into());
    }
    env.extend(input.sandbox.env.iter().cloned());
    for e in b.env.iter().flatten().filter(|e| e.contains('=')) {
        match env.iter().position(|d| key(d) == key(e)) {
            Some(i) => env[i] = e.clone(),
            None => env.push(e.clone()),
        }
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", input.user.home));
    }
    let privileged = h.privileged.unwrap_or(false);
    let caps = capabilities(
        privileged,
        h.cap_add.as_deref().unwrap_or_default(),
        h.cap_drop.as_deref().unwrap_or_default(),
    );
    let mut namespaces = vec![json!({ "type": "mount" })];
    let mode = |m: &Option<String>| m.clone().unwrap_or_default();
    match (&input.sandbox.netns, mode(&h.network_mode).as_str()) {
        (Some(path), _) => namespaces.push(json!({ "type": "network", "path": path })),
        (None, "host") => {}
        (None, _) => namespaces.push(json!({ "type": "network" })),
    }
    if mode(&h.uts_mode) != "host" {
        namespaces.push(json!({ "type": "uts" }));
    }
    if h.cgroupns_mode == Some(bollard_stubs::models::HostConfigCgroupnsModeEnum::PRIVATE) {
        namespaces.push(json!({ "type": "cgroup" }));
    }
    for (kind, ns) in [
        ("pid", &input.namespaces.pid),
        ("ipc", &input.namespaces.ipc),
    ] {
        match ns {
            Namespace::New => namespaces.push(json!({ "type": kind })),
            Namespace::Host => {}
            Namespace::Join(path) => namespaces.push(json!({ "type": kind, "path": path })),
        }
    }
    let shm = h.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20);
    let mut mounts = vec![
        json!({ "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] }),
        json!({ "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }),
        json!({ "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] }),
        json!({ "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] }),
        // The container's own cgroups at /sys/fs/cgroup, read-only as dockerd
        // mounts them (JVMs, Go and Node size themselves from these files);
        // the runtime binds each v1 controller's sub-cgroup there.
        json!({ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"] }),
        json!({ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] }),
    ];
    match &input.namespaces.shm {
        Shm::Tmpfs => mounts.push(
            json!({ "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")] }),
        ),
        Shm::Shareable(path) | Shm::Bind(path) => mounts.push(
            json!({ "destination": "/dev/shm", "type": "bind", "source": path, "options": ["rbind", "rprivate"] }),
        ),
        Shm::Absent => {}
    }
    // With --read-only, /etc/hosts, hostname and resolv.conf are read-only
    // too, as dockerd binds them.
    let etc_options: &[&str] = match h.readonly_rootfs.unwrap_or(false) {
        true => &["rbind", "rprivate", "ro"],
        false => &["rbind", "rprivate"],
    };
    for (dest, source) in &input.sandbox.etc_files {
        mounts.push(json!({ "destination": dest, "type": "bind", "source": source, "options": etc_options }));
    }
    if init {
        mounts.push(json!({ "destination": INIT_PATH, "type": "bind", "source": input.init_binary, "options": ["bind", "ro", "nosuid", "nodev"] }));
    }
    // A tmpfs, by --tmpfs or --mount, is nosuid, nodev and noexec first, as
    // dockerd makes it; its own options (size, mode, ro) come after.
    let tmpfs = |dest: &str, own: &mut dyn Iterator<Item = &str>| {
        let options: Vec<&str> = ["nosuid", "nodev", "noexec"]
            .into_iter()
            .chain(own)
            .collect();
        json!({ "destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options })
    };
    for (dest, opts) in h.tmpfs.iter().flatten() {
        check_tmpfs_options(opts)?;
        mounts.push(tmpfs(dest, &mut opts.split(',').filter(|s| !s.is_empty())));
    }
    for m in input.mounts {
        mounts.push(match m.kind {
            MountKind::Bind => {
                json!({ "destination": m.destination, "type": "bind", "source": m.source, "options": m.options })
            }
            MountKind::Tmpfs => tmpfs(&m.destination, &mut m.options.iter().map(String::as_str)),
        });
    }
    let mut resources = json!({ "devices": if privileged { json!([{ "allow": true, "access": "rwm" }]) } else { default_device_rules() } });
    let devices = host_devices(h.devices.as_deref().unwrap_or_default())?;
    if !privileged {
        if let Some(rules) = resources["devices"].as_array_mut() {
            rules.extend(devices.iter().map(|(_, rule)| rule.clone()));
        }
    }
    let memory = h.memory.unwrap_or(0);
    let mut m = json!({});
    if let Some(sw) = h.memory_swappiness.filter(|s| (0..=100).contains(s)) {
        m["swappiness"] = json!(sw);
    }
    if h.oom_kill_disable == Some(true) {
        m["disableOOMKiller"] = json!(true);
    }
    if memory > 0
        || h.memory_reservation.unwrap_or(0) > 0
        || m.as_object().is_some_and(|o| !o.is_empty())
    {
        if memory > 0 {
            m["limit"] = json!(memory);
            // dockerd: swap defaults to twice the memory (memory + as much swap).
            let swap = match h.memory_swap.unwrap_or(0) {
                0 => memory * 2,
                s => s,
            };
            m["swap"] = json!(swap);
        }
        if let Some(r) = h.memory_reservation.filter(|r| *r > 0) {
            m["reservation"] = json!(r);
        }
        resources["memory"] = m;
    }
    let mut cpu = json!({});
    if let Some(s) = h.cpu_shares.filter(|s| *s > 0) {
        cpu["shares"] = json!(s);
    }
    if let Some(n) = h.nano_cpus.filter(|n| *n > 0) {
        cpu["period"] = json!(100_000);
        cpu["quota"] = json!(n * 100_000 / 1_000_000_000);
    }
    if let Some(p) = h.cpu_period.filter(|p| *p > 0) {
        cpu["period"] = json!(p);
    }
    if let Some(q) = h.cpu_quota.filter(|q| *q > 0) {
        cpu["quota"] = json!(q);
    }
    if let Some(c) = h.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
        cpu["cpus"] = json!(c);
    }
    if let Some(m) = h.cpuset_mems.clone().filter(|m| !m.is_empty()) {
        cpu["mems"] = json!(m);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        resources["cpu"] = cpu;
    }
    if let Some(p) = h.pids_limit.filter(|p| *p != 0) {
        resources["pids"] = json!({ "limit": p });
    }
    if let Some(io) = block_io_throttles(&h)? {
        resources["blockIO"] = io;
    }
    let rlimits: Vec<Value> = h
        .ulimits
        .iter()
        .flatten()
        .map(|u| {
            // -1 is unlimited (RLIM_INFINITY), as Go's uint64 conversion makes it.
            let limit = |v: Option<i64>| match v.unwrap_or(0) {
                n if n < 0 => u64::MAX,
                n => n as u64,
            };
            json!({
                "type": format!("RLIMIT_{}", u.name.clone().unwrap_or_default().to_ascii_uppercase()),
                "hard": limit(u.hard),
                "soft": limit(u.soft),
            })
        })
        .collect();
    let mut linux = json!({
        "resources": resources,
        "cgroupsPath": input.cgroup_path,
        "namespaces": namespaces,
    });
    if let Some((remap, path)) = &input.remap {
        if let Some(ns) = linux["namespaces"].as_array_mut() {
            ns.push(json!({ "type": "user", "path": path }));
        }
        let (uids, gids) = remap.spec_mappings();
        linux["uidMappings"] = uids;
        linux["gidMappings"] = gids;
    }
    if !privileged {
        linux["maskedPaths"] = json!(h
            .masked_paths
            .clone()
            .unwrap_or_else(|| MASKED_PATHS.iter().map(|s| s.to_string()).collect()));
        let mut readonly: Vec<String> = h
            .readonly_paths
            .clone()
            .unwrap_or_else(|| READONLY_PATHS.iter().map(|s| s.to_string()).collect());
        // The runtime binds each v1 controller read-write whatever the
        // cgroup mount says; runc's are read-only, and a container must not
        // raise its own limits. (Those not mounted are skipped.)
        readonly.extend(
            CGROUP_V1_CONTROLLERS
                .iter()
                .map(|c| format!("/sys/fs/cgroup/{c}")),
        );
        linux["readonlyPaths"] = json!(readonly);
    }
    // dockerd's defaults in a network namespace of the container's own:
    // any user may bind low ports and open ICMP sockets.
    let mut sysctls = h.sysctls.clone().unwrap_or_default();
    let net_mode = mode(&h.network_mode);
    if net_mode != "host" && !net_mode.starts_with("container:") {
        sysctls
            .entry("net.ipv4.ip_unprivileged_port_start".into())
            .or_insert_with(|| "0".into());
        // A remapped container's namespace belongs to its user namespace,
        // where host gids up to 2^31 are not mapped (the kernel refuses them).
        if input.remap.is_none() {
            sysctls
                .entry("net.ipv4.ping_group_range".into())
                .or_insert_with(|| "0 2147483647".into());
        }
    }
    if !sysctls.is_empty() {
        linux["sysctl"] = json!(sysctls);
    }
    if privileged {
        // The host's devices, and no --device (dockerd ignores them then).
        let mut nodes = Vec::new();
        privileged_devices(std::path::Path::new("/dev"), &mut nodes);
        linux["devices"] = json!(nodes);
    } else if !devices.is_empty() {
        linux["devices"] = json!(devices.into_iter().map(|(d, _)| d).collect::<Vec<_>>());
    }
    let security_opt = h.security_opt.clone().unwrap_or_default();
    if let Some(filter) = super::seccomp::for_container(&security_opt, privileged, &caps)? {
        linux["seccomp"] = filter;
    }
    let no_new_privs = h.security_opt.iter().flatten().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
    });
    let cwd = b
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    // --group-add is resolved with the user (bundle::write), names included.
    let additional = input.user.additional_gids.clone();
    let mut process = json!({
        "terminal": tty,
        "user": { "uid": input.user.uid, "gid": input.user.gid, "additionalGids": additional },
        "args": argv,
        "env": env,
        "cwd": cwd,
        "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
    });
    // Only when set: libcontainer loads the seccomp filter before dropping
    // capabilities when the field is absent (needed without no_new_privs),
    // and after, too late, when it is present even as false.
    if no_new_privs {
        process["noNewPrivileges"] = json!(true);
    }
    if !rlimits.is_empty() {
        process["rlimits"] = json!(rlimits);
    }
    if let Some(adj) = h.oom_score_adj.filter(|a| *a != 0) {
        process["oomScoreAdj"] = json!(adj);
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": { "path": input.rootfs, "readonly": h.readonly_rootfs.unwrap_or(false) },
        "hostname": hostname,
        "domainname": b.domainname.clone().unwrap_or_default(),
        "mounts": mounts,
        "linux": linux,
        "annotations": { "berth.container.id": input.id },
    });
    // In the host's UTS namespace the name is the host's (runc refuses to
    // set one there); the container's own still fills HOSTNAME and
    // /etc/hostname, as dockerd leaves them.
    if mode(&h.uts_mode) == "host" {
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
            o.remove("domainname");
        }
    }
    Ok(spec)
}

/// An I/O error as Go words it ("no such file or directory"): Rust's text
/// without its "(os error N)", in lower case.
pub fn go_io_words(e: &std::io::Error) -> String {
    let why = e.to_string();
    why.split(" (os error")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// `--device-{read,write}-{bps,iops}`: the blkio throttles of the devices
/// named, by their major:minor (a path that is not there: dockerd's words).
fn block_io_throttles(h: &bollard_stubs::models::HostConfig) -> Result<Option<Value>> {
    use std::os::unix::fs::MetadataExt;
    let lists = [
        ("throttleReadBpsDevice", &h.blkio_device_read_bps),
        ("throttleWriteBpsDevice", &h.blkio_device_write_bps),
        ("throttleReadIOPSDevice", &h.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", &h.blkio_device_write_iops),
    ];
    let mut io = json!({});
    for (key, list) in lists {
        let mut entries = Vec::new();
        for t in list.iter().flatten() {
            let path = t.path.clone().unwrap_or_default();
            let meta = std::fs::metadata(&path)
                .map_err(|e| Error::invalid(format!("stat {path}: {}", go_io_words(&e))))?;
            let rdev = meta.rdev();
            entries.push(json!({
                "major": libc::major(rdev) as i64,
                "minor": libc::minor(rdev) as i64,
                "rate": t.rate.unwrap_or(0).max(0),
            }));
        }
        if !entries.is_empty() {
            io[key] = json!(entries);
        }
    }
    Ok(io.as_object().is_some_and(|o| !o.is_empty()).then_some(io))
}

/// `--tmpfs /x:OPTIONS` as dockerd checks them at start: mount flags, or
/// `key=value` for the keys tmpfs takes; else Go's words with the option
/// split at its `=` and quoted (`invalid tmpfs option ["foo" "bar"]`).
fn check_tmpfs_options(options: &str) -> Result<()> {
    const FLAGS: &[&str] = &[
        "defaults",
        "ro",
        "rw",
        "suid",
        "nosuid",
        "dev",
        "nodev",
        "exec",
        "noexec",
        "sync",
        "async",
        "dirsync",
        "remount",
        "mand",
        "nomand",
        "atime",
        "noatime",
        "diratime",
        "nodiratime",
        "bind",
        "rbind",
        "unbindable",
        "runbindable",
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
    ];
    const KEYS: &[&str] = &[
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "mpol",
    ];
    for o in options.split(',').filter(|o| !o.is_empty()) {
        if FLAGS.contains(&o) {
            continue;
        }
        let parts: Vec<&str> = o.splitn(2, '=').collect();
        if !KEYS.contains(&parts[0]) {
            let quoted: Vec<String> = parts.iter().map(|p| format!("{p:?}")).collect();
            return Err(Error::internal(format!(
                "invalid tmpfs option [{}]",
                quoted.join(" ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\npostgres:x:70:70::/var/lib/postgresql:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\npostgres:x:70:\nwheel:x:10:postgres\n";

    #[test]
    fn capability_masks_name_their_bits() {
        assert_eq!(capabilities_in_mask(0b1), ["CAP_CHOWN"]);
        let all = capabilities_in_mask(u64::MAX);
        assert_eq!(all.len(), CAP_NAMES.len());
        // This machine's bounding set lacks CAP_SYS_RESOURCE (bit 24).
        let without = capabilities_in_mask(u64::MAX & !(1 << 24));
        assert!(!without.contains(&"CAP_SYS_RESOURCE".to_string()));
    }

    #[test]
    fn users_by_name_and_number() {
        let r = resolve_user("", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let r = resolve_user("postgres", PASSWD, GROUP).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids.clone()),
            (70, 70, vec![70, 10])
        );
        // A named group: that group alone, as runc (dockerd shows "Groups: 0").
        let r = resolve_user("nobody:root", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids), (65534, 0, vec![0]));
        let r = resolve_user("1234:5678", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid), (1234, 5678));
        assert!(resolve_user("nosuch", PASSWD, GROUP).is_err());
        assert!(resolve_user("root:nogrp", PASSWD, GROUP).is_err());
    }

    #[test]
    fn spec_has_dockerds_defaults_and_the_requested_limits() {
        let body = ContainerCreateBody {
            cmd: Some(vec!["echo".into(), "hi".into()]),
            hostname: Some("abc".into()),
            host_config: Some(bollard_stubs::models::HostConfig {
                memory: Some(32 << 20),
                pids_limit: Some(10),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: Some(vec!["chown".into()]),
                network_mode: Some("host".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let user = resolve_user("", PASSWD, GROUP).unwrap();
        let s = build(&SpecInput {
            id: "x",
            body: &body,
            rootfs: std::path::Path::new("/r"),
            user,
            cgroup_path: "/berth/x".into(),
            init_binary: std::path::Path::new("/bin/init"),
            sandbox: &Default::default(),
            remap: None,
            mounts: &[],
            namespaces: &Default::default(),
        })
        .unwrap();
        assert_eq!(s["process"]["args"], json!(["echo", "hi"]));
        assert_eq!(
            s["process"]["capabilities"]["bounding"],
            json!(["CAP_CHOWN"])
        );
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], json!(32 << 20));
        assert_eq!(s["linux"]["resources"]["pids"]["limit"], json!(10));
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(!ns.contains(&"network") && ns.contains(&"pid"));
        assert!(s["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&json!("HOSTNAME=abc")));
        assert_eq!(s["linux"]["maskedPaths"][0], "/proc/asound");
    }
}
