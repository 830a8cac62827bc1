//! Layers around the API, outermost first: `simulator_kit::observe` (the ledger),
//! `simulator_kit::inject_faults`, then `authenticate` (only when a bearer token is configured).
//! Faults come before authentication: an outage answers whoever calls.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret;

use crate::{error::GcsError, state::SharedState};

/// With `bearer_token` configured, requires `Authorization: Bearer <it>`.
pub async fn authenticate(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.config.bearer_token else {
        return next.run(request).await;
    };
    match simulator_kit::bearer_token(request.headers()) {
        None => GcsError::unauthenticated(true).into_response(),
        Some(token) if token != expected.expose_secret() => {
            GcsError::unauthenticated(false).into_response()
        }
        Some(_) => next.run(request).await,
    }
}
