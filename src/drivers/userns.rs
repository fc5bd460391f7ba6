//! `userns-remap`: containers in a user namespace whose root is an
//! unprivileged range of the host's ids, as dockerd's.
//!
//! The ranges are the remap user's in /etc/subuid and /etc/subgid, mapped in
//! order from container id 0 (moby's `LoadIdentityMapping`); "default" is the
//! `dockremap` user, made with its ranges when missing, as dockerd makes it.
//!
//! Where dockerd keeps a second copy of every image, chowned into the range
//! (`<data-root>/<uid>.<gid>/`), berth mounts the same image layers
//! *idmapped* (mount_setattr MOUNT_ATTR_IDMAP) under the container's overlay:
//! a file that is root's on disk is the remapped root's in the mount. That
//! takes a user namespace with the mapping, held here for the daemon's life.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Context, Error, Result};

/// One range of a mapping: container ids `inside..inside+size` are host ids
/// `host..host+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub host: u32,
    pub size: u32,
}

/// The daemon's remapping: who, the ranges, and a user namespace that maps them.
#[derive(Debug)]
pub struct Remap {
    /// "user:group", as dockerd shows it in its log.
    pub name: String,
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
    /// A user namespace with these maps (for idmapped mounts).
    pub userns: OwnedFd,
}

/// How file owners cross between a remapped container and the host (docker
/// cp, export, commit): what the container calls uid 0 is 100000 on disk.
#[derive(Debug, Clone)]
pub struct IdShift {
    uids: Vec<IdRange>,
    gids: Vec<IdRange>,
}

impl IdShift {
    /// Host ids as the container's (65534, the overflow id, when unmapped).
    pub fn to_container(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            to_container(&self.uids, uid).unwrap_or(65534),
            to_container(&self.gids, gid).unwrap_or(65534),
        )
    }

    /// The container's ids as the host's.
    pub fn to_host(&self, uid: u32, gid: u32) -> (u32, u32) {
        (to_host(&self.uids, uid), to_host(&self.gids, gid))
    }
}

impl Remap {
    /// The shift of ids for this mapping.
    pub fn shift(&self) -> IdShift {
        IdShift {
            uids: self.uids.clone(),
            gids: self.gids.clone(),
        }
    }

    /// The host uid and gid of the container's root.
    pub fn root(&self) -> (u32, u32) {
        (to_host(&self.uids, 0), to_host(&self.gids, 0))
    }

    /// The OCI `linux.uidMappings`/`gidMappings` values.
    pub fn spec_mappings(&self) -> (serde_json::Value, serde_json::Value) {
        let json = |r: &[IdRange]| {
            serde_json::Value::Array(
                r.iter()
                    .map(|r| {
                        serde_json::json!({ "containerID": r.inside, "hostID": r.host, "size": r.size })
                    })
                    .collect(),
            )
        };
        (json(&self.uids), json(&self.gids))
    }
}

/// A container id as the host's (the overflow id 65534 when unmapped).
pub fn to_host(ranges: &[IdRange], id: u32) -> u32 {
    ranges
        .iter()
        .find(|r| id >= r.inside && id - r.inside < r.size)
        .map_or(65534, |r| r.host + (id - r.inside))
}

/// A host id as the container's (None when outside every range).
pub fn to_container(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.host && id - r.host < r.size)
        .map(|r| r.inside + (id - r.host))
}

/// Whether a container gets the daemon's remapping (when there is one):
/// unless it asks for the host's user namespace (`--userns=host`).
pub fn private(host_config: Option<&bollard_stubs::models::HostConfig>) -> bool {
    host_config
        .and_then(|h| h.userns_mode.as_deref())
        .is_none_or(|m| m != "host")
}

