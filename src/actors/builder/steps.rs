//! The steps of a build: FROM, RUN in a container, COPY through a
//! container's root filesystem, and the metadata steps, each ending in an
//! image the ImageService stores.

use std::os::fd::AsFd;
use std::path::Path;

use bollard_stubs::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use tokio::io::AsyncReadExt;

use super::{short, BuildEnv, BuildOptions, Output, StageState, StepError};
use crate::actors::container::{Attach, Start, Wait, WaitCondition};
use crate::actors::container_service::{
    CommitContainer, CreateContainer, GetActor, RemoveContainer,
};
use crate::builder::dockerfile::Instruction;
use crate::error::{Error, Result};
use crate::images::build as b;
use crate::images::build_cache as cache;
use crate::images::commit::{BuildStep, CommitRequest};
use crate::registry::reference::Reference;

type StepResult<T> = std::result::Result<T, StepError>;

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("engine: {e}"))
}

/// dockerd's system.DefaultPathEnv on Linux.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// FROM: an earlier stage, `scratch`, or an image (pulled when missing,
/// or always with `pull`).
pub(super) async fn from(
    env: &BuildEnv,
    opts: &BuildOptions,
    base: &str,
    done: &[(Option<String>, String)],
    out: &mut Output,
) -> StepResult<StageState> {
    let fresh = |image: String, mut config: bollard_stubs::models::ContainerConfig| {
        // dockerd gives every stage a PATH when its image has none (FROM
        // scratch among them).
        let env = config.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        StageState {
            image,
            config,
            shell: b::default_shell(),
            args: Default::default(),
            cache_busted: false,
            cmd_set: false,
        }
    };
    if let Some((_, id)) = done
        .iter()
        .rev()
        .find(|(name, _)| name.as_deref() == Some(base.to_lowercase().as_str()))
    {
        let config = env.image_files.container_config(id)?;
        return Ok(fresh(id.clone(), config));
    }
    if base == "scratch" {
        return Ok(fresh(String::new(), Default::default()));
    }
    let reference = Reference::parse(base).map_err(|e| Error::invalid(e.to_string()))?;
    let found = crate::images::query::resolve(&env.projection.current(), base)
        .map(|i| i.id.clone())
        .ok();
    let id = match found {
        Some(id) if !opts.pull => id,
        _ => pull(env, &reference.clone().with_default_tag(), out).await?,
    };
    let config = env.image_files.container_config(&id)?;
    let shell = config.shell.clone().filter(|s| !s.is_empty());
    let mut state = fresh(id, config);
    if let Some(shell) = shell {
        state.shell = shell;
    }
    Ok(state)
}

