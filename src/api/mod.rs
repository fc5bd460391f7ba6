//! The Docker-compatible HTTP facade. Handlers parse, ask the engine (one actor
//! message, or a read of the projection), and render. No business logic here.

pub mod auth;
pub mod build;
pub mod container_files;
pub mod containers;
pub mod context;
pub mod error;
pub mod events;
pub mod exec;
pub mod images;
pub mod listen;
pub mod metrics;
pub mod networks;
pub mod swarm;
pub mod system;
pub mod version;
pub mod volumes;

use std::convert::Infallible;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, Uri};
use axum::Router;
use tower::ServiceExt;
use tracing::debug;

use version::ApiVersion;

pub use context::ApiContext;

/// The whole API: routing plus what every request gets (version, headers, logging).
#[derive(Clone)]
pub struct Api {
    router: Router,
}

impl Api {
    pub fn new(ctx: ApiContext) -> Api {
        let router = Router::new()
            .merge(system::routes())
            .merge(images::routes())
            .merge(auth::routes())
            .merge(build::routes())
            .merge(containers::routes())
            .merge(container_files::routes())
            .merge(exec::routes())
            .merge(networks::routes())
            .merge(events::routes())
            .merge(volumes::routes())
            .merge(swarm::routes())
            .fallback(error::page_not_found)
            .method_not_allowed_fallback(error::page_not_found)
            .with_state(ctx);
        Api { router }
    }

    /// Serves one request. `/vX.Y/path` is checked against the versions we serve and
    /// routed as `/path`, the version kept in the request's extensions.
    pub async fn handle<B>(&self, req: Request<B>) -> Result<Response<Body>, Infallible>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut req = req.map(Body::new);
        let response = match version::split_path(&path) {
            Some((requested, rest)) => match ApiVersion::check(requested) {
                Ok(v) => {
                    rewrite_path(&mut req, rest);
                    req.extensions_mut().insert(v);
                    self.route(req).await
                }
                Err(e) => error::render(&e),
            },
            None => {
                req.extensions_mut().insert(ApiVersion::CURRENT);
                self.route(req).await
            }
        };
        let mut response = response;
        let rest = version::split_path(&path).map_or(path.as_str(), |(_, rest)| rest);
        // Timed when it succeeded, as dockerd times its actions.
        if let Some((histogram, action)) =
            metrics::timed_action(&method, rest).filter(|_| response.status().is_success())
        {
            histogram.since(action, started);
        }
        add_common_headers(&mut response);
        debug!(%method, path = %path, status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
        Ok(response)
    }

    async fn route(&self, req: Request<Body>) -> Response<Body> {
        match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

fn rewrite_path(req: &mut Request<Body>, path: &str) {
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// dockerd sets these on every answer; clients read Api-Version to negotiate.
fn add_common_headers(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    headers.insert(
        "Server",
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    headers.insert(
        "Api-Version",
        HeaderValue::from_static(version::CURRENT_STR),
    );
    headers.insert("Ostype", HeaderValue::from_static("linux"));
}
