//! The namespaces a container shares with the host or with another
//! container (`--ipc`, `--pid`, and the naming of `--network container:X`),
//! as dockerd 20.10 does it. `--ipc`:
//!
//! | IpcMode          | namespace         | /dev/shm                                  |
//! |------------------|-------------------|-------------------------------------------|
//! | `private` (`""`) | its own           | its own tmpfs                             |
//! | `shareable`      | its own           | a tmpfs on the host, that joiners bind    |
//! | `none`           | its own           | none                                      |
//! | `host`           | the host's        | the host's /dev/shm                       |
//! | `container:X`    | X's               | X's, which X must share (shareable, host) |
//!
//! `--pid`: its own, `host`, or `container:X` (X's). A create names each donor
//! by its full ID, as dockerd stores it; the start checks that it runs (and,
//! for IPC, shares), in dockerd's words. An unknown IPC mode is refused at
//! start, not at create, as dockerd 20.10 does.

use std::path::{Path, PathBuf};

use bollard_stubs::models::{ContainerCreateBody, HostConfig};

use crate::drivers::exec::bundle::shm_dir;
use crate::drivers::exec::spec::{Namespace, Namespaces, Shm};
use crate::error::{Error, ErrorKind, Result};
use crate::events::projection::{ContainerRecord, ContainerStatus, State};

fn donor_of(mode: Option<&str>) -> Option<&str> {
    mode?.strip_prefix("container:").filter(|d| !d.is_empty())
}

/// At create: each `container:<name or prefix>` becomes `container:<full
/// id>`. An unknown IPC or PID donor is refused (400 "No such container: X",
/// so that the CLI does not take it for a missing image); an unknown network
/// donor waits for the start, as with dockerd.
pub fn name_donors(body: &mut ContainerCreateBody, state: &State) -> Result<()> {
    let Some(h) = body.host_config.as_mut() else {
        return Ok(());
    };
    let refused = |e: Error| match e.kind() {
        ErrorKind::NotFound => Error::invalid(e.message().to_string()),
        _ => e,
    };
    let named = |mode: &Option<String>| -> Result<Option<String>> {
        match donor_of(mode.as_deref()) {
            Some(d) => Ok(Some(format!("container:{}", state.container(d)?.id))),
            None => Ok(mode.clone()),
        }
    };
    h.ipc_mode = named(&h.ipc_mode).map_err(refused)?;
    h.pid_mode = named(&h.pid_mode).map_err(refused)?;
    if let Ok(mode) = named(&h.network_mode) {
        h.network_mode = mode;
    }
    Ok(())
}

/// At start: the container's IPC and PID namespaces and its /dev/shm, from
/// its modes and, for `container:X`, from X as it is now. `containers_dir`
/// holds each container's directory (where a shareable one's tmpfs goes).
pub fn plan(
    body: &ContainerCreateBody,
    state: &State,
    containers_dir: &Path,
    id: &str,
) -> Result<Namespaces> {
    let h = body.host_config.clone().unwrap_or_default();
    let (ipc, shm) = match h.ipc_mode.as_deref().unwrap_or_default() {
        "" | "private" => (Namespace::New, Shm::Tmpfs),
        "shareable" => (
            Namespace::New,
            Shm::Shareable(shm_dir(&containers_dir.join(id))),
        ),
        "none" => (Namespace::New, Shm::Absent),
        "host" => (Namespace::Host, Shm::Bind(PathBuf::from("/dev/shm"))),
        m => match m.strip_prefix("container:") {
            Some(donor) => join_ipc(donor, state, containers_dir)?,
            None => return Err(Error::internal(format!("Invalid IPC mode: {m}"))),
        },
    };
    let pid = match h.pid_mode.as_deref().unwrap_or_default() {
        "host" => Namespace::Host,
        m => match m.strip_prefix("container:") {
            Some(donor) => join_pid(donor, state)?,
            None => Namespace::New,
        },
    };
    Ok(Namespaces { ipc, pid, shm })
}

/// The donor, running and not restarting (dockerd's checkContainer words).
fn running<'a>(state: &'a State, donor: &str) -> Result<&'a ContainerRecord> {
    let d = state.container(donor)?;
    if d.restarting {
        return Err(Error::conflict(format!(
            "Container {} is restarting, wait until the container is running",
            d.id
        )));
    }
    if d.status != ContainerStatus::Running || d.pid == 0 {
        return Err(Error::conflict(format!(
            "container {} is not running",
            d.id
        )));
    }
    Ok(d)
}

