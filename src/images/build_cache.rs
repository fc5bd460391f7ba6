//! The classic builder's cache, as dockerd's (image/cache): every build
//! step's image records the step's run config as its `container_config`,
//! and a later step with the same parent image and an equal run config
//! reuses that image instead of running again. The parent links and the
//! configs are stored with the images, so the cache outlives a restart.
//! Pure, but for reading a tar to hash what COPY copies.

use std::io::Read;

use bollard_stubs::models::ContainerConfig;
use sha2::Digest;

use crate::error::{Error, Result};

/// The run config a step is known by: the stage's config with the step's
/// command (`#(nop)` text for a metadata step, `|N a=b sh -c ...` for a
/// RUN, whose entrypoint is dropped as dockerd's withEntrypointOverride)
/// and the parent image.
pub fn step_config(
    config: &ContainerConfig,
    parent: &str,
    cmd: Vec<String>,
    run: bool,
) -> ContainerConfig {
    let mut c = config.clone();
    c.cmd = Some(cmd);
    c.image = Some(parent.to_string());
    c.hostname = Some(String::new());
    c.domainname = Some(String::new());
    if run {
        c.entrypoint = None;
    }
    c
}

/// dockerd's `compare`: the fields a step can change, lists in order,
/// maps by key; an empty list or map equals an absent one. A config that
/// keeps stdin open never matches.
pub fn matches(a: &ContainerConfig, b: &ContainerConfig) -> bool {
    fn list<'a>(v: &'a Option<Vec<String>>) -> &'a [String] {
        v.as_deref().unwrap_or_default()
    }
    fn text(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or_default()
    }
    fn set(v: &Option<Vec<String>>) -> Vec<&String> {
        let mut k: Vec<&String> = v.iter().flatten().collect();
        k.sort();
        k.dedup();
        k
    }
    let flag = |v: Option<bool>| v.unwrap_or(false);
    if flag(a.open_stdin) || flag(b.open_stdin) {
        return false;
    }
    let labels = |c: &ContainerConfig| c.labels.clone().unwrap_or_default();
    flag(a.attach_stdout) == flag(b.attach_stdout)
        && flag(a.attach_stderr) == flag(b.attach_stderr)
        && flag(a.tty) == flag(b.tty)
        && text(&a.user) == text(&b.user)
        && list(&a.cmd) == list(&b.cmd)
        && list(&a.entrypoint) == list(&b.entrypoint)
        && list(&a.env) == list(&b.env)
        && labels(a) == labels(b)
        && set(&a.exposed_ports) == set(&b.exposed_ports)
        && set(&a.volumes) == set(&b.volumes)
}

/// A cached step: the newest of the candidates (children of the step's
/// parent: ID, created time, stored run config) whose run config matches.
pub fn pick<'a>(
    key: &ContainerConfig,
    candidates: impl IntoIterator<Item = (&'a str, &'a str, ContainerConfig)>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|(_, _, stored)| matches(stored, key))
        // RFC 3339 times in UTC with the same precision sort as text.
        .max_by(|a, b| a.1.cmp(b.1))
        .map(|(id, _, _)| id)
}

/// What COPY copies, hashed as dockerd's tarsum does it: each entry's
/// name, type, mode, owner, size, link target and content — not its
/// modification time, so a fresh checkout of the same files hits the cache.
pub fn content_hash(tar: impl Read) -> Result<String> {
    let bad = |e: std::io::Error| Error::internal(format!("hashing the copied files: {e}"));
    let mut archive = tar::Archive::new(tar);
    let mut hash = sha2::Sha256::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let h = entry.header();
        let fields = [
            entry.path_bytes().into_owned(),
            vec![h.entry_type().as_byte()],
            h.mode().map_err(bad)?.to_be_bytes().to_vec(),
            h.uid().map_err(bad)?.to_be_bytes().to_vec(),
            h.gid().map_err(bad)?.to_be_bytes().to_vec(),
            h.size().map_err(bad)?.to_be_bytes().to_vec(),
            entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default(),
        ];
        for f in fields {
            hash.update((f.len() as u64).to_be_bytes());
            hash.update(&f);
        }
        std::io::copy(&mut entry, &mut HashWriter(&mut hash)).map_err(bad)?;
    }
    Ok(hex::encode(hash.finalize()))
}

struct HashWriter<'a>(&'a mut sha2::Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cmd: &[&str]) -> ContainerConfig {
        ContainerConfig {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            env: Some(vec!["PATH=/bin".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn equal_steps_match_and_others_do_not() {
        let a = step_config(&config(&[]), "sha256:p", vec!["echo".into()], true);
        let mut b = a.clone();
        b.labels = Some(Default::default());
        b.hostname = Some("0123456789ab".into());
        assert!(matches(&a, &b), "empty labels and a hostname do not count");
        let mut c = a.clone();
        c.env = Some(vec!["PATH=/bin".into(), "X=1".into()]);
        assert!(!matches(&a, &c));
        let mut d = a.clone();
        d.cmd = Some(vec!["echo".into(), "x".into()]);
        assert!(!matches(&a, &d));
        let mut e = a.clone();
        e.open_stdin = Some(true);
        assert!(!matches(&e, &e.clone()), "stdin kept open is never cached");
    }

    #[test]
    fn the_newest_match_wins() {
        let key = config(&["a"]);
        let found = pick(
            &key,
            [
                ("old", "2026-01-01T00:00:00Z", config(&["a"])),
                ("new", "2026-02-01T00:00:00Z", config(&["a"])),
                ("other", "2026-03-01T00:00:00Z", config(&["b"])),
            ],
        );
        assert_eq!(found, Some("new"));
        assert_eq!(pick(&config(&["c"]), []), None);
    }

    fn tar_of(mtime: u64, content: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_cksum();
        b.append_data(&mut h, "f", content).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn the_hash_ignores_mtimes_but_not_content() {
        let a = content_hash(&tar_of(1, b"x")[..]).unwrap();
        assert_eq!(a, content_hash(&tar_of(99, b"x")[..]).unwrap());
        assert_ne!(a, content_hash(&tar_of(1, b"y")[..]).unwrap());
    }
}
