//! The `WWW-Authenticate` challenge a registry answers `/v2/` with (RFC 7235):
//! `Bearer realm="https://auth/token",service="registry",scope="..."` sends the
//! client to a token server; `Basic realm="..."` wants the credentials on each
//! request.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// The challenge berthd can answer from a header value, if any: Bearer
    /// with a realm, or Basic. Unknown schemes give None.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header
            .split_once(char::is_whitespace)
            .unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut params = params(rest);
        let realm = params.remove("realm").filter(|r| !r.is_empty())?;
        Some(Challenge::Bearer {
            realm,
            service: params.remove("service"),
        })
    }
}

/// `name=value` or `name="quoted \" value"`, comma separated; names are
/// case-insensitive (kept lowercase).
pub fn params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            name.push(c.to_ascii_lowercase());
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue; // a bare token (token68): nothing to keep
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim_end().to_string();
        }
        out.insert(name, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_realm_service_and_scope() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            Challenge::parse(h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        let p = params(&h["Bearer ".len()..]);
        assert_eq!(
            p.get("scope").map(String::as_str),
            Some("repository:library/busybox:pull")
        );
    }

    #[test]
    fn scheme_and_names_are_case_insensitive_and_values_may_be_bare_or_escaped() {
        let h = r#"bearer Realm=http://127.0.0.1:1/token , SERVICE="a \"b\", c""#;
        assert_eq!(
            Challenge::parse(h),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/token".into(),
                service: Some(r#"a "b", c"#.into()),
            })
        );
    }

    #[test]
    fn basic_unknown_and_incomplete() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="berth-test""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate abc=="), None);
        // A bearer challenge without a realm cannot be answered.
        assert_eq!(Challenge::parse(r#"Bearer service="x""#), None);
        assert_eq!(Challenge::parse(""), None);
    }
}
