//! The Dockerfile as dockerd 20.10's classic builder reads it: [`parse`]
//! gives a typed [`Dockerfile`] or dockerd's error.
//!
//! Two passes, as buildkit's `parser.Parse` then `instructions.Parse`:
//! the first (`parser.rs`) joins lines and splits arguments — its errors read
//! `failed to parse Dockerfile: ...`; the second checks each instruction —
//! its errors read `dockerfile parse error line N: ...`. A first-pass error
//! anywhere wins over a second-pass error on an earlier line, as in dockerd.
//!
//! The model it gives is `model.rs` (re-exported here).
//!
//! Nothing is expanded here: `$VAR`s, quotes and escapes stay in the words
//! for [`Instruction::expanded`] (see `expand.rs` for which instructions
//! dockerd expands).

use std::time::Duration;

use super::flags::{self, Kind};
use super::gocompat::{is_re2_space, parse_duration, parse_int32, quote, trim_space};
use super::parser::{parse_lines, LineError, Node};

pub use super::model::*;
pub use super::parser::Directives;

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let lines = parse_lines(text).map_err(from_line_error)?;
    let mut meta = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &lines.nodes {
        let parsed = parse_node(node, 0).map_err(|message| ParseError::Instruction {
            line: node.start_line,
            message,
        })?;
        let original = trim_space(&node.original).to_string();
        match parsed {
            Parsed::Stage(mut stage) => {
                stage.original = original;
                stage.line = node.start_line;
                stages.push(stage);
            }
            Parsed::Instruction(Instruction::Arg(args)) if stages.is_empty() => {
                meta.push(MetaArg {
                    args,
                    original,
                    line: node.start_line,
                });
            }
            Parsed::Instruction(instruction) => {
                let Some(stage) = stages.last_mut() else {
                    return Err(ParseError::NoBuildStage {
                        line: node.start_line,
                    });
                };
                stage.instructions.push(Step {
                    instruction,
                    original,
                    line: node.start_line,
                    end_line: node.end_line,
                });
            }
        }
    }
    Ok(Dockerfile {
        directives: lines.directives,
        warnings: lines.warnings,
        args_before_first_from: meta,
        stages,
    })
}

/// Parses an ONBUILD trigger as a child build does when it runs it (a fresh
/// parse with default directives; errors are the bare messages).
pub fn parse_trigger(expression: &str) -> Result<Instruction, ParseError> {
    parse_trigger_at(expression, 0)
}

fn parse_trigger_at(expression: &str, depth: usize) -> Result<Instruction, ParseError> {
    let trigger = |message: String| ParseError::Trigger { message };
    let lines = parse_lines(expression).map_err(|e| trigger(from_line_error(e).to_string()))?;
    let [node] = lines.nodes.as_slice() else {
        return Err(trigger(
            "onbuild trigger should be a single expression".into(),
        ));
    };
    match parse_node(node, depth).map_err(trigger)? {
        Parsed::Instruction(i) => Ok(i),
        Parsed::Stage(_) => Err(trigger("*instructions.Stage is not a command type".into())),
    }
}

fn from_line_error(e: LineError) -> ParseError {
    match e {
        LineError::Syntax { line, message } => ParseError::Syntax { line, message },
        LineError::Heredoc { line, word } => ParseError::Heredoc { line, word },
    }
}

enum Parsed {
    Stage(Stage),
    Instruction(Instruction),
}

/// Go's `strings.ToUpper` (simple case mapping).
fn upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut u = c.to_uppercase();
            match (u.next(), u.next()) {
                (Some(one), None) => one,
                _ => c,
            }
        })
        .collect()
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

const ONCE: Kind = Kind::Once;

