//! The control API under `/control`: no auth, never subject to faults. Tests use it to seed
//! data, change loans "inside Ventures", inject faults and read back effects and counters.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::{ApiError, parse_json},
    faults::FaultSpec,
    model::{Amounts, Borrower, ConditionStatus, LoanStatus, LoanType},
    store::{LoanPatch, NewLoan, SharedState},
};

type Created = (StatusCode, Json<Value>);

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/control/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/control/loans", post(create_loan))
        .route(
            "/control/loans/{loan_id}",
            axum::routing::patch(update_loan).get(get_loan),
        )
        .route("/control/loans/{loan_id}/status", post(set_status))
        .route("/control/loans/{loan_id}/conditions", post(add_condition))
        .route(
            "/control/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/control/faults/{id}", delete(remove_fault))
        .route("/control/feed/trim", post(trim_feed))
        .route("/control/effects", get(effects))
        .route("/control/stats", get(stats))
        .route("/control/reset", post(reset))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateLoan {
    loan_id: Option<String>,
    loan_number: Option<String>,
    loan_type: LoanType,
    status: Option<LoanStatus>,
    borrower: Borrower,
    amounts: Amounts,
    external_id: Option<String>,
}

async fn create_loan(State(state): State<SharedState>, body: Bytes) -> Result<Created, ApiError> {
    let req: CreateLoan = parse_json(&body)?;
    let loan = state.lock().create_loan(NewLoan {
        loan_id: req.loan_id,
        loan_number: req.loan_number,
        loan_type: req.loan_type,
        status: req.status.unwrap_or(LoanStatus::Prospect),
        borrower: req.borrower,
        amounts: req.amounts,
        external_id: req.external_id,
    })?;
    Ok((StatusCode::CREATED, Json(json!(loan))))
}

/// Our extension: edits loan fields as a Ventures user would (appends an `updated` change).
/// `externalId: null` clears it; absent fields stay unchanged.
async fn update_loan(
    State(state): State<SharedState>,
    Path(loan_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: serde_json::Map<String, Value> = parse_json(&body)?;
    fn field<T: serde::de::DeserializeOwned>(
        body: &serde_json::Map<String, Value>,
        name: &str,
    ) -> Result<Option<T>, ApiError> {
        body.get(name)
            .map(|v| serde_json::from_value(v.clone()))
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("invalid {name}: {e}")))
    }
    let patch = LoanPatch {
        loan_number: field(&body, "loanNumber")?,
        loan_type: field(&body, "loanType")?,
        borrower: field(&body, "borrower")?,
        amounts: field(&body, "amounts")?,
        external_id: field(&body, "externalId")?,
    };
    let loan = state.lock().update_loan(&loan_id, patch)?;
    Ok(Json(json!(loan)))
}

/// The loan as Ventures has it now, without a token (the API's `GET /loans/{id}` needs one).
async fn get_loan(
    State(state): State<SharedState>,
    Path(loan_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let loan = state.lock().loan(&loan_id)?.loan.clone();
    Ok(Json(json!(loan)))
}

#[derive(Deserialize)]
struct SetStatus {
    status: LoanStatus,
}

/// Sets any status, ignoring Ventures' transition rules.
async fn set_status(
    State(state): State<SharedState>,
    Path(loan_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: SetStatus = parse_json(&body)?;
    let loan = state.lock().set_status(&loan_id, req.status)?;
    Ok(Json(json!(loan)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddCondition {
    condition_id: Option<String>,
    name: String,
    status: Option<ConditionStatus>,
}

async fn add_condition(
    State(state): State<SharedState>,
    Path(loan_id): Path<String>,
    body: Bytes,
) -> Result<Created, ApiError> {
    let req: AddCondition = parse_json(&body)?;
    let status = req.status.unwrap_or(ConditionStatus::Open);
    let condition = state
        .lock()
        .add_condition(&loan_id, req.condition_id, req.name, status)?;
    Ok((StatusCode::CREATED, Json(json!(condition))))
}

async fn add_fault(State(state): State<SharedState>, body: Bytes) -> Result<Created, ApiError> {
    let spec: FaultSpec = parse_json(&body)?;
    let id = state
        .lock()
        .faults
        .add(spec)
        .map_err(ApiError::unprocessable)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

async fn list_faults(State(state): State<SharedState>) -> Json<Value> {
    let faults = state.lock().faults.list();
    Json(json!(faults))
}

async fn clear_faults(State(state): State<SharedState>) -> StatusCode {
    state.lock().faults.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(
    State(state): State<SharedState>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    if state.lock().faults.remove(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format_args!("fault {id}")))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trim {
    keep_last: usize,
}

async fn trim_feed(State(state): State<SharedState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: Trim = parse_json(&body)?;
    let mut store = state.lock();
    store.feed.trim(req.keep_last);
    Ok(Json(json!({"changes": store.feed.len()})))
}

async fn effects(State(state): State<SharedState>) -> Json<Value> {
    let effects = state.lock().records.effects();
    Json(json!(effects))
}

async fn stats(State(state): State<SharedState>) -> Json<Value> {
    let store = state.lock();
    Json(json!({
        "requests": store.records.requests,
        "faultsServed": store.records.faults_served,
        "loans": store.loans.len(),
        "changes": store.feed.len(),
    }))
}

/// Clears loans, feed, faults, effects and counters; issued tokens stay valid.
async fn reset(State(state): State<SharedState>) -> StatusCode {
    state.lock().reset();
    StatusCode::NO_CONTENT
}
