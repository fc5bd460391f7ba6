//! A container's mounts from its create body: `-v`/`--volume` (HostConfig.Binds)
//! and `--mount` (HostConfig.Mounts), checked with dockerd's words and turned
//! into what the runtime mounts and what inspect shows.
//!
//! Bind mounts and `--mount type=tmpfs` are made here. Named and anonymous
//! volumes need the VolumeService (issue 15): a body that asks for one is
//! refused at create, never run without the volume it asked for.

use std::path::PathBuf;

use bollard_stubs::models::{
    HostConfig, Mount, MountBindOptionsPropagationEnum, MountPoint, MountType,
};

use crate::drivers::exec::spec::{Mount as RuntimeMount, MountKind};
use crate::error::{Error, Result};
use crate::paths::clean_absolute as clean;

/// One mount as the container will have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub kind: MountKind,
    /// The host path (binds); empty for tmpfs.
    pub source: String,
    pub destination: String,
    /// The mode string as `-v` gave it ("ro", "rw,shared"); empty for `--mount`.
    pub mode: String,
    pub read_only: bool,
    /// "rprivate", "shared", ...; empty for tmpfs.
    pub propagation: String,
    /// `bind-nonrecursive`: submounts of the source are not carried along.
    pub non_recursive: bool,
    /// `-v` makes a missing host directory; `--mount` refuses one.
    pub create_source: bool,
    /// tmpfs size= and mode= options.
    pub tmpfs_options: Vec<String>,
}

const PROPAGATIONS: [&str; 6] = [
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// The mounts `h` asks for, in the order the runtime must make them (a parent
/// before what is mounted under it). `exists` says whether a host path is there
/// (`--mount type=bind` refuses a missing source).
pub fn plan(h: &HostConfig, exists: &dyn Fn(&str) -> bool) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    for spec in h.binds.iter().flatten() {
        push(&mut out, parse_bind(spec)?)?;
    }
    for m in h.mounts.iter().flatten() {
        push(&mut out, parse_mount(m, exists)?)?;
    }
    // dockerd mounts shallow destinations first, so /a is there before /a/b.
    out.sort_by_key(|p| p.destination.split('/').filter(|s| !s.is_empty()).count());
    Ok(out)
}

fn push(out: &mut Vec<Planned>, p: Planned) -> Result<()> {
    if out.iter().any(|o| o.destination == p.destination) {
        return Err(Error::invalid(format!(
            "Duplicate mount point: {}",
            p.destination
        )));
    }
    out.push(p);
    Ok(())
}

/// `-v SRC:DST[:MODE]` (a host path or a volume name) or `-v DST` (an
/// anonymous volume), as dockerd's linux parser reads it.
fn parse_bind(spec: &str) -> Result<Planned> {
    let invalid =
        |why: String| Error::invalid(format!("invalid volume specification: '{spec}': {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => {
            return Err(Error::invalid(format!(
                "invalid volume specification: '{spec}'"
            )))
        }
    };
    if !valid_mode(mode) {
        return Err(Error::invalid(format!("invalid mode: {mode}")));
    }
    if source.is_empty() || !source.starts_with('/') {
        if !source.is_empty() {
            valid_volume_name(source)?;
        }
        return Err(volumes_not_yet());
    }
    let bind_invalid =
        |why: &str| invalid(format!("invalid mount config for type \"bind\": {why}"));
    check_destination(destination).map_err(|why| bind_invalid(&why))?;
    let modes: Vec<&str> = mode.split(',').filter(|m| !m.is_empty()).collect();
    if modes.contains(&"nocopy") {
        return Err(bind_invalid("field VolumeOptions must not be specified"));
    }
    let propagation = modes
        .iter()
        .find(|m| PROPAGATIONS.contains(m))
        .map_or("rprivate", |m| *m);
    Ok(Planned {
        source: clean(source),
        mode: mode.to_string(),
        read_only: modes.contains(&"ro"),
        propagation: propagation.to_string(),
        create_source: true,
        ..Planned::at(MountKind::Bind, destination)
    })
}

/// dockerd's mode check: at most one of rw/ro, one label (z/Z), one
/// propagation, one copy mode (nocopy) and one consistency.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut seen = [0u8; 5];
    for m in mode.split(',') {
        let group = match m {
            "rw" | "ro" => 0,
            "z" | "Z" => 1,
            _ if PROPAGATIONS.contains(&m) => 2,
            "nocopy" => 3,
            "consistent" | "cached" | "delegated" => 4,
            _ => return false,
        };
        seen[group] += 1;
        if seen[group] > 1 {
            return false;
        }
    }
    true
}

