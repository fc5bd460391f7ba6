//! Manifests, indexes and image configs as registries serve them: Docker schema 2
//! and OCI, single-platform and lists. Our own serde types: only what we read,
//! everything else kept verbatim in the stored blobs.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub const ACCEPTED: &[&str] = &[DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// One image's manifest (Docker schema 2 or OCI).
#[derive(Debug, Clone, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A list of per-platform manifests (Docker manifest list or OCI index).
#[derive(Debug, Clone, Deserialize)]
pub struct ImageIndex {
    pub manifests: Vec<Descriptor>,
}

pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid(format!(
                "the registry sent a manifest that is not JSON: {e}"
            ))
        })?;
        let media = v.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
        let is_index = media == DOCKER_LIST
            || media == OCI_INDEX
            || (media.is_empty() && v.get("manifests").is_some());
        if is_index {
            serde_json::from_value(v)
                .map(Manifest::Index)
                .map_err(|e| Error::invalid(format!("bad image index: {e}")))
        } else {
            if v.get("schemaVersion").and_then(|s| s.as_i64()) == Some(1) {
                return Err(Error::invalid("schema 1 manifests are not supported"));
            }
            serde_json::from_value(v)
                .map(Manifest::Image)
                .map_err(|e| Error::invalid(format!("bad image manifest: {e}")))
        }
    }
}

/// This host's platform in Go's names.
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        other => (other, None),
    };
    Platform {
        architecture: architecture.into(),
        os: "linux".into(),
        variant: variant.map(String::from),
    }
}

/// The entry of an index for `want`, as containerd's platform matcher picks it: same
/// OS and architecture; the exact variant if listed, else one without a variant.
pub fn select_platform<'a>(index: &'a ImageIndex, want: &Platform) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
        })
        .collect();
    candidates
        .iter()
        .find(|d| d.platform.as_ref().and_then(|p| p.variant.as_ref()) == want.variant.as_ref())
        .or_else(|| {
            candidates
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| p.variant.is_none()))
        })
        .or(candidates.first())
        .copied()
}

/// What berthd reads from an image config; the blob itself is kept as served.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ImageConfig {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<History>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct History {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub empty_layer: bool,
}

/// ChainIDs of a layer stack: chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        use sha2::Digest;
        let expect = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(format!("{a} {b}")))
        );
        assert_eq!(ids[1], expect);
    }

    #[test]
    fn picks_this_platform_from_an_index() {
        let index: ImageIndex = serde_json::from_str(
            r#"{"manifests":[
              {"mediaType":"x","digest":"sha256:1","size":1,"platform":{"architecture":"arm","os":"linux","variant":"v6"}},
              {"mediaType":"x","digest":"sha256:2","size":1,"platform":{"architecture":"amd64","os":"linux"}},
              {"mediaType":"x","digest":"sha256:3","size":1,"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}"#,
        )
        .expect("index");
        let amd = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert_eq!(
            select_platform(&index, &amd).map(|d| d.digest.as_str()),
            Some("sha256:2")
        );
        let v7 = Platform {
            architecture: "arm".into(),
            os: "linux".into(),
            variant: Some("v7".into()),
        };
        assert_eq!(
            select_platform(&index, &v7).map(|d| d.digest.as_str()),
            Some("sha256:3")
        );
        let s390 = Platform {
            architecture: "s390x".into(),
            os: "linux".into(),
            variant: None,
        };
        assert!(select_platform(&index, &s390).is_none());
    }

    #[test]
    fn refuses_non_json() {
        assert!(Manifest::parse(b"<html>").is_err());
    }
}
