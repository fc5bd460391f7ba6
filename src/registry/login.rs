//! `docker login` (POST /auth): checks credentials against a registry the way
//! dockerd does: GET /v2/, and on a challenge either retry with basic auth or ask
//! the token realm for a token with them. Nothing is stored: the CLI keeps the
//! credentials and sends them with each pull and push.

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;

use super::challenge::Challenge;
use super::reference::{DOCKER_HUB, DOCKER_HUB_ENDPOINT};
use super::{Endpoint, RegistrySettings};
use crate::error::{Error, Result};

/// The registry host a login names: the CLI sends `https://index.docker.io/v1/`
/// for Docker Hub, a bare host[:port] or a URL for others.
pub fn login_host(settings: &RegistrySettings, server: &str) -> String {
    let s = server.trim();
    let s = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    let host = s.split('/').next().unwrap_or_default();
    if host.is_empty()
        || host == DOCKER_HUB
        || host == "index.docker.io"
        || host == DOCKER_HUB_ENDPOINT
    {
        settings
            .hub_endpoint
            .clone()
            .unwrap_or_else(|| DOCKER_HUB_ENDPOINT.into())
    } else {
        host.to_string()
    }
}

pub async fn login(
    settings: &RegistrySettings,
    server: &str,
    user: &str,
    password: &str,
) -> Result<()> {
    let host = login_host(settings, server);
    let endpoint = Endpoint {
        plain_http: settings.is_insecure(&host),
        host: host.clone(),
        skip_verify: false,
        mirror: false,
    };
    let scheme = if endpoint.plain_http { "http" } else { "https" };
    let url = format!("{scheme}://{host}/v2/");
    let client = endpoint.http_client(settings)?;
    let get_failed = |e: reqwest::Error| {
        Error::internal(super::transport::words(&e).unwrap_or_else(|| format!("Get {url:?}: {e}")))
    };
    let first = client.get(&url).send().await.map_err(get_failed)?;
    if first.status().is_success() {
        return Ok(());
    }
    let challenge = first
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if first.status() != StatusCode::UNAUTHORIZED || challenge.is_empty() {
        return Err(Error::internal(format!(
            "login attempt to {url} failed with status: {}",
            first.status()
        )));
    }
    let (realm, service) = match Challenge::parse(&challenge) {
        Some(Challenge::Basic) => {
            let r = client
                .get(&url)
                .basic_auth(user, Some(password))
                .send()
                .await
                .map_err(get_failed)?;
            if r.status().is_success() {
                return Ok(());
            }
            return Err(Error::unauthorized(format!(
                "login attempt to {url} failed with status: {}",
                r.status()
            )));
        }
        Some(Challenge::Bearer { realm, service }) => (realm, service),
        None => {
            return Err(Error::internal(format!(
                "{url}: a challenge berthd cannot answer: {challenge}"
            )))
        }
    };
    let mut token_url = reqwest::Url::parse(&realm)
        .map_err(|e| Error::internal(format!("{url}: the token realm {realm:?}: {e}")))?;
    {
        let mut q = token_url.query_pairs_mut();
        q.append_pair("account", user);
        q.append_pair("client_id", "docker");
        if let Some(service) = &service {
            q.append_pair("service", service);
        }
    }
    let r = client
        .get(token_url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .map_err(|e| Error::internal(format!("Get {realm:?}: {e}")))?;
    if r.status().is_success() {
        return Ok(());
    }
    Err(Error::unauthorized(format!(
        "Get {url:?}: unauthorized: incorrect username or password"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names_docker_hub_as_the_cli_does() {
        let s = RegistrySettings::default();
        assert_eq!(
            login_host(&s, "https://index.docker.io/v1/"),
            "registry-1.docker.io"
        );
        assert_eq!(login_host(&s, ""), "registry-1.docker.io");
        assert_eq!(login_host(&s, "127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            login_host(&s, "http://reg.example:8080/v2/"),
            "reg.example:8080"
        );
    }
}
