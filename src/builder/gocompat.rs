//! Small re-implementations of the Go standard-library behaviour whose exact
//! output shows up in dockerd's error messages: `strconv.Quote` (`%q`),
//! `time.ParseDuration`, `strconv.ParseInt(s, 10, 32)`, `path.Clean` and
//! `unicode.IsSpace`.

use std::fmt::Write as _;

/// Go's `unicode.IsSpace`. Rust's `char::is_whitespace` is the Unicode
/// `White_Space` property, which is exactly the set Go uses.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `strings.TrimSpace`.
pub(crate) fn trim_space(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// The characters of RE2's `\s` class: `[\t\n\f\r ]` (no `\v`).
pub(crate) fn is_re2_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// The characters of dockerd's `reWhitespace` (`[\t\v\f\r ]+`).
pub(crate) fn is_re_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Go's `strconv.Quote` (what `%q` prints for a string).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || c == '\u{feff}' => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `time.ParseDuration`, returning nanoseconds. The error text is Go's.
pub(crate) fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", quote(orig));
    const LIMIT: u64 = 1 << 63;
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // leading integer
        let mut v: u64 = 0;
        let mut i = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(s[i] - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
            i += 1;
        }
        let pre = i > 0;
        s = &s[i..];
        // fraction
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let mut j = 0;
            let mut overflow = false;
            while j < s.len() && s[j].is_ascii_digit() {
                if !overflow {
                    if f > (LIMIT - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + u64::from(s[j] - b'0');
                        if y > LIMIT {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                j += 1;
            }
            post = j > 0;
            s = &s[j..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // unit
        let mut k = 0;
        while k < s.len() && !(s[k] == b'.' || s[k].is_ascii_digit()) {
            k += 1;
        }
        if k == 0 {
            return Err(format!("time: missing unit in duration {}", quote(orig)));
        }
        let unit_text = String::from_utf8_lossy(&s[..k]).into_owned();
        s = &s[k..];
        let unit: u64 = match unit_text.as_str() {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(&unit_text),
                    quote(orig)
                ))
            }
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v = v.saturating_add((f as f64 * (unit as f64 / scale)) as u64);
            if v > LIMIT {
                return Err(invalid());
            }
        }
        d = d.saturating_add(v);
        if d > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        // d <= 1<<63, so the negation fits.
        return Ok((d as i128).wrapping_neg() as i64);
    }
    if d > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(d as i64)
}

/// Go's `strconv.ParseInt(s, 10, 32)`, with Go's error text.
pub(crate) fn parse_int32(s: &str) -> Result<i64, String> {
    let syntax = || format!("strconv.ParseInt: parsing {}: invalid syntax", quote(s));
    let range = || format!("strconv.ParseInt: parsing {}: value out of range", quote(s));
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let mut v: u64 = 0;
    for b in digits.bytes() {
        v = match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
        {
            Some(v) => v,
            None => return Err(range()),
        };
    }
    let v = v as i128;
    let v = if neg { -v } else { v };
    if v < i128::from(i32::MIN) || v > i128::from(i32::MAX) {
        return Err(range());
    }
    Ok(v as i64)
}

/// Go's `path.Clean` (which is `filepath.Clean` on Unix).
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(last) if *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote("\"abc"), r#""\"abc""#);
        assert_eq!(quote("a\\tb\n"), r#""a\\tb\n""#);
        assert_eq!(quote("\0"), r#""\x00""#);
        assert_eq!(quote("é"), "\"é\"");
    }

    #[test]
    fn durations_match_go() {
        let ok = [
            ("0", 0),
            ("1ms", 1_000_000),
            ("1.5s", 1_500_000_000),
            ("-1s", -1_000_000_000),
            ("1h2m", 3_720_000_000_000),
            ("2us", 2_000),
            ("2µs", 2_000),
            (".5s", 500_000_000),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        let bad = [
            ("abc", "time: invalid duration \"abc\""),
            ("1", "time: missing unit in duration \"1\""),
            ("1x", "time: unknown unit \"x\" in duration \"1x\""),
            ("", "time: invalid duration \"\""),
            ("-", "time: invalid duration \"-\""),
            (".s", "time: invalid duration \".s\""),
            (
                "99999999999999999999s",
                "time: invalid duration \"99999999999999999999s\"",
            ),
        ];
        for (s, want) in bad {
            assert_eq!(parse_duration(s).unwrap_err(), want, "{s}");
        }
    }

    #[test]
    fn parse_int_matches_go() {
        assert_eq!(parse_int32("3"), Ok(3));
        assert_eq!(parse_int32("-3"), Ok(-3));
        assert_eq!(parse_int32("+3"), Ok(3));
        assert_eq!(
            parse_int32("x").unwrap_err(),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse_int32("99999999999").unwrap_err(),
            "strconv.ParseInt: parsing \"99999999999\": value out of range"
        );
        assert_eq!(
            parse_int32("99999999999999999999999").unwrap_err(),
            "strconv.ParseInt: parsing \"99999999999999999999999\": value out of range"
        );
    }

    #[test]
    fn clean_matches_go() {
        for (p, want) in [
            ("", "."),
            ("./foo", "foo"),
            ("/foo/", "/foo"),
            ("a//b/./c/..", "a/b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("/", "/"),
            ("!", "!"),
        ] {
            assert_eq!(clean_path(p), want, "{p}");
        }
    }
}
