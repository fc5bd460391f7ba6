//! Variable substitution as dockerd's classic builder does it (buildkit's
//! `frontend/dockerfile/shell/lex.go` as vendored in moby v20.10, with
//! `RawQuotes` and `SkipUnsetEnv` off).
//!
//! Supported forms: `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}`,
//! `${VAR:?word}` and `${VAR?word}`. dockerd 20.10 does **not** support the
//! colon-less `${VAR-word}` / `${VAR+word}`: they fail with
//! `missing ':' in substitution`, and so do they here. Special parameters
//! (`$@ $* $# $? $- $$ $! $0`) and positional ones (`$1`) expand to nothing.
//!
//! Quotes are removed (`'...'` literal, `"..."` with `$` expansion and
//! escapes of `"`, `$` and the escape character only); the escape character
//! (`\` or `` ` `` from `# escape=`) escapes any character outside quotes.
//!
//! Two modes, as dockerd's `ProcessWord` and `ProcessWords`:
//! [`expand`] yields one string (spaces kept), [`expand_words`] splits the
//! result into words on unquoted whitespace — a variable's value is split too,
//! a quoted string is kept whole.
//!
//! Which instructions dockerd expands, and how, is [`expansion_for`].

use super::gocompat::{is_space, quote};

/// A substitution error. Display is dockerd's text, e.g.
/// `failed to process "${}": syntax error: bad substitution`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {reason}", quote(.word))]
pub struct ExpandError {
    /// The word that was being processed.
    pub word: String,
    /// Why it failed (dockerd's inner message).
    pub reason: String,
}

/// How dockerd 20.10's classic builder substitutes variables in an
/// instruction (`builder/dockerfile/evaluator.go` + the `Expand` methods of
/// buildkit's `instructions/commands.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expansion {
    /// Not expanded at build time: RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK,
    /// MAINTAINER, ONBUILD (a trigger is expanded when it runs in the child
    /// build). The shell sees `$VAR` itself.
    None,
    /// Each argument processed as one word ([`expand`]) with the stage's ENV
    /// plus the ARGs declared so far: ENV and LABEL (keys and values), ARG
    /// (names and defaults), WORKDIR, USER, VOLUME, STOPSIGNAL, and COPY/ADD
    /// (sources, destination and `--chown`; not `--from`, not `--chmod`).
    Word,
    /// Each argument split into words ([`expand_words`]): EXPOSE only
    /// (`EXPOSE $PORTS` with `PORTS="80 443"` exposes two ports).
    Words,
    /// FROM: the base name and `--platform` are processed as one word with the
    /// ARGs declared before the first FROM only (plus `--build-arg` values for
    /// them), not ENV.
    MetaArgs,
}

/// How dockerd expands variables for an instruction keyword (any case).
/// Unknown keywords get [`Expansion::None`].
pub fn expansion_for(keyword: &str) -> Expansion {
    match keyword.to_ascii_lowercase().as_str() {
        "env" | "label" | "arg" | "workdir" | "user" | "volume" | "stopsignal" | "copy" | "add" => {
            Expansion::Word
        }
        "expose" => Expansion::Words,
        "from" => Expansion::MetaArgs,
        _ => Expansion::None,
    }
}

/// Whether dockerd substitutes variables in this instruction at all.
pub fn expands(keyword: &str) -> bool {
    expansion_for(keyword) != Expansion::None
}

/// Processes `word` into one string, as dockerd's `ProcessWord`.
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    process(word, escape, lookup).map(|(s, _)| s)
}

/// Processes `word` and splits it into words, as dockerd's `ProcessWords`.
pub fn expand_words(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ExpandError> {
    process(word, escape, lookup).map(|(_, w)| w)
}

/// A lookup over a list of `KEY=VALUE` strings (later entries win, a bare
/// `KEY` is set to the empty string), as dockerd's `BuildEnvs`.
pub fn env_lookup(env: &[String]) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| {
        env.iter().rev().find_map(|e| match e.split_once('=') {
            Some((k, v)) if k == name => Some(v.to_string()),
            None if e == name => Some(String::new()),
            _ => None,
        })
    }
}

