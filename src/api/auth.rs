//! POST /auth: `docker login`. Credentials are checked against the registry and
//! not kept (the CLI stores them and sends them with each pull and push).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::context::ApiContext;
use crate::error::{Error, Result};
use crate::registry::RegistrySettings;

pub fn routes() -> Router<ApiContext> {
    Router::new().route("/auth", post(auth))
}

#[derive(Deserialize)]
struct AuthRequest {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    serveraddress: String,
}

async fn auth(
    State(ctx): State<ApiContext>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>> {
    let req: AuthRequest = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("invalid auth configuration: {e}")))?;
    let settings = RegistrySettings::from_config(&ctx.config.get());
    crate::registry::login::login(&settings, &req.serveraddress, &req.username, &req.password)
        .await?;
    Ok(Json(
        serde_json::json!({ "IdentityToken": "", "Status": "Login Succeeded" }),
    ))
}