async fn pull(env: &BuildEnv, reference: &Reference, out: &mut Output) -> Result<String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    env.images
        .send(crate::actors::image_service::PullImage {
            reference: reference.clone(),
            auth: crate::registry::AuthConfig::from_header(None).registry_auth(),
            progress: tx,
        })
        .await
        .map_err(unavailable)?;
    while let Some(item) = rx.recv().await {
        match item {
            Ok(p) if p.id.is_none() && p.aux.is_none() => out.say(format!("{}\n", p.status)).await,
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    let name = reference.clone().with_default_tag();
    // A digest reference finds the image by its RepoDigest.
    let key = match (&name.digest, name.familiar_tagged()) {
        (Some(d), _) => format!("{}@{d}", name.familiar_name()),
        (None, Some(tagged)) => tagged,
        (None, None) => name.familiar_name(),
    };
    crate::images::query::resolve(&env.projection.current(), &key).map(|i| i.id.clone())
}

/// Any step after FROM.
pub(super) async fn step(
    env: &BuildEnv,
    opts: &BuildOptions,
    state: &mut StageState,
    inst: &Instruction,
    context: &Path,
    done: &[(Option<String>, String)],
    out: &mut Output,
) -> StepResult<()> {
    match inst {
        Instruction::Run { cmd, .. } => {
            run(env, opts, state, &b::command(cmd, &state.shell), out).await
        }
        Instruction::Copy {
            srcs,
            dest,
            from,
            chown,
            ..
        } => {
            let from = match from {
                Some(f) => Some(source_image(env, opts, f, done, out).await?),
                None => None,
            };
            copy(
                env,
                opts,
                state,
                srcs,
                dest,
                from.as_deref(),
                chown.as_deref(),
                context,
                "COPY",
                out,
            )
            .await
        }
        Instruction::Add {
            srcs, dest, chown, ..
        } => {
            // A URL is fetched into the context first (under a name of
            // its own), then added as a file that is never unpacked.
            let mut local = Vec::with_capacity(srcs.len());
            for src in srcs {
                if src.starts_with("http://") || src.starts_with("https://") {
                    local.push(fetch_url(src, context).await?);
                } else {
                    local.push(src.clone());
                }
            }
            copy(
                env,
                opts,
                state,
                &local,
                dest,
                None,
                chown.as_deref(),
                context,
                "ADD",
                out,
            )
            .await
        }
        Instruction::Workdir(dir) => {
            let wd = b::workdir(state.config.working_dir.as_deref(), dir);
            state.config.working_dir = Some(wd.clone());
            let cmd = b::nop_one(&state.shell, &format!("WORKDIR {wd}"));
            metadata_with(env, opts, state, cmd, Some(&wd), out).await
        }
        other => {
            if let Instruction::Expose(ports) = other {
                b::exposed_port_keys(ports).map_err(Error::invalid)?;
            }
            let mut config = state.config.clone();
            let cmd_before = config.cmd.clone();
            let Some(text) = b::apply_metadata(&mut config, &mut state.shell, other) else {
                return Err(Error::internal(format!("no step for {}", other.keyword())).into());
            };
            match other {
                Instruction::Cmd(_) => state.cmd_set = true,
                // ENTRYPOINT drops an inherited CMD, not one this stage set
                // (dockerd's cmdSet).
                Instruction::Entrypoint(_) if state.cmd_set => config.cmd = cmd_before,
                _ => {}
            }
            state.config = config;
            let cmd = b::nop_cmd(&state.shell, &text);
            metadata(env, opts, state, cmd, out).await
        }
    }
}

/// `COPY --from`: an earlier stage by name or number, else an image.
async fn source_image(
    env: &BuildEnv,
    opts: &BuildOptions,
    name: &str,
    done: &[(Option<String>, String)],
    out: &mut Output,
) -> Result<String> {
    if let Some((_, id)) = done
        .iter()
        .find(|(stage, _)| stage.as_deref() == Some(name.to_lowercase().as_str()))
    {
        return Ok(id.clone());
    }
    if let Ok(i) = name.parse::<usize>() {
        if let Some((_, id)) = done.get(i) {
            return Ok(id.clone());
        }
    }
    match from(env, opts, name, &[], out).await {
        Ok(s) => Ok(s.image),
        Err(e) => Err(Error::invalid(format!(
            "invalid from flag value {name}: {}",
            e.error.message()
        ))),
    }
}

/// The body of a step's container: the stage's config with the step's
/// command, no entrypoint, no log, the build's resources.
fn step_body(opts: &BuildOptions, state: &StageState, cmd: Vec<String>) -> ContainerCreateBody {
    let c = &state.config;
    let mut env = c.env.clone().unwrap_or_default();
    for (k, v) in &state.args {
        if let Some(v) = v {
            if !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                env.push(format!("{k}={v}"));
            }
        }
    }
    let mut host = opts.resources.clone();
    host.network_mode = opts.network_mode.clone().filter(|m| !m.is_empty());
    host.log_config = Some(HostConfigLogConfig {
        typ: Some("none".into()),
        config: None,
    });
    host.extra_hosts = (!opts.extra_hosts.is_empty()).then(|| opts.extra_hosts.clone());
    ContainerCreateBody {
        image: Some(state.image.clone()),
        cmd: Some(cmd),
        entrypoint: Some(vec![String::new()]),
        env: Some(env),
        working_dir: c.working_dir.clone(),
        user: c.user.clone(),
        labels: c.labels.clone(),
        host_config: Some(HostConfig { ..host }),
        ..Default::default()
    }
}

async fn create(env: &BuildEnv, body: ContainerCreateBody) -> Result<String> {
    env.containers
        .send(CreateContainer { name: None, body })
        .await
        .map_err(unavailable)?
}

async fn remove(env: &BuildEnv, id: &str) -> Result<()> {
    env.containers
        .send(RemoveContainer {
            name: id.to_string(),
            force: true,
            volumes: true,
        })
        .await
        .map_err(unavailable)?
}

/// Commits the step's container as the stage's next image.
async fn commit(env: &BuildEnv, state: &mut StageState, id: &str, step: BuildStep) -> Result<()> {
    let mut config = state.config.clone();
    config.image = Some(state.image.clone());
    let image = env
        .containers
        .send(CommitContainer {
            name: id.to_string(),
            request: CommitRequest {
                user_config: config,
                pause: false,
                build_step: Some(step),
                ..Default::default()
            },
        })
        .await
        .map_err(unavailable)??;
    state.image = image;
    Ok(())
}

