//! One `docker build` (the classic builder, `POST /build`): the stages of a
//! parsed Dockerfile run step by step on the engine's own pieces — RUN in a
//! container of the ContainerService, COPY through a container's root
//! filesystem, every step's image stored by the ImageService's commit —
//! while the output goes out as dockerd 20.10 words it.
//!
//! The build cache is the step images themselves (images/build_cache.rs).
//! Not yet (issue 16): ADD of URLs, RUN in a stage FROM scratch before any
//! layer, `cachefrom`, cancelling a RUN when the client goes away.

mod copy;
mod steps;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use actix::Addr;
use bollard_stubs::models::ContainerConfig;
use tokio::sync::mpsc;

use crate::actors::container_service::ContainerService;
use crate::actors::image_service::ImageService;
use crate::builder::dockerfile::{Dockerfile, Instruction};
use crate::containers::storage::ContainerStorage;
use crate::error::Error;
use crate::events::projection::Projection;
use crate::registry::reference::Reference;

/// What a build needs of the engine.
#[derive(Clone)]
pub struct BuildEnv {
    pub containers: Addr<ContainerService>,
    pub images: Addr<ImageService>,
    pub projection: Projection,
    pub storage: Arc<ContainerStorage>,
    pub image_files: Arc<crate::images::files::ImageFiles>,
    /// `<data-root>/tmp`: spooled layers and copies.
    pub tmp: PathBuf,
}

/// The query of `POST /build` that the steps use.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub tags: Vec<Reference>,
    pub quiet: bool,
    /// Remove a step's container once the step succeeded.
    pub rm: bool,
    /// Remove it whatever happened.
    pub force_rm: bool,
    pub pull: bool,
    /// Run every step, reusing no cached one.
    pub no_cache: bool,
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub network_mode: Option<String>,
    pub extra_hosts: Vec<String>,
    pub resources: bollard_stubs::models::HostConfig,
    /// API 1.30 and later get the image ID as an aux message.
    pub aux: bool,
}

/// A line of the build's output stream.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildLine {
    Stdout(String),
    Stderr(String),
    Aux(String),
    Error { message: String, code: Option<i64> },
}

/// Where the steps write: the stream (or, with `q`, a buffer that only an
/// error lets out).
pub(crate) struct Output {
    pub(crate) tx: mpsc::Sender<BuildLine>,
    quiet: bool,
    held: Vec<BuildLine>,
}

impl Output {
    async fn send(&mut self, line: BuildLine) {
        if self.quiet {
            self.held.push(line);
        } else {
            let _ = self.tx.send(line).await;
        }
    }

    pub(crate) async fn say(&mut self, text: impl Into<String>) {
        self.send(BuildLine::Stdout(text.into())).await;
    }

    pub(crate) async fn stderr(&mut self, text: impl Into<String>) {
        self.send(BuildLine::Stderr(text.into())).await;
    }

    /// With `q`, what was held goes out before the error, as dockerd.
    async fn fail(&mut self, e: &Error, code: Option<i64>) {
        for line in std::mem::take(&mut self.held) {
            let _ = self.tx.send(line).await;
        }
        let _ = self
            .tx
            .send(BuildLine::Error {
                message: e.message().to_string(),
                code,
            })
            .await;
    }

    fn closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The build's state in a stage: the image so far and the config the next
/// step starts from.
pub(crate) struct StageState {
    /// "" for FROM scratch before any step.
    pub image: String,
    pub config: ContainerConfig,
    pub shell: Vec<String>,
    /// ARGs declared in this stage, with their values (a build arg's, else
    /// the default).
    pub args: BTreeMap<String, Option<String>>,
    /// A step of this stage missed the cache: the later ones cannot hit.
    pub cache_busted: bool,
    /// This stage has a CMD of its own (ENTRYPOINT keeps it).
    pub cmd_set: bool,
}

impl StageState {
    /// What `$VAR` sees: the stage's ENV, then its ARGs.
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name: &str| {
            for e in self.config.env.iter().flatten() {
                if let Some((k, v)) = e.split_once('=') {
                    if k == name {
                        return Some(v.to_string());
                    }
                }
            }
            self.args.get(name).cloned().flatten()
        }
    }
}

