//! The first pass of dockerd's Dockerfile parser (buildkit
//! `frontend/dockerfile/parser/parser.go`): lines, parser directives, line
//! continuations and comments, then each logical line split into its
//! keyword, flags and arguments by the keyword's line parser.
//!
//! Errors found here are the ones dockerd reports as
//! `failed to parse Dockerfile: ...` (no line number).

use super::gocompat::{is_re2_space, is_re_whitespace, is_space, trim_space};
use super::ignore::scan_lines;
use super::json::{parse_json_form, JsonForm, NOT_STRING_ARRAY};
use super::words::{extract_flags, is_heredoc_word, parse_words, split_first, split_whitespace};

/// Parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=...`, if given. The classic builder ignores it (dockerd
    /// 20.10 prints nothing about it).
    pub syntax: Option<String>,
    /// The escape character: `\` (default) or `` ` `` (`# escape=`).
    pub escape: char,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
        }
    }
}

/// A first-pass failure: the message dockerd prints after
/// `failed to parse Dockerfile: `, and the line it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineError {
    Syntax { line: usize, message: String },
    Heredoc { line: usize, word: String },
}

/// One logical line, split as buildkit's `Node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// Lowercased keyword.
    pub cmd: String,
    /// The `--flag[=value]` words.
    pub flags: Vec<String>,
    /// The arguments as the keyword's line parser splits them (for ONBUILD:
    /// the trigger's keyword then its arguments).
    pub args: Vec<String>,
    /// The arguments were a JSON array.
    pub json: bool,
    /// The logical line, continuations joined (dockerd's `Original`).
    pub original: String,
    /// First and last physical line (1-based).
    pub start_line: usize,
    pub end_line: usize,
}

/// The result of the first pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lines {
    pub directives: Directives,
    pub nodes: Vec<Node>,
    pub warnings: Vec<String>,
}

struct DirectiveState {
    d: Directives,
    done: bool,
    seen_escape: bool,
    seen_syntax: bool,
}

impl DirectiveState {
    /// buildkit's `possibleParserDirective`.
    fn check(&mut self, line: &str, line_no: usize) -> Result<(), LineError> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        let seen = match key.as_str() {
            "escape" => &mut self.seen_escape,
            "syntax" => &mut self.seen_syntax,
            _ => {
                self.done = true;
                return Ok(());
            }
        };
        let err = |message: String| LineError::Syntax {
            line: line_no,
            message,
        };
        if *seen {
            return Err(err(format!("only one {key} parser directive can be used")));
        }
        *seen = true;
        if key == "escape" {
            self.d.escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(err(format!(
                        "invalid escape token '{other}' does not match ` or \\"
                    )))
                }
            };
        } else {
            self.d.syntax = Some(value.to_string());
        }
        Ok(())
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_re2_space);
    let name_len = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphabetic() || (*i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let rest = rest.trim_start_matches(is_re2_space).strip_prefix('=')?;
    if rest.is_empty() {
        return None;
    }
    let lead_trimmed = rest.trim_start_matches(is_re2_space);
    let value = if lead_trimmed.is_empty() {
        // all blanks: the lazy group still takes the last one
        &rest[rest.len() - 1..]
    } else {
        lead_trimmed.trim_end_matches(is_re2_space)
    };
    Some((name, value))
}

/// A line that is a comment (`#` after optional whitespace).
fn is_comment(line: &str) -> bool {
    line.trim_start_matches(is_space).starts_with('#')
}

/// buildkit's `trimContinuationCharacter`: `(line without the continuation,
/// whether the logical line ends here)`.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before.to_string(), false);
        }
    }
    (line.to_string(), true)
}