/// RUN: a container of the stage's image runs the command; its output
/// is the build's; what it changed becomes the next image.
async fn run(
    env: &BuildEnv,
    opts: &BuildOptions,
    state: &mut StageState,
    cmd: &[String],
    out: &mut Output,
) -> StepResult<()> {
    if state.image.is_empty() {
        return Err(
            Error::invalid("berth's builder cannot RUN in a stage FROM scratch yet").into(),
        );
    }
    // Build args in scope show in the history and the cache key, as
    // dockerd's saveCmd.
    let args: Vec<String> = state
        .args
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    let save_cmd: Vec<String> = if args.is_empty() {
        cmd.to_vec()
    } else {
        std::iter::once(format!("|{}", args.len()))
            .chain(args)
            .chain(cmd.iter().cloned())
            .collect()
    };
    let key = cache::step_config(&state.config, &state.image, save_cmd.clone(), true);
    if probe(env, opts, state, &key, out).await {
        return Ok(());
    }
    let id = create(env, step_body(opts, state, cmd.to_vec())).await?;
    out.say(format!(" ---> Running in {}\n", short(&id))).await;
    let outcome = run_container(env, &id, out).await;
    let succeeded = matches!(outcome, Ok(0));
    let result = match outcome {
        Ok(0) => {
            let step = BuildStep {
                created_by: save_cmd.join(" "),
                container_config: key,
            };
            commit(env, state, &id, step).await.map_err(StepError::from)
        }
        Ok(code) => Err(StepError {
            error: Error::internal(format!(
                "The command '{}' returned a non-zero code: {code}",
                cmd.join(" ")
            )),
            code: Some(code),
        }),
        Err(e) => Err(e.into()),
    };
    if opts.force_rm || (opts.rm && succeeded && result.is_ok()) {
        remove_intermediate(env, &id, out).await;
    }
    result
}

