//! The simulated QBO API: `/oauth2/v1/tokens/bearer` and `/v3/company/{realmId}/...` (query,
//! cdc, read, create/update/delete with `requestid` idempotency). `minorversion` is accepted and
//! ignored (QBO serves 75 for anything older).

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::{
    cdc,
    error::Fault,
    middleware::{FaultCode, Replayed, authenticate, inject_faults, observe, throttle},
    model::{Entity, EntityKind},
    oauth, query,
    realm::{Change, Realm, StoredResponse},
    state::{SharedRealm, SharedState, lock},
};

const MAX_REQUEST_ID_LEN: usize = 50;

pub fn router(state: SharedState) -> Router<SharedState> {
    let company = Router::new()
        .route(
            "/v3/company/{realm_id}/query",
            get(query_get).post(query_post),
        )
        .route("/v3/company/{realm_id}/cdc", get(change_data_capture))
        .route("/v3/company/{realm_id}/{entity}", post(write))
        .route("/v3/company/{realm_id}/{entity}/{id}", get(read))
        // Inside the throttle, so an injected latency holds a concurrency slot as a slow
        // server does.
        .route_layer(from_fn_with_state(state.clone(), inject_faults))
        .route_layer(from_fn_with_state(state.clone(), throttle))
        .route_layer(from_fn_with_state(state.clone(), authenticate));
    let oauth = Router::new()
        .route("/oauth2/v1/tokens/bearer", post(oauth::token))
        .route_layer(from_fn_with_state(state.clone(), inject_faults));
    oauth
        .merge(company)
        .layer(from_fn_with_state(state, observe))
}

fn params(raw: Option<&str>) -> HashMap<String, String> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn realm(state: &SharedState, realm_id: &str) -> Result<SharedRealm, Fault> {
    state.realm(realm_id).ok_or_else(Fault::unauthorized_realm)
}

fn time(state: &SharedState) -> String {
    state.clock.format_precise(state.clock.now())
}