/// `--ipc container:X`: X's namespace and its shared /dev/shm.
fn join_ipc(donor: &str, state: &State, containers_dir: &Path) -> Result<(Namespace, Shm)> {
    let refuse = |why: &str| Error::internal(format!("can't join IPC of container {donor}: {why}"));
    if donor.is_empty() {
        return Err(refuse("invalid name or ID supplied: \"\""));
    }
    let d = running(state, donor).map_err(|e| refuse(e.message()))?;
    let non_shareable = "non-shareable IPC (hint: use IpcMode:shareable for the donor container)";
    let shm = match mode_of(d, |h| h.ipc_mode).as_str() {
        "shareable" => shm_dir(&containers_dir.join(&d.id)),
        "host" => PathBuf::from("/dev/shm"),
        _ => return Err(refuse(non_shareable)),
    };
    if !shm.is_dir() {
        return Err(refuse(non_shareable));
    }
    Ok((ns_of(d, "ipc"), Shm::Bind(shm)))
}

/// `--pid container:X`: X's namespace. (Errors of dockerd's spec are 500s.)
fn join_pid(donor: &str, state: &State) -> Result<Namespace> {
    let d = match state.container(donor) {
        Ok(_) => running(state, donor),
        Err(e) => Err(e.context(format_args!(
            "cannot join PID of a non running container: {donor}"
        ))),
    };
    d.map(|d| ns_of(d, "pid"))
        .map_err(|e| Error::internal(e.message().to_string()))
}

fn mode_of(c: &ContainerRecord, field: impl Fn(HostConfig) -> Option<String>) -> String {
    crate::containers::render::body(c)
        .host_config
        .and_then(field)
        .unwrap_or_default()
}

fn ns_of(c: &ContainerRecord, kind: &str) -> Namespace {
    Namespace::Join(PathBuf::from(format!("/proc/{}/ns/{kind}", c.pid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(ipc: &str, pid: &str) -> ContainerCreateBody {
        ContainerCreateBody {
            host_config: Some(HostConfig {
                ipc_mode: Some(ipc.into()),
                pid_mode: Some(pid.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn modes_without_a_donor() {
        let s = State::default();
        let dir = Path::new("/c");
        let p = |ipc: &str, pid: &str| plan(&body(ipc, pid), &s, dir, "a");
        let n = p("private", "").unwrap();
        assert_eq!(
            (n.ipc, n.shm, n.pid),
            (Namespace::New, Shm::Tmpfs, Namespace::New)
        );
        let n = p("shareable", "host").unwrap();
        assert_eq!(n.shm, Shm::Shareable(PathBuf::from("/c/a/shm")));
        assert_eq!(n.pid, Namespace::Host);
        assert_eq!(p("none", "").unwrap().shm, Shm::Absent);
        assert_eq!(p("host", "").unwrap().ipc, Namespace::Host);
        let words = |ipc: &str, pid: &str| p(ipc, pid).unwrap_err().message().to_string();
        assert_eq!(words("bogus", ""), "Invalid IPC mode: bogus");
        assert_eq!(
            words("container:", ""),
            "can't join IPC of container : invalid name or ID supplied: \"\""
        );
        assert_eq!(
            words("container:x", ""),
            "can't join IPC of container x: No such container: x"
        );
        assert!(
            words("", "container:x").starts_with("cannot join PID of a non running container: x")
        );
    }

    #[test]
    fn unknown_ipc_and_pid_donors_are_refused_at_create() {
        let s = State::default();
        let mut b = body("container:nosuch", "");
        let e = name_donors(&mut b, &s).unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::InvalidParameter, "No such container: nosuch")
        );
        let mut b = body("", "container:nosuch");
        assert!(name_donors(&mut b, &s).is_err());
        let mut b = body("", "");
        b.host_config.as_mut().unwrap().network_mode = Some("container:nosuch".into());
        name_donors(&mut b, &s).unwrap();
        assert_eq!(
            b.host_config.unwrap().network_mode.as_deref(),
            Some("container:nosuch")
        );
    }
}
