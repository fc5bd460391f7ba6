//! The distribution client: which endpoints to ask for an image (mirrors first for
//! docker.io, plain HTTP only for insecure registries), and pulling.

pub mod certs;
pub mod challenge;
pub mod client;
pub mod errors;
pub mod login;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod reference;
pub mod transport;

use std::net::IpAddr;

use serde::Deserialize;

use crate::error::{Error, Result};
pub use client::RegistryAuth;
use reference::{Reference, DOCKER_HUB, DOCKER_HUB_ENDPOINT};

/// Mirrors and insecure registries, from flags and daemon.json.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    pub mirrors: Vec<String>,
    pub insecure: Vec<String>,
    pub max_concurrent_downloads: usize,
    /// Replaces registry-1.docker.io as the source of docker.io images.
    pub hub_endpoint: Option<String>,
    /// Per-registry trust: `<certs_dir>/<host[:port]>/*.crt` are CAs for it,
    /// as dockerd reads /etc/docker/certs.d.
    pub certs_dir: std::path::PathBuf,
}

/// Where dockerd, and so its users, keep per-registry CAs.
pub const CERTS_DIR: &str = "/etc/docker/certs.d";

/// One place to ask for an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// host[:port] as the client addresses it.
    pub host: String,
    pub plain_http: bool,
    /// HTTPS without checking the certificate: an insecure registry's
    /// first try, as dockerd's (then plain HTTP).
    pub skip_verify: bool,
    pub mirror: bool,
}

impl RegistrySettings {
    pub fn from_config(config: &crate::config::Config) -> RegistrySettings {
        RegistrySettings {
            mirrors: config.registry_mirrors.clone(),
            insecure: config.insecure_registries.clone(),
            max_concurrent_downloads: config.max_concurrent_downloads as usize,
            hub_endpoint: config.docker_hub_endpoint.clone(),
            certs_dir: CERTS_DIR.into(),
        }
    }

    /// Whether `host` is reached over plain HTTP: listed as insecure, or on the
    /// loopback network (127.0.0.0/8, ::1), as dockerd allows by default.
    pub fn is_insecure(&self, host: &str) -> bool {
        let bare = host
            .rsplit_once(':')
            .map(|(h, p)| {
                if p.chars().all(|c| c.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            })
            .unwrap_or(host);
        let bare = bare.trim_start_matches('[').trim_end_matches(']');
        if bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure.iter().any(|i| {
            i == host
                || i == bare
                || crate::config::parse_cidr(i)
                    .ok()
                    .zip(bare.parse::<std::net::Ipv4Addr>().ok())
                    .is_some_and(|((net, prefix), ip)| {
                        let mask = if prefix == 0 {
                            0
                        } else {
                            u32::MAX << (32 - prefix)
                        };
                        u32::from(net) & mask == u32::from(ip) & mask
                    })
        })
    }

    /// Where to look for `r`, in order: docker.io's mirrors, then the source.
    /// An insecure registry is tried as dockerd tries it: HTTPS without
    /// checking its certificate, then plain HTTP; one named `http://` (a
    /// mirror) only over HTTP.
    pub fn endpoints(&self, r: &Reference) -> Vec<Endpoint> {
        let mut out = Vec::new();
        let mut push = |host: String, plain_only: bool, mirror: bool| {
            let insecure = self.is_insecure(&host);
            if insecure && !plain_only {
                out.push(Endpoint {
                    host: host.clone(),
                    plain_http: false,
                    skip_verify: true,
                    mirror,
                });
            }
            out.push(Endpoint {
                host,
                plain_http: insecure || plain_only,
                skip_verify: false,
                mirror,
            });
        };
        if r.domain == DOCKER_HUB {
            for m in &self.mirrors {
                let (plain, rest) = match m.split_once("://") {
                    Some((scheme, rest)) => (scheme == "http", rest),
                    None => (false, m.as_str()),
                };
                push(rest.trim_end_matches('/').to_string(), plain, true);
            }
            let host = self
                .hub_endpoint
                .clone()
                .unwrap_or_else(|| DOCKER_HUB_ENDPOINT.into());
            push(host, false, false);
        } else {
            push(r.domain.clone(), false, false);
        }
        out
    }
}

impl Endpoint {
    /// The HTTP client for this endpoint: over HTTPS for a registry that is
    /// not insecure, with the CAs and the client identity of its certs.d
    /// directory (dockerd reads them for secure registries only; an insecure
    /// one's certificate is not checked).
    pub fn http_client(&self, settings: &RegistrySettings) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(15))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
        if self.skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        } else if !self.plain_http {
            let trust = certs::read(&settings.certs_dir, &self.host)?;
            builder = builder.tls_certs_merge(trust.roots);
            if let Some(identity) = trust.identity {
                builder = builder.identity(identity);
            }
        }
        builder.build().map_err(|e| {
            Error::internal(format!(
                "a client for registry {}: {}",
                self.host,
                transport::error_chain(&e)
            ))
        })
    }

    /// A client for repository `r.path` at this endpoint, with `auth`.
    pub fn client(
        &self,
        settings: &RegistrySettings,
        r: &Reference,
        auth: &RegistryAuth,
    ) -> Result<client::Client> {
        client::Client::new(
            self.http_client(settings)?,
            self.plain_http,
            &self.host,
            &r.path,
            auth.clone(),
        )
        .map_err(Error::invalid)
    }
}