/// dockerd's checks of a container against user namespaces, in its words.
pub fn validate(h: &bollard_stubs::models::HostConfig, remapping: bool) -> Result<()> {
    let mode = h.userns_mode.as_deref().unwrap_or_default();
    if !mode.is_empty() && mode != "host" {
        return Err(Error::invalid(format!("invalid UsernsMode: {mode}")));
    }
    if !remapping || mode == "host" {
        return Ok(());
    }
    if h.privileged.unwrap_or(false) {
        return Err(Error::invalid(
            "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
        ));
    }
    if h.network_mode.as_deref() == Some("host") {
        return Err(Error::invalid(
            "cannot share the host's network namespace when user namespaces are enabled",
        ));
    }
    if h.pid_mode.as_deref() == Some("host") {
        return Err(Error::invalid(
            "cannot share the host PID namespace when user namespaces are enabled",
        ));
    }
    Ok(())
}

const DEFAULT_SPECIFIER: &str = "default";
const DEFAULT_USER: &str = "dockremap";

/// Resolves `userns-remap` (user, uid, user:group, uid:gid, or "default") to
/// ranges and the namespace that maps them.
pub fn setup(spec: &str) -> Result<Remap> {
    let read = || -> Result<(String, String)> {
        Ok((
            std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?,
            std::fs::read_to_string("/etc/group").context("reading /etc/group")?,
        ))
    };
    let (mut passwd, mut group) = read()?;
    let (user, grp) = match resolve_names(spec, &passwd, &group) {
        Ok(names) => names,
        Err(_) if spec == DEFAULT_SPECIFIER => {
            add_default_user()?;
            (passwd, group) = read()?;
            (DEFAULT_USER.to_string(), DEFAULT_USER.to_string())
        }
        Err(e) => return Err(e),
    };
    let uid = entry_id(&passwd, &user).unwrap_or_default();
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    let subgid = std::fs::read_to_string("/etc/subgid").unwrap_or_default();
    let uids = ranges(&subuid, &user, uid);
    if uids.is_empty() {
        return Err(Error::invalid(format!(
            "no subuid ranges found for user {user:?}"
        )));
    }
    let gid = entry_id(&group, &grp).unwrap_or_default();
    let gids = ranges(&subgid, &grp, gid);
    if gids.is_empty() {
        return Err(Error::invalid(format!(
            "no subgid ranges found for group {grp:?}"
        )));
    }
    if uids[0].host == 0 || gids[0].host == 0 {
        return Err(Error::invalid(
            "userns-remap: root cannot be remapped to itself".to_string(),
        ));
    }
    let userns = hold_userns(&uids, &gids)?;
    tracing::info!(user = %user, group = %grp, ?uids, ?gids, "user namespaces: remapping root");
    Ok(Remap {
        name: format!("{user}:{grp}"),
        uids,
        gids,
        userns,
    })
}

/// The id of a name in an /etc/passwd or /etc/group text.
fn entry_id(file: &str, name: &str) -> Option<u32> {
    file.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2).and_then(|x| x.parse().ok()))
}

/// The name of an id in an /etc/passwd or /etc/group text.
fn entry_name(file: &str, id: u32) -> Option<String> {
    file.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.get(2).and_then(|x| x.parse::<u32>().ok()) == Some(id))
        .and_then(|f| f.first().map(|n| n.to_string()))
}

/// dockerd's parseRemappedRoot: names or ids to (user, group) names; a user
/// alone takes the group of the same name.
fn resolve_names(spec: &str, passwd: &str, group: &str) -> Result<(String, String)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = if u == DEFAULT_SPECIFIER {
        DEFAULT_USER
    } else {
        u
    };
    let user = name_in(passwd, lookup, "Uid", "/etc/passwd", "uid lookup", "user")?;
    let grp = match g {
        Some(g) => name_in(group, g, "Gid", "/etc/group", "groupname lookup", "group")?,
        None => name_in(group, lookup, "Gid", "/etc/group", "gid lookup", "group")?,
    };
    Ok((user, grp))
}

/// The name `key` (a name or an id) stands for in an /etc/passwd or
/// /etc/group text, or dockerd's words for why there is none.
fn name_in(
    file: &str,
    key: &str,
    id_word: &str,
    path: &str,
    what: &str,
    kind: &str,
) -> Result<String> {
    match key.parse::<u32>() {
        Ok(id) => entry_name(file, id)
            .ok_or_else(|| Error::invalid(format!("{id_word} {id} has no entry in {path}"))),
        Err(_) if entry_id(file, key).is_some() => Ok(key.to_string()),
        Err(_) => Err(Error::invalid(format!(
            "Error during {what} for {key:?}: no such {kind}"
        ))),
    }
}

