//! The simulated Graph API: the token endpoint and `/v1.0` (getSchedule, events, subscriptions,
//! Teams channel messages), with the layers of [`crate::middleware`].

use axum::{
    Json, Router,
    http::{HeaderValue, Uri},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::post,
};

use crate::{
    auth,
    error::GraphError,
    events,
    middleware::{authenticate, inject_faults, mailbox_limit, observe},
    schedule,
    state::SharedState,
    subscriptions, teams,
};

pub fn router(state: SharedState) -> Router<SharedState> {
    let mailbox = Router::new()
        .route(
            "/v1.0/users/{user}/calendar/getSchedule",
            post(schedule::get_schedule),
        )
        .route(
            "/v1.0/users/{user}/events",
            post(events::create).get(events::list),
        )
        .route(
            "/v1.0/users/{user}/calendar/events",
            post(events::create).get(events::list),
        )
        .route(
            "/v1.0/users/{user}/events/{id}",
            axum::routing::get(events::read)
                .patch(events::update)
                .delete(events::delete),
        )
        .route(
            "/v1.0/users/{user}/events/{id}/cancel",
            post(events::cancel),
        )
        .route_layer(from_fn_with_state(state.clone(), inject_faults))
        .route_layer(from_fn_with_state(state.clone(), mailbox_limit))
        .route_layer(from_fn_with_state(state.clone(), authenticate));
    let tenant = Router::new()
        .route(
            "/v1.0/subscriptions",
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            "/v1.0/subscriptions/{id}",
            axum::routing::get(subscriptions::read)
                .patch(subscriptions::renew)
                .delete(subscriptions::delete),
        )
        .route(
            "/v1.0/teams/{team}/channels/{channel}/messages",
            post(teams::post_message).get(teams::list_messages),
        )
        .route_layer(from_fn_with_state(state.clone(), inject_faults))
        .route_layer(from_fn_with_state(state.clone(), authenticate));
    let token = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token))
        .route_layer(from_fn_with_state(state.clone(), inject_faults));
    token
        .merge(mailbox)
        .merge(tenant)
        .layer(from_fn_with_state(state, observe))
}

/// Unknown paths: Graph's 400 for `/v1.0/...`, a plain 404 elsewhere.
pub async fn fallback(uri: Uri) -> Response {
    let Some(rest) = uri.path().strip_prefix("/v1.0/") else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    let segment = rest.split('/').next().unwrap_or_default();
    let error = GraphError::bad_request(format!("Resource not found for the segment '{segment}'."));
    // Not routed, so not observed: the request id is set here.
    let id = uuid::Uuid::new_v4().to_string();
    let mut response = (error.status, Json(error.body(&id, &id))).into_response();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", value.clone());
        response.headers_mut().insert("client-request-id", value);
    }
    response
}