/// A failed step: its message, and the exit code of a RUN that failed.
pub(crate) struct StepError {
    pub error: Error,
    pub code: Option<i64>,
}

impl From<Error> for StepError {
    fn from(error: Error) -> Self {
        StepError { error, code: None }
    }
}

/// Runs the build; its output goes to `tx`, the last line saying how it
/// ended. `context` is the unpacked context (removed when the build ends).
pub async fn run(
    env: BuildEnv,
    opts: BuildOptions,
    dockerfile: Dockerfile,
    context: PathBuf,
    tx: mpsc::Sender<BuildLine>,
) {
    let mut out = Output {
        tx,
        quiet: opts.quiet,
        held: Vec::new(),
    };
    match build(&env, &opts, &dockerfile, &context, &mut out).await {
        Ok(id) => {
            if opts.quiet {
                let _ = out.tx.send(BuildLine::Stdout(format!("{id}\n"))).await;
            }
        }
        Err(StepError { error, code }) => {
            tracing::info!(error = %error, "build failed");
            out.fail(&error, code).await;
        }
    }
}

async fn build(
    env: &BuildEnv,
    opts: &BuildOptions,
    df: &Dockerfile,
    context: &std::path::Path,
    out: &mut Output,
) -> std::result::Result<String, StepError> {
    for w in &df.warnings {
        out.stderr(w.clone()).await;
    }
    let last_stage = match &opts.target {
        Some(t) if !t.is_empty() => df
            .target_stage(t)
            .map_err(|e| Error::invalid(e.to_string()))?,
        _ => df.stages.len().saturating_sub(1),
    };
    let total = df.args_before_first_from.len()
        + df.stages[..=last_stage.min(df.stages.len().saturating_sub(1))]
            .iter()
            .map(|s| 1 + s.instructions.len())
            .sum::<usize>()
        + opts.labels.len();
    let mut n = 0;
    let mut used_args: std::collections::BTreeSet<String> = Default::default();
    // ARGs before the first FROM: what FROM lines are expanded with.
    let mut meta: BTreeMap<String, Option<String>> = BTreeMap::new();
    for m in &df.args_before_first_from {
        n += 1;
        out.say(format!("Step {n}/{total} : {}", m.original)).await;
        out.say("\n").await;
        for a in &m.args {
            let value = match opts.build_args.get(&a.name) {
                Some(v) => {
                    used_args.insert(a.name.clone());
                    v.clone().or_else(|| a.default.clone())
                }
                None => a.default.clone(),
            };
            meta.insert(a.name.clone(), value);
        }
    }
    // Each stage's final image, by position and name (COPY --from, FROM).
    let mut done: Vec<(Option<String>, String)> = Vec::new();
    let mut image = String::new();
    for stage in df.stages.iter().take(last_stage + 1) {
        if let Some(name) = &stage.name {
            if done.iter().any(|(used, _)| used.as_ref() == Some(name)) {
                return Err(Error::invalid("a stage name already used").into());
            }
        }
        n += 1;
        out.say(format!("Step {n}/{total} : {}", stage.original))
            .await;
        out.say("\n").await;
        let lookup = |name: &str| meta.get(name).cloned().flatten();
        let base = crate::builder::expand::expand(&stage.base, df.directives.escape, &lookup)
            .map_err(|e| Error::invalid(e.to_string()))?;
        if base.is_empty() {
            return Err(
                Error::invalid(format!("base name ({}) should not be blank", stage.base)).into(),
            );
        }
        let mut state = steps::from(env, opts, &base, &done, out).await?;
        run_triggers(env, opts, &mut state, context, &done, out).await?;
        out.say(format!(" ---> {}\n", short(&state.image))).await;
        for step in &stage.instructions {
            if out.closed() {
                return Err(Error::internal("Build cancelled").into());
            }
            n += 1;
            out.say(format!("Step {n}/{total} : {}", step.original))
                .await;
            out.say("\n").await;
            if let Some(refusal) = step.instruction.classic_builder_refusal() {
                return Err(Error::invalid(refusal).into());
            }
            let inst = step
                .instruction
                .expanded(df.directives.escape, &state.lookup())
                .map_err(|e| Error::invalid(e.to_string()))?;
            if let Instruction::Arg(decls) = &inst {
                for a in decls {
                    let value = match opts.build_args.get(&a.name) {
                        Some(v) => {
                            used_args.insert(a.name.clone());
                            v.clone().or_else(|| a.default.clone())
                        }
                        None => meta
                            .get(&a.name)
                            .cloned()
                            .filter(|_| a.default.is_none())
                            .flatten()
                            .or_else(|| a.default.clone()),
                    };
                    state.args.insert(a.name.clone(), value);
                }
            }
            steps::step(env, opts, &mut state, &inst, context, &done, out).await?;
            out.say(format!(" ---> {}\n", short(&state.image))).await;
        }
        if done.len() == last_stage {
            // --label: a LABEL step of its own per label on the final
            // stage, as dockerd's output counts and prints them.
            for (k, v) in &opts.labels {
                n += 1;
                out.say(format!("Step {n}/{total} : LABEL {k}={v}\n")).await;
                let label = Instruction::Label(vec![crate::builder::dockerfile::KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                }]);
                steps::step(env, opts, &mut state, &label, context, &done, out).await?;
                out.say(format!(" ---> {}\n", short(&state.image))).await;
            }
        }
        image = state.image.clone();
        if opts.aux && !image.is_empty() {
            out.send(BuildLine::Aux(image.clone())).await;
        }
        done.push((stage.name.clone(), state.image));
    }
    if image.is_empty() {
        return Err(Error::invalid(crate::builder::dockerfile::NO_IMAGE_GENERATED).into());
    }
    let unused: Vec<&String> = opts
        .build_args
        .keys()
        .filter(|k| !used_args.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        out.say(format!(
            "[Warning] One or more build-args [{}] were not consumed\n",
            names.join(" ")
        ))
        .await;
    }
    out.say(format!("Successfully built {}\n", short(&image)))
        .await;
    for t in &opts.tags {
        env.images
            .send(crate::actors::image_service::TagImage {
                source: image.clone(),
                target: t.clone().with_default_tag(),
            })
            .await
            .map_err(|e| Error::unavailable(format!("image service: {e}")))??;
        let name = t
            .clone()
            .with_default_tag()
            .familiar_tagged()
            .unwrap_or_default();
        out.say(format!("Successfully tagged {name}\n")).await;
    }
    Ok(image)
}

