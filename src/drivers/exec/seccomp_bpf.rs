//! A container's seccomp filter as a compiled BPF program. libseccomp takes
//! tens of milliseconds to build dockerd's profile (350 syscalls on three
//! architectures); the program it builds is the same for every container of
//! that profile and every exec, so the daemon compiles it once
//! (`bundle::compile_seccomp`), and afterwards the shim (for execs) and the
//! runtime (for a root container's command) only hand the kernel the
//! program (one seccomp(2) call).

use std::collections::HashSet;
use std::path::Path;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

fn arch(a: Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        _ => return None,
    })
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, String> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err("SCMP_ACT_NOTIFY is not supported for exec".into())
        }
    })
}

fn op(o: LinuxSeccompOperator, two: Option<u64>) -> ScmpCompareOp {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(two.unwrap_or(0)),
    }
}

/// The filter as libcontainer would build it (same rules, unknown names
/// skipped), exported as BPF into `out`.
pub fn compile(s: &LinuxSeccomp, out: &std::fs::File) -> Result<(), String> {
    fn e(what: &'static str) -> impl Fn(libseccomp::error::SeccompError) -> String {
        move |err| format!("seccomp {what}: {err}")
    }
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(e("filter"))?;
    for a in s.architectures().iter().flatten().filter_map(|a| arch(*a)) {
        ctx.add_arch(a).map_err(e("arch"))?;
    }
    ctx.set_ctl_nnp(false).map_err(e("nnp"))?;
    for rule in s.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue; // this kernel or libseccomp does not know it
            };
            match rule.args() {
                None => {
                    ctx.add_rule(act, sc).map_err(e("rule"))?;
                }
                Some(args) => {
                    let cmps: Vec<ScmpArgCompare> = args
                        .iter()
                        .map(|a| {
                            ScmpArgCompare::new(
                                a.index() as u32,
                                op(a.op(), a.value_two()),
                                a.value(),
                            )
                        })
                        .collect();
                    let mut seen = HashSet::new();
                    if args.iter().all(|a| seen.insert(a.index())) {
                        ctx.add_rule_conditional(act, sc, &cmps)
                            .map_err(e("rule"))?;
                    } else {
                        // One comparison per argument in a rule: split them (as runc).
                        for c in &cmps {
                            ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))
                                .map_err(e("rule"))?;
                        }
                    }
                }
            }
        }
    }
    ctx.export_bpf(out).map_err(e("export"))
}

/// Hands the kernel a compiled program (the shim's installer: one copy).
pub use berth_shim::exec::install_seccomp as install;

/// The compiled program for `s`, from `cache` or compiled into it.
pub fn cached(s: &LinuxSeccomp, cache: &Path) -> Result<Vec<u8>, String> {
    if let Ok(b) = std::fs::read(cache) {
        if !b.is_empty() {
            return Ok(b);
        }
    }
    // A temporary file of this call's own: two containers of one profile
    // started at once (Compose starts a project's services together) both
    // compile it, and with one shared name the second's create truncated
    // the first's file and its rename found none ("<hash>.bpf: No such file").
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cache.with_extension(format!("{}.{seq}.tmp", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    compile(s, &file)?;
    drop(file);
    std::fs::rename(&tmp, cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    std::fs::read(cache).map_err(|e| format!("{}: {e}", cache.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_compiled_at_once_into_one_cache_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("p.bpf");
        let profile: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"}],
        }))
        .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (p, c) = (profile.clone(), cache.clone());
                std::thread::spawn(move || cached(&p, &c))
            })
            .collect();
        let programs: Vec<Vec<u8>> = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        assert!(!programs[0].is_empty());
        assert!(programs.iter().all(|p| p == &programs[0]));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary files left: {left:?}");
    }
}