/// buildkit's `ParseInstruction`; the error is the bare message.
fn parse_node(node: &Node, depth: usize) -> Result<Parsed, String> {
    let args = &node.args;
    let no_flags = || flags::parse(&node.flags, &[]).map(|_| ());
    let exactly_one = |name: &str| -> Result<String, String> {
        match args.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(format!("{name} requires exactly one argument")),
        }
    };
    let command_line = || {
        if node.json {
            CommandLine::Exec(args.clone())
        } else {
            CommandLine::Shell(args.join(" "))
        }
    };
    let instruction = match node.cmd.as_str() {
        "env" => {
            no_flags()?;
            Instruction::Env(key_values(args, "ENV")?)
        }
        "maintainer" => {
            let m = exactly_one("MAINTAINER")?;
            no_flags()?;
            Instruction::Maintainer(m)
        }
        "label" => {
            no_flags()?;
            Instruction::Label(key_values(args, "LABEL")?)
        }
        "add" | "copy" => {
            let keyword = upper(&node.cmd);
            let Some((dest, srcs)) = args.split_last().filter(|(_, s)| !s.is_empty()) else {
                return Err(format!("{keyword} requires at least two arguments, but only one was provided. Destination could not be determined"));
            };
            let (srcs, dest) = (srcs.to_vec(), dest.clone());
            if node.cmd == "add" {
                let f = flags::parse(&node.flags, &[("chown", ONCE), ("chmod", ONCE)])?;
                Instruction::Add {
                    srcs,
                    dest,
                    chown: non_empty(f.get("chown")),
                    chmod: non_empty(f.get("chmod")),
                }
            } else {
                let f = flags::parse(
                    &node.flags,
                    &[("chown", ONCE), ("from", ONCE), ("chmod", ONCE)],
                )?;
                Instruction::Copy {
                    srcs,
                    dest,
                    from: non_empty(f.get("from")),
                    chown: non_empty(f.get("chown")),
                    chmod: non_empty(f.get("chmod")),
                }
            }
        }
        "from" => {
            let name = match args.as_slice() {
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    let lower = name.to_lowercase();
                    if !valid_stage_name(&lower) {
                        return Err(format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            quote(name)
                        ));
                    }
                    Some(lower)
                }
                [_] => None,
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            let f = flags::parse(&node.flags, &[("platform", ONCE)])?;
            return Ok(Parsed::Stage(Stage {
                base: args[0].clone(),
                name,
                platform: non_empty(f.get("platform")),
                original: String::new(),
                line: 0,
                instructions: Vec::new(),
            }));
        }
        "onbuild" => {
            let Some(first) = args.first() else {
                return Err("ONBUILD requires at least one argument".into());
            };
            no_flags()?;
            let keyword = upper(trim_space(first));
            match keyword.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{keyword} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            let expression = strip_onbuild(&node.original).to_string();
            let trigger = if depth > 0 {
                Err(ParseError::Trigger {
                    message: "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                })
            } else {
                parse_trigger_at(&expression, depth + 1).map(Box::new)
            };
            Instruction::Onbuild {
                expression,
                trigger,
            }
        }
        "workdir" => {
            let p = exactly_one("WORKDIR")?;
            no_flags()?;
            Instruction::Workdir(p)
        }
        "run" => {
            let f = flags::parse(&node.flags, &[("mount", Kind::Many)])?;
            Instruction::Run {
                cmd: command_line(),
                mounts: f.all("mount").to_vec(),
            }
        }
        "cmd" => {
            no_flags()?;
            Instruction::Cmd(command_line())
        }
        "entrypoint" => {
            no_flags()?;
            Instruction::Entrypoint(command_line())
        }
        "healthcheck" => Instruction::Healthcheck(healthcheck(node)?),
        "expose" => {
            if args.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            no_flags()?;
            let mut ports = args.clone();
            ports.sort();
            Instruction::Expose(ports)
        }
        "user" => {
            let u = exactly_one("USER")?;
            no_flags()?;
            Instruction::User(u)
        }
        "volume" => {
            if args.is_empty() {
                return Err("VOLUME requires at least one argument".into());
            }
            no_flags()?;
            let mut paths = Vec::with_capacity(args.len());
            for a in args {
                let v = trim_space(a);
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                paths.push(v.to_string());
            }
            Instruction::Volume(paths)
        }
        // dockerd does not check STOPSIGNAL's or ARG's flags at all
        "stopsignal" => Instruction::StopSignal(exactly_one("STOPSIGNAL")?),
        "arg" => {
            if args.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            let mut decls = Vec::with_capacity(args.len());
            for a in args {
                decls.push(match a.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => ArgDecl {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    },
                    None => ArgDecl {
                        name: a.clone(),
                        default: None,
                    },
                });
            }
            Instruction::Arg(decls)
        }
        "shell" => {
            no_flags()?;
            if args.is_empty() {
                return Err("SHELL requires at least one argument".into());
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Instruction::Shell(args.clone())
        }
        other => return Err(format!("unknown instruction: {}", upper(other))),
    };
    Ok(Parsed::Instruction(instruction))
}

