//! Layers around the API, outermost first: `simulator_kit::observe` (the ledger) on `/oauth`,
//! `/sf/v3` and the `ChunkUri`; `simulator_kit::inject_faults` on all three; `authenticate` (a
//! live bearer token) on `/sf/v3`. Faults come before authentication: an outage answers whoever
//! calls.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{error::SfError, oauth::Refused, state::SharedState};

/// Requires `Authorization: Bearer <access token>` from `/oauth/token`.
pub async fn authenticate(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = simulator_kit::bearer_token(request.headers()).map(str::to_owned) else {
        return SfError::unauthorized("Authorization header missing").into_response();
    };
    let verdict = state.tokens().authorize(&token);
    match verdict {
        Ok(()) => next.run(request).await,
        Err(Refused::Expired) => SfError::unauthorized("The access token expired").into_response(),
        Err(Refused::Unknown) => SfError::unauthorized("Invalid access token").into_response(),
    }
}
