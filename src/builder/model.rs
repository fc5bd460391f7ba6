//! The typed Dockerfile the parser (`dockerfile.rs`) gives: stages, steps,
//! instructions with their flags, and the errors dockerd words; and what
//! can be done with them without the engine (expanding an instruction's
//! variables, the refusals of the classic builder, finding a `--target`).

use std::time::Duration;

use super::expand::{expand, expand_words, ExpandError};
use super::parser::Directives;

/// A Dockerfile dockerd refuses. Display is dockerd's text for a Dockerfile
/// named `Dockerfile`; [`ParseError::message_for`] gives it for another name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A zero-byte file.
    #[error("the Dockerfile (Dockerfile) cannot be empty")]
    Empty,
    /// A first-pass error (directives, continuations, ENV/LABEL syntax, JSON
    /// arrays, no instruction at all, a line over 64 KiB).
    #[error("failed to parse Dockerfile: {message}")]
    Syntax { line: usize, message: String },
    /// An instruction dockerd refuses (unknown keyword, bad flags, wrong
    /// number of arguments...). `line` is where the instruction starts.
    #[error("dockerfile parse error line {line}: {message}")]
    Instruction { line: usize, message: String },
    /// A heredoc (`RUN <<EOF`): BuildKit syntax the classic builder never
    /// supported (dockerd 20.10 would run `<<EOF` as shell text and then
    /// stumble on the heredoc's body as unknown instructions).
    #[error(
        "dockerfile parse error line {line}: heredocs ({word}) are not supported by the classic builder (DOCKER_BUILDKIT=0); build with BuildKit to use them"
    )]
    Heredoc { line: usize, word: String },
    /// An instruction other than ARG before the first FROM.
    #[error("no build stage in current context")]
    NoBuildStage { line: usize },
    /// An ONBUILD trigger that fails when it runs in a child build (dockerd
    /// prints the bare message there).
    #[error("{message}")]
    Trigger { message: String },
}

impl ParseError {
    /// dockerd's text when the Dockerfile is called `name` (the `dockerfile`
    /// build option: `failed to parse sub/Dockerfile.dev: ...`).
    pub fn message_for(&self, name: &str) -> String {
        match self {
            ParseError::Empty => format!("the Dockerfile ({name}) cannot be empty"),
            ParseError::Syntax { message, .. } => format!("failed to parse {name}: {message}"),
            other => other.to_string(),
        }
    }

    /// The (first) line concerned, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            ParseError::Syntax { line, .. }
            | ParseError::Instruction { line, .. }
            | ParseError::Heredoc { line, .. }
            | ParseError::NoBuildStage { line } => Some(*line),
            ParseError::Empty | ParseError::Trigger { .. } => None,
        }
    }
}

/// The message dockerd gives when a Dockerfile holds only ARGs (parsing
/// succeeds; the build produces no image).
pub const NO_IMAGE_GENERATED: &str = "No image was generated. Is your Dockerfile empty?";

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Directives,
    /// Warnings dockerd writes to the build's stderr before step 1 (empty
    /// continuation lines), one string per line group.
    pub warnings: Vec<String>,
    /// ARG instructions before the first FROM: each is a build step, and
    /// their values are what FROM lines are expanded with.
    pub args_before_first_from: Vec<MetaArg>,
    pub stages: Vec<Stage>,
}

/// An ARG instruction before the first FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaArg {
    pub args: Vec<ArgDecl>,
    /// The instruction as dockerd prints it in `Step N/M : ...`.
    pub original: String,
    pub line: usize,
}

/// One `name[=default]` of an ARG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// `None` for `ARG name`, `Some("")` for `ARG name=`.
    pub default: Option<String>,
}

/// A FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The image or stage name as written (not expanded; `scratch` is
    /// literal).
    pub base: String,
    /// `AS name`, lowercased as dockerd does.
    pub name: Option<String>,
    /// `--platform=...` as written (not expanded).
    pub platform: Option<String>,
    /// The FROM line as dockerd prints it in `Step N/M : ...`.
    pub original: String,
    pub line: usize,
    pub instructions: Vec<Step>,
}

/// One instruction in a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub instruction: Instruction,
    /// The logical line, continuations joined and trimmed: what dockerd
    /// prints after `Step N/M : `.
    pub original: String,
    /// First and last physical line (1-based).
    pub line: usize,
    pub end_line: usize,
}

/// A command in exec (JSON) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// `["exe", "arg"]`: run as is.
    Exec(Vec<String>),
    /// Text to run with the current SHELL (`/bin/sh -c`). Empty when the
    /// instruction had no argument: dockerd then records the shell alone for
    /// RUN and CMD (`/bin/sh -c`) and clears the ENTRYPOINT.
    Shell(String),
}

/// `key=value` of ENV and LABEL (not expanded: quotes still in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// HEALTHCHECK's argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check (`Test: ["NONE"]`).
    None,
    /// `HEALTHCHECK [flags] CMD ...`: `Test` is `["CMD", ...]` for the exec
    /// form, `["CMD-SHELL", text]` for the shell form. Unset durations and
    /// retries are `None` (dockerd stores 0).
    Cmd {
        test: CommandLine,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        retries: Option<u32>,
    },
}

