//! COPY and ADD: the sources gathered and hashed (the step's cache key)
//! before any container exists, then placed in a container of the stage's
//! image (or, FROM scratch, in a directory that becomes the first layer).
//! ADD's local archives are unpacked; its URLs are fetched from this host.

use std::os::fd::AsFd;
use std::path::Path;

use bollard_stubs::models::ContainerCreateBody;

use super::steps::{commit, commit_on_scratch, create, probe, remove, step_body};
use super::{BuildEnv, BuildOptions, Output, StageState, StepError};
use crate::error::{Error, Result};
use crate::images::build as b;
use crate::images::build_cache as cache;
use crate::images::commit::BuildStep;

type StepResult<T> = std::result::Result<T, StepError>;

/// One COPY source, spooled as a tar before the step's container exists
/// (its hash is the step's cache key).
struct Gathered {
    spool: crate::spool::Spool,
    is_dir: bool,
    /// The source's own name (the top entry of a file's tar).
    name: String,
    /// ADD of a local archive: its content is unpacked at the destination.
    archive: bool,
}

/// COPY and ADD of local files: the sources, read from the context (or
/// from `from`'s image) and hashed; a cached step with that hash is
/// reused, else they are written into a container of the stage's image,
/// whose change becomes the next image. ADD unpacks nothing yet.
#[allow(clippy::too_many_arguments)]
pub(super) async fn copy(
    env: &BuildEnv,
    opts: &BuildOptions,
    state: &mut StageState,
    srcs: &[String],
    dest: &str,
    from: Option<&str>,
    chown: Option<&str>,
    context: &Path,
    keyword: &str,
    out: &mut Output,
) -> StepResult<()> {
    // dockerd's normalizeDest: relative to the working directory, a
    // trailing slash kept (`.` under `/` is `/`).
    let joined = if dest.starts_with('/') {
        b::clean(dest)
    } else {
        b::clean(&format!(
            "{}/{dest}",
            state.config.working_dir.as_deref().unwrap_or("/")
        ))
    };
    let dest_is_dir = dest.ends_with('/') || joined == "/";
    let dest_abs = joined;
    let source = match from {
        Some(image) => {
            let body = ContainerCreateBody {
                image: Some(image.to_string()),
                cmd: Some(vec!["#(nop)".into()]),
                entrypoint: Some(vec![String::new()]),
                ..Default::default()
            };
            Some(create(env, body).await?)
        }
        None => None,
    };
    let gathered = {
        let (storage, projection) = (env.storage.clone(), env.projection.clone());
        let (source, srcs) = (source.clone(), srcs.to_vec());
        let (context, tmp) = (context.to_path_buf(), env.tmp.clone());
        let keyword = keyword.to_string();
        tokio::task::spawn_blocking(move || {
            gather_sources(
                &storage,
                &projection.current(),
                source.as_deref(),
                &context,
                &srcs,
                &tmp,
                &keyword,
            )
        })
        .await
        .map_err(|e| Error::internal(format!("copying: {e}")))
        .and_then(|r| r)
    };
    if let Some(s) = &source {
        let _ = remove(env, s).await;
    }
    let (gathered, hash) = gathered?;
    if gathered.len() > 1 && !dest_is_dir {
        return Err(Error::invalid(format!(
            "When using {keyword} with more than one source file, the destination must be a directory and end with a /"
        ))
        .into());
    }
    let cmd = b::nop_one(&state.shell, &format!("{keyword} {hash} in {dest} "));
    let key = cache::step_config(&state.config, &state.image, cmd.clone(), false);
    if probe(env, opts, state, &key, out).await {
        return Ok(());
    }
    let step = BuildStep {
        created_by: cmd.join(" "),
        container_config: key,
    };
    if state.image.is_empty() {
        return copy_onto_scratch(env, state, gathered, &dest_abs, dest_is_dir, step)
            .await
            .map_err(StepError::from);
    }
    let id = create(
        env,
        step_body(
            &BuildOptions::default(),
            state,
            b::nop_cmd(&state.shell, keyword),
        ),
    )
    .await?;
    let written = {
        let (storage, projection) = (env.storage.clone(), env.projection.clone());
        let (id, dest_abs, chown) = (id.clone(), dest_abs.clone(), chown.map(str::to_string));
        let tmp = env.tmp.clone();
        tokio::task::spawn_blocking(move || {
            let root = storage.open_root(&projection.current(), &id)?;
            place_sources(
                &root,
                &id,
                gathered,
                &dest_abs,
                dest_is_dir,
                chown.as_deref(),
                &tmp,
            )
        })
        .await
        .map_err(|e| Error::internal(format!("copying: {e}")))
        .and_then(|r| r)
    };
    let committed = match written {
        Ok(()) => commit(env, state, &id, step).await,
        Err(e) => Err(e),
    };
    let _ = remove(env, &id).await;
    committed.map_err(StepError::from)
}