/// `--mount type=...` (HostConfig.Mounts).
fn parse_mount(m: &Mount, exists: &dyn Fn(&str) -> bool) -> Result<Planned> {
    let kind = m.typ.unwrap_or(MountType::VOLUME);
    let name = match kind {
        MountType::BIND => "bind",
        MountType::TMPFS => "tmpfs",
        MountType::VOLUME => "volume",
        MountType::IMAGE => "image",
        MountType::NPIPE => "npipe",
        MountType::CLUSTER => "cluster",
    };
    let invalid =
        |why: &str| Error::invalid(format!("invalid mount config for type \"{name}\": {why}"));
    let target = m.target.clone().unwrap_or_default();
    if target.is_empty() {
        return Err(invalid("field Target must not be empty"));
    }
    let source = m.source.clone().unwrap_or_default();
    match kind {
        MountType::BIND => {
            if source.is_empty() {
                return Err(invalid("field Source must not be empty"));
            }
            if m.volume_options.is_some() {
                return Err(invalid("field VolumeOptions must not be specified"));
            }
            if m.tmpfs_options.is_some() {
                return Err(invalid("field TmpfsOptions must not be specified"));
            }
            check_absolute(&source).map_err(|why| invalid(&why))?;
            check_destination(&target).map_err(|why| invalid(&why))?;
            if !exists(&source) {
                return Err(invalid(&format!(
                    "bind source path does not exist: {source}"
                )));
            }
            let opts = m.bind_options.clone().unwrap_or_default();
            let propagation = opts
                .propagation
                .filter(|p| *p != MountBindOptionsPropagationEnum::EMPTY)
                .map_or_else(|| "rprivate".to_string(), |p| p.to_string());
            Ok(Planned {
                source: clean(&source),
                read_only: m.read_only.unwrap_or(false),
                propagation,
                non_recursive: opts.non_recursive.unwrap_or(false),
                ..Planned::at(MountKind::Bind, &target)
            })
        }
        MountType::TMPFS => {
            if !source.is_empty() {
                return Err(invalid("field Source must not be specified"));
            }
            if m.bind_options.is_some() {
                return Err(invalid("field BindOptions must not be specified"));
            }
            if m.volume_options.is_some() {
                return Err(invalid("field VolumeOptions must not be specified"));
            }
            check_destination(&target).map_err(|why| invalid(&why))?;
            let opts = m.tmpfs_options.clone().unwrap_or_default();
            let mut tmpfs_options = Vec::new();
            if let Some(size) = opts.size_bytes.filter(|s| *s > 0) {
                tmpfs_options.push(format!("size={}", tmpfs_size(size)));
            }
            if let Some(mode) = opts.mode.filter(|m| *m > 0) {
                tmpfs_options.push(format!("mode={:o}", mode & 0o7777));
            }
            Ok(Planned {
                read_only: m.read_only.unwrap_or(false),
                tmpfs_options,
                ..Planned::at(MountKind::Tmpfs, &target)
            })
        }
        MountType::VOLUME => Err(volumes_not_yet()),
        _ => Err(Error::invalid(format!("mount type unknown: \"{name}\""))),
    }
}

/// The size option as dockerd writes it: whole kibibytes as "1024k".
fn tmpfs_size(bytes: i64) -> String {
    if bytes % 1024 == 0 {
        format!("{}k", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

fn volumes_not_yet() -> Error {
    Error::invalid(
        "named and anonymous volumes are not supported by this berthd yet; use a bind mount (-v /host/path:/path)",
    )
}

fn check_absolute(path: &str) -> std::result::Result<(), String> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "invalid mount path: '{path}' mount path must be absolute"
        ))
    }
}

fn check_destination(path: &str) -> std::result::Result<(), String> {
    check_absolute(path)?;
    if clean(path) == "/" {
        return Err("invalid specification: destination can't be '/'".into());
    }
    Ok(())
}

/// dockerd's volume-name check (what it answers for `-v "bad name":/x`).
fn valid_volume_name(name: &str) -> Result<()> {
    if super::config::restricted_name(name) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )))
}

impl Planned {
    /// A `kind` mount at `destination`, read-write, with no options yet.
    fn at(kind: MountKind, destination: &str) -> Planned {
        Planned {
            kind,
            source: String::new(),
            destination: clean(destination),
            mode: String::new(),
            read_only: false,
            propagation: String::new(),
            non_recursive: false,
            create_source: false,
            tmpfs_options: Vec::new(),
        }
    }

    /// What the runtime mounts.
    pub fn runtime(&self) -> RuntimeMount {
        let mut options = Vec::new();
        match self.kind {
            MountKind::Bind => {
                options.push(if self.non_recursive { "bind" } else { "rbind" }.to_string());
                options.push(self.propagation.clone());
            }
            MountKind::Tmpfs => options.extend(self.tmpfs_options.iter().cloned()),
        }
        if self.read_only {
            options.push("ro".into());
        }
        RuntimeMount {
            kind: self.kind,
            source: PathBuf::from(&self.source),
            destination: self.destination.clone(),
            options,
            create_source: self.create_source,
        }
    }

