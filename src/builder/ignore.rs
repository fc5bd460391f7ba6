//! `.dockerignore`, read and matched as moby does (`ReadAll` of buildkit's
//! `frontend/dockerfile/dockerignore` + moby's pattern matcher).
//!
//! Reading ([`IgnoreRules::parse`]): a UTF-8 BOM on the first line is
//! dropped; a line whose *first character* is `#` is a comment (`  # x` is a
//! pattern); each line is trimmed; blank lines are skipped; a leading `!`
//! (spaces after it allowed) makes an exception; the pattern is then cleaned
//! like Go's `filepath.Clean` (`./a/` → `a`, `a//b/../c` → `a/c`) and one
//! leading `/` is removed (`/a` → `a`, but `/` stays `/`). A lone `!` is an
//! error, and so is a malformed pattern (`syntax error in pattern`).
//!
//! Matching ([`IgnoreRules::excluded`]): patterns are tried in order and the
//! last one that matches decides (an exception re-includes); a pattern
//! matches a path when it matches the whole path or one of its parent
//! directories, so `vendor` excludes `vendor/a/b.go`. See `glob.rs` for the
//! pattern syntax.
//!
//! Who applies it: in dockerd's classic builder the **client** filters the
//! context (the docker CLI walks the directory with these rules and sends a
//! tar of what is left; it always sends the Dockerfile and `.dockerignore`,
//! re-including them if a pattern excludes them). The daemon never filters
//! the context it receives: after reading the Dockerfile it only deletes
//! `.dockerignore` and the Dockerfile from the context if the rules exclude
//! them, so that `COPY . .` does not copy them
//! ([`IgnoreRules::removed_after_reading`]). A daemon may still apply the
//! rules to a context it receives (a tar already filtered by the CLI loses
//! nothing more); [`IgnoreRules::excluded_by_walk`] gives exactly what the
//! CLI's walk would have left out.

use super::glob::Glob;
use super::gocompat::{clean_path, trim_space};

/// A `.dockerignore` that dockerd would refuse. Display is moby's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// A pattern Go's `filepath.Match` finds malformed (`[a`, `a\`).
    #[error("syntax error in pattern")]
    BadPattern {
        /// The offending pattern, as cleaned.
        pattern: String,
    },
    /// A line that is only `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    LoneExclamation,
    /// A line of 64 KiB or more (Go's `bufio.Scanner` limit).
    #[error("Error reading .dockerignore: bufio.Scanner: token too long")]
    LineTooLong,
}

#[derive(Debug, Clone)]
struct Rule {
    /// Cleaned pattern, without the `!`.
    text: String,
    exception: bool,
    /// Number of `/`-separated parts of `text`.
    depth: usize,
    glob: Glob,
}

/// The rules of one `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

/// The longest line Go's `bufio.Scanner` accepts, in bytes (without `\n`).
pub(crate) const MAX_LINE: usize = 64 * 1024 - 1;

/// Splits `text` into lines as Go's `bufio.Scanner` with `ScanLines` does
/// (a final `\r` dropped, no empty last line); `Err(index)` at the first line
/// longer than [`MAX_LINE`], with the lines before it.
pub(crate) fn scan_lines(text: &str) -> (Vec<&str>, Option<usize>) {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (line, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if line.len() > MAX_LINE {
            let index = lines.len();
            return (lines, Some(index));
        }
        lines.push(line.strip_suffix('\r').unwrap_or(line));
        rest = next;
    }
    (lines, None)
}

impl IgnoreRules {
    /// Reads a `.dockerignore` file's text.
    pub fn parse(text: &str) -> Result<IgnoreRules, IgnoreError> {
        let (lines, too_long) = scan_lines(text);
        if too_long.is_some() {
            return Err(IgnoreError::LineTooLong);
        }
        let mut patterns = Vec::new();
        for (i, line) in lines.into_iter().enumerate() {
            let line = if i == 0 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = trim_space(line);
            if pattern.is_empty() {
                continue;
            }
            let invert = pattern.starts_with('!');
            if invert {
                pattern = trim_space(&pattern[1..]);
            }
            let mut cleaned = String::new();
            if !pattern.is_empty() {
                cleaned = clean_path(pattern);
                if cleaned.len() > 1 && cleaned.starts_with('/') {
                    cleaned.remove(0);
                }
            }
            patterns.push(if invert {
                format!("!{cleaned}")
            } else {
                cleaned
            });
        }
        Self::from_patterns(patterns)
    }

