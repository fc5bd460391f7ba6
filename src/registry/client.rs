//! A Distribution API client for one repository at one registry endpoint:
//! manifests and blobs down (blobs streamed and verified against their
//! digest), blobs and manifests up (monolithic uploads), and the
//! authorization each request needs — the `/v2/` ping, then per its
//! `WWW-Authenticate` challenge a bearer token from the realm (asked once per
//! registry and scope for the client's life), basic credentials, or nothing.
//! Credentials and tokens never go to another host than the registry's (an
//! upload Location may point elsewhere).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use super::challenge::Challenge;
use super::errors::{details, RegistryError};
use super::manifest::ACCEPTED;
use super::transport::error_chain;
use crate::store::blobs::sha256_digest;

pub type Result<T> = std::result::Result<T, RegistryError>;

/// The credentials a pull or push brings (from X-Registry-Auth).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum RegistryAuth {
    #[default]
    Anonymous,
    Basic(String, String),
    /// An identity token, sent as the bearer token itself.
    Bearer(String),
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryAuth::Anonymous => f.write_str("Anonymous"),
            RegistryAuth::Basic(user, _) => write!(f, "Basic({user:?}, <redacted>)"),
            RegistryAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// What a request does to the repository: the token scope it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        }
    }
}

/// What goes in a request's Authorization header.
#[derive(Clone)]
enum Authorization {
    None,
    Basic(String, String),
    Bearer(String),
}

/// A blob on its way down: its length as announced, and its bytes; the
/// stream ends in an error when they are not the digest asked for.
pub struct BlobStream {
    pub content_length: Option<u64>,
    pub stream: BoxStream<'static, Result<Bytes>>,
}