/// Spools each source as a tar (blocking) and answers them with the
/// sources' hash as dockerd names it in history (`file:<hex>`,
/// `dir:<hex>`, `multi:<hex>`; ours hashes the tars without mtimes).
fn gather_sources(
    storage: &crate::containers::storage::ContainerStorage,
    state: &crate::events::projection::State,
    source: Option<&str>,
    context: &Path,
    srcs: &[String],
    tmp: &Path,
    keyword: &str,
) -> Result<(Vec<Gathered>, String)> {
    use crate::containers::archive;
    use sha2::Digest;
    let src_root = match source {
        Some(s) => storage.open_root(state, s)?.fd,
        None => rustix::fs::open(
            context,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::internal(format!("opening the build context: {e}")))?,
    };
    let what = if source.is_some() {
        "the source image"
    } else {
        "the build context"
    };
    let mut hash = sha2::Sha256::new();
    let mut gathered = Vec::new();
    let mut paths = Vec::new();
    for src in srcs {
        if source.is_none() && has_wildcards(src) {
            let pattern = b::context_path(src)
                .map_err(|e| Error::invalid(format!("{keyword} failed: {e}")))?;
            paths.extend(glob_context(context, &pattern)?);
        } else {
            paths.push(src.clone());
        }
    }
    if paths.is_empty() {
        return Err(Error::invalid(format!(
            "{keyword} failed: no source files were specified"
        )));
    }
    for src in &paths {
        let rel = if source.is_some() {
            b::clean(src)
        } else {
            let rel = b::context_path(src)
                .map_err(|e| Error::invalid(format!("{keyword} failed: {e}")))?;
            format!("/{rel}")
        };
        // A symlink among the sources is followed inside the context (or
        // the source image), as dockerd's scoped copy; its own name stays.
        let own_name = Path::new(&rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = archive::scoped_path(src_root.as_fd(), &rel)?;
        let st = archive::stat(src_root.as_fd(), &rel, what, None).map_err(|e| {
            if e.kind() == crate::error::ErrorKind::NotFound {
                Error::invalid(format!(
                    "{keyword} failed: file not found in build context or excluded by .dockerignore: stat {}: file does not exist",
                    src.trim_start_matches('/')
                ))
            } else {
                e
            }
        })?;
        let is_dir = st.mode & (1 << 31) != 0;
        let name = if own_name.is_empty() {
            st.name.clone()
        } else {
            own_name
        };
        let top = if is_dir { "." } else { name.as_str() };
        let (spool, file) = crate::spool::Spool::create(tmp, "build-copy")?;
        archive::write_tar(
            src_root.as_fd(),
            &rel,
            what,
            Some(top),
            None,
            std::io::BufWriter::new(file),
        )?;
        let file = std::fs::File::open(spool.path())
            .map_err(|e| Error::internal(format!("reading the copied files: {e}")))?;
        hash.update(cache::content_hash(std::io::BufReader::new(file))?);
        let archive = keyword == "ADD"
            && source.is_none()
            && !is_dir
            && !src.starts_with(FETCHED)
            && is_archive(&spool)?;
        gathered.push(Gathered {
            spool,
            is_dir,
            name,
            archive,
        });
    }
    let hex = hex::encode(hash.finalize());
    if paths.iter().all(|p| p.starts_with(FETCHED)) {
        // dockerd names what ADD fetched by its hash alone.
        return Ok((gathered, hex));
    }
    let prefix = match gathered.as_slice() {
        [one] if one.is_dir => "dir",
        [_] => "file",
        _ => "multi",
    };
    Ok((gathered, format!("{prefix}:{hex}")))
}

/// Writes the gathered sources into container `id` at `dest` (blocking):
/// a directory's contents into dest; a file into dest when that is a
/// directory, else as dest.
#[allow(clippy::too_many_arguments)]
fn place_sources(
    root: &crate::containers::storage::Root,
    id: &str,
    gathered: Vec<Gathered>,
    dest: &str,
    dest_is_dir: bool,
    chown: Option<&str>,
    tmp: &Path,
) -> Result<()> {
    use crate::containers::archive;
    let owner = match chown.filter(|c| !c.is_empty()) {
        None => (0, 0),
        Some(spec) => {
            let fd = root.fd.as_fd();
            let passwd = crate::drivers::exec::bundle::read_in_root_fd(fd, "etc/passwd");
            let group = crate::drivers::exec::bundle::read_in_root_fd(fd, "etc/group");
            b::chown_ids(spec, &passwd, &group).map_err(Error::invalid)?
        }
    };
    // Directories made on the way are created as the host sees them.
    let host_owner = root
        .ids
        .as_ref()
        .map_or(owner, |ids| ids.to_host(owner.0, owner.1));
    // The destination as the image resolves it: a symlink on the way (even
    // one to a missing directory) is followed inside the root, as dockerd.
    let dest = &archive::scoped_path(root.fd.as_fd(), dest)?;
    for g in gathered {
        if g.archive {
            // dockerd unpacks a local archive at dest with the owners it
            // holds (--chown does not apply).
            crate::drivers::storage::extract::make_dir_in_root(
                root.fd.as_fd(),
                dest,
                Some(host_owner),
            )?;
            let bad = |e: std::io::Error| Error::internal(format!("reading the archive: {e}"));
            let file = std::fs::File::open(g.spool.path()).map_err(bad)?;
            let mut outer = tar::Archive::new(std::io::BufReader::new(file));
            let mut entries = outer.entries().map_err(bad)?;
            let inner = entries
                .next()
                .ok_or_else(|| Error::internal("the archive went missing"))?
                .map_err(bad)?;
            archive::extract_to(
                root.fd.as_fd(),
                dest,
                id,
                inner,
                None,
                root.ids.clone(),
                false,
            )?;
            continue;
        }
        let into_existing_dir = !dest_is_dir
            && !g.is_dir
            && archive::stat(root.fd.as_fd(), dest, id, None)
                .map(|d| d.mode & (1 << 31) != 0)
                .unwrap_or(false);
        let (dir, spool) = if g.is_dir || dest_is_dir || into_existing_dir {
            (dest.to_string(), g.spool)
        } else {
            let p = Path::new(dest);
            let parent = p
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "/".into());
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (parent, renamed(&g.spool, &g.name, &name, tmp)?)
        };
        crate::drivers::storage::extract::make_dir_in_root(
            root.fd.as_fd(),
            &dir,
            Some(host_owner),
        )?;
        let file = std::fs::File::open(spool.path())
            .map_err(|e| Error::internal(format!("reading the copied files: {e}")))?;
        archive::extract_to(
            root.fd.as_fd(),
            &dir,
            id,
            std::io::BufReader::new(file),
            Some(owner),
            root.ids.clone(),
            false,
        )?;
    }
    Ok(())
}