    /// The entry of inspect's `Mounts` (and of `ps`'s).
    pub fn inspect(&self) -> MountPoint {
        MountPoint {
            typ: Some(
                match self.kind {
                    MountKind::Bind => "bind",
                    MountKind::Tmpfs => "tmpfs",
                }
                .into(),
            ),
            source: Some(self.source.clone()),
            destination: Some(self.destination.clone()),
            mode: Some(self.mode.clone()),
            rw: Some(!self.read_only),
            propagation: Some(self.propagation.clone()),
            ..Default::default()
        }
    }
}

/// The mounts `h` asks for, checked against this host (a `--mount` bind
/// source must be there): at create, and again at start.
pub fn plan_on_host(h: Option<&HostConfig>) -> Result<Vec<Planned>> {
    match h {
        Some(h) => plan(h, &|p| std::path::Path::new(p).exists()),
        None => Ok(Vec::new()),
    }
}

/// Inspect's `Mounts` for a stored create body (checked at create, so what
/// fails here now is left out rather than failing the inspect).
pub fn inspect(h: Option<&HostConfig>) -> Vec<MountPoint> {
    let Some(h) = h else { return Vec::new() };
    plan(h, &|_| true)
        .map(|p| p.iter().map(Planned::inspect).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binds(specs: &[&str]) -> Result<Vec<Planned>> {
        let h = HostConfig {
            binds: Some(specs.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        plan(&h, &|_| true)
    }

    fn err(r: Result<Vec<Planned>>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn reads_binds_as_dockerd() {
        let p = binds(&[
            "/srv/data:/data",
            "/tmp/m:/m:ro",
            "/tmp//x/:/x/y/:rw,shared",
        ])
        .expect("valid");
        assert_eq!(p[0].destination, "/data");
        assert_eq!(
            (
                p[0].mode.as_str(),
                p[0].read_only,
                p[0].propagation.as_str()
            ),
            ("", false, "rprivate")
        );
        assert_eq!((p[1].mode.as_str(), p[1].read_only), ("ro", true));
        assert_eq!(p[2].source, "/tmp/x");
        assert_eq!(p[2].destination, "/x/y");
        assert_eq!(
            (p[2].mode.as_str(), p[2].propagation.as_str()),
            ("rw,shared", "shared")
        );
        assert!(p.iter().all(|p| p.create_source));
        assert_eq!(
            p[1].runtime().options,
            vec!["rbind".to_string(), "rprivate".into(), "ro".into()]
        );
    }

    #[test]
    fn mounts_parents_first() {
        let p = binds(&["/a:/x/y/z", "/b:/x"]).expect("valid");
        assert_eq!(p[0].destination, "/x");
    }

    #[test]
    fn refuses_what_dockerd_refuses_in_its_words() {
        assert_eq!(err(binds(&["/tmp:/"])), "invalid volume specification: '/tmp:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'");
        assert_eq!(err(binds(&["/tmp:rel"])), "invalid volume specification: '/tmp:rel': invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute");
        assert_eq!(err(binds(&["/tmp:/x:bogus"])), "invalid mode: bogus");
        assert_eq!(err(binds(&["/tmp:/x:ro,rw"])), "invalid mode: ro,rw");
        assert_eq!(
            err(binds(&["/tmp:/x", "/var:/x"])),
            "Duplicate mount point: /x"
        );
        assert_eq!(err(binds(&["/tmp:/x:nocopy"])), "invalid volume specification: '/tmp:/x:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be specified");
        assert!(err(binds(&["bad name:/x"]))
            .starts_with("create bad name: \"bad name\" includes invalid characters"));
        assert!(err(binds(&["vol:/x"])).contains("not supported"));
        assert!(err(binds(&["/x"])).contains("not supported"));
    }

    #[test]
    fn reads_mount_options() {
        let m: Vec<Mount> = serde_json::from_str(
            r#"[{"Type":"bind","Source":"/srv","Target":"/o","ReadOnly":true},
                {"Type":"bind","Source":"/srv","Target":"/p","BindOptions":{"Propagation":"rslave","NonRecursive":true}},
                {"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576,"Mode":1016}}]"#,
        )
        .expect("json");
        let h = HostConfig {
            mounts: Some(m),
            ..Default::default()
        };
        let p = plan(&h, &|_| true).expect("valid");
        assert_eq!(
            (
                p[0].read_only,
                p[0].propagation.as_str(),
                p[0].create_source
            ),
            (true, "rprivate", false)
        );
        assert_eq!(
            p[1].runtime().options,
            vec!["bind".to_string(), "rslave".into()]
        );
        assert_eq!(
            p[2].runtime().options,
            ["size=1024k".to_string(), "mode=1770".into()]
        );
        let missing = plan(&h, &|_| false).expect_err("missing source");
        assert_eq!(
            missing.to_string(),
            "invalid mount config for type \"bind\": bind source path does not exist: /srv"
        );
    }
}
