//! Image references as docker normalizes them: `busybox` is
//! `docker.io/library/busybox:latest`; `localhost:5000/x@sha256:...` names a
//! registry, a repository and a digest. Errors use the docker CLI's wording.

use std::fmt;

use crate::error::{Error, Result};

pub const DOCKER_HUB: &str = "docker.io";
/// Where docker.io is really served from.
pub const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host[:port], e.g. `docker.io`, `127.0.0.1:5000`.
    pub domain: String,
    /// Repository path, e.g. `library/busybox`.
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

fn invalid(s: &str) -> Error {
    Error::invalid(format!("invalid reference format: {s}"))
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ separated by '.', '_', '__' or one or more '-'
    if c.is_empty() {
        return false;
    }
    let b = c.as_bytes();
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut prev_sep: Option<u8> = None;
    let mut run = 0;
    for &ch in b {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            prev_sep = None;
            run = 0;
        } else if ch == b'.' || ch == b'_' || ch == b'-' {
            run += 1;
            match (prev_sep, ch) {
                (None, _) => {}
                (Some(b'_'), b'_') if run == 2 => {}
                (Some(b'-'), b'-') => {}
                _ => return false,
            }
            prev_sep = Some(ch);
        } else {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

impl Reference {
    /// Parses and normalizes a reference; a missing tag stays missing (see `with_default_tag`).
    pub fn parse(s: &str) -> Result<Reference> {
        if s.is_empty() {
            return Err(invalid(s));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(invalid(s));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(invalid(s));
                }
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            domain
        };
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::invalid(format!(
                "invalid reference format: repository name ({path}) must be lowercase"
            )));
        }
        if !path.split('/').all(valid_component) || domain.is_empty() || name.len() > 255 {
            return Err(invalid(s));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `latest` when neither a tag nor a digest was given, as `docker pull` does.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".into());
        }
        self
    }

    /// `docker.io/library/busybox`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox`, `127.0.0.1:5000/x/y`: the name as the CLI shows it.
    pub fn familiar_name(&self) -> String {
        if self.domain == DOCKER_HUB {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.full_name()
        }
    }

    /// `busybox:latest` (a RepoTag), if there is a tag.
    pub fn familiar_tagged(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{t}", self.familiar_name()))
    }

    /// The tag or digest to ask the registry for.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.familiar_name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn normalizes_like_docker() {
        let r = p("busybox").with_default_tag();
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.tag.as_deref()),
            ("docker.io", "library/busybox", Some("latest"))
        );
        assert_eq!(r.familiar_tagged().as_deref(), Some("busybox:latest"));
        let r = p("127.0.0.1:5000/library/alpine:3.10");
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "library/alpine", Some("3.10"))
        );
        assert_eq!(r.familiar_name(), "127.0.0.1:5000/library/alpine");
        let r = p("localhost/x");
        assert_eq!(r.domain, "localhost");
        let r = p("user/app:v1");
        assert_eq!(
            (r.domain.as_str(), r.path.as_str()),
            ("docker.io", "user/app")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("alpine@{d}")).with_default_tag();
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref()),
            (None, Some(d.as_str()))
        );
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(
            p("docker.io/library/busybox:1")
                .familiar_tagged()
                .as_deref(),
            Some("busybox:1")
        );
    }

    #[test]
    fn refuses_bad_references() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "x:",
            "x@sha256:zz",
            "-x",
            "x:t@sha256:12",
            "a b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            Reference::parse("Busybox").map_err(|e| e.to_string()),
            Err(
                "invalid reference format: repository name (library/Busybox) must be lowercase"
                    .into()
            )
        );
    }
}
