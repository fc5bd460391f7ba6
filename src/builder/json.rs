//! The JSON (exec) form of RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD, VOLUME
//! and HEALTHCHECK CMD, as buildkit's `parseJSON` reads it: the arguments,
//! left-trimmed, must start with `[`; the first JSON value is decoded (what
//! follows it is ignored, as Go's `json.Decoder` does); any JSON syntax error
//! means "not JSON" (the shell form is used instead), but a well-formed array
//! holding anything other than strings is an error.

/// The outcome of trying the JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonForm {
    /// Not a JSON array: use the shell form.
    NotJson,
    /// A well-formed array with a non-string element.
    NotStrings,
    /// An array of strings.
    Strings(Vec<String>),
}

/// dockerd's error text for [`JsonForm::NotStrings`].
pub(crate) const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// Go's `encoding/json` nesting limit.
const MAX_DEPTH: usize = 10_000;

pub(crate) fn parse_json_form(rest: &str) -> JsonForm {
    let text = rest.trim_start_matches(super::gocompat::is_space);
    if !text.starts_with('[') {
        return JsonForm::NotJson;
    }
    let mut p = Parser {
        b: text.as_bytes(),
        pos: 1,
    };
    match p.array() {
        Some(Some(strings)) => JsonForm::Strings(strings),
        Some(None) => JsonForm::NotStrings,
        None => JsonForm::NotJson,
    }
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
}

#[derive(Clone, Copy)]
enum Container {
    Array,
    Object,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The top-level array (its `[` consumed). `None`: malformed;
    /// `Some(None)`: well-formed with a non-string; `Some(Some(v))`: strings.
    fn array(&mut self) -> Option<Option<Vec<String>>> {
        let mut out = Some(Vec::new());
        if self.eat(b']') {
            return Some(out);
        }
        loop {
            self.ws();
            if self.b.get(self.pos) == Some(&b'"') {
                let s = self.string()?;
                if let Some(v) = out.as_mut() {
                    v.push(s);
                }
            } else {
                self.skip_value()?;
                out = None;
            }
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Some(out);
            }
            return None;
        }
    }

    /// Skips one JSON value of any kind, without recursion.
    fn skip_value(&mut self) -> Option<()> {
        let mut stack: Vec<Container> = Vec::new();
        'value: loop {
            self.ws();
            match *self.b.get(self.pos)? {
                b'[' => {
                    self.pos += 1;
                    if !self.eat(b']') {
                        stack.push(Container::Array);
                        if stack.len() >= MAX_DEPTH {
                            return None;
                        }
                        continue 'value;
                    }
                }
                b'{' => {
                    self.pos += 1;
                    if !self.eat(b'}') {
                        stack.push(Container::Object);
                        if stack.len() >= MAX_DEPTH {
                            return None;
                        }
                        self.key()?;
                        continue 'value;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // a value is complete: close containers as far as possible
            loop {
                match stack.last() {
                    None => return Some(()),
                    Some(Container::Array) => {
                        if self.eat(b',') {
                            continue 'value;
                        }
                        if !self.eat(b']') {
                            return None;
                        }
                        stack.pop();
                    }
                    Some(Container::Object) => {
                        if self.eat(b',') {
                            self.key()?;
                            continue 'value;
                        }
                        if !self.eat(b'}') {
                            return None;
                        }
                        stack.pop();
                    }
                }
            }
        }
    }

    fn key(&mut self) -> Option<()> {
        self.ws();
        if self.b.get(self.pos) != Some(&b'"') {
            return None;
        }
        self.string()?;
        self.eat(b':').then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.pos..self.pos + word.len())? == word {
            self.pos += word.len();
            Some(())
        } else {
            None
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.b.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Option<()> {
        if self.b.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.b.get(self.pos)? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.b.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.pos..self.pos + 4)?;
        let s = std::str::from_utf8(h).ok()?;
        if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(s, 16).ok()
    }

    /// A string at `"`; escapes decoded as Go does (a lone surrogate becomes
    /// U+FFFD).
    fn string(&mut self) -> Option<String> {
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.b.get(self.pos)?;
            self.pos += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.b.get(self.pos)?;
                    self.pos += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\x08',
                        b'f' => '\x0c',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xd800..0xdc00).contains(&hi) {
                                let save = self.pos;
                                let lo = if self.b.get(self.pos..self.pos + 2) == Some(b"\\u") {
                                    self.pos += 2;
                                    self.hex4()
                                } else {
                                    None
                                };
                                match lo {
                                    Some(lo) if (0xdc00..0xe000).contains(&lo) => {
                                        let v = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                                        char::from_u32(v).unwrap_or('\u{fffd}')
                                    }
                                    _ => {
                                        self.pos = save;
                                        '\u{fffd}'
                                    }
                                }
                            } else {
                                char::from_u32(hi).unwrap_or('\u{fffd}')
                            }
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return None,
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> JsonForm {
        JsonForm::Strings(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn json_forms() {
        let cases = [
            (r#"["echo", "hi"]"#, strings(&["echo", "hi"])),
            (r#"  [ "a b" ,"c" ] "#, strings(&["a b", "c"])),
            ("[]", strings(&[])),
            (r#"["a"] trailing"#, strings(&["a"])),
            (
                r#"["\u0041\n\"\\\/", "\ud83d\ude00"]"#,
                strings(&["A\n\"\\/", "😀"]),
            ),
            (r#"["\ud800x"]"#, strings(&["\u{fffd}x"])),
            (r#"["a", 1]"#, JsonForm::NotStrings),
            (r#"["a", {"b": [1, null, true]}]"#, JsonForm::NotStrings),
            (r#"[null]"#, JsonForm::NotStrings),
            ("echo hi", JsonForm::NotJson),
            (r#"["a" "b"]"#, JsonForm::NotJson),
            (r#"["a", {b}]"#, JsonForm::NotJson),
            (r#"["a""#, JsonForm::NotJson),
            (r#"['a']"#, JsonForm::NotJson),
            (r#"[01]"#, JsonForm::NotJson),
            ("[\"a\tb\"]", JsonForm::NotJson),
            ("[", JsonForm::NotJson),
        ];
        for (input, want) in cases {
            assert_eq!(parse_json_form(input), want, "{input}");
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = format!("[{}", "[".repeat(1 << 20));
        assert_eq!(parse_json_form(&deep), JsonForm::NotJson);
        let ok = format!("[{}{}]", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse_json_form(&ok), JsonForm::NotStrings);
    }
}
