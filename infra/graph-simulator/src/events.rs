//! `/v1.0/users/{user}/events`: create (with `transactionId` idempotency: a repeated one for the
//! same mailbox returns the event it already made, with no second effect and no second
//! notification), list, get, update (`PATCH`, new `changeKey`), cancel (202, `isCancelled`)
//! and delete. Every change notifies the mailbox's subscriptions.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    error::GraphError,
    event::{Event, EventInput, Origin},
    middleware::Replayed,
    state::{SharedState, lock},
    subscriptions::ChangeType,
};

/// A JSON body, or 400 `BadRequest` as Graph answers unreadable payloads.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, GraphError> {
    serde_json::from_slice(body).map_err(|error| {
        tracing::debug!(%error, "unreadable request body");
        GraphError::unreadable_json()
    })
}

fn conflict() -> GraphError {
    GraphError::new(
        StatusCode::CONFLICT,
        "ErrorConflict",
        "The event overlaps an existing busy time (strict conflicts are on in the simulator).",
    )
}

/// Creates an event in `user`'s calendar; `(event JSON, replayed)`.
pub fn create_in(
    state: &SharedState,
    user: &str,
    input: EventInput,
    origin: Origin,
) -> Result<(Value, bool), GraphError> {
    let staff = state.mailbox(user)?;
    let (value, user_id, event_id, etag) = {
        let mut staff = lock(&staff);
        if let Some(txn) = input.transaction_id.as_deref()
            && let Some(existing) = staff.replay(txn).cloned()
        {
            tracing::debug!(
                transaction_id = txn,
                "create replayed for its transactionId"
            );
            return Ok((existing.to_json(&staff), true));
        }
        let event = Event::create(input, &staff, &state.config.tenant_id, origin)?;
        if state.strict_conflicts() && staff.conflicts(event.start, event.end) {
            return Err(conflict());
        }
        let event = staff.insert(event).clone();
        let value = event.to_json(&staff);
        let etag = event.etag();
        (value, staff.id.clone(), event.id, etag)
    };
    state.notify(&user_id, &event_id, &etag, ChangeType::Created);
    Ok((value, false))
}

/// `POST /v1.0/users/{user}/events` → 201 (also for a replay, as Graph answers it).
pub async fn create(
    State(state): State<SharedState>,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let input: EventInput = parse_body(&body)?;
    let (value, replayed) = create_in(&state, &user, input, Origin::Api)?;
    let mut response = (StatusCode::CREATED, Json(value)).into_response();
    if replayed {
        response.extensions_mut().insert(Replayed);
    }
    Ok(response)
}

pub async fn list(
    State(state): State<SharedState>,
    Path(user): Path<String>,
) -> Result<Json<Value>, GraphError> {
    let staff = state.mailbox(&user)?;
    let staff = lock(&staff);
    let value: Vec<Value> = staff.events().iter().map(|e| e.to_json(&staff)).collect();
    Ok(Json(json!({
        "@odata.context": format!(
            "https://graph.microsoft.com/v1.0/$metadata#users('{}')/events",
            staff.id
        ),
        "value": value,
    })))
}

pub async fn read(
    State(state): State<SharedState>,
    Path((user, id)): Path<(String, String)>,
) -> Result<Json<Value>, GraphError> {
    let staff = state.mailbox(&user)?;
    let staff = lock(&staff);
    let event = staff.event(&id).ok_or_else(GraphError::item_not_found)?;
    Ok(Json(event.to_json(&staff)))
}

/// Applies `change` to the event and notifies `updated`; `None` when it changed nothing.
fn modify(
    state: &SharedState,
    user: &str,
    id: &str,
    change: impl FnOnce(&mut Event, &crate::model::Staff) -> Result<bool, GraphError>,
) -> Result<Value, GraphError> {
    let staff = state.mailbox(user)?;
    let (value, notify) = {
        let mut staff = lock(&staff);
        let mut event = staff
            .event(id)
            .cloned()
            .ok_or_else(GraphError::item_not_found)?;
        let changed = change(&mut event, &staff)?;
        if changed {
            event.touch();
            *staff.event_mut(id).expect("the event was just read") = event.clone();
        }
        let notify = changed.then(|| (staff.id.clone(), event.etag()));
        (event.to_json(&staff), notify)
    };
    if let Some((user_id, etag)) = notify {
        state.notify(&user_id, id, &etag, ChangeType::Updated);
    }
    Ok(value)
}

/// `PATCH /v1.0/users/{user}/events/{id}`: only the properties sent change.
pub async fn update(
    State(state): State<SharedState>,
    Path((user, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, GraphError> {
    let mut input: EventInput = parse_body(&body)?;
    input.transaction_id = None;
    let tenant = state.config.tenant_id.clone();
    let value = modify(&state, &user, &id, |event, staff| {
        event.apply(input, staff, &tenant)?;
        Ok(true)
    })?;
    Ok(Json(value))
}

#[derive(Debug, Default, Deserialize)]
struct CancelInput {
    #[serde(alias = "Comment")]
    comment: Option<String>,
}

/// `POST /v1.0/users/{user}/events/{id}/cancel` `{"Comment"}` → 202; a second cancel changes
/// nothing.
pub async fn cancel(
    State(state): State<SharedState>,
    Path((user, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, GraphError> {
    let input: CancelInput = if body.is_empty() {
        CancelInput::default()
    } else {
        parse_body(&body)?
    };
    modify(&state, &user, &id, |event, _| {
        if event.is_cancelled {
            return Ok(false);
        }
        event.is_cancelled = true;
        event.cancel_comment = input.comment;
        Ok(true)
    })?;
    Ok(StatusCode::ACCEPTED)
}

/// Deletes an event and notifies `deleted`.
pub fn delete_in(state: &SharedState, user: &str, id: &str) -> Result<(), GraphError> {
    let staff = state.mailbox(user)?;
    let (user_id, etag) = {
        let mut staff = lock(&staff);
        let event = staff.remove(id).ok_or_else(GraphError::item_not_found)?;
        (staff.id.clone(), event.etag())
    };
    state.notify(&user_id, id, &etag, ChangeType::Deleted);
    Ok(())
}

pub async fn delete(
    State(state): State<SharedState>,
    Path((user, id)): Path<(String, String)>,
) -> Result<StatusCode, GraphError> {
    delete_in(&state, &user, &id)?;
    Ok(StatusCode::NO_CONTENT)
}
