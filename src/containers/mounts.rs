//! A container's mounts from its create body: `-v`/`--volume` (HostConfig.Binds)
//! and `--mount` (HostConfig.Mounts), checked with dockerd's words and turned
//! into what the runtime mounts and what inspect shows.
//!
//! A create plans them once (`plan_create`: volumes named, `--volumes-from`
//! followed, the image's VOLUMEs added) and records the plan with the
//! container (`ContainerMountsPlanned`); start mounts it and inspect shows it.
//! A volume's data is found through the VolumeService at start.

use std::path::PathBuf;

use bollard_stubs::models::{
    ContainerCreateBody, HostConfig, Mount, MountBindOptionsPropagationEnum, MountPoint, MountType,
};

use crate::drivers::exec::spec::{Mount as RuntimeMount, MountKind};
use crate::error::{Error, Result};
use crate::events::projection::{ContainerRecord, State};
use crate::events::v1::MountRecord;
use crate::paths::clean_absolute as clean;

/// What is mounted: a host path, a volume's data, or a new tmpfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bind,
    Volume,
    Tmpfs,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Bind => "bind",
            Kind::Volume => "volume",
            Kind::Tmpfs => "tmpfs",
        }
    }
}

/// One mount as the container will have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub kind: Kind,
    /// A volume's name (empty: an anonymous one, named at create).
    pub name: String,
    /// The host path (binds; a volume's mountpoint once known); empty for tmpfs.
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
    /// A volume is filled from the image while empty (not `nocopy`).
    pub copy_data: bool,
    /// A volume's driver, and what a new one is made with (`--mount`'s
    /// volume-opt and its labels).
    pub driver: String,
    pub volume_options: Vec<(String, String)>,
    pub volume_labels: Vec<(String, String)>,
    /// A volume the mount did not name (named at create all the same).
    pub anonymous: bool,
}

const PROPAGATIONS: [&str; 6] = [
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// The mounts `h` asks for (its binds and `--mount`s), parents first.
/// `exists` says whether a host path is there (`--mount type=bind` refuses a
/// missing source).
pub fn plan(h: &HostConfig, exists: &dyn Fn(&str) -> bool) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    for spec in h.binds.iter().flatten() {
        let mut p = parse_bind(spec)?;
        if let Some(d) = h.volume_driver.as_deref().filter(|d| !d.is_empty()) {
            if p.kind == Kind::Volume {
                p.driver = d.to_string();
            }
        }
        push(&mut out, p)?;
    }
    for m in h.mounts.iter().flatten() {
        push(&mut out, parse_mount(m, exists)?)?;
    }
    sort(&mut out);
    Ok(out)
}

/// dockerd mounts shallow destinations first, so /a is there before /a/b.
fn sort(out: &mut [Planned]) {
    out.sort_by_key(|p| p.destination.split('/').filter(|s| !s.is_empty()).count());
}

/// Everything a create mounts: its binds and `--mount`s, then what
/// `--volumes-from` carries over, then an anonymous volume for each path of
/// `Config.Volumes` (the user's `-v /path` and the image's VOLUMEs) that no
/// other mount covers. Anonymous volumes have no name yet.
pub fn plan_create(body: &ContainerCreateBody, state: &State) -> Result<Vec<Planned>> {
    let empty = HostConfig::default();
    let h = body.host_config.as_ref().unwrap_or(&empty);
    let mut out = plan(h, &|p| std::path::Path::new(p).exists())?;
    // `--tmpfs` targets count as mount points too.
    for t in h.tmpfs.iter().flatten().map(|(t, _)| t) {
        if out.iter().any(|o| o.destination == clean(t)) {
            return Err(Error::invalid(format!("Duplicate mount point: {t}")));
        }
    }
    for from in h.volumes_from.iter().flatten() {
        let (name, mode) = match from.split_once(':') {
            Some((n, m)) => (n, m),
            None => (from.as_str(), ""),
        };
        // ":ro" makes every mount read-only; ":rw" keeps a read-only one so.
        let read_only = match mode {
            "" | "rw" => false,
            "ro" => true,
            _ => return Err(Error::invalid(format!("invalid mode: {mode}"))),
        };
        // A 400, as dockerd's (a 404 would make the CLI pull the image).
        let source = state.container(name).map_err(|e| match e.kind() {
            crate::error::ErrorKind::NotFound => Error::invalid(e.message().to_string()),
            _ => e,
        })?;
        for mut m in recorded(source)? {
            if m.kind == Kind::Tmpfs || out.iter().any(|o| o.destination == m.destination) {
                continue;
            }
            m.read_only |= read_only;
            m.mode.clear();
            m.copy_data = false;
            out.push(m);
        }
    }
    let mut paths: Vec<&String> = body.volumes.iter().flatten().collect();
    paths.sort();
    for path in paths {
        check_destination(path).map_err(|why| {
            Error::invalid(format!(
                "invalid volume specification: '{path}': invalid mount config for type \"volume\": {why}"
            ))
        })?;
        if out.iter().any(|o| o.destination == clean(path)) {
            continue;
        }
        out.push(Planned {
            copy_data: true,
            driver: crate::volumes::LOCAL.into(),
            ..Planned::at(Kind::Volume, path)
        });
    }
    sort(&mut out);
    Ok(out)
}