/// A file's one-entry tar with its entry named `to` instead of `from`.
fn renamed(
    spool: &crate::spool::Spool,
    from: &str,
    to: &str,
    tmp: &Path,
) -> Result<crate::spool::Spool> {
    let bad = |e: std::io::Error| Error::internal(format!("renaming the copied file: {e}"));
    let input = std::fs::File::open(spool.path()).map_err(bad)?;
    let (out, file) = crate::spool::Spool::create(tmp, "build-copy")?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let mut archive = tar::Archive::new(std::io::BufReader::new(input));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let mut header = entry.header().clone();
        let path = entry.path_bytes().into_owned();
        let name = if path == from.as_bytes() {
            to.to_string()
        } else {
            String::from_utf8_lossy(&path).into_owned()
        };
        match entry.link_name_bytes().map(|l| l.into_owned()) {
            Some(link) => {
                let link = std::path::PathBuf::from(String::from_utf8_lossy(&link).into_owned());
                builder
                    .append_link(&mut header, &name, &link)
                    .map_err(bad)?;
            }
            None => builder
                .append_data(&mut header, &name, &mut entry)
                .map_err(bad)?,
        }
    }
    let mut written = builder.into_inner().map_err(bad)?;
    std::io::Write::flush(&mut written).map_err(bad)?;
    Ok(out)
}

/// Where ADD puts what it fetched, in the (private) context directory.
const FETCHED: &str = ".berth-fetched-";