/// `^[a-z][a-z0-9-_\.]*$`
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// `(?i)^\s*ONBUILD\s*` removed.
fn strip_onbuild(original: &str) -> &str {
    let s = original.trim_start_matches(is_re2_space);
    match s.get(..7) {
        Some(k) if k.eq_ignore_ascii_case("onbuild") => s[7..].trim_start_matches(is_re2_space),
        _ => original,
    }
}

/// buildkit's `parseKvps`.
fn key_values(args: &[String], keyword: &str) -> Result<Vec<KeyValue>, String> {
    if args.is_empty() {
        return Err(format!("{keyword} requires at least one argument"));
    }
    if args.len() & 1 == 1 {
        return Err(format!("Bad input to {keyword}, too many arguments"));
    }
    args.chunks(2)
        .map(|kv| {
            if kv[0].is_empty() {
                Err(format!("{keyword} names can not be blank"))
            } else {
                Ok(KeyValue {
                    key: kv[0].clone(),
                    value: kv[1].clone(),
                })
            }
        })
        .collect()
}

fn healthcheck(node: &Node) -> Result<Healthcheck, String> {
    let Some((typ, rest)) = node.args.split_first() else {
        return Err("HEALTHCHECK requires at least one argument".into());
    };
    let typ = upper(typ);
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck::None);
    }
    let f = flags::parse(
        &node.flags,
        &[
            ("interval", ONCE),
            ("timeout", ONCE),
            ("start-period", ONCE),
            ("retries", ONCE),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            quote(&typ)
        ));
    }
    if rest.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let test = if node.json {
        CommandLine::Exec(rest.to_vec())
    } else {
        CommandLine::Shell(rest.join(" "))
    };
    let interval = |name: &str| -> Result<Option<Duration>, String> {
        let Some(v) = non_empty(f.get(name)) else {
            return Ok(None);
        };
        let nanos = parse_duration(&v)?;
        if nanos < 1_000_000 {
            return Err(format!("Interval {} cannot be less than 1ms", quote(name)));
        }
        Ok(Some(Duration::from_nanos(nanos.unsigned_abs())))
    };
    let (interval, timeout, start_period) = (
        interval("interval")?,
        interval("timeout")?,
        interval("start-period")?,
    );
    let retries = match non_empty(f.get("retries")) {
        None => None,
        Some(v) => {
            let n = parse_int32(&v)?;
            if n < 1 {
                return Err(format!("--retries must be at least 1 (not {n})"));
            }
            Some(n.unsigned_abs() as u32)
        }
    };
    Ok(Healthcheck::Cmd {
        test,
        interval,
        timeout,
        start_period,
        retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Dockerfile {
        match parse(text) {
            Ok(d) => d,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(d) => panic!("{text:?} parsed: {d:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn only(text: &str) -> Instruction {
        let d = ok(&format!("FROM busybox\n{text}\n"));
        match d.stages.as_slice() {
            [stage] if stage.instructions.len() == 1 => stage.instructions[0].instruction.clone(),
            _ => panic!("{text:?}: {d:?}"),
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v.into(),
        }
    }

    /// Each wording below was produced by dockerd 20.10.24 for the same
    /// Dockerfile (`DOCKER_BUILDKIT=0 docker build`).
    #[test]
    fn refusals_in_dockerds_words() {
        let cases: &[(&str, &str)] = &[
            ("", "the Dockerfile (Dockerfile) cannot be empty"),
            ("# hello\n\n", "failed to parse Dockerfile: file with no instructions"),
            ("RUN echo hi\n", "no build stage in current context"),
            ("ARG x\nRUN echo\n", "no build stage in current context"),
            ("FROM busybox\nFOO bar\n", "dockerfile parse error line 2: unknown instruction: FOO"),
            ("FROM busybox\nONBUILD ONBUILD RUN x\n", "dockerfile parse error line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
            ("FROM busybox\nONBUILD from x\n", "dockerfile parse error line 2: FROM isn't allowed as an ONBUILD trigger"),
            ("FROM busybox\nONBUILD maintainer x\n", "dockerfile parse error line 2: MAINTAINER isn't allowed as an ONBUILD trigger"),
            ("FROM busybox\nONBUILD\n", "dockerfile parse error line 2: ONBUILD requires at least one argument"),
            ("# escape=x\nFROM busybox\n", "failed to parse Dockerfile: invalid escape token 'x' does not match ` or \\"),
            ("# escape=`\n# escape=\\\nFROM busybox\n", "failed to parse Dockerfile: only one escape parser directive can be used"),
            ("FROM busybox\nENV a\n", "failed to parse Dockerfile: ENV must have two arguments"),
            ("FROM busybox\nENV a=1 b\n", "failed to parse Dockerfile: Syntax error - can't find = in \"b\". Must be of the form: name=value"),
            ("FROM busybox\nRUN [\"a\", 1]\n", "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only"),
            ("FROM busybox x\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
            ("FROM\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
            ("FROM busybox AS 1x\n", "dockerfile parse error line 1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"),
            ("FROM busybox\nCOPY a\n", "dockerfile parse error line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
            ("FROM busybox\nCOPY --foo=1 a b\n", "dockerfile parse error line 2: Unknown flag: foo"),
            ("FROM busybox\nCOPY --from a b\n", "dockerfile parse error line 2: Missing a value on flag: from"),
            ("FROM busybox\nCOPY --from=a --from=b a b\n", "dockerfile parse error line 2: Duplicate flag specified: from"),
            ("FROM busybox\nRUN --network=none echo \\\n   hi\n", "dockerfile parse error line 2: Unknown flag: network"),
            ("FROM busybox\nHEALTHCHECK NONE x\n", "dockerfile parse error line 2: HEALTHCHECK NONE takes no arguments"),
            ("FROM busybox\nHEALTHCHECK FOO x\n", "dockerfile parse error line 2: Unknown type \"FOO\" in HEALTHCHECK (try CMD)"),
            ("FROM busybox\nHEALTHCHECK CMD\n", "dockerfile parse error line 2: Missing command after HEALTHCHECK CMD"),
            ("FROM busybox\nHEALTHCHECK\n", "dockerfile parse error line 2: HEALTHCHECK requires at least one argument"),
            ("FROM busybox\nHEALTHCHECK --interval=abc CMD x\n", "dockerfile parse error line 2: time: invalid duration \"abc\""),
            ("FROM busybox\nHEALTHCHECK --interval=0s CMD x\n", "dockerfile parse error line 2: Interval \"interval\" cannot be less than 1ms"),
            ("FROM busybox\nHEALTHCHECK --timeout=-1s CMD x\n", "dockerfile parse error line 2: Interval \"timeout\" cannot be less than 1ms"),
            ("FROM busybox\nHEALTHCHECK --timeout=1 CMD x\n", "dockerfile parse error line 2: time: missing unit in duration \"1\""),
            ("FROM busybox\nHEALTHCHECK --timeout=1x CMD x\n", "dockerfile parse error line 2: time: unknown unit \"x\" in duration \"1x\""),
            ("FROM busybox\nHEALTHCHECK --retries=0 CMD x\n", "dockerfile parse error line 2: --retries must be at least 1 (not 0)"),
            ("FROM busybox\nHEALTHCHECK --retries=x CMD x\n", "dockerfile parse error line 2: strconv.ParseInt: parsing \"x\": invalid syntax"),
            ("FROM busybox\nHEALTHCHECK --retries=99999999999 CMD x\n", "dockerfile parse error line 2: strconv.ParseInt: parsing \"99999999999\": value out of range"),
            ("FROM busybox\nSHELL sh -c\n", "dockerfile parse error line 2: SHELL requires the arguments to be in JSON form"),
            ("FROM busybox\nSHELL []\n", "dockerfile parse error line 2: SHELL requires at least one argument"),
            ("FROM busybox\nVOLUME [\"\"]\n", "dockerfile parse error line 2: VOLUME specified can not be an empty string"),
            ("FROM busybox\nUSER\n", "dockerfile parse error line 2: USER requires exactly one argument"),
            ("FROM busybox\nEXPOSE\n", "dockerfile parse error line 2: EXPOSE requires at least one argument"),
            ("FROM busybox\nLABEL\n", "dockerfile parse error line 2: LABEL requires at least one argument"),
            ("FROM busybox\nLABEL =x\n", "dockerfile parse error line 2: LABEL names can not be blank"),
            ("FROM busybox\nARG\n", "dockerfile parse error line 2: ARG requires at least one argument"),
            ("FROM busybox\nARG =x\n", "dockerfile parse error line 2: ARG names can not be blank"),
            ("FROM busybox\nMAINTAINER\n", "dockerfile parse error line 2: MAINTAINER requires exactly one argument"),
            ("FROM busybox\nENV --x=1 a b\n", "dockerfile parse error line 2: Unknown flag: x"),
            ("FROM --foo=x busybox\n", "dockerfile parse error line 1: Unknown flag: foo"),
            ("FROM busybox\nCMD --help\n", "dockerfile parse error line 2: Unknown flag: help"),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), *want, "{text:?}");
        }
        let long = format!("FROM busybox\nRUN {}\n", "a".repeat(70_000));
        assert_eq!(
            err(&long),
            "failed to parse Dockerfile: dockerfile line greater than max allowed size of 65535"
        );
        // the line of a multi-line instruction is where it starts
        assert_eq!(
            err("FROM a\n\nbogus \\\n  x\n"),
            "dockerfile parse error line 3: unknown instruction: BOGUS"
        );
    }

    #[test]
    fn error_texts_for_another_dockerfile_name() {
        let e = parse("FROM a\nENV a\n").err();
        assert_eq!(
            e.map(|e| e.message_for("sub/Dockerfile.dev")).as_deref(),
            Some("failed to parse sub/Dockerfile.dev: ENV must have two arguments")
        );
        assert_eq!(
            ParseError::Empty.message_for("x.df"),
            "the Dockerfile (x.df) cannot be empty"
        );
    }

    #[test]
    fn heredocs_are_refused_clearly() {
        let e = err("FROM busybox\nRUN <<EOF\necho hi\nEOF\n");
        assert!(e.starts_with("dockerfile parse error line 2: heredocs (<<EOF) are not supported by the classic builder"), "{e}");
        assert!(matches!(
            parse("FROM a\nCOPY <<EOF /x\n"),
            Err(ParseError::Heredoc { line: 2, .. })
        ));
    }

    /// dockerd 20.10 accepts these (checked against the reference daemon).
    #[test]
    fn accepted_as_dockerd_accepts() {
        assert_eq!(only("WORKDIR a b"), Instruction::Workdir("a b".into()));
        assert_eq!(
            only("STOPSIGNAL a b"),
            Instruction::StopSignal("a b".into())
        );
        assert_eq!(
            only("STOPSIGNAL --x=1 TERM"),
            Instruction::StopSignal("TERM".into())
        );
        assert_eq!(
            only("ARG --x=1 a"),
            Instruction::Arg(vec![ArgDecl {
                name: "a".into(),
                default: None
            }])
        );
        assert_eq!(
            only("RUN"),
            Instruction::Run {
                cmd: CommandLine::Shell(String::new()),
                mounts: vec![]
            }
        );
        assert_eq!(
            only("CMD"),
            Instruction::Cmd(CommandLine::Shell(String::new()))
        );
        assert_eq!(only("CMD []"), Instruction::Cmd(CommandLine::Exec(vec![])));
        assert_eq!(
            only("HEALTHCHECK --interval=5s NONE"),
            Instruction::Healthcheck(Healthcheck::None)
        );
        assert!(matches!(
            only("HEALTHCHECK --interval=1ms CMD x"),
            Instruction::Healthcheck(Healthcheck::Cmd { interval: Some(d), .. }) if d == Duration::from_millis(1)
        ));
        // an ONBUILD trigger is only checked in the child build
        match only("ONBUILD FOO bar") {
            Instruction::Onbuild {
                expression,
                trigger,
            } => {
                assert_eq!(expression, "FOO bar");
                assert_eq!(
                    trigger.map_err(|e| e.to_string()),
                    Err("unknown instruction: FOO".to_string())
                );
            }
            other => panic!("{other:?}"),
        }
        // --mount and --chmod parse, and are refused when the step runs
        let run = only("RUN --mount=type=cache,target=/x echo hi");
        assert_eq!(
            run,
            Instruction::Run {
                cmd: CommandLine::Shell("echo hi".into()),
                mounts: s(&["type=cache,target=/x"])
            }
        );
        assert_eq!(
            run.classic_builder_refusal().as_deref(),
            Some("the --mount option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled")
        );
        assert_eq!(
            only("ADD --chmod=755 a b").classic_builder_refusal().as_deref(),
            Some("the --chmod option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled")
        );
        assert_eq!(only("COPY a b").classic_builder_refusal(), None);
        // only ARGs: parses, and the build then makes no image
        let d = ok("ARG x=1\n");
        assert!(d.stages.is_empty());
        assert_eq!(d.args_before_first_from.len(), 1);
    }

    #[test]
    fn a_whole_dockerfile() {
        let text = "\
# syntax=docker/dockerfile:1
ARG BASE=busybox
ARG TAG
from --platform=linux/amd64 ${BASE}:${TAG:-latest} AS Builder
run echo \\
    hi
COPY --from=0 --chown=1:2 [\"a b\", \"/c d/\"]
Env a=1 b=\"x y\"
ENV k v w
LABEL \"com.x\"=\"y z\" q=1
EXPOSE 8080/tcp 443 80
VOLUME /a /b
VOLUME [\"/c\"]
USER 1000:1000
WORKDIR /w
SHELL [\"/bin/bash\", \"-c\"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --retries=3 CMD curl -f http://localhost/ || exit 1
ONBUILD   RUN echo child
MAINTAINER me
ENTRYPOINT [\"/bin/app\"]
CMD echo --help
FROM scratch
ADD --chown=u x.tar /
";
        let d = ok(text);
        assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.directives.escape, '\\');
        assert!(d.warnings.is_empty());
        assert_eq!(
            d.args_before_first_from,
            vec![
                MetaArg {
                    args: vec![ArgDecl {
                        name: "BASE".into(),
                        default: Some("busybox".into())
                    }],
                    original: "ARG BASE=busybox".into(),
                    line: 2
                },
                MetaArg {
                    args: vec![ArgDecl {
                        name: "TAG".into(),
                        default: None
                    }],
                    original: "ARG TAG".into(),
                    line: 3
                },
            ]
        );
        assert_eq!(d.stages.len(), 2);
        let st = &d.stages[0];
        assert_eq!(st.base, "${BASE}:${TAG:-latest}");
        assert_eq!(st.name.as_deref(), Some("builder"));
        assert_eq!(st.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(
            st.original,
            "from --platform=linux/amd64 ${BASE}:${TAG:-latest} AS Builder"
        );
        assert_eq!(st.line, 4);
        let steps: Vec<(&str, usize)> = st
            .instructions
            .iter()
            .map(|s| (s.original.as_str(), s.line))
            .collect();
        assert_eq!(steps[0], ("run echo     hi", 5));
        assert_eq!(st.instructions[0].end_line, 6);
        let want = vec![
            Instruction::Run {
                cmd: CommandLine::Shell("echo     hi".into()),
                mounts: vec![],
            },
            Instruction::Copy {
                srcs: s(&["a b"]),
                dest: "/c d/".into(),
                from: Some("0".into()),
                chown: Some("1:2".into()),
                chmod: None,
            },
            Instruction::Env(vec![kv("a", "1"), kv("b", "\"x y\"")]),
            Instruction::Env(vec![kv("k", "v w")]),
            Instruction::Label(vec![kv("\"com.x\"", "\"y z\""), kv("q", "1")]),
            Instruction::Expose(s(&["443", "80", "8080/tcp"])),
            Instruction::Volume(s(&["/a", "/b"])),
            Instruction::Volume(s(&["/c"])),
            Instruction::User("1000:1000".into()),
            Instruction::Workdir("/w".into()),
            Instruction::Shell(s(&["/bin/bash", "-c"])),
            Instruction::StopSignal("SIGTERM".into()),
            Instruction::Healthcheck(Healthcheck::Cmd {
                test: CommandLine::Shell("curl -f http://localhost/ || exit 1".into()),
                interval: Some(Duration::from_secs(5)),
                timeout: Some(Duration::from_secs(3)),
                start_period: Some(Duration::from_secs(60)),
                retries: Some(3),
            }),
            Instruction::Onbuild {
                expression: "RUN echo child".into(),
                trigger: Ok(Box::new(Instruction::Run {
                    cmd: CommandLine::Shell("echo child".into()),
                    mounts: vec![],
                })),
            },
            Instruction::Maintainer("me".into()),
            Instruction::Entrypoint(CommandLine::Exec(s(&["/bin/app"]))),
            Instruction::Cmd(CommandLine::Shell("echo --help".into())),
        ];
        let got: Vec<Instruction> = st
            .instructions
            .iter()
            .map(|s| s.instruction.clone())
            .collect();
        assert_eq!(got, want);
        let st = &d.stages[1];
        assert_eq!((st.base.as_str(), st.name.as_deref()), ("scratch", None));
        assert_eq!(
            st.instructions[0].instruction,
            Instruction::Add {
                srcs: s(&["x.tar"]),
                dest: "/".into(),
                chown: Some("u".into()),
                chmod: None
            }
        );
        assert_eq!(d.step_count(), 2 + 1 + 17 + 1 + 1);
        assert_eq!(d.target_stage("BUILDER"), Ok(0));
        assert_eq!(
            d.target_stage("nope").map_err(|e| e.to_string()),
            Err("failed to reach build target nope in Dockerfile".to_string())
        );
    }

    #[test]
    fn escape_directive_with_backtick_and_continuations() {
        let d = ok(
            "# escape=`\nFROM busybox\nRUN echo c:\\a `\n  # comment\n  b\nCOPY c:\\x `\n  d:\\y\n",
        );
        assert_eq!(d.directives.escape, '`');
        let st = &d.stages[0];
        assert_eq!(st.instructions[0].original, "RUN echo c:\\a   b");
        assert_eq!(
            st.instructions[1].instruction,
            Instruction::Copy {
                srcs: s(&["c:\\x"]),
                dest: "d:\\y".into(),
                from: None,
                chown: None,
                chmod: None
            }
        );
    }

    #[test]
    fn empty_continuation_lines_warn() {
        let d = ok("FROM busybox\nRUN echo \\\n\n  hi\n");
        assert_eq!(
            d.warnings,
            [
                "[WARNING]: Empty continuation line found in:\n    RUN echo   hi",
                "[WARNING]: Empty continuation lines will become errors in a future release."
            ]
        );
    }

    #[test]
    fn onbuild_keeps_the_expression_dockerd_stores() {
        match only("onbuild  COPY --from=x a b  ") {
            Instruction::Onbuild {
                expression,
                trigger,
            } => {
                assert_eq!(expression, "COPY --from=x a b  ");
                assert!(
                    matches!(trigger.as_deref(), Ok(Instruction::Copy { from: Some(f), .. }) if f == "x")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_trigger("COPY a").map_err(|e| e.to_string()),
            Err("COPY requires at least two arguments, but only one was provided. Destination could not be determined".into())
        );
        assert_eq!(
            parse_trigger("ENV a=1"),
            Ok(Instruction::Env(vec![kv("a", "1")]))
        );
    }

    #[test]
    fn expansion_as_dockerd_does_it() {
        let vars = |name: &str| match name {
            "HOME" => Some("/root".to_string()),
            "y" => Some("why".to_string()),
            "PORTS" => Some("80 443".to_string()),
            _ => None,
        };
        let ex = |line: &str| match only(line).expanded('\\', &vars) {
            Ok(i) => i,
            Err(e) => panic!("{line}: {e}"),
        };
        assert_eq!(
            ex("ENV a=1 b=\"x y\""),
            Instruction::Env(vec![kv("a", "1"), kv("b", "x y")])
        );
        assert_eq!(
            ex("ENV c ${x:-$y} \\$HOME"),
            Instruction::Env(vec![kv("c", "why $HOME")])
        );
        assert_eq!(
            ex("LABEL \"com.x\"=\"y z\""),
            Instruction::Label(vec![kv("com.x", "y z")])
        );
        assert_eq!(
            ex("WORKDIR $HOME/app"),
            Instruction::Workdir("/root/app".into())
        );
        assert_eq!(
            ex("EXPOSE $PORTS 22"),
            Instruction::Expose(s(&["80", "443", "22"]))
        );
        assert_eq!(
            ex("COPY --from=$y --chown=$y [\"$HOME/a b\", \"/d/\"]"),
            Instruction::Copy {
                srcs: s(&["/root/a b"]),
                dest: "/d/".into(),
                from: Some("$y".into()),
                chown: Some("why".into()),
                chmod: None
            }
        );
        assert_eq!(
            ex("ARG a=$HOME"),
            Instruction::Arg(vec![ArgDecl {
                name: "a".into(),
                default: Some("/root".into())
            }])
        );
        // not expanded by dockerd
        assert_eq!(
            ex("RUN echo $HOME"),
            Instruction::Run {
                cmd: CommandLine::Shell("echo $HOME".into()),
                mounts: vec![]
            }
        );
        let e = only("ENV \"a b\" c")
            .expanded('\\', &vars)
            .map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err("failed to process \"\\\"a\": unexpected end of statement while looking for matching double-quote".into())
        );
    }

    /// Checked against dockerd 20.10: `CMD ["a"]x` sets `Cmd: ["a"]`,
    /// `VOLUME /a\\ b` gives the volumes `/a` and `b`, EXPOSE is recorded
    /// sorted, an empty ENTRYPOINT clears it.
    #[test]
    fn quirks_seen_on_the_reference_daemon() {
        assert_eq!(
            only("CMD [\"a\"]x"),
            Instruction::Cmd(CommandLine::Exec(s(&["a"])))
        );
        let v = only("VOLUME /a\\ b").expanded('\\', &|_| None);
        assert_eq!(v, Ok(Instruction::Volume(s(&["/a", "b"]))));
        assert_eq!(
            only("EXPOSE 8080/tcp 443 80"),
            Instruction::Expose(s(&["443", "80", "8080/tcp"]))
        );
        assert_eq!(
            only("ENTRYPOINT"),
            Instruction::Entrypoint(CommandLine::Shell(String::new()))
        );
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let d = ok("fRoM busybox\nrUn x\nCoPy a b\n");
        assert_eq!(d.stages[0].instructions.len(), 2);
        assert_eq!(d.stages[0].instructions[1].instruction.keyword(), "COPY");
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let big = format!("FROM a\nRUN {}\n", "x".repeat(1 << 20));
        let deep_onbuild = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(8_000));
        let inputs = [
            "\\",
            "${",
            "FROM a\nENV x=\"unterminated\n",
            "FROM a\nRUN \"unterminated\n",
            "\0",
            "FROM \0\nRUN \0",
            "FROM a\nCOPY [\"\\u0000\", \"\0\"]\n",
            "\u{feff}",
            "#",
            "# escape=",
            "FROM a\nHEALTHCHECK --interval=99999999999999999999h CMD x\n",
            "FROM a\nONBUILD ONBUILD\n",
            "FROM a\nONBUILD --\n",
            "FROM a\nONBUILD -- ONBUILD x\n",
            "FROM a\nRUN [[[[[[[[[[[[[[\n",
            &big,
            &deep_onbuild,
        ];
        for text in inputs {
            if let Ok(d) = parse(text) {
                for st in &d.stages {
                    for step in &st.instructions {
                        let _ = step.instruction.expanded('\\', &|_| None);
                    }
                }
            }
        }
    }
}
