//! A borrower's draft of a loan application (our contract; Ventures publishes none): the fields a
//! borrower may propose before staff take them over. `PATCH /loans/{loanId}/draft` with
//! `Idempotency-Key` and `{"fields": {name: value | null}}` merges (null clears a field) and
//! bumps `draftVersion`; `GET` returns it. Drafts never change the loan or its version.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::{
    api::idempotent,
    error::{ApiError, parse_json},
    store::{SharedState, Store},
};

/// The draft fields Ventures accepts, with their checks.
const FIELDS: [&str; 4] = ["businessName", "purpose", "amountRequested", "contactPhone"];

#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub fields: Map<String, Value>,
    pub version: u64,
    pub updated_at: Option<DateTime<Utc>>,
}

fn view(loan_id: &str, draft: &Draft) -> Value {
    json!({ "loanId": loan_id, "draft": draft.fields, "draftVersion": draft.version, "updatedAt": draft.updated_at })
}

pub async fn get_draft(
    State(state): State<SharedState>,
    Path(loan_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.lock();
    store.loan(&loan_id)?;
    Ok(Json(view(
        &loan_id,
        &store.drafts.get(&loan_id).cloned().unwrap_or_default(),
    )))
}

pub async fn update_draft(
    State(state): State<SharedState>,
    Path(loan_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: Value = parse_json(&body)?;
    let fields = body
        .get("fields")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| ApiError::bad_request("the body is {\"fields\": {...}}"))?;
    idempotent(&state, &headers, &uri, body, |store| {
        apply(store, &loan_id, fields)
    })
}

fn apply(store: &mut Store, loan_id: &str, fields: Map<String, Value>) -> Result<Value, ApiError> {
    store.loan(loan_id)?;
    if fields.is_empty() {
        return Err(ApiError::unprocessable(
            "nothing to update: send at least one field",
        ));
    }
    for (name, value) in &fields {
        check(name, value)?;
    }
    let draft = store.drafts.entry(loan_id.to_string()).or_default();
    for (name, value) in fields {
        if value.is_null() {
            draft.fields.remove(&name);
        } else {
            draft.fields.insert(name, value);
        }
    }
    draft.version += 1;
    draft.updated_at = Some(Utc::now());
    Ok(view(loan_id, draft))
}

fn check(name: &str, value: &Value) -> Result<(), ApiError> {
    let invalid = |why: &str| {
        Err(ApiError::unprocessable(format!(
            "draft field {name}: {why}"
        )))
    };
    if !FIELDS.contains(&name) {
        return invalid(&format!("unknown; drafts take {}", FIELDS.join(", ")));
    }
    match (name, value) {
        (_, Value::Null) => Ok(()),
        ("amountRequested", Value::Number(n))
            if n.as_f64().is_some_and(|a| (0.0..=1e10).contains(&a)) =>
        {
            Ok(())
        }
        ("amountRequested", _) => invalid("a number between 0 and 10,000,000,000"),
        ("businessName", Value::String(s)) if s.chars().count() <= 200 => Ok(()),
        ("purpose", Value::String(s)) if s.chars().count() <= 1000 => Ok(()),
        ("contactPhone", Value::String(s)) if s.chars().count() <= 40 => Ok(()),
        _ => invalid("a string of reasonable length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_take_known_fields_of_the_right_shape() {
        assert!(check("businessName", &json!("Acme")).is_ok());
        assert!(check("amountRequested", &json!(125000.5)).is_ok());
        assert!(check("amountRequested", &json!("lots")).is_err());
        assert!(check("venturesStatus", &json!("Funded")).is_err());
        assert!(check("purpose", &Value::Null).is_ok());
    }
}
