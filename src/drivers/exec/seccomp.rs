//! The seccomp filter of a container, as dockerd chooses it: its default
//! profile (an allow list: everything else fails with EPERM; the syscalls a
//! capability guards are allowed only with that capability), none for
//! `--privileged` or `--security-opt seccomp=unconfined`, or the profile the
//! client sent (`seccomp=<JSON>`: the docker CLI reads the file and sends its
//! contents). Profiles are written in dockerd's format and turned into the
//! OCI runtime spec's `linux.seccomp` here.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// Syscalls the default profile allows to every container. The names are
/// the kernel's; ones this architecture lacks are skipped by the runtime.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Syscalls allowed only to a container that holds the capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
];

/// clone's flags that make new namespaces: without CAP_SYS_ADMIN, clone is
/// allowed only with none of them.
const CLONE_NEW_FLAGS: u64 = 0x7E02_0000;

/// The personalities a container may ask for (Linux, with addr-no-randomize,
/// ...), as dockerd's profile lists them.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The profile in dockerd's format for a container holding `caps`.
pub fn default_profile(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut syscalls = vec![json!({ "names": ALLOWED, "action": "SCMP_ACT_ALLOW" })];
    syscalls.push(json!({
        "names": ["personality"],
        "action": "SCMP_ACT_ALLOW",
        "args": PERSONALITIES.iter().map(|p| json!({ "index": 0, "value": p, "op": "SCMP_CMP_EQ" })).collect::<Vec<_>>(),
    }));
    if std::env::consts::ARCH == "x86_64" {
        syscalls.push(json!({ "names": ["arch_prctl", "modify_ldt"], "action": "SCMP_ACT_ALLOW" }));
    }
    for (cap, names) in BY_CAPABILITY {
        if has(cap) {
            syscalls.push(json!({ "names": names, "action": "SCMP_ACT_ALLOW" }));
        }
    }
    if !has("CAP_SYS_ADMIN") {
        syscalls.push(json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{ "index": clone_flags_index(), "value": CLONE_NEW_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ" }],
        }));
        // clone3's flags are behind a pointer: refuse it with ENOSYS so
        // libc falls back to clone, which the rule above can check.
        syscalls.push(
            json!({ "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS }),
        );
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "syscalls": syscalls,
    })
}

/// s390 passes clone's flags second; everyone else first.
fn clone_flags_index() -> u32 {
    if std::env::consts::ARCH == "s390x" {
        1
    } else {
        0
    }
}

/// The architectures a filter covers on this host: its own and the
/// compatibility modes it runs (as dockerd's archMap).
fn architectures() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "s390x" => vec!["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        "powerpc64" => vec!["SCMP_ARCH_PPC64LE"],
        _ => vec![],
    }
}

/// What `--security-opt seccomp=...` and `--privileged` choose.
pub enum Choice {
    Unconfined,
    Default,
    /// A profile in dockerd's format (JSON).
    Custom(String),
}

pub fn choose(security_opt: &[String], privileged: bool) -> Choice {
    let given = security_opt.iter().rev().find_map(|o| {
        o.strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
    });
    match given {
        _ if privileged => Choice::Unconfined,
        Some("unconfined") => Choice::Unconfined,
        Some(p) if !p.trim().is_empty() && p.trim() != "builtin" => Choice::Custom(p.to_string()),
        _ => Choice::Default,
    }
}

/// A rule of dockerd's format, with the `includes`/`excludes` it may carry.
#[derive(Deserialize)]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: String,
    action: String,
    #[serde(default, rename = "errnoRet")]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Value>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Deserialize, Default)]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