/// The ONBUILD triggers of a stage's base image run first, as steps of
/// the FROM, and are not passed on (dockerd's dispatchTriggeredOnBuild).
async fn run_triggers(
    env: &BuildEnv,
    opts: &BuildOptions,
    state: &mut StageState,
    context: &std::path::Path,
    done: &[(Option<String>, String)],
    out: &mut Output,
) -> std::result::Result<(), StepError> {
    let triggers = state.config.on_build.take().unwrap_or_default();
    if triggers.is_empty() {
        return Ok(());
    }
    let plural = if triggers.len() > 1 { "s" } else { "" };
    out.say(format!(
        "# Executing {} build trigger{plural}\n",
        triggers.len()
    ))
    .await;
    for trigger in &triggers {
        let inst = crate::builder::dockerfile::parse_trigger(trigger)
            .map_err(|e| Error::invalid(e.to_string()))?;
        if let Some(refusal) = inst.classic_builder_refusal() {
            return Err(Error::invalid(refusal).into());
        }
        let inst = inst
            .expanded('\\', &state.lookup())
            .map_err(|e| Error::invalid(e.to_string()))?;
        steps::step(env, opts, state, &inst, context, done, out).await?;
    }
    Ok(())
}

/// Build args every build knows without an ARG (proxies), never reported
/// as unused.
const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// An image or container ID as the build prints it: 12 hex digits.
pub(crate) fn short(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex[..12.min(hex.len())].to_string()
}