/// The ranges of `name` (or its id) in an /etc/subuid or /etc/subgid text,
/// mapped one after another from container id 0.
fn ranges(file: &str, name: &str, id: u32) -> Vec<IdRange> {
    let mut out = Vec::new();
    let mut inside = 0u32;
    for line in file.lines() {
        let f: Vec<&str> = line.trim().split(':').collect();
        if f.len() != 3 || (f[0] != name && f[0] != id.to_string()) {
            continue;
        }
        let (Ok(host), Ok(size)) = (f[1].parse::<u32>(), f[2].parse::<u32>()) else {
            continue;
        };
        if size == 0 {
            continue;
        }
        out.push(IdRange { inside, host, size });
        inside = inside.saturating_add(size);
    }
    out
}

/// dockerd's AddNamespaceRangesUser: a system user `dockremap` and, when it
/// has none, the first free 65536 ids from 100000 in /etc/subuid and /etc/subgid.
fn add_default_user() -> Result<()> {
    let run = |cmd: &str, args: &[&str]| -> Result<()> {
        let out = Command::new(cmd)
            .args(args)
            .output()
            .context(format_args!("running {cmd}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::internal(format!(
                "Error during {DEFAULT_USER:?} user creation: {cmd} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    run("useradd", &["-r", "-s", "/bin/false", DEFAULT_USER])?;
    for (file, flag) in [("/etc/subuid", "-v"), ("/etc/subgid", "-w")] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if ranges(&text, DEFAULT_USER, u32::MAX).is_empty() {
            let start = next_free(&text);
            let range = format!("{start}-{}", start + 65535);
            run("usermod", &[flag, &range, DEFAULT_USER])?;
        }
    }
    Ok(())
}

/// The first start at or after 100000 where 65536 ids overlap no range.
fn next_free(file: &str) -> u64 {
    let mut taken: Vec<(u64, u64)> = file
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            let start = f.get(1)?.parse::<u64>().ok()?;
            let size = f.get(2)?.parse::<u64>().ok()?;
            Some((start, start + size))
        })
        .collect();
    taken.sort();
    let mut start = 100_000u64;
    for (s, e) in taken {
        if start + 65536 <= s {
            break;
        }
        if e > start {
            start = e;
        }
    }
    start
}

/// A user namespace with these maps, kept open by its descriptor (the
/// namespace lives on as long as the descriptor).
fn hold_userns(uids: &[IdRange], gids: &[IdRange]) -> Result<OwnedFd> {
    with_holder(&[], Some((uids, gids)), |proc| {
        let ns = std::fs::File::open(proc.join("ns/user")).context("opening the user namespace")?;
        Ok(OwnedFd::from(ns))
    })
}

/// Lets others (the remapped root) through `dir`: o+x and g+x, as dockerd's
/// 0711 on its root. A directory above it that does not let them through
/// is an error, in dockerd's words (it is the user's to open).
pub fn allow_traversal(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).context(format_args!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .context(format_args!("{}", dir.display()))?;
    for parent in dir.ancestors().skip(1) {
        let mode = std::fs::metadata(parent)
            .context(format_args!("{}", parent.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(Error::invalid(format!(
                "a subdirectory in your graphroot path ({}) restricts access to the remapped root uid/gid; please fix by allowing 'o+x' permissions on existing directories",
                parent.display()
            )));
        }
    }
    let meta = std::fs::metadata(&dir).context(format_args!("{}", dir.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o011 != 0o011 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o011))
            .context(format_args!("chmod {}", dir.display()))?;
    }
    Ok(())
}

/// Where a container's user namespace is bind-mounted while it runs.
pub fn userns_path(exec_root: &Path, id: &str) -> std::path::PathBuf {
    exec_root.join("userns").join(id)
}