/// Starts the container with its output attached; answers its exit code.
async fn run_container(env: &BuildEnv, id: &str, out: &mut Output) -> Result<i64> {
    let (_, actor) = env
        .containers
        .send(GetActor {
            name: id.to_string(),
        })
        .await
        .map_err(unavailable)??;
    let (mut mine, theirs) = tokio::io::duplex(64 << 10);
    actor
        .send(Attach {
            io: Box::new(theirs),
            stdin: false,
            stdout: true,
            stderr: true,
            detach_keys: None,
        })
        .await
        .map_err(unavailable)?;
    actor.send(Start).await.map_err(unavailable)??;
    // The stream is framed (no tty): [stream, 0, 0, 0, len BE] + bytes.
    let mut header = [0u8; 8];
    loop {
        // A client gone (the build's stream closed) stops the step: the
        // container goes, nothing is committed (dockerd's cancel).
        let frame = tokio::select! {
            r = mine.read_exact(&mut header) => r.is_ok(),
            _ = out.tx.closed() => {
                tracing::info!(container = %id, "build cancelled by its client");
                let _ = remove(env, id).await;
                return Err(Error::internal("Build cancelled"));
            }
        };
        if !frame {
            break;
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut data = vec![0u8; len];
        if mine.read_exact(&mut data).await.is_err() {
            break;
        }
        let text = String::from_utf8_lossy(&data).into_owned();
        if header[0] == 2 {
            out.stderr(text).await;
        } else {
            out.say(text).await;
        }
    }
    let waited = actor
        .send(Wait(WaitCondition::NotRunning))
        .await
        .map_err(unavailable)?;
    let outcome = waited
        .await
        .map_err(|_| Error::internal("the step's container went away"))?;
    Ok(outcome.status_code)
}

/// A metadata step: the config changes, no file does (dockerd commits a
/// container for it; its diff is empty, so the image has no new layer).
async fn metadata(
    env: &BuildEnv,
    opts: &BuildOptions,
    state: &mut StageState,
    cmd: Vec<String>,
    out: &mut Output,
) -> StepResult<()> {
    metadata_with(env, opts, state, cmd, None, out).await
}

/// A metadata step; WORKDIR's also makes its directory in the image, as
/// dockerd's ContainerCreateWorkdir (root's, 0755).
async fn metadata_with(
    env: &BuildEnv,
    opts: &BuildOptions,
    state: &mut StageState,
    cmd: Vec<String>,
    workdir: Option<&str>,
    out: &mut Output,
) -> StepResult<()> {
    let key = cache::step_config(&state.config, &state.image, cmd.clone(), false);
    if probe(env, opts, state, &key, out).await {
        return Ok(());
    }
    let step = BuildStep {
        created_by: cmd.join(" "),
        container_config: key,
    };
    if state.image.is_empty() {
        // FROM scratch: an image with no layer at all.
        let (spool, _) = crate::spool::Spool::create(&env.tmp, "build-scratch")?;
        return commit_on_scratch(env, state, spool, step)
            .await
            .map_err(StepError::from);
    }
    let body = ContainerCreateBody {
        cmd: Some(cmd),
        ..step_body(&BuildOptions::default(), state, Vec::new())
    };
    let id = create(env, body).await?;
    out.say(format!(" ---> Running in {}\n", short(&id))).await;
    let made = match workdir {
        Some(wd) => make_workdir(env, &id, wd).await,
        None => Ok(()),
    };
    let committed = match made {
        Ok(()) => commit(env, state, &id, step).await,
        Err(e) => Err(e),
    };
    if opts.force_rm || (opts.rm && committed.is_ok()) {
        remove_intermediate(env, &id, out).await;
    }
    committed.map_err(StepError::from)
}

/// The build cache: an image made earlier from the stage's image by a step
/// with the same run config `key` becomes the stage's image, and the build
/// says so as dockerd (` ---> Using cache`). After a miss the stage's
/// later steps have fresh parents, so they are not looked up.
async fn probe(
    env: &BuildEnv,
    opts: &BuildOptions,
    state: &mut StageState,
    key: &bollard_stubs::models::ContainerConfig,
    out: &mut Output,
) -> bool {
    if opts.no_cache || state.cache_busted {
        return false;
    }
    let current = env.projection.current();
    let children: Vec<(&str, &str, bollard_stubs::models::ContainerConfig)> = current
        .images
        .values()
        .filter(|i| i.parent == state.image)
        .filter_map(|i| {
            let stored = env.image_files.step_config(&i.id).ok()?;
            Some((
                i.id.as_str(),
                i.created.as_deref().unwrap_or_default(),
                stored,
            ))
        })
        .collect();
    let hit = cache::pick(key, children).map(str::to_string);
    match hit {
        Some(id) => {
            tracing::debug!(image = %id, "build cache hit");
            state.image = id;
            out.say(" ---> Using cache\n").await;
            true
        }
        None => {
            state.cache_busted = true;
            false
        }
    }
}

/// WORKDIR's directory in the step's container: made with its parents,
/// refused in dockerd's words where a non-directory is.
async fn make_workdir(env: &BuildEnv, id: &str, wd: &str) -> Result<()> {
    let (storage, projection) = (env.storage.clone(), env.projection.clone());
    let (id, wd) = (id.to_string(), wd.to_string());
    tokio::task::spawn_blocking(move || {
        use crate::containers::archive;
        let root = storage.open_root(&projection.current(), &id)?;
        if let Ok(st) = archive::stat(root.fd.as_fd(), &wd, &id, None) {
            if st.mode & (1 << 31) == 0 && st.link_target.is_empty() {
                return Err(Error::invalid(format!(
                    "Cannot mkdir: {wd} is not a directory"
                )));
            }
        }
        let owner = root.ids.as_ref().map_or((0, 0), |ids| ids.to_host(0, 0));
        crate::drivers::storage::extract::make_dir_in_root(root.fd.as_fd(), &wd, Some(owner))
    })
    .await
    .map_err(|e| Error::internal(format!("making the working directory: {e}")))?
}

/// Removes a step's container, saying so as dockerd does.
async fn remove_intermediate(env: &BuildEnv, id: &str, out: &mut Output) {
    match remove(env, id).await {
        Ok(()) => {
            out.say(format!("Removing intermediate container {}\n", short(id)))
                .await
        }
        Err(e) => {
            out.say(format!(
                "Error removing intermediate container {}: {}\n",
                short(id),
                e.message()
            ))
            .await
        }
    }
}

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
async fn copy(
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
async fn fetch_url(url: &str, context: &Path) -> StepResult<String> {
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

/// A step's image in a stage FROM scratch that has no image yet: the
/// layer (an empty one for a metadata step) is its first, no parent.
async fn commit_on_scratch(
    env: &BuildEnv,
    state: &mut StageState,
    layer: crate::spool::Spool,
    step: BuildStep,
) -> Result<()> {
    let mut config = state.config.clone();
    config.image = Some(String::new());
    let spec = crate::images::commit::CommitSpec {
        container_id: String::new(),
        container_config: step.container_config.clone(),
        user_config: config,
        changes: Vec::new(),
        author: String::new(),
        comment: String::new(),
        parent_id: String::new(),
        parent_config: Vec::new(),
        parent_chain: Vec::new(),
        created: crate::clock::rfc3339_now(),
        build_step: Some(step),
    };
    state.image = env
        .images
        .send(crate::actors::image_service::CommitImage {
            layer_tar: layer,
            spec,
            tag: None,
        })
        .await
        .map_err(unavailable)??;
    Ok(())
}