/// Splits `text` into logical lines and runs each keyword's line parser.
pub(crate) fn parse_lines(text: &str) -> Result<Lines, LineError> {
    let (raw_lines, too_long) = scan_lines(text);
    let mut state = DirectiveState {
        d: Directives::default(),
        done: false,
        seen_escape: false,
        seen_syntax: false,
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut current = 0usize;
    let mut iter = raw_lines.into_iter();
    while let Some(raw) = iter.next() {
        let raw = if current == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        let token = raw.trim_start_matches(is_space);
        state.check(token, current + 1)?;
        current += 1;
        let start_line = current;
        let processed = if token.starts_with('#') { "" } else { token };
        let (mut line, mut end) = trim_continuation(processed, state.d.escape);
        if end && line.is_empty() {
            continue;
        }
        let mut empty_continuation = false;
        while !end {
            let Some(next) = iter.next() else {
                break;
            };
            state.check(next, current + 1)?;
            current += 1;
            if is_comment(next) {
                continue;
            }
            let processed = if next.starts_with('#') { "" } else { next };
            if processed.trim_start_matches(is_space).is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, e) = trim_continuation(processed, state.d.escape);
            line.push_str(&part);
            end = e;
        }
        if empty_continuation {
            warnings.push(format!(
                "[WARNING]: Empty continuation line found in:\n    {line}"
            ));
        }
        let node = node_from_line(&line, state.d.escape, start_line, current)?;
        nodes.push(node);
    }
    if !warnings.is_empty() {
        warnings.push(
            "[WARNING]: Empty continuation lines will become errors in a future release."
                .to_string(),
        );
    }
    if nodes.is_empty() {
        return Err(LineError::Syntax {
            line: current,
            message: "file with no instructions".to_string(),
        });
    }
    if too_long.is_some() {
        return Err(LineError::Syntax {
            line: current,
            message: format!(
                "dockerfile line greater than max allowed size of {}",
                super::ignore::MAX_LINE
            ),
        });
    }
    Ok(Lines {
        directives: state.d,
        nodes,
        warnings,
    })
}

/// buildkit's `splitCommand`: keyword (lowercased), flags, trimmed arguments.
pub(crate) fn split_command(line: &str) -> (String, Vec<String>, &str) {
    let trimmed = trim_space(line);
    let (cmd, rest) = match split_first(trimmed) {
        Some((c, r)) => (c, Some(r)),
        None => (trimmed, None),
    };
    let (args, flags) = match rest {
        Some(r) => extract_flags(r),
        None => ("", Vec::new()),
    };
    (cmd.to_lowercase(), flags, trim_space(args))
}

/// One logical line to a [`Node`] (buildkit's `newNodeFromLine`).
pub(crate) fn node_from_line(
    line: &str,
    escape: char,
    start_line: usize,
    end_line: usize,
) -> Result<Node, LineError> {
    let syntax = |message: String| LineError::Syntax {
        line: start_line,
        message,
    };
    let (cmd, flags, rest) = split_command(line);
    let mut json = false;
    let args: Vec<String> = match cmd.as_str() {
        "add" | "copy" | "volume" => match parse_json_form(rest) {
            JsonForm::Strings(v) => {
                json = true;
                v
            }
            JsonForm::NotStrings => return Err(syntax(NOT_STRING_ARRAY.to_string())),
            JsonForm::NotJson => split_whitespace(rest),
        },
        "run" | "cmd" | "entrypoint" | "shell" => maybe_json(rest, &mut json).map_err(syntax)?,
        "expose" | "from" => split_whitespace(rest),
        "arg" => parse_words(rest, escape),
        "env" => name_values(rest, "ENV", escape).map_err(syntax)?,
        "label" => name_values(rest, "LABEL", escape).map_err(syntax)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if rest.is_empty() {
                Vec::new()
            } else {
                vec![rest.to_string()]
            }
        }
        "healthcheck" => {
            let sep = rest.find(is_space).unwrap_or(rest.len());
            if sep == 0 {
                Vec::new()
            } else {
                let mut v = vec![rest[..sep].to_string()];
                v.extend(
                    maybe_json(rest[sep..].trim_start_matches(is_space), &mut json)
                        .map_err(syntax)?,
                );
                v
            }
        }
        "onbuild" => onbuild_args(rest, escape).map_err(syntax)?,
        _ => Vec::new(),
    };
    if matches!(cmd.as_str(), "run" | "copy" | "add") && !json {
        let words = if cmd == "run" {
            parse_words(rest, escape)
        } else {
            args.clone()
        };
        if let Some(word) = words.into_iter().find(|w| is_heredoc_word(w)) {
            return Err(LineError::Heredoc {
                line: start_line,
                word,
            });
        }
    }
    Ok(Node {
        cmd,
        flags,
        args,
        json,
        original: line.to_string(),
        start_line,
        end_line,
    })
}

/// buildkit's `parseMaybeJSON`.
fn maybe_json(rest: &str, json: &mut bool) -> Result<Vec<String>, String> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    match parse_json_form(rest) {
        JsonForm::Strings(v) => {
            *json = true;
            Ok(v)
        }
        JsonForm::NotStrings => Err(NOT_STRING_ARRAY.to_string()),
        JsonForm::NotJson => Ok(vec![rest.to_string()]),
    }
}