#[derive(Deserialize)]
struct Profile {
    #[serde(rename = "defaultAction")]
    default_action: String,
    #[serde(default, rename = "defaultErrnoRet")]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default, rename = "archMap")]
    arch_map: Vec<Value>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

/// The spec's `linux.seccomp` for a profile in dockerd's format, for a
/// container holding `caps` (rules whose includes/excludes do not fit it
/// are left out, as dockerd leaves them).
pub fn to_spec(profile: &str, caps: &[String]) -> Result<Value> {
    let p: Profile = serde_json::from_str(profile)
        .map_err(|e| Error::invalid(format!("Decoding seccomp profile failed: {e}")))?;
    let arch = go_arch_name();
    let mut archs: Vec<String> = p.architectures.clone();
    for m in &p.arch_map {
        if m.get("architecture").and_then(Value::as_str)
            == Some(architectures().first().copied().unwrap_or(""))
        {
            archs.push(m["architecture"].as_str().unwrap_or_default().to_string());
            for sub in m
                .get("subArchitectures")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                archs.extend(sub.as_str().map(String::from));
            }
        }
    }
    if archs.is_empty() {
        archs = architectures().into_iter().map(String::from).collect();
    }
    let fits = |r: &Rule| {
        let inc = &r.includes;
        let exc = &r.excludes;
        inc.caps.iter().all(|c| caps.contains(c))
            && (inc.arches.is_empty() || inc.arches.iter().any(|a| a == arch))
            && !(exc.caps.iter().any(|c| caps.contains(c)))
            && !(exc.arches.iter().any(|a| a == arch))
    };
    let mut rules = Vec::new();
    for r in p.syscalls.iter().filter(|r| fits(r)) {
        let mut names = r.names.clone();
        if !r.name.is_empty() {
            names.push(r.name.clone());
        }
        let mut rule = json!({ "names": names, "action": r.action });
        if let Some(e) = r.errno_ret {
            rule["errnoRet"] = json!(e);
        }
        if let Some(a) = &r.args {
            rule["args"] = json!(a);
        }
        rules.push(rule);
    }
    let mut out = json!({
        "defaultAction": p.default_action,
        "architectures": archs,
        "syscalls": rules,
    });
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    Ok(out)
}

/// The architecture as dockerd's profiles name it in `arches`.
fn go_arch_name() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The spec's `linux.seccomp` for this container, or none.
pub fn for_container(
    security_opt: &[String],
    privileged: bool,
    caps: &[String],
) -> Result<Option<Value>> {
    match choose(security_opt, privileged) {
        Choice::Unconfined => Ok(None),
        Choice::Default => to_spec(&default_profile(caps).to_string(), caps).map(Some),
        Choice::Custom(p) => to_spec(&p, caps).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    fn allowed(spec: &Value) -> Vec<String> {
        spec["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
            .flat_map(|r| {
                r["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
            })
            .collect()
    }

    #[test]
    fn the_default_refuses_namespace_and_mount_syscalls_without_cap_sys_admin() {
        let spec = for_container(&[], false, &caps(&["CAP_CHOWN"]))
            .unwrap()
            .unwrap();
        assert_eq!(spec["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(spec["defaultErrnoRet"], libc::EPERM);
        let a = allowed(&spec);
        for s in [
            "read", "execve", "openat", "clone3", "mount", "unshare", "setns", "reboot",
        ] {
            let want = matches!(s, "read" | "execve" | "openat");
            assert_eq!(a.contains(&s.to_string()), want, "{s}");
        }
        // clone only without CLONE_NEW* flags.
        let clone = spec["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"][0] == "clone")
            .unwrap();
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["value"], CLONE_NEW_FLAGS);
    }

    #[test]
    fn a_capability_opens_its_syscalls() {
        let spec = for_container(&[], false, &caps(&["CAP_SYS_ADMIN", "CAP_SYS_TIME"]))
            .unwrap()
            .unwrap();
        let a = allowed(&spec);
        for s in ["mount", "unshare", "clone", "clone3", "settimeofday"] {
            assert!(a.contains(&s.to_string()), "{s}");
        }
    }

    #[test]
    fn unconfined_privileged_and_custom_profiles() {
        assert!(for_container(&caps(&["seccomp=unconfined"]), false, &[])
            .unwrap()
            .is_none());
        assert!(for_container(&[], true, &[]).unwrap().is_none());
        let custom = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_ERRNO"},
            {"names":["chmod"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#;
        let spec = for_container(&[format!("seccomp={custom}")], false, &[])
            .unwrap()
            .unwrap();
        assert_eq!(spec["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(spec["syscalls"].as_array().unwrap().len(), 1);
        assert!(for_container(&caps(&["seccomp={not json"]), false, &[]).is_err());
    }
}