/// A container's own user namespace, with the daemon's maps, bind-mounted at
/// `userns_path` (made by a child, `berthd userns-hold`). Blocking.
pub fn make_container_userns(remap: &Remap, exec_root: &Path, id: &str) -> Result<()> {
    let at = userns_path(exec_root, id);
    let made = with_holder(&[], Some((&remap.uids, &remap.gids)), |proc| {
        bind_ns(&proc.join("ns/user"), &at)
    });
    if made.is_err() {
        unbind_ns(&at);
    }
    made
}

/// A network namespace owned by the user namespace bound at `userns` (so
/// that the container's root may mount sysfs in it), bind-mounted at `at`.
/// Blocking.
pub fn make_netns_in(userns: &Path, at: &Path) -> Result<()> {
    let arg = userns.display().to_string();
    let made = with_holder(&["--net-in", &arg], None, |proc| {
        bind_ns(&proc.join("ns/net"), at)
    });
    if made.is_err() {
        unbind_ns(at);
    }
    made
}

/// Lets a container's user namespace go (its bind mount).
pub fn release(exec_root: &Path, id: &str) {
    unbind_ns(&userns_path(exec_root, id));
}

fn bind_ns(ns: &Path, at: &Path) -> Result<()> {
    if let Some(dir) = at.parent() {
        std::fs::create_dir_all(dir).context(format_args!("creating {}", dir.display()))?;
    }
    std::fs::File::create(at).context(format_args!("creating {}", at.display()))?;
    nix::mount::mount(
        Some(ns),
        at,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .context(format_args!(
        "bind-mounting {} at {}",
        ns.display(),
        at.display()
    ))
}

fn unbind_ns(at: &Path) {
    let _ = nix::mount::umount2(at, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(at);
}

/// How long a holder may take to say it is ready: a hung one must not hang
/// the container's start (it is killed and the start fails).
const HOLDER_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until `out` has something to read (or is closed), at most `timeout`.
fn wait_readable(out: &impl std::os::fd::AsFd, timeout: std::time::Duration) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout.as_millis().min(i32::MAX as u128) as i32)
        .unwrap_or(PollTimeout::MAX);
    loop {
        match poll(&mut fds, ms) {
            Ok(0) => {
                return Err(Error::internal(format!(
                    "the user namespace holder did not get ready in {} s",
                    timeout.as_secs()
                )))
            }
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(Error::internal(format!(
                    "waiting for the user namespace holder: {e}"
                )))
            }
        }
    }
}

/// Runs `f` on the /proc directory of a child that is in a new user
/// namespace (whose maps are written when `maps` is given) or, with
/// `--net-in P`, in a new network namespace inside the user namespace at P;
/// the child goes afterwards. A child, because a threaded process such as
/// the daemon may not enter a user namespace.
fn with_holder<T>(
    args: &[&str],
    maps: Option<(&[IdRange], &[IdRange])>,
    f: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    use std::io::{BufRead, BufReader};
    let exe = std::env::current_exe().context("finding berthd")?;
    let mut child = Command::new(exe)
        .arg("userns-hold")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the user namespace holder")?;
    let result = (|| -> Result<T> {
        let mut line = String::new();
        if let Some(out) = child.stdout.as_mut() {
            wait_readable(out, HOLDER_READY_TIMEOUT)?;
            BufReader::new(out)
                .read_line(&mut line)
                .context("reading the user namespace holder")?;
        }
        if line.trim() != "ready" {
            return Err(Error::internal(format!(
                "the user namespace holder failed: {}",
                line.trim()
            )));
        }
        let proc = Path::new("/proc").join(child.id().to_string());
        if let Some((uids, gids)) = maps {
            let text = |r: &[IdRange]| {
                r.iter()
                    .map(|r| format!("{} {} {}\n", r.inside, r.host, r.size))
                    .collect::<String>()
            };
            std::fs::write(proc.join("uid_map"), text(uids)).context("writing uid_map")?;
            std::fs::write(proc.join("gid_map"), text(gids)).context("writing gid_map")?;
        }
        f(&proc)
    })();
    drop(child.stdin.take());
    if result.is_err() {
        // A holder that never got ready would not end on its closed stdin.
        let _ = child.kill();
    }
    let _ = child.wait();
    result
}

