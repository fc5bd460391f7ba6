//! What a registry request can end in, worded as Go's distribution client
//! words it: a registry's error body (`manifest unknown: manifest unknown`),
//! an unexpected status, or a transport failure (see transport.rs).

use std::fmt;

use serde::Deserialize;

/// One entry of a registry's `{"errors": [...]}` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorDetail {
    /// `MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, `UNAUTHORIZED`, `DENIED`, ...
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for ErrorDetail {
    /// As Go's errcode.Error: the code in lower case with spaces, then the message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.code.to_ascii_lowercase().replace('_', " "),
            self.message
        )
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    errors: Vec<ErrorDetail>,
}

/// The errors of a registry's answer body, if it is the distribution
/// envelope with at least one.
pub fn details(body: &[u8]) -> Vec<ErrorDetail> {
    serde_json::from_slice::<Envelope>(body)
        .map(|e| e.errors)
        .unwrap_or_default()
}

#[derive(Debug)]
pub enum RegistryError {
    /// The request did not get an answer (refused, TLS, DNS, timeout...).
    Transport(reqwest::Error),
    /// 401 to a request (with the credentials or token berthd had).
    Unauthorized {
        method: String,
        url: String,
        errors: Vec<ErrorDetail>,
    },
    /// Any other unexpected status; `errors` from the body when it has them.
    Status {
        method: String,
        url: String,
        status: reqwest::StatusCode,
        errors: Vec<ErrorDetail>,
        body: String,
    },
    /// The token server refused the credentials.
    Token {
        realm: String,
        status: reqwest::StatusCode,
        body: String,
    },
    /// An answer that breaks the protocol (no Location, a bad token body, a
    /// digest that does not match).
    Protocol(String),
}

impl RegistryError {
    /// The registry's error code of a failed request, if its body said one.
    pub fn first_detail(&self) -> Option<&ErrorDetail> {
        match self {
            RegistryError::Unauthorized { errors, .. } | RegistryError::Status { errors, .. } => {
                errors.first()
            }
            _ => None,
        }
    }

    pub fn status(&self) -> Option<reqwest::StatusCode> {
        match self {
            RegistryError::Unauthorized { .. } => Some(reqwest::StatusCode::UNAUTHORIZED),
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Go's errcode.Errors: one error as itself, several as a list.
fn list(errors: &[ErrorDetail]) -> String {
    match errors {
        [one] => one.to_string(),
        many => {
            let mut s = String::from("errors:\n");
            for e in many {
                s.push_str(&e.to_string());
                s.push('\n');
            }
            s
        }
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Transport(e) => match super::transport::words(e) {
                Some(words) => f.write_str(&words),
                None => write!(f, "{e}"),
            },
            RegistryError::Unauthorized {
                method,
                url,
                errors,
            } => {
                if errors.is_empty() {
                    write!(f, "{method} {url:?}: unauthorized: authentication required")
                } else {
                    write!(f, "{method} {url:?}: {}", list(errors))
                }
            }
            RegistryError::Status {
                method,
                url,
                status,
                errors,
                body,
            } => {
                if !errors.is_empty() {
                    return write!(f, "{}", list(errors));
                }
                write!(
                    f,
                    "{method} {url:?}: received unexpected HTTP status: {status}"
                )?;
                let body = body.trim();
                if !body.is_empty() && body.len() <= 512 {
                    write!(f, " ({body})")?;
                }
                Ok(())
            }
            RegistryError::Token {
                realm,
                status,
                body,
            } => {
                let body = body.trim();
                write!(f, "Get {realm:?}: token request refused ({status})")?;
                if !body.is_empty() && body.len() <= 512 {
                    write!(f, ": {body}")?;
                }
                Ok(())
            }
            RegistryError::Protocol(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RegistryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_as_go_words_them() {
        let one = details(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#);
        assert_eq!(list(&one), "manifest unknown: manifest unknown");
        let two = details(br#"{"errors":[{"code":"DENIED","message":"no"},{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#);
        assert_eq!(
            list(&two),
            "errors:\ndenied: no\nname unknown: repository name not known to registry\n"
        );
        assert!(details(b"<html>404</html>").is_empty());
        assert!(details(br#"{"details":"incorrect username or password"}"#).is_empty());
    }
}
