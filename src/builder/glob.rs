//! One `.dockerignore` pattern, matched as moby's pattern matcher does
//! (`pkg/fileutils` in v20.10, `moby/patternmatcher` since): the pattern is
//! turned into an anchored expression over the whole `/`-separated path where
//!
//! - `*` is any run of characters other than `/`, `?` one character other
//!   than `/`;
//! - `**` followed by `/` (or by anything else) is `(.*/)?`, i.e. zero or more
//!   whole directories; a trailing `**` is `.*`, i.e. anything at all;
//! - `[...]` is a character class (`[^...]` negated, ranges `a-z`, `\x`
//!   escapes) — as in dockerd, where the class goes to Go's regexp, a negated
//!   class can match `/`;
//! - `\x` is the literal `x`;
//! - every other character is literal. (moby v20.10 passed `+ ( ) | { } ^`
//!   to the regexp engine unescaped, so `a+b` matched `aab`; newer moby and
//!   the docker CLI 23+ escape them. We follow the newer, literal reading.)
//!
//! Syntax is first checked as Go's `filepath.Match` checks it: an unclosed
//! class, an empty or malformed range or a trailing `\` make the whole file
//! invalid (`syntax error in pattern`).

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**` at the end: anything, `/` included.
    Rest,
    /// `**` elsewhere: `(.*/)?`.
    Dirs,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
}

/// The pattern is malformed (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadPattern;

impl Glob {
    pub(crate) fn compile(pattern: &str) -> Result<Glob, BadPattern> {
        validate(pattern)?;
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    tokens.push(if i >= chars.len() {
                        Token::Rest
                    } else {
                        Token::Dirs
                    });
                }
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::One),
                '\\' => {
                    // validate() guarantees a following character
                    if let Some(&n) = chars.get(i) {
                        i += 1;
                        tokens.push(Token::Lit(n));
                    } else {
                        tokens.push(Token::Lit('\\'));
                    }
                }
                '[' => {
                    let mut negated = false;
                    if chars.get(i) == Some(&'^') {
                        negated = true;
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    while i < chars.len() && chars[i] != ']' {
                        let lo = class_char(&chars, &mut i);
                        let mut hi = lo;
                        if chars.get(i) == Some(&'-') && chars.get(i + 1) != Some(&']') {
                            i += 1;
                            hi = class_char(&chars, &mut i);
                        }
                        ranges.push((lo, hi));
                    }
                    i += 1; // the closing ']'
                    tokens.push(Token::Class { negated, ranges });
                }
                c => tokens.push(Token::Lit(c)),
            }
        }
        Ok(Glob { tokens })
    }

    /// Whether the whole of `path` matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        self.prefix_matches(path).last().copied().unwrap_or(false)
    }

    /// For each prefix of `path` that ends before a `/`, then for the whole
    /// path: whether the pattern matches it.
    pub(crate) fn prefix_matches(&self, path: &str) -> Vec<bool> {
        // A forward NFA run. State `2*ti` is "about to match token ti"; state
        // `2*ti+1` is "inside the `.*` of a `(.*/)?` token ti".
        let nt = self.tokens.len();
        let accept = 2 * nt;
        let mut out = Vec::new();
        let mut cur = vec![false; 2 * nt + 2];
        let mut next = vec![false; 2 * nt + 2];
        cur[0] = true;
        self.close(&mut cur);
        let mut alive = true;
        for c in path.chars() {
            if c == '/' {
                out.push(alive && cur[accept]);
            }
            if !alive {
                continue;
            }
            next.iter_mut().for_each(|v| *v = false);
            for ti in 0..nt {
                let (at, inside) = (cur[2 * ti], cur[2 * ti + 1]);
                if !at && !inside {
                    continue;
                }
                let advance = 2 * (ti + 1);
                match &self.tokens[ti] {
                    Token::Lit(x) => next[advance] |= at && c == *x,
                    Token::One => next[advance] |= at && c != '/',
                    Token::Class { negated, ranges } => {
                        let hit = ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated;
                        next[advance] |= at && hit;
                    }
                    Token::Star => next[2 * ti] |= at && c != '/',
                    Token::Rest => next[2 * ti] |= at,
                    Token::Dirs => {
                        next[2 * ti + 1] = true;
                        next[advance] |= c == '/';
                    }
                }
            }
            std::mem::swap(&mut cur, &mut next);
            self.close(&mut cur);
            alive = cur.iter().any(|v| *v);
        }
        out.push(alive && cur[accept]);
        out
    }

    /// Adds the states reachable without consuming a character.
    fn close(&self, states: &mut [bool]) {
        for ti in 0..self.tokens.len() {
            let skippable = matches!(self.tokens[ti], Token::Star | Token::Rest | Token::Dirs);
            if states[2 * ti] && skippable {
                states[2 * (ti + 1)] = true;
            }
        }
    }
}

fn class_char(chars: &[char], i: &mut usize) -> char {
    let mut c = chars.get(*i).copied().unwrap_or(']');
    if c == '\\' {
        *i += 1;
        c = chars.get(*i).copied().unwrap_or('\\');
    }
    *i += 1;
    c
}

/// Go's `filepath.Match` syntax check.
fn validate(pattern: &str) -> Result<(), BadPattern> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    // Go's getEsc: one class character (maybe escaped) that must be
    // followed by something.
    let esc = |i: &mut usize| -> Result<(), BadPattern> {
        match chars.get(*i) {
            None | Some('-') | Some(']') => return Err(BadPattern),
            Some('\\') => {
                *i += 1;
                if *i >= chars.len() {
                    return Err(BadPattern);
                }
            }
            Some(_) => {}
        }
        *i += 1;
        if *i >= chars.len() {
            return Err(BadPattern);
        }
        Ok(())
    };
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                i += 1;
                if i >= chars.len() {
                    return Err(BadPattern);
                }
                i += 1;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut nrange = 0;
                loop {
                    if chars.get(i) == Some(&']') && nrange > 0 {
                        i += 1;
                        break;
                    }
                    esc(&mut i)?;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        esc(&mut i)?;
                    }
                    nrange += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        match Glob::compile(pattern) {
            Ok(g) => g.matches(path),
            Err(_) => panic!("bad pattern {pattern}"),
        }
    }

    #[test]
    fn match_table() {
        let yes = [
            ("foo", "foo"),
            ("*.go", "main.go"),
            ("**/*.go", "main.go"),
            ("**/*.go", "a/b/main.go"),
            ("**", "a/b"),
            ("a/**", "a/b/c"),
            ("a/**/b", "a/b"),
            ("a/**/b", "a/x/y/b"),
            ("?at", "cat"),
            ("[a-c]at", "bat"),
            ("[^a]at", "cat"),
            ("\\*", "*"),
            ("a.b", "a.b"),
            ("a+b", "a+b"),
            ("(x)", "(x)"),
            ("foo*", "foobar"),
            ("**foo", "foo"),
            ("[\\]]", "]"),
        ];
        for (p, path) in yes {
            assert!(m(p, path), "{p} should match {path}");
        }
        let no = [
            ("foo", "foo/bar"),
            ("*.go", "a/main.go"),
            ("*", "a/b"),
            ("?at", "at"),
            ("?", "/"),
            ("[a-c]at", "dat"),
            ("a.b", "axb"),
            ("a+b", "aab"),
            ("a/**/b", "a/xb"),
            ("\\*", "a"),
        ];
        for (p, path) in no {
            assert!(!m(p, path), "{p} should not match {path}");
        }
    }

    #[test]
    fn bad_patterns_as_filepath_match() {
        for p in [
            "[", "[a", "[]", "[]a]", "a\\", "[a-]", "[-a]", "[\\", "[a-b-c]", "[^]",
        ] {
            assert_eq!(Glob::compile(p), Err(BadPattern), "{p}");
        }
        for p in ["]", "a]", "[a]", "[\\]]", "[a-b]", "[^a]", "*?"] {
            assert!(Glob::compile(p).is_ok(), "{p}");
        }
    }
}