/// `berthd userns-hold [--net-in USERNS]`: unshares a user namespace (or
/// joins USERNS and unshares a network namespace there), says "ready", and
/// waits for its stdin to close. Run only by `with_holder`, single-threaded.
pub fn hold_main(args: &[String]) -> i32 {
    use nix::sched::CloneFlags;
    use std::io::{Read, Write};
    let made = match args {
        [flag, userns] if flag == "--net-in" => std::fs::File::open(userns)
            .map_err(|e| format!("{userns}: {e}"))
            .and_then(|f| {
                nix::sched::setns(f, CloneFlags::CLONE_NEWUSER)
                    .map_err(|e| format!("setns(user): {e}"))
            })
            .and_then(|()| {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("unshare(net): {e}"))
            }),
        [] => nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("unshare: {e}")),
        _ => Err("usage: berthd userns-hold [--net-in USERNS]".to_string()),
    };
    if let Err(e) = made {
        println!("{e}");
        return 1;
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\ndockremap:x:999:999::/:/bin/false\nalice:x:1000:1000::/home/a:/bin/sh\n";
    const GROUP: &str = "root:x:0:\ndockremap:x:999:\nalice:x:1000:\nstaff:x:50:\n";

    #[test]
    fn containers_that_cannot_be_remapped_are_refused_in_dockerds_words() {
        use bollard_stubs::models::HostConfig;
        let privileged = HostConfig {
            privileged: Some(true),
            ..Default::default()
        };
        assert!(validate(&privileged, true)
            .unwrap_err()
            .to_string()
            .contains("privileged mode is incompatible with user namespaces"));
        assert!(validate(&privileged, false).is_ok());
        let host_userns = HostConfig {
            userns_mode: Some("host".into()),
            ..privileged
        };
        assert!(validate(&host_userns, true).is_ok());
        let net_host = HostConfig {
            network_mode: Some("host".into()),
            ..Default::default()
        };
        assert!(validate(&net_host, true).is_err());
        let bad = HostConfig {
            userns_mode: Some("private".into()),
            ..Default::default()
        };
        assert!(validate(&bad, false).is_err());
    }

    #[test]
    fn names_resolve_as_dockerd_resolves_them() {
        let r = |s| resolve_names(s, PASSWD, GROUP);
        assert_eq!(
            r("default").unwrap(),
            ("dockremap".into(), "dockremap".into())
        );
        assert_eq!(r("alice").unwrap(), ("alice".into(), "alice".into()));
        assert_eq!(r("1000:50").unwrap(), ("alice".into(), "staff".into()));
        assert_eq!(r("alice:staff").unwrap(), ("alice".into(), "staff".into()));
        assert!(r("bob").is_err());
        assert!(r("alice:nogroup").is_err());
        assert!(r("4242").is_err());
    }

    #[test]
    fn ranges_are_mapped_one_after_another() {
        let sub = "alice:100000:65536\nbob:200000:10\n999:300000:1000\nalice:400000:10\n";
        assert_eq!(
            ranges(sub, "alice", 1000),
            [
                IdRange {
                    inside: 0,
                    host: 100000,
                    size: 65536
                },
                IdRange {
                    inside: 65536,
                    host: 400000,
                    size: 10
                },
            ]
        );
        assert_eq!(
            ranges(sub, "dockremap", 999),
            [IdRange {
                inside: 0,
                host: 300000,
                size: 1000
            }]
        );
        let r = ranges(sub, "alice", 1000);
        assert_eq!(to_host(&r, 0), 100000);
        assert_eq!(to_host(&r, 65537), 400001);
        assert_eq!(to_host(&r, 70000), 65534);
        assert_eq!(to_container(&r, 100005), Some(5));
        assert_eq!(to_container(&r, 5), None);
    }

    #[test]
    fn the_default_range_is_the_first_free_one_from_100000() {
        assert_eq!(next_free(""), 100000);
        assert_eq!(next_free("a:100000:65536\n"), 165536);
        assert_eq!(next_free("a:300000:65536\n"), 100000);
        assert_eq!(next_free("a:150000:10\n"), 150010);
    }
}