    /// Builds the matcher from a list of patterns (`!` for exceptions), as
    /// moby's `NewPatternMatcher` does; each is trimmed and cleaned again.
    pub fn from_patterns<I, S>(patterns: I) -> Result<IgnoreRules, IgnoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut rules = Vec::new();
        for p in patterns {
            let p = trim_space(p.as_ref());
            if p.is_empty() {
                continue;
            }
            let p = clean_path(p);
            let (exception, text) = match p.strip_prefix('!') {
                Some("") => return Err(IgnoreError::LoneExclamation),
                Some(rest) => (true, rest.to_string()),
                None => (false, p),
            };
            let glob = Glob::compile(&text).map_err(|_| IgnoreError::BadPattern {
                pattern: text.clone(),
            })?;
            rules.push(Rule {
                depth: text.split('/').count(),
                text,
                exception,
                glob,
            });
        }
        Ok(IgnoreRules { rules })
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any pattern is an exception (`!...`).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// The cleaned patterns in order, `!` prefixed for exceptions.
    pub fn patterns(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|r| {
                if r.exception {
                    format!("!{}", r.text)
                } else {
                    r.text.clone()
                }
            })
            .collect()
    }

    /// Whether `path` (relative to the context root, `/`-separated) is
    /// excluded: the last pattern matching the path or one of its parent
    /// directories decides (moby's `MatchesOrParentMatches`). The root itself
    /// (`.`, `""`) is never excluded.
    pub fn excluded(&self, path: &str) -> bool {
        self.decide(path, false)
    }

    /// moby v20.10's `fileutils.Matches`, which dockerd uses to decide whether
    /// to delete the Dockerfile and `.dockerignore` from the context: like
    /// [`excluded`](Self::excluded) but a pattern of N parts is only tried
    /// against the path and against its first N parent directories joined.
    pub fn excluded_v20(&self, path: &str) -> bool {
        self.decide(path, true)
    }

    fn decide(&self, path: &str, legacy: bool) -> bool {
        let file = normalize(path);
        if file == "." {
            return false;
        }
        let parents = file.matches('/').count();
        let mut matched = false;
        for rule in &self.rules {
            if rule.exception != matched {
                continue;
            }
            let hits = rule.glob.prefix_matches(&file);
            let hit = if legacy {
                // the path itself, or its first `depth` parts when the
                // parent directory has at least that many
                hits.last() == Some(&true)
                    || (rule.depth <= parents && hits.get(rule.depth - 1) == Some(&true))
            } else {
                hits.contains(&true)
            };
            if hit {
                matched = !rule.exception;
            }
        }
        matched
    }

    /// For a walker of the context: whether the directory `dir` may be
    /// skipped whole. As the docker CLI's walk: only when the directory is
    /// excluded and no exception pattern starts with `dir/` (so `!dir/keep`
    /// makes it descend, but `!**/keep` does not).
    pub fn may_skip_dir(&self, dir: &str) -> bool {
        let dir = normalize(dir);
        self.excluded(&dir) && !self.exception_below(&dir)
    }

    /// Some exception pattern starts with `dir/`.
    fn exception_below(&self, dir: &str) -> bool {
        self.rules.iter().any(|r| {
            r.exception
                && r.text.starts_with(dir)
                && (r.text.len() == dir.len() || r.text[dir.len()..].starts_with('/'))
        })
    }

    /// Whether the docker CLI's walk of the context would leave `path` out:
    /// [`excluded`](Self::excluded), or under a directory it skips whole
    /// ([`may_skip_dir`](Self::may_skip_dir)).
    pub fn excluded_by_walk(&self, path: &str) -> bool {
        let file = normalize(path);
        if file == "." {
            return false;
        }
        // one pass per rule: which prefixes (directories, then the path) match
        let hits: Vec<Vec<bool>> = self
            .rules
            .iter()
            .map(|r| r.glob.prefix_matches(&file))
            .collect();
        let ends: Vec<usize> = file
            .match_indices('/')
            .map(|(i, _)| i)
            .chain([file.len()])
            .collect();
        let mut seen = vec![false; self.rules.len()];
        for (k, end) in ends.iter().enumerate() {
            // prefix k matches rule r if it or a parent does
            let mut excluded = false;
            for (r, rule) in self.rules.iter().enumerate() {
                seen[r] |= hits[r].get(k) == Some(&true);
                if seen[r] {
                    excluded = !rule.exception;
                }
            }
            if k + 1 == ends.len() {
                return excluded;
            }
            if excluded && !self.exception_below(&file[..*end]) {
                return true;
            }
        }
        false
    }

    /// Which of `.dockerignore` and the Dockerfile (its path in the context)
    /// dockerd deletes from the context once it has read the Dockerfile: those
    /// the rules exclude (v20.10 matching, see
    /// [`excluded_v20`](Self::excluded_v20)).
    pub fn removed_after_reading(&self, dockerfile: &str) -> Vec<String> {
        [".dockerignore", dockerfile]
            .into_iter()
            .filter(|f| self.excluded_v20(f))
            .map(str::to_string)
            .collect()
    }
}

