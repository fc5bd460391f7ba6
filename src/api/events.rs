//! `GET /events`: Docker's event stream, read from the engine's log (history
//! across restarts with `since`, then live), filtered as dockerd filters.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, Response, StatusCode};
use axum::routing::get;
use axum::Router;

use super::context::ApiContext;
use crate::actors::event_feed::Request;
use crate::actors::event_log::Subscribe;
use crate::error::{Error, Result};
use crate::events::docker::Filter;

pub fn routes() -> Router<ApiContext> {
    Router::new().route("/events", get(events))
}

async fn events(
    State(ctx): State<ApiContext>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response<Body>> {
    let now = crate::clock::now_ns();
    let bound = |key: &str| -> Result<Option<u64>> {
        q.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| crate::clock::until_ns(v, now))
            .transpose()
    };
    let (since_ns, until_ns) = (bound("since")?, bound("until")?);
    let filter = Filter::new(super::images::parse_filters(q.get("filters"))?)?;
    let body = ctx
        .events
        .send(Subscribe(Request {
            since_ns,
            until_ns,
            filter,
        }))
        .await
        .map_err(|e| Error::unavailable(format!("event log: {e}")))?;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(crate::chan::ReceiverStream(body)))
        .map_err(|e| Error::internal(e.to_string()))
}
