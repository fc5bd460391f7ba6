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

/// One record of the build cache as `docker system df` and `docker builder
/// prune` see it: an untagged image a commit or a build step made on a
/// parent (a step's image, or an old result a rebuild untagged).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub id: String,
    pub parent: String,
    /// The layer it adds (0 for a metadata step).
    pub size: u64,
    /// When it was stored (ns).
    pub stored_ns: u64,
    /// Needed: a tagged image or a container's image descends from it (it
    /// cannot go without them), or a container runs it.
    pub in_use: bool,
}

/// The build cache in `state`, oldest first.
pub fn entries(state: &crate::events::projection::State) -> Vec<CacheEntry> {
    use std::collections::HashSet;
    let mut needed: HashSet<&str> = HashSet::new();
    let roots = state
        .images
        .values()
        .filter(|i| !i.repo_tags.is_empty())
        .map(|i| i.id.as_str())
        .chain(state.containers.values().map(|c| c.image.as_str()));
    for root in roots {
        let mut at = Some(root);
        while let Some(id) = at {
            if !needed.insert(id) {
                break;
            }
            at = state
                .images
                .get(id)
                .map(|i| i.parent.as_str())
                .filter(|p| !p.is_empty());
        }
    }
    let mut out: Vec<CacheEntry> = state
        .images
        .values()
        .filter(|i| i.repo_tags.is_empty() && !i.parent.is_empty())
        .map(|i| {
            let below = state.images.get(&i.parent).map_or(0, |p| p.chain_ids.len());
            let size = if i.chain_ids.len() > below {
                i.chain_ids
                    .last()
                    .and_then(|c| state.layers.get(c))
                    .map_or(0, |l| l.size)
            } else {
                0
            };
            CacheEntry {
                id: i.id.clone(),
                parent: i.parent.clone(),
                size,
                stored_ns: i.stored_ns,
                in_use: needed.contains(i.id.as_str()),
            }
        })
        .collect();
    out.sort_by_key(|e| e.stored_ns);
    out
}

/// What `docker builder prune` removes: the entries not in use, stored
/// before `until` (ns), oldest first, stopping once what is left of them
/// fits in `keep_storage` bytes (0: no limit).
pub fn prunable(entries: &[CacheEntry], until: Option<u64>, keep_storage: u64) -> Vec<CacheEntry> {
    let free: Vec<&CacheEntry> = entries.iter().filter(|e| !e.in_use).collect();
    let mut left: u64 = free.iter().map(|e| e.size).sum();
    let mut out = Vec::new();
    for e in free {
        if keep_storage > 0 && left <= keep_storage {
            break;
        }
        if until.is_some_and(|u| e.stored_ns >= u) {
            continue;
        }
        left -= e.size;
        out.push(e.clone());
    }
    out
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

    fn entry(id: &str, size: u64, at: u64, in_use: bool) -> CacheEntry {
        CacheEntry {
            id: id.into(),
            parent: "p".into(),
            size,
            stored_ns: at,
            in_use,
        }
    }

    #[test]
    fn prune_takes_the_oldest_free_entries_first() {
        let all = [
            entry("a", 10, 1, false),
            entry("b", 20, 2, true),
            entry("c", 30, 3, false),
            entry("d", 40, 4, false),
        ];
        let ids = |v: Vec<CacheEntry>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(prunable(&all, None, 0)), ["a", "c", "d"]);
        assert_eq!(ids(prunable(&all, Some(4), 0)), ["a", "c"]);
        // 80 free; keeping 45 removes the oldest until 40 are left.
        assert_eq!(ids(prunable(&all, None, 45)), ["a", "c"]);
    }

    fn tar_of(mtime: u64, content: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
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