/// `filepath.Clean`, then relative to the root.
fn normalize(path: &str) -> String {
    let cleaned = clean_path(path);
    match cleaned.trim_start_matches('/') {
        "" => ".".to_string(),
        rest => rest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        match IgnoreRules::parse(text) {
            Ok(r) => r,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    #[test]
    fn reading_cleans_and_skips() {
        let r = rules(
            "\u{feff}# comment\n\n  \n  # not a comment\n./a/\n/b//c/../d\n! /e\n!./f\r\n/\n**/x/\n",
        );
        assert_eq!(
            r.patterns(),
            ["# not a comment", "a", "b/d", "!e", "!f", "/", "**/x"]
        );
    }

    #[test]
    fn go_files_with_keep_exception() {
        let r = rules("**/*.go\n!keep.go\n");
        let cases = [
            ("main.go", true),
            ("a/b/c.go", true),
            ("keep.go", false),
            ("sub/keep.go", true),
            ("README.md", false),
            ("go", false),
        ];
        for (p, want) in cases {
            assert_eq!(r.excluded(p), want, "{p}");
        }
    }

    #[test]
    fn directory_pattern_excludes_everything_below() {
        let r = rules("vendor\nbuild/\n");
        for p in [
            "vendor",
            "vendor/a",
            "vendor/a/b/c.go",
            "build/x",
            "./vendor/x",
        ] {
            assert!(r.excluded(p), "{p}");
        }
        for p in ["vendorx", "src/vendor2", ".", ""] {
            assert!(!r.excluded(p), "{p}");
        }
        // nested directory named by a ** pattern
        let r = rules("**/node_modules\n");
        assert!(r.excluded("a/b/node_modules/x/y.js"));
        assert!(r.excluded("node_modules/y.js"));
        assert!(!r.excluded("a/node_modulesx"));
    }

    #[test]
    fn last_match_wins() {
        let r = rules("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(r.excluded("a.md"));
        assert!(!r.excluded("README.md"));
        assert!(r.excluded("README-secret.md"));
        // an exception before the rule it should override has no effect
        let r = rules("!keep\n*\n");
        assert!(r.excluded("keep"));
    }

    #[test]
    fn exceptions_and_skipping_directories() {
        let r = rules("vendor\n!vendor/keep.go\n");
        assert!(r.excluded("vendor/a.go"));
        assert!(!r.excluded("vendor/keep.go"));
        assert!(!r.may_skip_dir("vendor"));
        assert!(!r.excluded_by_walk("vendor/keep.go"));

        // an exception that does not start with the directory cannot stop the
        // CLI from skipping it
        let r = rules("vendor\n!**/keep.go\n");
        assert!(!r.excluded("vendor/keep.go"));
        assert!(r.may_skip_dir("vendor"));
        assert!(r.excluded_by_walk("vendor/keep.go"));

        let r = rules("vendor\n");
        assert!(r.may_skip_dir("vendor"));
        assert!(!r.may_skip_dir("src"));
        assert!(r.excluded_by_walk("vendor/a/b"));
        assert!(!r.excluded_by_walk("src/a"));
    }

    /// The same context and `.dockerignore` built with the docker CLI 28
    /// against dockerd 20.10 (`COPY . /ctx`) left exactly the files marked
    /// kept here.
    #[test]
    fn matches_what_the_cli_and_dockerd_sent() {
        let r = rules(
            "**/*.go\n!keep.go\nvendor\n!**/keep.go\n.dockerignore\nDockerfile\na+b\n  # hash\n",
        );
        let cases = [
            ("main.go", false),
            ("keep.go", true),
            ("sub/keep.go", true),
            ("sub/a.txt", true),
            ("vendor/keep.go", false),
            ("vendor/x/y.txt", false),
            ("a+b", false),
            ("aab", true),
            ("#hash", true),
        ];
        for (path, kept) in cases {
            assert_eq!(!r.excluded_by_walk(path), kept, "{path}");
        }
        assert_eq!(
            r.removed_after_reading("Dockerfile"),
            [".dockerignore", "Dockerfile"]
        );
    }

    #[test]
    fn escapes_and_classes() {
        let r = rules("\\#hash\nfile[0-9].txt\n\\!bang\n");
        assert!(r.excluded("#hash"));
        assert!(r.excluded("file3.txt"));
        assert!(!r.excluded("filex.txt"));
        assert!(r.excluded("!bang"));
    }

    #[test]
    fn errors_are_mobys_words() {
        let e = IgnoreRules::parse("ok\n[a\n").err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("syntax error in pattern")
        );
        let e = IgnoreRules::parse("!\n").err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("illegal exclusion pattern: \"!\"")
        );
        let e = IgnoreRules::parse("!   \n").err();
        assert_eq!(e, Some(IgnoreError::LoneExclamation));
        let long = "a".repeat(70_000);
        assert_eq!(
            IgnoreRules::parse(&long).err(),
            Some(IgnoreError::LineTooLong)
        );
        assert!(IgnoreRules::parse(&"a".repeat(MAX_LINE)).is_ok());
    }

    #[test]
    fn daemon_removes_only_excluded_dockerfile_and_ignore_file() {
        let r = rules(".dockerignore\nDockerfile\n");
        assert_eq!(
            r.removed_after_reading("Dockerfile"),
            [".dockerignore", "Dockerfile"]
        );
        let r = rules("*.txt\n");
        assert!(r.removed_after_reading("Dockerfile").is_empty());
        let r = rules("sub\n");
        assert_eq!(
            r.removed_after_reading("sub/Dockerfile"),
            ["sub/Dockerfile"]
        );
    }

    #[test]
    fn legacy_matching_only_checks_parent_at_pattern_depth() {
        let r = rules("**/foo\n");
        // v20.10 Matches: pattern has 2 parts, parent prefix "a/b" does not match
        assert!(!r.excluded_v20("a/b/foo/x"));
        assert!(r.excluded("a/b/foo/x"));
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        for text in ["\\", "[", "!", "\0", "**/**/**/**", "[^", "\u{feff}"] {
            let _ = IgnoreRules::parse(text);
        }
        let r = rules("**/**/**/**/*a*b*c*d*\n");
        let long = "x/".repeat(2_000);
        let _ = r.excluded(&long);
        let _ = r.excluded_by_walk(&long);
    }
}