#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `scheme://host[:port]`.
    origin: Url,
    host: String,
    repository: String,
    auth: RegistryAuth,
    /// The `/v2/` answer's challenge, asked once.
    challenge: OnceCell<Option<Challenge>>,
    /// (registry, scope) -> what to send, for the client's life.
    tokens: Mutex<HashMap<(String, String), Authorization>>,
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        plain_http: bool,
        host: &str,
        repository: &str,
        auth: RegistryAuth,
    ) -> std::result::Result<Client, String> {
        let scheme = if plain_http { "http" } else { "https" };
        let origin = Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|e| format!("invalid registry address {host:?}: {e}"))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                origin,
                host: host.to_string(),
                repository: repository.to_string(),
                auth,
                challenge: OnceCell::new(),
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn url(&self, tail: &str) -> String {
        format!(
            "{}://{}/v2/{}/{tail}",
            self.inner.origin.scheme(),
            self.inner.host,
            self.inner.repository
        )
    }

    /// The manifest `reference` (a tag or a digest) names, as served, and its
    /// digest (the registry's Docker-Content-Digest, else the body's sha256).
    pub async fn manifest(&self, reference: &str) -> Result<(Bytes, String)> {
        let url = self.url(&format!("manifests/{reference}"));
        debug!(%url, "manifest");
        let res = self
            .send(Access::Pull, Method::GET, &url, |r| {
                r.header(ACCEPT, ACCEPTED.join(", "))
            })
            .await?;
        if !res.status().is_success() {
            return Err(failure("GET", res).await);
        }
        let header = res
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(String::from);
        let body = res.bytes().await.map_err(RegistryError::Transport)?;
        let computed = sha256_digest(&body);
        let digest = match header {
            Some(h) if h.starts_with("sha256:") && h != computed => {
                return Err(RegistryError::Protocol(format!(
                    "manifest verification failed for digest {h}: the registry sent {computed}"
                )))
            }
            Some(h) => h,
            None => computed,
        };
        Ok((body, digest))
    }

    /// A whole (small) blob, checked against its digest.
    pub async fn blob(&self, digest: &str) -> Result<Bytes> {
        let mut stream = self.blob_stream(digest).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.into())
    }

    /// A blob as it arrives; the stream's last item is an error if the bytes
    /// are not `digest`.
    pub async fn blob_stream(&self, digest: &str) -> Result<BlobStream> {
        let url = self.url(&format!("blobs/{digest}"));
        debug!(%url, "blob");
        let res = self.send(Access::Pull, Method::GET, &url, |r| r).await?;
        if !res.status().is_success() {
            return Err(failure("GET", res).await);
        }
        let content_length = res.content_length();
        let expected = digest.to_string();
        let verify = expected.starts_with("sha256:");
        let state = Some((res.bytes_stream(), Sha256::new()));
        let stream = futures_util::stream::unfold(state, move |state| {
            let expected = expected.clone();
            async move {
                let (mut body, mut hasher) = state?;
                match body.next().await {
                    Some(Ok(chunk)) => {
                        hasher.update(&chunk);
                        Some((Ok(chunk), Some((body, hasher))))
                    }
                    Some(Err(e)) => Some((Err(RegistryError::Protocol(error_chain(&e))), None)),
                    None => {
                        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
                        if !verify || actual == expected {
                            None
                        } else {
                            Some((
                                Err(RegistryError::Protocol(format!(
                                    "Invalid digest. Expected {expected}, got {actual}"
                                ))),
                                None,
                            ))
                        }
                    }
                }
            }
        })
        .boxed();
        Ok(BlobStream {
            content_length,
            stream,
        })
    }

    /// Whether the registry has blob `digest` in this repository.
    pub async fn blob_exists(&self, digest: &str) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"));
        let res = self.send(Access::Pull, Method::HEAD, &url, |r| r).await?;
        match res.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(failure("HEAD", res).await),
        }
    }

    /// Uploads blob `digest` whole: POST for an upload location, then PUT
    /// the bytes there.
    pub async fn push_blob(&self, digest: &str, data: Bytes) -> Result<()> {
        let url = self.url("blobs/uploads/");
        let res = self
            .send(Access::Push, Method::POST, &url, |r| {
                r.header(CONTENT_LENGTH, 0)
            })
            .await?;
        if !res.status().is_success() {
            return Err(failure("POST", res).await);
        }
        let location = res
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::Protocol(format!(
                    "POST {url:?}: the registry started an upload without a Location"
                ))
            })?;
        // A relative location is relative to the request's URL.
        let mut put = res
            .url()
            .join(location)
            .map_err(|e| RegistryError::Protocol(format!("upload location {location:?}: {e}")))?;
        put.query_pairs_mut().append_pair("digest", digest);
        debug!(%put, size = data.len(), "blob upload");
        let res = self
            .send(Access::Push, Method::PUT, put.as_str(), |r| {
                r.header(CONTENT_TYPE, "application/octet-stream")
                    .body(data.clone())
            })
            .await?;
        if !res.status().is_success() {
            return Err(failure("PUT", res).await);
        }
        Ok(())
    }

    /// Puts a manifest under `reference` (a tag or its digest).
    pub async fn push_manifest(
        &self,
        reference: &str,
        body: Bytes,
        media_type: &str,
    ) -> Result<()> {
        let url = self.url(&format!("manifests/{reference}"));
        debug!(%url, %media_type, "manifest upload");
        let res = self
            .send(Access::Push, Method::PUT, &url, |r| {
                r.header(CONTENT_TYPE, media_type).body(body.clone())
            })
            .await?;
        if !res.status().is_success() {
            return Err(failure("PUT", res).await);
        }
        Ok(())
    }

    /// Gets what `access` needs now, failing when the token server refuses
    /// the credentials (a push asks first, as dockerd).
    pub async fn authorize(&self, access: Access) -> Result<()> {
        self.authorization(access, true, true).await.map(|_| ())
    }

    /// Sends a request with the authorization `access` needs. A cached token
    /// the registry no longer takes (401) is asked for again, once.
    async fn send(
        &self,
        access: Access,
        method: Method,
        url: &str,
        customize: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let mut fresh = false;
        loop {
            let (authorization, cached) = self.authorization(access, fresh, false).await?;
            let mut req = self.inner.http.request(method.clone(), url);
            if self.is_registry(url) {
                req = match &authorization {
                    Authorization::None => req,
                    Authorization::Basic(u, p) => req.basic_auth(u, Some(p)),
                    Authorization::Bearer(t) => req.bearer_auth(t),
                };
            } else {
                debug!(%url, "not sending credentials outside the registry");
            }
            let res = customize(req)
                .send()
                .await
                .map_err(RegistryError::Transport)?;
            let retry = res.status() == StatusCode::UNAUTHORIZED
                && cached
                && !fresh
                && matches!(authorization, Authorization::Bearer(_))
                && !matches!(self.inner.auth, RegistryAuth::Bearer(_));
            if !retry {
                return Ok(res);
            }
            debug!(%url, "the registry refused a cached token; asking for a new one");
            fresh = true;
        }
    }

    /// Whether `url` is the registry itself (same host and port, and not
    /// plain HTTP when the registry is HTTPS): only there do credentials go.
    fn is_registry(&self, url: &str) -> bool {
        let Ok(target) = Url::parse(url) else {
            return false;
        };
        let origin = &self.inner.origin;
        target.host_str() == origin.host_str()
            && target.port_or_known_default() == origin.port_or_known_default()
            && !(origin.scheme() == "https" && target.scheme() != "https")
    }

    /// The authorization for `access`, from the cache unless `fresh`; true
    /// when it came from the cache. Unless `strict`, a token the server
    /// refuses leaves the requests anonymous (their 401 then says so).
    async fn authorization(
        &self,
        access: Access,
        fresh: bool,
        strict: bool,
    ) -> Result<(Authorization, bool)> {
        let scope = format!("repository:{}:{}", self.inner.repository, access.actions());
        let key = (self.inner.host.clone(), scope.clone());
        if !fresh {
            if let Some(a) = self.tokens().get(&key) {
                return Ok((a.clone(), true));
            }
        }
        let authorization = match &self.inner.auth {
            RegistryAuth::Bearer(token) => Authorization::Bearer(token.clone()),
            auth => match self.challenge().await? {
                None => Authorization::None,
                Some(Challenge::Basic) => match auth {
                    RegistryAuth::Basic(u, p) => Authorization::Basic(u.clone(), p.clone()),
                    _ => Authorization::None,
                },
                Some(Challenge::Bearer { realm, service }) => {
                    match self.token(&realm, service.as_deref(), &scope).await {
                        Ok(token) => Authorization::Bearer(token),
                        Err(e) if strict => return Err(e),
                        Err(e) => {
                            warn!(registry = %self.inner.host, %scope, error = %e, "no token; going on without one");
                            Authorization::None
                        }
                    }
                }
            },
        };
        self.tokens().insert(key, authorization.clone());
        Ok((authorization, false))
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Authorization>> {
        // The map holds no invariant a panicking holder could break.
        self.inner
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The registry's challenge to an anonymous `GET /v2/`, asked once.
    async fn challenge(&self) -> Result<Option<Challenge>> {
        self.inner
            .challenge
            .get_or_try_init(|| async {
                let url = format!("{}://{}/v2/", self.inner.origin.scheme(), self.inner.host);
                let res = self
                    .inner
                    .http
                    .get(&url)
                    .send()
                    .await
                    .map_err(RegistryError::Transport)?;
                let challenge = res
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(Challenge::parse);
                debug!(%url, status = %res.status(), ?challenge, "registry ping");
                Ok(challenge)
            })
            .await
            .cloned()
    }

    /// A bearer token for `scope` from the realm, with the credentials if any.
    async fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut url = Url::parse(realm).map_err(|e| {
            RegistryError::Protocol(format!("the registry's token realm {realm:?}: {e}"))
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        debug!(%url, "token request");
        let mut req = self.inner.http.get(url);
        if let RegistryAuth::Basic(u, p) = &self.inner.auth {
            req = req.basic_auth(u, Some(p));
        }
        let res = req.send().await.map_err(RegistryError::Transport)?;
        let status = res.status();
        let body = res.bytes().await.map_err(RegistryError::Transport)?;
        if !status.is_success() {
            return Err(RegistryError::Token {
                realm: realm.to_string(),
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        token_of(&body).ok_or_else(|| {
            RegistryError::Protocol(format!(
                "the token server at {realm} answered without a token"
            ))
        })
    }
}

/// The token of a token server's answer: `token`, else `access_token`.
fn token_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
    }
    let a: Answer = serde_json::from_slice(body).ok()?;
    a.token
        .filter(|t| !t.is_empty())
        .or(a.access_token.filter(|t| !t.is_empty()))
}

/// The error a non-success answer stands for, with the registry's error
/// codes when its body has them.
async fn failure(method: &str, res: Response) -> RegistryError {
    let status = res.status();
    let url = res.url().to_string();
    let body = res.bytes().await.unwrap_or_default();
    let errors = details(&body);
    if status == StatusCode::UNAUTHORIZED {
        RegistryError::Unauthorized {
            method: method.to_string(),
            url,
            errors,
        }
    } else {
        RegistryError::Status {
            method: method.to_string(),
            url,
            status,
            errors,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_or_access_token() {
        assert_eq!(
            token_of(br#"{"token":"a","access_token":"b"}"#).as_deref(),
            Some("a")
        );
        assert_eq!(
            token_of(br#"{"access_token":"b","expires_in":60}"#).as_deref(),
            Some("b")
        );
        assert_eq!(
            token_of(br#"{"token":"","access_token":"b"}"#).as_deref(),
            Some("b")
        );
        assert_eq!(token_of(br#"{"details":"no"}"#), None);
        assert_eq!(token_of(b"not json"), None);
    }

    #[test]
    fn credentials_stay_with_the_registry() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let c = Client::new(
            reqwest::Client::builder().build().expect("client"),
            false,
            "reg.example:5000",
            "library/busybox",
            RegistryAuth::Anonymous,
        )
        .expect("client");
        assert!(c.is_registry("https://reg.example:5000/v2/x/blobs/uploads/1?a=b"));
        assert!(!c.is_registry("http://reg.example:5000/v2/x/blobs/uploads/1"));
        assert!(!c.is_registry("https://storage.example/upload/1"));
        assert!(!c.is_registry("https://reg.example/v2/"));
        assert_eq!(
            c.url("manifests/latest"),
            "https://reg.example:5000/v2/library/busybox/manifests/latest"
        );
    }

    #[test]
    fn credentials_are_not_logged() {
        let a = RegistryAuth::Basic("alice".into(), "s3cret".into());
        assert!(!format!("{a:?}").contains("s3cret"));
        assert!(!format!("{:?}", RegistryAuth::Bearer("tok".into())).contains("tok"));
    }
}