/// Credentials from the X-Registry-Auth header (base64url JSON), as the CLI sends
/// them. Clients send absent fields as null (bollard), so every field is optional.
#[derive(Debug, Default, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    pub identity_token: Option<String>,
}

impl AuthConfig {
    pub fn from_header(value: Option<&str>) -> AuthConfig {
        use base64_decode::decode;
        value
            .and_then(|v| decode(v.trim()))
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn registry_auth(&self) -> RegistryAuth {
        let some = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        if let Some(token) = some(&self.identity_token) {
            RegistryAuth::Bearer(token)
        } else if let Some(user) = some(&self.username) {
            RegistryAuth::Basic(user, self.password.clone().unwrap_or_default())
        } else {
            RegistryAuth::Anonymous
        }
    }
}

/// base64 (standard or URL-safe, padded or not), enough for X-Registry-Auth.
mod base64_decode {
    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(s.len() * 3 / 4);
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in s.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' | b'-' => 62,
                b'/' | b'_' => 63,
                b'=' => break,
                b'\n' | b'\r' | b' ' => continue,
                _ => return None,
            } as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Some(out)
    }

    #[cfg(test)]
    #[test]
    fn null_fields_are_absent_fields() {
        // {"username":"a","password":"b","email":null,"identitytoken":null}
        let h = "eyJ1c2VybmFtZSI6ImEiLCJwYXNzd29yZCI6ImIiLCJlbWFpbCI6bnVsbCwiaWRlbnRpdHl0b2tlbiI6bnVsbH0";
        match super::AuthConfig::from_header(Some(h)).registry_auth() {
            super::RegistryAuth::Basic(u, p) => assert_eq!((u.as_str(), p.as_str()), ("a", "b")),
            _ => panic!("expected basic credentials"),
        }
    }

    #[cfg(test)]
    #[test]
    fn decodes_the_cli_header() {
        assert_eq!(
            decode("eyJ1c2VybmFtZSI6ImEifQ==").as_deref(),
            Some(&br#"{"username":"a"}"#[..])
        );
        assert_eq!(
            decode("eyJ1c2VybmFtZSI6ImEifQ").as_deref(),
            Some(&br#"{"username":"a"}"#[..])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        let s = RegistrySettings {
            insecure: vec!["myreg:5000".into(), "10.9.0.0/16".into()],
            ..Default::default()
        };
        assert!(s.is_insecure("127.0.0.1:5000"));
        assert!(s.is_insecure("localhost:5000"));
        assert!(s.is_insecure("myreg:5000"));
        assert!(s.is_insecure("10.9.3.4:443"));
        assert!(!s.is_insecure("10.8.3.4"));
        assert!(!s.is_insecure("registry.example.com"));
    }

    #[test]
    fn docker_hub_goes_through_mirrors_first() {
        let s = RegistrySettings {
            mirrors: vec!["http://127.0.0.1:5000/".into()],
            ..Default::default()
        };
        let r = Reference::parse("busybox").expect("ref");
        let eps = s.endpoints(&r);
        assert_eq!(
            eps[0],
            Endpoint {
                host: "127.0.0.1:5000".into(),
                plain_http: true,
                skip_verify: false,
                mirror: true
            }
        );
        assert_eq!(eps[1].host, "registry-1.docker.io");
        assert_eq!(eps.len(), 2);
        // A loopback registry: HTTPS unchecked first, then HTTP, as dockerd.
        let r = Reference::parse("127.0.0.1:6000/x/y:1").expect("ref");
        let at = |plain_http, skip_verify| Endpoint {
            host: "127.0.0.1:6000".into(),
            plain_http,
            skip_verify,
            mirror: false,
        };
        assert_eq!(s.endpoints(&r), vec![at(false, true), at(true, false)]);
    }
}
