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
            super::copy::copy(
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
                    local.push(super::copy::fetch_url(src, context).await?);
                } else {
                    local.push(src.clone());
                }
            }
            super::copy::copy(
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
pub(super) fn step_body(
    opts: &BuildOptions,
    state: &StageState,
    cmd: Vec<String>,
) -> ContainerCreateBody {
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

pub(super) async fn create(env: &BuildEnv, body: ContainerCreateBody) -> Result<String> {
    env.containers
        .send(CreateContainer { name: None, body })
        .await
        .map_err(unavailable)?
}

pub(super) async fn remove(env: &BuildEnv, id: &str) -> Result<()> {
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
pub(super) async fn commit(
    env: &BuildEnv,
    state: &mut StageState,
    id: &str,
    step: BuildStep,
) -> Result<()> {
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
pub(super) async fn probe(
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

/// A step's image in a stage FROM scratch that has no image yet: the
/// layer (an empty one for a metadata step) is its first, no parent.
pub(super) async fn commit_on_scratch(
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
