//! The word splitters of dockerd's Dockerfile parser (buildkit
//! `frontend/dockerfile/parser/line_parsers.go` and `split_command.go`).

use super::gocompat::{is_re_whitespace, is_space};

/// buildkit's `parseWords`: splits on whitespace, keeping quotes and escapes
/// in the words (they are removed later, by variable expansion). Used by
/// ENV, LABEL and ARG.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= n {
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if is_space(ch) {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if pos == n {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue; // an escape at the end of the line is dropped
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// buildkit's `extractBuilderFlags`: the leading `--flag[=value]` words of an
/// instruction's arguments (quotes removed, `\` escapes), and the rest of the
/// line after them. A lone `--` ends the flags.
///
/// dockerd scans bytes and so also treats the bytes 0x85 and 0xA0 inside a
/// multi-byte character as spaces; we treat only ASCII whitespace as spaces.
pub(crate) fn extract_flags(line: &str) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let at = |pos: usize| chars.get(pos).map_or(line.len(), |(i, _)| *i);
    let space = |c: char| c.is_ascii_whitespace() || c == '\x0b';
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= n {
        let mut ch = chars.get(pos).map_or('\0', |(_, c)| *c);
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if space(ch) {
                pos += 1;
                continue;
            }
            if ch != '-' || pos + 1 == n || chars[pos + 1].1 != '-' {
                return (&line[at(pos)..], words);
            }
            phase = Phase::Word;
        }
        if pos == n {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if space(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[at(pos)..], words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == '\\' {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = chars[pos].1;
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == '\\' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = chars[pos].1;
        }
        word.push(ch);
        pos += 1;
    }
    ("", words)
}

/// `reWhitespace.Split(s, -1)` on an already trimmed string: the runs of
/// `[\t\v\f\r ]` separate the words. Empty input gives no words.
pub(crate) fn split_whitespace(s: &str) -> Vec<String> {
    s.split(is_re_whitespace)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// `reWhitespace.Split(s, 2)`: the first word and everything after the run of
/// whitespace that follows it.
pub(crate) fn split_first(s: &str) -> Option<(&str, &str)> {
    let i = s.find(is_re_whitespace)?;
    let rest = s[i..].trim_start_matches(is_re_whitespace);
    Some((&s[..i], rest))
}

/// Whether a word (as [`parse_words`] gives it) opens a heredoc as BuildKit
/// reads one: `[digits]<<[-]NAME`, NAME non-empty (quotes allowed).
pub(crate) fn is_heredoc_word(word: &str) -> bool {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix("<<") else {
        return false;
    };
    let name = rest.strip_prefix('-').unwrap_or(rest);
    if name.contains('<') {
        return false;
    }
    let unquoted: String = name.chars().filter(|c| *c != '"' && *c != '\'').collect();
    !unquoted.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_words_keeps_quotes_and_escapes() {
        let cases: &[(&str, &[&str])] = &[
            ("a=1 b=\"x y\"", &["a=1", "b=\"x y\""]),
            ("a='x y' c", &["a='x y'", "c"]),
            ("a\\ b c", &["a\\ b", "c"]),
            ("  a   b  ", &["a", "b"]),
            ("\"\"", &["\"\""]),
            ("a\\", &["a"]),
            ("x=\"a\\\"b\"", &["x=\"a\\\"b\""]),
            ("x='a\\'", &["x='a\\'"]),
            ("", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_words(input, '\\'), *want, "{input:?}");
        }
        assert_eq!(parse_words("a`  b c", '`'), ["a` ", "b", "c"]);
    }

    #[test]
    fn flags_are_extracted() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("--from=a b c", "b c", &["--from=a"]),
            (
                "--from=a  --chown=1:2 b c",
                "b c",
                &["--from=a", "--chown=1:2"],
            ),
            ("--chown=\"a b\" x y", "x y", &["--chown=a b"]),
            ("--from=x -- --chown=1 b", " --chown=1 b", &["--from=x"]),
            ("-x b", "-x b", &[]),
            ("a --from=x", "a --from=x", &[]),
            ("--interval=5s", "", &["--interval=5s"]),
            ("--a\\ b=c d", "d", &["--a b=c"]),
            ("", "", &[]),
            ("--", "", &[]),
        ];
        for (input, rest, flags) in cases {
            let (r, f) = extract_flags(input);
            assert_eq!(
                (r, f),
                (
                    *rest,
                    flags.iter().map(|s| s.to_string()).collect::<Vec<_>>()
                ),
                "{input:?}"
            );
        }
    }

    #[test]
    fn whitespace_splits() {
        assert_eq!(split_whitespace("a \t b\x0bc"), ["a", "b", "c"]);
        assert!(split_whitespace("").is_empty());
        assert_eq!(split_first("k  v w"), Some(("k", "v w")));
        assert_eq!(split_first("k"), None);
    }

    #[test]
    fn heredoc_words() {
        for w in ["<<EOF", "<<-EOF", "2<<EOF", "<<\"EOF\"", "<<'x'"] {
            assert!(is_heredoc_word(w), "{w}");
        }
        for w in ["<<", "<<''", "a<<EOF", "\"<<EOF\"", "<EOF", "<<<x"] {
            assert!(!is_heredoc_word(w), "{w}");
        }
    }
}