fn process(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), ExpandError> {
    // Go's text/scanner drops a byte-order mark at the very start.
    let text = word.strip_prefix('\u{feff}').unwrap_or(word);
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        escape,
        lookup,
        depth: 0,
    };
    lexer.process_stop_on(None).map_err(|reason| ExpandError {
        word: word.to_string(),
        reason,
    })
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if is_space(c) && self.in_word {
            if !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else if !is_space(c) {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// How many `${name:...}` words we are inside of.
    depth: usize,
}

/// Nested `${a:-${b:-...}}` deeper than this is refused (dockerd has no limit;
/// this bounds our recursion on hostile input).
pub const MAX_NESTING: usize = 256;

const MISSING_BRACE: &str = "syntax error: missing '}'";

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if stop == Some(c) {
                self.next();
                return Ok((result, words.finish()));
            }
            match c {
                '\'' | '"' | '$' => {
                    let tmp = match c {
                        '\'' => self.single_quote()?,
                        '"' => self.double_quote()?,
                        _ => self.dollar()?,
                    };
                    result.push_str(&tmp);
                    if c == '$' {
                        words.add_string(&tmp);
                    } else {
                        words.add_raw_string(&tmp);
                    }
                }
                _ => {
                    self.next();
                    let mut ch = c;
                    if ch == self.escape {
                        match self.next() {
                            // an escape at the very end is dropped
                            None => break,
                            Some(n) => ch = n,
                        }
                        words.add_raw_char(ch);
                    } else {
                        words.add_char(ch);
                    }
                    result.push(ch);
                }
            }
        }
        if let Some(s) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {s}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_string(),
                    )
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_string(),
                    )
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(c) => {
                    self.next();
                    let mut ch = c;
                    if ch == self.escape {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.next();
                                ch = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// The word after a `${name?` or `${name:x`, up to the closing brace.
    fn braced_word(&mut self) -> Result<String, String> {
        if self.depth >= MAX_NESTING {
            return Err(format!(
                "syntax error: substitutions nested more than {MAX_NESTING} deep"
            ));
        }
        self.depth += 1;
        let word = self.process_stop_on(Some('}'));
        self.depth -= 1;
        match word {
            Ok((w, _)) => Ok(w),
            Err(_) if self.peek().is_none() => Err(MISSING_BRACE.to_string()),
            Err(e) => Err(e),
        }
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.lookup(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err(MISSING_BRACE.to_string()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_string()),
            Some(_) => {}
        }
        let name = self.name();
        match self.next() {
            Some('}') => Ok(self.lookup(&name).unwrap_or_default()),
            Some('?') => {
                let word = self.braced_word()?;
                match self.lookup(&name) {
                    Some(v) => Ok(v),
                    None => Err(unset_message(&name, &word, "is not allowed to be unset")),
                }
            }
            Some(':') => {
                let modifier = self.next();
                let word = self.braced_word()?;
                let found = self.lookup(&name);
                let value = found.clone().unwrap_or_default();
                match modifier {
                    Some('+') => Ok(if value.is_empty() { value } else { word }),
                    Some('-') => Ok(if value.is_empty() { word } else { value }),
                    Some('?') => {
                        if found.is_none() {
                            Err(unset_message(&name, &word, "is not allowed to be unset"))
                        } else if value.is_empty() {
                            Err(unset_message(&name, &word, "is not allowed to be empty"))
                        } else {
                            Ok(value)
                        }
                    }
                    Some(m) => Err(format!("unsupported modifier ({m}) in substitution")),
                    None => Err(MISSING_BRACE.to_string()),
                }
            }
            _ => Err("missing ':' in substitution".to_string()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|d| is_digit(*d)) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !c.is_alphabetic() && !is_digit(c) && c != '_' {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }
}

/// Go's `unicode.IsDigit` (approximated outside ASCII by `is_numeric`).
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

fn unset_message(name: &str, word: &str, default: &str) -> String {
    let message = if word.is_empty() { default } else { word };
    format!("{name}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "y" => Some("why".into()),
            "EMPTY" => Some(String::new()),
            "SPACED" => Some("a  b c".into()),
            "PORTS" => Some("80 443".into()),
            _ => None,
        }
    }

    fn ex(word: &str) -> Result<String, String> {
        expand(word, '\\', &vars).map_err(|e| e.to_string())
    }

    fn exw(word: &str) -> Vec<String> {
        match expand_words(word, '\\', &vars) {
            Ok(w) => w,
            Err(e) => panic!("{word}: {e}"),
        }
    }

    #[test]
    fn expand_table() {
        let cases: &[(&str, &str)] = &[
            ("$HOME", "/root"),
            ("${HOME}", "/root"),
            ("${HOME}/x", "/root/x"),
            ("$HOME/x", "/root/x"),
            ("$NOPE", ""),
            ("${x:-$y}", "why"),
            ("${x:-default}", "default"),
            ("${HOME:-default}", "/root"),
            ("${EMPTY:-d}", "d"),
            ("${HOME:+alt}", "alt"),
            ("${x:+alt}", ""),
            ("${EMPTY:+alt}", ""),
            ("${HOME?x}", "/root"),
            ("\\$HOME", "$HOME"),
            ("'$HOME'", "$HOME"),
            ("\"$HOME\"", "/root"),
            ("\"\\$HOME\"", "$HOME"),
            ("\"a\\b\"", "a\\b"),
            ("\"a\\\"b\"", "a\"b"),
            ("'a\\'", "a\\"),
            ("a\\ b", "a b"),
            ("a b", "a b"),
            ("$", "$"),
            ("$/", "$/"),
            ("a$", "a$"),
            ("$1x", "x"),
            ("$$", ""),
            ("${x:-a}b}", "ab}"),
            ("${x:-\\}}", "}"),
            ("${x:-'a b'}", "a b"),
            ("trailing\\", "trailing"),
            ("\u{feff}bom", "bom"),
        ];
        for (input, want) in cases {
            assert_eq!(ex(input).as_deref(), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn backtick_escape() {
        let got = expand("`$HOME c:\\dir", '`', &vars);
        assert_eq!(got, Ok("$HOME c:\\dir".to_string()));
        let got = expand("\"`\"x`\"\"", '`', &vars);
        assert_eq!(got, Ok("\"x\"".to_string()));
    }

    #[test]
    fn errors_are_dockerds_words() {
        let cases: &[(&str, &str)] = &[
            ("${}", "failed to process \"${}\": syntax error: bad substitution"),
            ("${:x}", "failed to process \"${:x}\": syntax error: bad substitution"),
            ("${", "failed to process \"${\": syntax error: missing '}'"),
            ("${abc", "failed to process \"${abc\": missing ':' in substitution"),
            ("${b-x}", "failed to process \"${b-x}\": missing ':' in substitution"),
            ("${b+x}", "failed to process \"${b+x}\": missing ':' in substitution"),
            ("${abc:-x", "failed to process \"${abc:-x\": syntax error: missing '}'"),
            ("${a:-\"x}", "failed to process \"${a:-\\\"x}\": syntax error: missing '}'"),
            ("${a:=x}", "failed to process \"${a:=x}\": unsupported modifier (=) in substitution"),
            ("${b:?must be set}", "failed to process \"${b:?must be set}\": b: must be set"),
            ("${b:?}", "failed to process \"${b:?}\": b: is not allowed to be unset"),
            ("${EMPTY:?}", "failed to process \"${EMPTY:?}\": EMPTY: is not allowed to be empty"),
            ("${b?}", "failed to process \"${b?}\": b: is not allowed to be unset"),
            (
                "\"abc",
                "failed to process \"\\\"abc\": unexpected end of statement while looking for matching double-quote",
            ),
            (
                "'abc",
                "failed to process \"'abc\": unexpected end of statement while looking for matching single-quote",
            ),
            ("\"a\\", "failed to process \"\\\"a\\\\\": unexpected end of statement while looking for matching double-quote"),
        ];
        for (input, want) in cases {
            assert_eq!(ex(input), Err(want.to_string()), "input {input:?}");
        }
    }

    #[test]
    fn word_splitting() {
        assert_eq!(exw("$PORTS"), ["80", "443"]);
        assert_eq!(exw("a \"b c\" d"), ["a", "b c", "d"]);
        assert_eq!(exw("x$SPACED"), ["xa", "b", "c"]);
        assert_eq!(exw("\"$SPACED\""), ["a  b c"]);
        assert_eq!(exw("a\\ b"), ["a b"]);
        assert_eq!(exw("  lead  trail  "), ["lead", "trail"]);
        assert_eq!(exw("\"\""), Vec::<String>::new());
        assert_eq!(exw(""), Vec::<String>::new());
        // one-word mode keeps the spaces of a value
        assert_eq!(ex("x$SPACED").as_deref(), Ok("xa  b c"));
    }

    #[test]
    fn env_lookup_last_wins() {
        let env = vec!["A=1".to_string(), "B".to_string(), "A=2=3".to_string()];
        let l = env_lookup(&env);
        assert_eq!(expand("$A-$B-$C", '\\', &l), Ok("2=3--".to_string()));
        assert_eq!(l("B"), Some(String::new()));
        assert_eq!(l("C"), None);
    }

    #[test]
    fn expansion_list() {
        for k in [
            "ENV",
            "label",
            "Arg",
            "WORKDIR",
            "USER",
            "VOLUME",
            "STOPSIGNAL",
            "COPY",
            "ADD",
        ] {
            assert_eq!(expansion_for(k), Expansion::Word, "{k}");
        }
        assert_eq!(expansion_for("EXPOSE"), Expansion::Words);
        assert_eq!(expansion_for("FROM"), Expansion::MetaArgs);
        for k in [
            "RUN",
            "CMD",
            "ENTRYPOINT",
            "SHELL",
            "HEALTHCHECK",
            "MAINTAINER",
            "ONBUILD",
            "FOO",
        ] {
            assert!(!expands(k), "{k}");
        }
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let big = "$".repeat(1 << 20);
        let nested = "${a:-".repeat(10_000);
        for input in [
            "\\",
            "${",
            "$",
            "'",
            "\"",
            "\0",
            "${a:-${b:-",
            "\"\\",
            &big,
            &nested,
        ] {
            let _ = expand(input, '\\', &vars);
            let _ = expand_words(input, '`', &vars);
        }
    }
}