/// A container's mounts: as its create recorded them, or (made before they
/// were recorded) as its create body says.
pub fn recorded(c: &ContainerRecord) -> Result<Vec<Planned>> {
    match &c.mounts {
        Some(list) => Ok(list.iter().map(Planned::from_record).collect()),
        None => {
            let body: ContainerCreateBody = serde_json::from_str(&c.config).unwrap_or_default();
            match body.host_config.as_ref() {
                Some(h) => plan(h, &|_| true),
                None => Ok(Vec::new()),
            }
        }
    }
}

/// Refuses a start whose `--mount type=bind` source has gone since create,
/// in dockerd's words.
pub fn check_on_host(mounts: &[Planned]) -> Result<()> {
    for m in mounts {
        if m.kind == Kind::Bind && !m.create_source && !std::path::Path::new(&m.source).exists() {
            return Err(Error::invalid(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                m.source
            )));
        }
    }
    Ok(())
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

/// `-v SRC:DST[:MODE]` (a host path or a volume name) or `-v DST[:MODE]` (an
/// anonymous volume), as dockerd's linux parser reads it.
fn parse_bind(spec: &str) -> Result<Planned> {
    let invalid =
        |why: String| Error::invalid(format!("invalid volume specification: '{spec}': {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        // "/data:ro" is a path and a mode, not a source and a path.
        [d, m] if valid_mode(m) && !m.is_empty() => ("", *d, *m),
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
    let modes: Vec<&str> = mode.split(',').filter(|m| !m.is_empty()).collect();
    let propagation = modes.iter().find(|m| PROPAGATIONS.contains(m));
    if !source.starts_with('/') {
        let volume_invalid =
            |why: &str| invalid(format!("invalid mount config for type \"volume\": {why}"));
        if !source.is_empty() {
            crate::volumes::check_name(source)?;
        }
        check_destination(destination).map_err(|why| volume_invalid(&why))?;
        if propagation.is_some() {
            return Err(volume_invalid("field BindOptions must not be specified"));
        }
        return Ok(Planned {
            name: source.to_string(),
            // dockerd's local driver marks a volume "z" when no mode was given.
            mode: if mode.is_empty() { "z" } else { mode }.to_string(),
            read_only: modes.contains(&"ro"),
            copy_data: !modes.contains(&"nocopy"),
            driver: crate::volumes::LOCAL.into(),
            ..Planned::at(Kind::Volume, destination)
        });
    }
    let bind_invalid =
        |why: &str| invalid(format!("invalid mount config for type \"bind\": {why}"));
    check_destination(destination).map_err(|why| bind_invalid(&why))?;
    if modes.contains(&"nocopy") {
        return Err(bind_invalid("field VolumeOptions must not be specified"));
    }
    Ok(Planned {
        source: clean(source),
        mode: mode.to_string(),
        read_only: modes.contains(&"ro"),
        propagation: propagation.map_or("rprivate", |m| *m).to_string(),
        create_source: true,
        ..Planned::at(Kind::Bind, destination)
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
                ..Planned::at(Kind::Bind, &target)
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
                ..Planned::at(Kind::Tmpfs, &target)
            })
        }
        MountType::VOLUME => {
            if m.bind_options.is_some() {
                return Err(invalid("field BindOptions must not be specified"));
            }
            if m.tmpfs_options.is_some() {
                return Err(invalid("field TmpfsOptions must not be specified"));
            }
            if m.read_only.unwrap_or(false) && source.is_empty() {
                return Err(invalid(
                    "must not set ReadOnly mode when using anonymous volumes",
                ));
            }
            if !source.is_empty() {
                crate::volumes::check_name(&source)?;
            }
            check_destination(&target).map_err(|why| invalid(&why))?;
            let opts = m.volume_options.clone().unwrap_or_default();
            let driver_config = opts.driver_config.unwrap_or_default();
            let driver = driver_config
                .name
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| crate::volumes::LOCAL.into());
            Ok(Planned {
                name: source,
                mode: "z".into(),
                read_only: m.read_only.unwrap_or(false),
                copy_data: !opts.no_copy.unwrap_or(false),
                driver,
                volume_options: crate::volumes::sorted_pairs(
                    driver_config.options.unwrap_or_default(),
                ),
                volume_labels: crate::volumes::sorted_pairs(opts.labels.unwrap_or_default()),
                ..Planned::at(Kind::Volume, &target)
            })
        }
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

impl Planned {
    /// A `kind` mount at `destination`, read-write, with no options yet.
    fn at(kind: Kind, destination: &str) -> Planned {
        Planned {
            kind,
            name: String::new(),
            source: String::new(),
            destination: clean(destination),
            mode: String::new(),
            read_only: false,
            propagation: String::new(),
            non_recursive: false,
            create_source: false,
            tmpfs_options: Vec::new(),
            copy_data: false,
            driver: String::new(),
            volume_options: Vec::new(),
            volume_labels: Vec::new(),
            anonymous: false,
        }
    }

    /// What the runtime mounts. A volume is a bind of its data (`source`,
    /// its mountpoint, known once the VolumeService has it).
    pub fn runtime(&self) -> RuntimeMount {
        let mut options = Vec::new();
        let kind = match self.kind {
            Kind::Bind => {
                options.push(if self.non_recursive { "bind" } else { "rbind" }.to_string());
                options.push(self.propagation.clone());
                MountKind::Bind
            }
            Kind::Volume => {
                options.extend(["rbind".to_string(), "rprivate".to_string()]);
                MountKind::Bind
            }
            Kind::Tmpfs => {
                options.extend(self.tmpfs_options.iter().cloned());
                MountKind::Tmpfs
            }
        };
        if self.read_only {
            options.push("ro".into());
        }
        RuntimeMount {
            kind,
            source: PathBuf::from(&self.source),
            destination: self.destination.clone(),
            options,
            create_source: self.create_source,
        }
    }

    /// The entry of inspect's `Mounts` (and of `ps`'s).
    pub fn inspect(&self) -> MountPoint {
        let volume = self.kind == Kind::Volume;
        MountPoint {
            typ: Some(self.kind.as_str().into()),
            name: volume.then(|| self.name.clone()),
            source: Some(self.source.clone()),
            destination: Some(self.destination.clone()),
            driver: volume.then(|| self.driver.clone()),
            mode: Some(self.mode.clone()),
            rw: Some(!self.read_only),
            propagation: Some(self.propagation.clone()),
        }
    }

    /// As recorded with the container.
    pub fn record(&self) -> MountRecord {
        MountRecord {
            kind: self.kind.as_str().into(),
            name: self.name.clone(),
            source: self.source.clone(),
            destination: self.destination.clone(),
            mode: self.mode.clone(),
            read_only: self.read_only,
            propagation: self.propagation.clone(),
            non_recursive: self.non_recursive,
            create_source: self.create_source,
            copy_data: self.copy_data,
            driver: self.driver.clone(),
            options: self.tmpfs_options.clone(),
            anonymous: self.anonymous,
        }
    }

    pub fn from_record(r: &MountRecord) -> Planned {
        let kind = match r.kind.as_str() {
            "volume" => Kind::Volume,
            "tmpfs" => Kind::Tmpfs,
            _ => Kind::Bind,
        };
        Planned {
            name: r.name.clone(),
            source: r.source.clone(),
            mode: r.mode.clone(),
            read_only: r.read_only,
            propagation: r.propagation.clone(),
            non_recursive: r.non_recursive,
            create_source: r.create_source,
            tmpfs_options: r.options.clone(),
            copy_data: r.copy_data,
            driver: r.driver.clone(),
            anonymous: r.anonymous,
            ..Planned::at(kind, &r.destination)
        }
    }
}

/// Inspect's `Mounts` for a container.
pub fn inspect(c: &ContainerRecord) -> Vec<MountPoint> {
    recorded(c)
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
        assert_eq!(err(binds(&["vol:/x:shared"])), "invalid volume specification: 'vol:/x:shared': invalid mount config for type \"volume\": field BindOptions must not be specified");
    }

    #[test]
    fn reads_volumes_as_dockerd() {
        let p = binds(&["vol:/data", "/anon", "/ro:ro", "v2:/n:nocopy,ro"]).expect("valid");
        let by = |d: &str| p.iter().find(|m| m.destination == d).expect("planned");
        let data = by("/data");
        assert_eq!(
            (data.kind, data.name.as_str(), data.copy_data),
            (Kind::Volume, "vol", true)
        );
        assert_eq!(
            (by("/anon").kind, by("/anon").name.as_str()),
            (Kind::Volume, "")
        );
        assert!(by("/ro").read_only && by("/ro").name.is_empty());
        assert!(!by("/n").copy_data && by("/n").read_only);
        let rt = by("/data").runtime();
        assert_eq!(rt.options, ["rbind".to_string(), "rprivate".into()]);
        let r = by("/n").record();
        assert_eq!(Planned::from_record(&r), by("/n").clone());
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