async fn query_get(
    State(state): State<SharedState>,
    Path(realm_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Fault> {
    let text = params(raw.as_deref())
        .remove("query")
        .ok_or_else(|| Fault::query_parse("the query parameter is missing"))?;
    run_query(&state, &realm_id, &text)
}

/// The query as the body (`Content-Type: application/text`), as the SDKs send long queries.
async fn query_post(
    State(state): State<SharedState>,
    Path(realm_id): Path<String>,
    body: String,
) -> Result<Json<Value>, Fault> {
    run_query(&state, &realm_id, &body)
}

fn run_query(state: &SharedState, realm_id: &str, text: &str) -> Result<Json<Value>, Fault> {
    let parsed = query::parse(text)?;
    let realm = realm(state, realm_id)?;
    let response = query::execute(&parsed, &lock(&realm), &state.clock);
    Ok(Json(
        json!({"QueryResponse": response, "time": time(state)}),
    ))
}

async fn change_data_capture(
    State(state): State<SharedState>,
    Path(realm_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Fault> {
    let p = params(raw.as_deref());
    let request = cdc::parse(
        p.get("entities").map(String::as_str),
        p.get("changedSince").map(String::as_str),
        &state.clock,
        state.config.cdc_lookback,
    )?;
    let realm = realm(&state, &realm_id)?;
    let response = cdc::execute(
        &request,
        &lock(&realm),
        &state.clock,
        state.config.cdc_max_objects,
    );
    Ok(Json(json!({"CDCResponse": response, "time": time(&state)})))
}

fn unsupported(entity: &str) -> Fault {
    Fault::validation(
        "2010",
        "Unsupported Operation",
        format!("Operation on {entity} is not supported by the simulator"),
    )
}

async fn read(
    State(state): State<SharedState>,
    Path((realm_id, entity, id)): Path<(String, String, String)>,
) -> Result<Json<Value>, Fault> {
    let realm = realm(&state, &realm_id)?;
    let realm = lock(&realm);
    if entity.eq_ignore_ascii_case("companyinfo") {
        return Ok(Json(
            json!({"CompanyInfo": company_info(&realm), "time": time(&state)}),
        ));
    }
    let kind = EntityKind::parse(&entity).ok_or_else(|| unsupported(&entity))?;
    let record = id
        .parse()
        .ok()
        .and_then(|id| realm.get(kind, id))
        .filter(|r| !r.deleted)
        .ok_or_else(|| Fault::not_found(kind.name(), &id))?;
    Ok(Json(
        json!({kind.name(): record.to_json(&state.clock), "time": time(&state)}),
    ))
}

fn company_info(realm: &Realm) -> Value {
    json!({
        "CompanyName": realm.company_name,
        "LegalName": realm.company_name,
        "Country": "US",
        "Id": "1",
        "SyncToken": "0",
        "domain": "QBO",
        "sparse": false,
    })
}

/// `POST .../{entity}[?operation=delete][&requestid=...]`: create without `Id`, update with
/// `Id` and `SyncToken` (`"sparse": true` merges), delete with `operation=delete`. A repeated
/// `requestid` gets the stored answer again, with no second effect.
async fn write(
    State(state): State<SharedState>,
    Path((realm_id, entity)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, Fault> {
    let p = params(raw.as_deref());
    let kind = EntityKind::parse(&entity).ok_or_else(|| unsupported(&entity))?;
    let request_id = p.get("requestid").cloned();
    if request_id
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.len() > MAX_REQUEST_ID_LEN)
    {
        return Err(Fault::validation(
            "2010",
            "Request has invalid or unsupported property",
            "requestid must be 1 to 50 characters",
        ));
    }
    let operation = match p.get("operation").map(String::as_str) {
        None | Some("update") | Some("create") => Op::Upsert,
        Some("delete") => Op::Delete,
        Some(other) => return Err(unsupported(&format!("{entity}?operation={other}"))),
    };
    let realm = realm(&state, &realm_id)?;
    let now = state.clock.now_millis();
    let (stored, change) = {
        let mut realm = lock(&realm);
        if let Some(stored) = request_id.as_deref().and_then(|r| realm.stored_response(r)) {
            let mut response = (stored.status, Json(stored.body.clone())).into_response();
            response.extensions_mut().insert(Replayed {
                fault_code: stored.fault_code.clone(),
            });
            return Ok(response);
        }
        let time = time(&state);
        let (stored, change) = match apply(&mut realm, kind, operation, &body, now, &state) {
            Ok((value, change)) => {
                let body = json!({kind.name(): value, "time": time});
                (
                    StoredResponse {
                        status: StatusCode::OK,
                        body,
                        fault_code: None,
                    },
                    Some(change),
                )
            }
            Err(fault) => (
                StoredResponse {
                    status: fault.status,
                    body: fault.body(&time),
                    fault_code: Some(fault.error.code),
                },
                None,
            ),
        };
        if let Some(request_id) = request_id {
            realm.store_response(request_id, stored.clone());
        }
        (stored, change)
    };
    state.webhooks.notify(change);
    let mut response = (stored.status, Json(stored.body)).into_response();
    if let Some(code) = stored.fault_code {
        response.extensions_mut().insert(FaultCode(code));
    }
    Ok(response)
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Upsert,
    Delete,
}

fn invalid_body(detail: impl Into<String>) -> Fault {
    Fault::validation(
        "2010",
        "Request has invalid or unsupported property",
        detail,
    )
}

fn number(map: &mut Map<String, Value>, field: &str) -> Result<Option<u64>, Fault> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| invalid_body(format!("{field} is not a number: {s}"))),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid_body(format!("{field} is not a whole number"))),
        Some(other) => Err(invalid_body(format!("{field} must be a string: {other}"))),
    }
}

fn required(value: Option<u64>, field: &str) -> Result<u64, Fault> {
    value.ok_or_else(|| {
        Fault::validation(
            "2020",
            "Required param missing, need to supply the required value for the API",
            format!("Required parameter {field} is missing in the request"),
        )
    })
}

fn apply(
    realm: &mut Realm,
    kind: EntityKind,
    op: Op,
    body: &[u8],
    now: DateTime<Utc>,
    state: &SharedState,
) -> Result<(Value, Change), Fault> {
    let mut map = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(invalid_body("the body must be a JSON object")),
        Err(e) => return Err(invalid_body(format!("malformed JSON: {e}"))),
    };
    let id = number(&mut map, "Id")?;
    let sync_token = number(&mut map, "SyncToken")?;
    let sparse = matches!(map.remove("sparse"), Some(Value::Bool(true)));
    for meta in ["MetaData", "domain", "status"] {
        map.remove(meta);
    }
    let clock = &state.clock;
    match (op, id) {
        (Op::Delete, id) => {
            let id = required(id, "Id")?;
            let change = realm.delete(kind, id, Some(required(sync_token, "SyncToken")?), now)?;
            let value = json!({"status": "Deleted", "domain": "QBO", "Id": id.to_string()});
            Ok((value, change))
        }
        (Op::Upsert, Some(id)) => {
            let token = required(sync_token, "SyncToken")?;
            let (record, change) = realm.update(kind, id, Some(token), now, |old| {
                let fields = if sparse {
                    let mut merged = old.to_map();
                    merged.extend(map);
                    merged
                } else {
                    map
                };
                let mut entity =
                    Entity::from_map(kind, fields).map_err(|e| invalid_body(e.to_string()))?;
                entity.normalize(Some(old));
                Ok(entity)
            })?;
            Ok((record.to_json(clock), change))
        }
        (Op::Upsert, None) => {
            let entity = Entity::from_map(kind, map).map_err(|e| invalid_body(e.to_string()))?;
            let (record, change) = realm.create(entity, now);
            Ok((record.to_json(clock), change))
        }
    }
}