/// ADD of a URL: fetched into the context as dockerd downloads it (the
/// name from the URL's path, mode 0600), answering its path there. berthd
/// reaches no host but this one: a URL whose host is not a loopback
/// address is refused with words that say so.
pub(super) async fn fetch_url(url: &str, context: &Path) -> StepResult<String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::invalid(format!("ADD failed: parsing {url}: {e}")))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(Error::invalid(format!(
            "ADD failed: {url}: berthd fetches remote sources only from this host (a loopback address); copy the file into the build context instead"
        ))
        .into());
    }
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(format!("cannot determine filename from url: {url}")))?;
    let failed = |e: &dyn std::fmt::Display| Error::invalid(format!("ADD failed: {url}: {e}"));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| failed(&e))?;
    let resp = client
        .get(parsed.clone())
        .send()
        .await
        .map_err(|e| failed(&e))?;
    if !resp.status().is_success() {
        return Err(Error::invalid(format!(
            "failed to GET {url} with status {}: {}",
            resp.status(),
            resp.status().canonical_reason().unwrap_or_default()
        ))
        .into());
    }
    let dir_name = format!("{FETCHED}{:012x}", crate::random::u64()? >> 16);
    let dir = context.join(&dir_name);
    std::fs::create_dir(&dir).map_err(|e| failed(&e))?;
    let path = dir.join(&name);
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| failed(&e))?;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
        let chunk = chunk.map_err(|e| failed(&e))?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(|e| failed(&e))?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(|e| failed(&e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| failed(&e))?;
    Ok(format!("{dir_name}/{name}"))
}

/// Whether a COPY source is a pattern (dockerd's containsWildcards).
fn has_wildcards(src: &str) -> bool {
    let mut escaped = false;
    for c in src.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// The context's paths matching `pattern` (relative, `/`-separated), in
/// the lexical order of dockerd's walk; symlinks are listed, not followed.
fn glob_context(context: &Path, pattern: &str) -> Result<Vec<String>> {
    let glob = crate::builder::glob::Glob::compile(pattern)
        .map_err(|_| Error::invalid("syntax error in pattern"))?;
    let mut found = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(rel) = pending.pop() {
        let dir = context.join(&rel);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Error::internal(format!("reading the build context: {e}")))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // Depth first, in order: push the subdirectories reversed.
        let mut subdirs = Vec::new();
        for name in names {
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::symlink_metadata(context.join(&path))
                .map_err(|e| Error::internal(format!("reading the build context: {e}")))?;
            if glob.matches(&path) {
                found.push(path.clone());
            }
            if meta.is_dir() {
                subdirs.push(path);
            }
        }
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(found)
}

/// ADD's test for a local archive, as dockerd's: a tar once decompressed.
fn is_archive(spool: &crate::spool::Spool) -> Result<bool> {
    let bad = |e: std::io::Error| Error::internal(format!("reading an ADD source: {e}"));
    let file = std::fs::File::open(spool.path()).map_err(bad)?;
    let mut outer = tar::Archive::new(std::io::BufReader::new(file));
    let Some(entry) = outer.entries().map_err(bad)?.next() else {
        return Ok(false);
    };
    let entry = entry.map_err(bad)?;
    let Ok(inner) = crate::decompress::reader(entry, "an ADD source") else {
        return Ok(false);
    };
    let mut inner = tar::Archive::new(inner);
    let first = inner.entries().ok().and_then(|mut e| e.next());
    Ok(matches!(first, Some(Ok(_))))
}

/// COPY or ADD in a stage FROM scratch: no container to write into, so
/// the sources are placed in a directory of their own that becomes the
/// image's first layer.
async fn copy_onto_scratch(
    env: &BuildEnv,
    state: &mut StageState,
    gathered: Vec<Gathered>,
    dest: &str,
    dest_is_dir: bool,
    step: BuildStep,
) -> Result<()> {
    let tmp = env.tmp.clone();
    let dest = dest.to_string();
    let layer = tokio::task::spawn_blocking(move || {
        let dir = crate::images::context::ContextDir::create(&tmp, "build-scratch")?;
        let fd = rustix::fs::open(
            dir.path(),
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::internal(format!("opening {}: {e}", dir.path().display())))?;
        let root = crate::containers::storage::Root::plain(fd);
        place_sources(&root, "scratch", gathered, &dest, dest_is_dir, None, &tmp)?;
        let (spool, file) = crate::spool::Spool::create(&tmp, "build-layer")?;
        crate::containers::archive::layer_tar(dir.path(), None, std::io::BufWriter::new(file))?;
        Ok::<_, Error>(spool)
    })
    .await
    .map_err(|e| Error::internal(format!("copying: {e}")))??;
    commit_on_scratch(env, state, layer, step).await
}
