//! API versions: berthd announces 1.50 and serves clients from 1.24 up, with
//! dockerd's messages for the others. The version of each request is kept in its
//! extensions so handlers can gate behaviour on it as moby does.

use std::fmt;

use crate::error::Error;

pub const CURRENT_STR: &str = "1.50";
pub const MIN_STR: &str = "1.24";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    pub const CURRENT: ApiVersion = ApiVersion {
        major: 1,
        minor: 50,
    };
    pub const MIN: ApiVersion = ApiVersion {
        major: 1,
        minor: 24,
    };

    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = s.split_once('.')?;
        Some(ApiVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }

    /// Accepts a requested version or says why not, in dockerd's words.
    pub fn check(requested: &str) -> Result<ApiVersion, Error> {
        let v = ApiVersion::parse(requested)
            .ok_or_else(|| Error::invalid(format!("invalid API version: {requested}")))?;
        if v < Self::MIN {
            return Err(Error::invalid(format!(
                "client version {requested} is too old. Minimum supported API version is {MIN_STR}, please upgrade your client to a newer version"
            )));
        }
        if v > Self::CURRENT {
            return Err(Error::invalid(format!(
                "client version {requested} is too new. Maximum supported API version is {CURRENT_STR}"
            )));
        }
        Ok(v)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Splits `/v1.41/containers/json` into ("1.41", "/containers/json"). Like
/// dockerd's route pattern `/v{version:[0-9.]+}`, anything else is not versioned.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let tail = &rest[end..];
    Some((version, if tail.is_empty() { "/" } else { tail }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_versioned_paths_only() {
        assert_eq!(
            split_path("/v1.41/containers/json"),
            Some(("1.41", "/containers/json"))
        );
        assert_eq!(split_path("/v1.50/_ping"), Some(("1.50", "/_ping")));
        assert_eq!(split_path("/version"), None);
        assert_eq!(split_path("/vabc/version"), None);
        assert_eq!(split_path("/volumes"), None);
    }

    #[test]
    fn range_and_messages() {
        assert_eq!(
            ApiVersion::check("1.24").map(|v| v.to_string()).ok(),
            Some("1.24".into())
        );
        assert_eq!(ApiVersion::check("1.50").ok(), Some(ApiVersion::CURRENT));
        assert!(
            ApiVersion::parse("1.9").expect("parses") < ApiVersion::parse("1.24").expect("parses")
        );
        let old = ApiVersion::check("1.12").expect_err("too old");
        assert_eq!(old.message(), "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version");
        let new = ApiVersion::check("1.99").expect_err("too new");
        assert_eq!(
            new.message(),
            "client version 1.99 is too new. Maximum supported API version is 1.50"
        );
        assert!(ApiVersion::check("1.2.3").is_err());
    }
}