/// An instruction inside a stage (FROM starts a [`Stage`] instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// RUN; `mounts` are `--mount` values, which the classic builder refuses
    /// when it runs the step (see [`Instruction::classic_builder_refusal`]).
    Run {
        cmd: CommandLine,
        mounts: Vec<String>,
    },
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Env(Vec<KeyValue>),
    Arg(Vec<ArgDecl>),
    Label(Vec<KeyValue>),
    /// Ports as written, sorted as dockerd sorts them (byte order).
    Expose(Vec<String>),
    Workdir(String),
    User(String),
    /// Paths, trimmed.
    Volume(Vec<String>),
    Copy {
        srcs: Vec<String>,
        dest: String,
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<String>,
    },
    Add {
        srcs: Vec<String>,
        dest: String,
        chown: Option<String>,
        chmod: Option<String>,
    },
    /// SHELL (always the JSON form).
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// ONBUILD. `expression` is the trigger's text as dockerd stores it in
    /// the image's `OnBuild` list (the line without `ONBUILD `). dockerd only
    /// checks the trigger's keyword when the parent is built; the rest is
    /// checked when a child build runs it, re-parsed with the default escape
    /// character — `trigger` is that parse (`dockerfile::parse_trigger`), whose error
    /// the child build reports.
    Onbuild {
        expression: String,
        trigger: Result<Box<Instruction>, ParseError>,
    },
    Maintainer(String),
}

impl Instruction {
    /// The keyword, uppercase.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run { .. } => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Label(_) => "LABEL",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::User(_) => "USER",
            Instruction::Volume(_) => "VOLUME",
            Instruction::Copy { .. } => "COPY",
            Instruction::Add { .. } => "ADD",
            Instruction::Shell(_) => "SHELL",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Onbuild { .. } => "ONBUILD",
            Instruction::Maintainer(_) => "MAINTAINER",
        }
    }

    /// The error dockerd's classic builder gives when it reaches this step
    /// although parsing accepted it: BuildKit-only flags (`COPY --chmod`,
    /// `ADD --chmod`, `RUN --mount`).
    pub fn classic_builder_refusal(&self) -> Option<String> {
        let flag = match self {
            Instruction::Copy { chmod: Some(_), .. } | Instruction::Add { chmod: Some(_), .. } => {
                "chmod"
            }
            Instruction::Run { mounts, .. } if !mounts.is_empty() => "mount",
            _ => return None,
        };
        Some(format!(
            "the --{flag} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"
        ))
    }

    /// The instruction with variables substituted as dockerd does before
    /// running the step (`lookup` sees the stage's ENV and the ARGs in scope):
    /// ENV/LABEL keys and values, ARG names and defaults, WORKDIR, USER,
    /// STOPSIGNAL, VOLUME paths, COPY/ADD sources, destination and `--chown`
    /// one word each; EXPOSE split into words. Others are returned unchanged.
    pub fn expanded(
        &self,
        escape: char,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Instruction, ExpandError> {
        let one = |w: &str| expand(w, escape, lookup);
        let all = |v: &[String]| v.iter().map(|w| one(w)).collect::<Result<Vec<_>, _>>();
        let opt = |o: &Option<String>| o.as_deref().map(one).transpose();
        let kvs = |v: &[KeyValue]| {
            v.iter()
                .map(|kv| {
                    Ok(KeyValue {
                        key: one(&kv.key)?,
                        value: one(&kv.value)?,
                    })
                })
                .collect::<Result<Vec<_>, ExpandError>>()
        };
        Ok(match self {
            Instruction::Env(v) => Instruction::Env(kvs(v)?),
            Instruction::Label(v) => Instruction::Label(kvs(v)?),
            Instruction::Arg(v) => Instruction::Arg(
                v.iter()
                    .map(|a| {
                        Ok(ArgDecl {
                            name: one(&a.name)?,
                            default: opt(&a.default)?,
                        })
                    })
                    .collect::<Result<Vec<_>, ExpandError>>()?,
            ),
            Instruction::Workdir(p) => Instruction::Workdir(one(p)?),
            Instruction::User(u) => Instruction::User(one(u)?),
            Instruction::StopSignal(s) => Instruction::StopSignal(one(s)?),
            Instruction::Volume(v) => Instruction::Volume(all(v)?),
            Instruction::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(expand_words(p, escape, lookup)?);
                }
                Instruction::Expose(out)
            }
            Instruction::Copy {
                srcs,
                dest,
                from,
                chown,
                chmod,
            } => Instruction::Copy {
                chown: opt(chown)?,
                srcs: all(srcs)?,
                dest: one(dest)?,
                from: from.clone(),
                chmod: chmod.clone(),
            },
            Instruction::Add {
                srcs,
                dest,
                chown,
                chmod,
            } => Instruction::Add {
                chown: opt(chown)?,
                srcs: all(srcs)?,
                dest: one(dest)?,
                chmod: chmod.clone(),
            },
            other => other.clone(),
        })
    }
}

impl Dockerfile {
    /// The number of steps dockerd announces (`Step N/M`): the ARGs before
    /// the first FROM, each FROM, each instruction.
    pub fn step_count(&self) -> usize {
        self.args_before_first_from.len()
            + self
                .stages
                .iter()
                .map(|s| 1 + s.instructions.len())
                .sum::<usize>()
    }

    /// The index of the stage `--target` names (case-insensitive, first
    /// match); dockerd builds the stages up to it.
    pub fn target_stage(&self, target: &str) -> Result<usize, TargetError> {
        self.stages
            .iter()
            .position(|s| {
                s.name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase() == target.to_lowercase())
            })
            .ok_or_else(|| TargetError {
                target: target.to_string(),
            })
    }
}

/// `--target` names no stage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to reach build target {target} in Dockerfile")]
pub struct TargetError {
    pub target: String,
}
