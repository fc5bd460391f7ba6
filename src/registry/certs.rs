//! Per-registry trust as dockerd reads it from `<certs.d>/<host[:port]>/`:
//! every `*.crt` is a CA root (besides the system's), and every `X.cert` with
//! its `X.key` is a client identity to present. A `.cert` without its `.key`
//! (or a `.key` without its `.cert`) fails the lookup in dockerd's words.

use std::path::Path;

use tracing::{debug, warn};

use super::transport::error_chain;
use crate::drivers::exec::spec::go_io_words as go_io;
use crate::error::{Error, Result};

/// What certs.d holds for one registry.
#[derive(Default)]
pub struct Trust {
    pub roots: Vec<reqwest::Certificate>,
    pub identity: Option<reqwest::Identity>,
}

/// One file of a registry's directory that counts, in name order.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Ca(String),
    Pair { cert: String, key: String },
}

/// The files of a directory (`names`, any order) that make its trust, or the
/// first pairing mistake in name order, in dockerd 20.10's words.
fn plan(names: &[String]) -> std::result::Result<Vec<Entry>, String> {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    let has = |n: &str| names.iter().any(|x| x == n);
    let mut out = Vec::new();
    for name in sorted {
        if name.ends_with(".crt") {
            out.push(Entry::Ca(name.clone()));
        }
        if let Some(base) = name.strip_suffix(".cert") {
            let key = format!("{base}.key");
            if !has(&key) {
                return Err(format!(
                    "missing key {key} for client certificate {name}. Note that CA certificates should use the extension .crt"
                ));
            }
            out.push(Entry::Pair {
                cert: name.clone(),
                key,
            });
        }
        if let Some(base) = name.strip_suffix(".key") {
            let cert = format!("{base}.cert");
            if !has(&cert) {
                return Err(format!("Missing client certificate {cert} for key {name}"));
            }
        }
    }
    Ok(out)
}

/// The trust `certs_dir/<host>/` gives registry `host`; nothing when there is
/// no such directory.
pub fn read(certs_dir: &Path, host: &str) -> Result<Trust> {
    let dir = certs_dir.join(host);
    let names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::internal(format!("open {}: {}", dir.display(), go_io(&e))))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Trust::default()),
        Err(e) => {
            return Err(Error::internal(format!(
                "open {}: {}",
                dir.display(),
                go_io(&e)
            )))
        }
    };
    let mut trust = Trust::default();
    for entry in plan(&names).map_err(Error::internal)? {
        match entry {
            Entry::Ca(name) => {
                let path = dir.join(&name);
                debug!(crt = %path.display(), "registry CA");
                let data = std::fs::read(&path).map_err(|e| {
                    Error::internal(format!("open {}: {}", path.display(), go_io(&e)))
                })?;
                // As Go's AppendCertsFromPEM: what is not a certificate is skipped.
                match reqwest::Certificate::from_pem_bundle(&data) {
                    Ok(certs) => trust.roots.extend(certs),
                    Err(e) => {
                        warn!(crt = %path.display(), error = %e, "a registry CA that is not PEM")
                    }
                }
            }
            Entry::Pair { cert, key } => {
                debug!(cert = %dir.join(&cert).display(), key = %dir.join(&key).display(), "registry client certificate");
                let read = |name: &str| {
                    let path = dir.join(name);
                    std::fs::read(&path).map_err(|e| {
                        Error::internal(format!("open {}: {}", path.display(), go_io(&e)))
                    })
                };
                let mut pem = read(&cert)?;
                pem.push(b'\n');
                pem.extend(read(&key)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    Error::internal(format!(
                        "client certificate {cert} with key {key} in {}: {}",
                        dir.display(),
                        error_chain(&e)
                    ))
                })?;
                if trust.identity.is_none() {
                    trust.identity = Some(identity);
                } else {
                    warn!(dir = %dir.display(), %cert, "more than one client certificate for a registry; the first (by name) is used");
                }
            }
        }
    }
    Ok(trust)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cas_and_pairs_in_name_order() {
        assert_eq!(
            plan(&names(&[
                "z.crt",
                "client.key",
                "ca.crt",
                "client.cert",
                "README"
            ])),
            Ok(vec![
                Entry::Ca("ca.crt".into()),
                Entry::Pair {
                    cert: "client.cert".into(),
                    key: "client.key".into()
                },
                Entry::Ca("z.crt".into()),
            ])
        );
        assert_eq!(plan(&[]), Ok(vec![]));
    }

    #[test]
    fn a_cert_without_its_key_and_a_key_without_its_cert_in_dockerds_words() {
        assert_eq!(
            plan(&names(&["ca.crt", "client.cert"])),
            Err("missing key client.key for client certificate client.cert. Note that CA certificates should use the extension .crt".into())
        );
        assert_eq!(
            plan(&names(&["client.key", "ca.crt"])),
            Err("Missing client certificate client.cert for key client.key".into())
        );
        // The first mistake by name is the one reported.
        assert_eq!(
            plan(&names(&["b.cert", "a.key"])),
            Err("Missing client certificate a.cert for key a.key".into())
        );
        // A key that belongs to another name does not pair.
        assert!(plan(&names(&["client.cert", "other.key"])).is_err());
    }

    #[test]
    fn no_directory_is_no_trust() {
        let t = read(Path::new("/nonexistent-berth-certs.d"), "reg:5000").expect("no dir");
        assert!(t.roots.is_empty() && t.identity.is_none());
    }

    #[test]
    fn a_missing_key_fails_the_read() {
        let dir = std::env::temp_dir().join(format!("berth-certs-{}", std::process::id()));
        let host = dir.join("reg:5000");
        std::fs::create_dir_all(&host).expect("mkdir");
        std::fs::write(host.join("client.cert"), "x").expect("write");
        let e = read(&dir, "reg:5000")
            .err()
            .map(|e| e.message().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            e.as_deref(),
            Some("missing key client.key for client certificate client.cert. Note that CA certificates should use the extension .crt")
        );
    }
}