/// buildkit's `parseNameVal` for ENV and LABEL: a flat `[k1, v1, k2, v2...]`.
fn name_values(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        // old form: KEY name value
        return match split_first(rest) {
            Some((k, v)) => Ok(vec![k.to_string(), v.to_string()]),
            None => Err(format!("{key} must have two arguments")),
        };
    }
    let mut out = Vec::with_capacity(words.len() * 2);
    for word in &words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                super::gocompat::quote(word)
            ));
        };
        out.push(k.to_string());
        out.push(v.to_string());
    }
    Ok(out)
}

/// buildkit's `parseSubCommand`: the trigger's keyword then its arguments.
/// Nested `ONBUILD ONBUILD ...` is walked without recursion; only the
/// innermost instruction's line parser can fail.
fn onbuild_args(rest: &str, escape: char) -> Result<Vec<String>, String> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let (first_cmd, _, _) = split_command(rest);
    let mut inner = rest;
    loop {
        let t = inner.trim_start_matches(is_space);
        let end = t.find(is_re_whitespace).unwrap_or(t.len());
        if !t[..end].eq_ignore_ascii_case("onbuild") {
            break;
        }
        let mut r = t[end..].trim_start_matches(is_re_whitespace);
        if r.starts_with("--") {
            r = split_command(inner).2;
        }
        if r.is_empty() {
            break;
        }
        inner = r;
    }
    let node = match node_from_line(inner, escape, 0, 0) {
        Ok(n) => n,
        Err(LineError::Syntax { message, .. }) => return Err(message),
        // a heredoc inside a trigger is only run in the child build
        Err(LineError::Heredoc { .. }) => Node {
            cmd: first_cmd.clone(),
            flags: Vec::new(),
            args: Vec::new(),
            json: false,
            original: inner.to_string(),
            start_line: 0,
            end_line: 0,
        },
    };
    let mut args = vec![first_cmd.clone()];
    if first_cmd == node.cmd {
        args.extend(node.args);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Lines {
        match parse_lines(text) {
            Ok(l) => l,
            Err(e) => panic!("{text:?}: {e:?}"),
        }
    }

    fn originals(text: &str) -> Vec<String> {
        lines(text).nodes.into_iter().map(|n| n.original).collect()
    }

    #[test]
    fn continuations_join_as_dockerd() {
        // checked against dockerd 20.10: "Step 2/2 : RUN ... echo    hi      there"
        let l = lines("FROM busybox\nRUN echo \\\n   hi   \\\n# comment inside\n\n   there\n");
        assert_eq!(l.nodes[1].original, "RUN echo    hi      there");
        assert_eq!((l.nodes[1].start_line, l.nodes[1].end_line), (2, 6));
        assert_eq!(
            l.warnings,
            [
                "[WARNING]: Empty continuation line found in:\n    RUN echo    hi      there",
                "[WARNING]: Empty continuation lines will become errors in a future release."
            ]
        );
        assert_eq!(
            originals("  run   echo a\\\t \n\tb  \n"),
            ["run   echo a\tb  "]
        );
        // an escaped escape at the end is not a continuation
        assert_eq!(originals("RUN a \\\\\nRUN b"), ["RUN a \\\\", "RUN b"]);
        // a line holding only the escape continues with nothing
        assert_eq!(originals("RUN a \\\n\\\nb\n"), ["RUN a b"]);
        // continuation at end of file
        assert_eq!(originals("RUN a \\\n"), ["RUN a "]);
        // comment lines inside a continuation, indented or not
        assert_eq!(originals("RUN a \\\n  # x\n# y\n b\n"), ["RUN a  b"]);
        // CRLF
        assert_eq!(
            originals("FROM a\r\nRUN b \\\r\n c\r\n"),
            ["FROM a", "RUN b  c"]
        );
    }

    #[test]
    fn escape_directive_with_backtick() {
        let l = lines("# escape=`\nFROM busybox\nRUN echo c:\\\\a `\n  b\n");
        assert_eq!(l.directives.escape, '`');
        assert_eq!(l.nodes[1].original, "RUN echo c:\\\\a   b");
        let l = lines("\u{feff}   #   ESCAPE   =   `   \nRUN a `\n b\n");
        assert_eq!(l.directives.escape, '`');
        assert_eq!(l.nodes[0].original, "RUN a  b");
    }

    #[test]
    fn directives_only_at_the_top() {
        for text in [
            "\n# escape=`\nRUN a `\n",
            "# foo=bar\n# escape=`\nRUN a `\n",
            "FROM x\n# escape=`\nRUN a `\n",
        ] {
            assert_eq!(lines(text).directives.escape, '\\', "{text:?}");
        }
        let l = lines("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n");
        assert_eq!(l.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(l.directives.escape, '`');
    }

    #[test]
    fn directive_errors() {
        let msg = |text: &str| match parse_lines(text) {
            Err(LineError::Syntax { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            msg("# escape=x\nFROM a\n"),
            "invalid escape token 'x' does not match ` or \\"
        );
        assert_eq!(
            msg("# escape=`\n# escape=\\\nFROM a\n"),
            "only one escape parser directive can be used"
        );
        assert_eq!(
            msg("# syntax=a\n# syntax=b\nFROM a\n"),
            "only one syntax parser directive can be used"
        );
        assert_eq!(
            msg("# escape=   \nFROM a\n"),
            "invalid escape token ' ' does not match ` or \\"
        );
        assert_eq!(msg("# hello\n\n"), "file with no instructions");
        assert_eq!(msg("\n"), "file with no instructions");
    }

    #[test]
    fn line_parser_errors() {
        let msg = |text: &str| match parse_lines(text) {
            Err(LineError::Syntax { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(msg("FROM a\nENV a\n"), "ENV must have two arguments");
        assert_eq!(msg("FROM a\nLABEL a\n"), "LABEL must have two arguments");
        assert_eq!(
            msg("FROM a\nENV a=1 b\n"),
            "Syntax error - can't find = in \"b\". Must be of the form: name=value"
        );
        assert_eq!(
            msg("FROM a\nENV a=1 \"b\\tc\"\n"),
            "Syntax error - can't find = in \"\\\"b\\\\tc\\\"\". Must be of the form: name=value"
        );
        assert_eq!(msg("FROM a\nRUN [\"a\", 1]\n"), NOT_STRING_ARRAY);
        assert_eq!(
            msg("FROM a\nONBUILD ENV a\n"),
            "ENV must have two arguments"
        );
        assert_eq!(
            msg("FROM a\nONBUILD ONBUILD ENV a\n"),
            "ENV must have two arguments"
        );
        // line-parser errors come first, whatever line they are on
        assert_eq!(msg("FROM a\nFOO x\nENV a\n"), "ENV must have two arguments");
    }

    #[test]
    fn args_by_keyword() {
        let node = |line: &str| match node_from_line(line, '\\', 1, 1) {
            Ok(n) => n,
            Err(e) => panic!("{e:?}"),
        };
        let n = node("COPY [\"a b\", \"/c d/\"]");
        assert_eq!(
            (n.args.as_slice(), n.json),
            (&["a b".to_string(), "/c d/".to_string()][..], true)
        );
        let n = node("copy --from=x --chown=1:1 a  b\tc");
        assert_eq!(n.cmd, "copy");
        assert_eq!(n.flags, ["--from=x", "--chown=1:1"]);
        assert_eq!(n.args, ["a", "b", "c"]);
        let n = node("ENV a=1 b=\"x y\"");
        assert_eq!(n.args, ["a", "1", "b", "\"x y\""]);
        let n = node("ENV k  v  w");
        assert_eq!(n.args, ["k", "v  w"]);
        let n = node("RUN echo \"a\"  b");
        assert_eq!(
            (n.args.as_slice(), n.json),
            (&["echo \"a\"  b".to_string()][..], false)
        );
        let n = node("HEALTHCHECK --interval=5s CMD [\"a\"]");
        assert_eq!(
            (n.args.as_slice(), n.json),
            (&["CMD".to_string(), "a".to_string()][..], true)
        );
        let n = node("ONBUILD run echo hi");
        assert_eq!(n.args, ["run", "echo hi"]);
        let n = node("FOO bar");
        assert!(n.args.is_empty());
    }

    #[test]
    fn heredocs_are_found() {
        for text in [
            "FROM a\nRUN <<EOF\necho\nEOF\n",
            "FROM a\nRUN cat <<-'X' > f\n",
            "FROM a\nCOPY <<EOF /x\n",
        ] {
            assert!(
                matches!(parse_lines(text), Err(LineError::Heredoc { line: 2, .. })),
                "{text:?}"
            );
        }
        for text in [
            "FROM a\nRUN echo \"<<EOF\"\n",
            "FROM a\nRUN [\"sh\", \"<<EOF\"]\n",
            "FROM a\nRUN a<<b\n",
        ] {
            assert!(parse_lines(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn too_long_lines() {
        let long = "a".repeat(70_000);
        let e = parse_lines(&format!("FROM a\nRUN {long}\n"));
        assert!(
            matches!(e, Err(LineError::Syntax { message, .. }) if message == "dockerfile line greater than max allowed size of 65535")
        );
        let e = parse_lines(&format!("{long}\nFROM a\n"));
        assert!(
            matches!(e, Err(LineError::Syntax { message, .. }) if message == "file with no instructions")
        );
    }
}
