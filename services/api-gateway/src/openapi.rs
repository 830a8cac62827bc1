//! The gateway's OpenAPI 3.1 document, generated from the code: each handler's
//! `#[utoipa::path]` (its parameters, body and every answer it or the layers in front of it can
//! give), the types' `ToSchema`, and [`complete`] for what holds for every operation. The router
//! and the document are built from the same route lists (`authenticated_routes` and
//! `open_routes` in the crate root), so a route cannot be served without being described.
//!
//! Served without a token, like `/health`: `GET /api/v1/openapi.json` (the document) and
//! `GET /api/v1/docs` (a self-contained page that renders it; no external assets). They describe
//! the API's shape only, no data, and clients need them before they hold a token.

use std::sync::LazyLock;

use axum::{http::header::CONTENT_TYPE, response::IntoResponse};
use utoipa::{
    OpenApi,
    openapi::{
        self, HeaderBuilder, Object, ObjectBuilder, Ref, RefOr, Type,
        extensions::Extensions,
        path::{Operation, PathItem},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use crate::{error::ErrorBody, status::STATUSES};

/// Name of the bearer-token security scheme (the handlers say `security(("bearer" = []))`: the
/// macro takes a literal only).
pub const BEARER: &str = "bearer";
pub const TAG_APPLICATIONS: &str = "applications";
pub const TAG_COMMANDS: &str = "commands";
pub const TAG_OPERATIONS: &str = "operations";
pub const TAG_ADMIN: &str = "admin";
pub const TAG_CAPABILITIES: &str = "capabilities";
pub const TAG_QBO: &str = "qbo";
pub const TAG_DOCUMENTS: &str = "documents";
pub const TAG_CALENDAR: &str = "calendar";

// Descriptions shared by several answers.
pub const UNAUTHORIZED: &str = "`unauthenticated` (no bearer token, or not a JWT), `token_expired` or `invalid_token`; with `WWW-Authenticate`";
pub const FORBIDDEN: &str = "`forbidden`: the token is valid but grants nothing here (no role Brain knows, a role its issuer may not grant, no tenant)";
pub const INTERNAL: &str = "`internal`: see the gateway's log for the request id";
pub const UNAVAILABLE_READ: &str = "`dependency_unavailable` (the read model), `issuer_unavailable` (the token's issuer cannot be reached and none of its keys are cached) or `request_timeout`";
pub const TIMEOUT: &str = "`request_timeout`: the request took longer than `API_GATEWAY__REQUEST_TIMEOUT_MS`";
pub const ADVISOR_FORBIDDEN: &str = "`forbidden`: a borrower (the advisor's views are for staff, ops and admin), a staff caller naming another `advisor`, or a token that grants nothing here";
pub const UNAVAILABLE_QBO: &str = "`dependency_unavailable` (the QBO mirror's read model is unreachable, or not there yet), `issuer_unavailable` or `request_timeout`";
pub const ADMIN_FORBIDDEN: &str = "`forbidden`: not an `ops` or `admin` token, or (for `ops`) a filter naming another tenant";
pub const ADMIN_BAD_FILTER: &str = "`invalid_filter` (an unknown or repeated parameter, a topic that is not a dead-letter topic, an id that is not a UUID, a time that does not parse, a field that is not `path=value`) or `invalid_limit`";
pub const ADMIN_BAD_DISPOSITION: &str = "`invalid_body` (not JSON, an unknown field such as `operator`, a missing one), `invalid_dead_letter_id` or `invalid_disposition` (1-500 ids; a reason of 1-500 characters)";
pub const ADMIN_DISPOSITION_NOT_FOUND: &str = "`dead_letter_not_found`: an id is not a dead letter (for an `ops` caller: of its tenant); nothing was changed";
pub const ADMIN_FAILED: &str = "`dlq_replayer_failed`: the dead-letter service failed; see the logs for the request id";
pub const ADMIN_UNAVAILABLE: &str = "`dlq_replayer_unavailable` (the dead-letter service cannot be reached), `dead_letters_unavailable` (Kafka or the schema registry), `audit_unavailable` (the replayer's database), `issuer_unavailable` or `request_timeout`";
pub const ADMIN_UNAVAILABLE_REPLAY: &str = "`dlq_replayer_unavailable`, `dead_letters_unavailable`, `audit_unavailable`, `shutting_down` (the replayer is stopping; retry), `issuer_unavailable` or `request_timeout`";

/// Where every answer's request id is, and the name of its description in the components.
const REQUEST_ID: &str = "x-request-id";
const REQUEST_ID_HEADER: &str = "RequestId";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Brain api-gateway",
        description = "The HTTP API of Brain's gateway for the apps and the console. Every `/api/v1` route but \
            `/api/v1/health`, `/api/v1/health/sync`, `/api/v1/openapi.json` and `/api/v1/docs` needs `Authorization: Bearer <JWT>` from a trusted OIDC \
            issuer; roles are `borrower` (the applications listed in its token), `staff`, `ops` and `admin`, scoped by the \
            token's tenant. Errors are `{ \"code\", \"detail\" }` with stable codes (docs/errors.md). Every answer carries \
            `x-request-id`."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = TAG_APPLICATIONS, description = "The console read model and status changes"),
        (name = TAG_COMMANDS, description = "Status-change commands"),
        (name = TAG_OPERATIONS, description = "Health, readiness, metrics, this document and the ops page; no token needed"),
        (name = TAG_ADMIN, description = "Dead letters and their replay (flow 8), for roles ops (its tenant's) and admin; served by dlq-replayer behind the gateway"),
        (name = TAG_CAPABILITIES, description = "Capability flags and panic mode, for roles ops (its tenant's flags) and admin (global flags, panic mode); published on the flags topic every service follows"),
        (name = TAG_QBO, description = "QuickBooks Online (flow 7): Intuit's webhooks (signed, no token), and the advisor's portfolio digest, hygiene tray and decision console from the QBO mirror, for roles staff, ops and admin"),
        (name = TAG_DOCUMENTS, description = "Documents and tasks (flow 4): uploads verified in Cloud Storage and copied into ShareFile, and the tasks that follow each Ventures condition"),
        (name = TAG_CALENDAR, description = "Scheduling (flow 5): staff members' free slots, meetings booked through Microsoft Graph with their Teams link and ICS, and Graph's change notifications (by `clientState`, no token)"),
    )
)]
pub struct ApiDoc;

/// What holds for every operation, added once the routes are in: the bearer scheme, the
/// `x-request-id` header on every answer and `WWW-Authenticate` on every 401 of an operation that
/// takes a bearer token (QBO's webhook answers a bad signature without a challenge).
pub fn complete(doc: &mut openapi::OpenApi) {
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some("An OIDC ID or access token (RS256 or ES256) from an issuer the gateway trusts (`API_GATEWAY__OIDC_ISSUERS`)"))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
    components.headers.insert(REQUEST_ID_HEADER.into(), required_header(string(None), "The request's id: the client's, or a new one. The gateway's logs carry it."));
    for (path, item) in doc.paths.paths.iter_mut() {
        let location = if path.starts_with("/api/v1/admin/") {
            "^/api/v1/admin/replays/"
        } else if path.starts_with("/api/v1/calendar/") {
            "^/api/v1/meetings/"
        } else {
            "^/api/v1/commands/"
        };
        for operation in operations(item) {
            let bearer = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            for (status, response) in &mut operation.responses.responses {
                let RefOr::T(response) = response else { continue };
                response.headers.insert(REQUEST_ID.into(), RefOr::Ref(Ref::new(format!("#/components/headers/{REQUEST_ID_HEADER}"))));
                if status == "401" && bearer {
                    let challenge = string(Some(r#"^Bearer realm="brain"(, error="invalid_token")?$"#));
                    response.headers.insert("WWW-Authenticate".into(), required_header(challenge, "RFC 6750: `Bearer realm=\"brain\"`, with `error=\"invalid_token\"` when a token came but was refused"));
                }
                if status == "202"
                    && let Some(RefOr::T(header)) = response.headers.remove("Location")
                {
                    response.headers.insert("Location".into(), required_header(string(Some(location)), header.description.as_deref().unwrap_or_default()));
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.options, &mut item.head, &mut item.patch, &mut item.trace].into_iter().flatten()
}

fn string(pattern: Option<&str>) -> Object {
    ObjectBuilder::new().schema_type(Type::String).pattern(pattern).build()
}

/// A response header the gateway always sends. utoipa's `Header` has no `required` field, so
/// it is added as a raw member (serialized beside the others, as OpenAPI defines it).
fn required_header(schema: Object, description: &str) -> RefOr<openapi::Header> {
    RefOr::T(HeaderBuilder::new().schema(Some(schema)).description(Some(description)).extensions(Some(Extensions::from_iter([("required", true)]))).build())
}

/// `status`/`toStatus`: one of the Ventures statuses ([`STATUSES`]).
pub fn ventures_status() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(STATUSES)).description(Some("A Ventures loan status (case matters)")).build()
}

/// A command's `state`.
pub fn command_state() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["pending", "applied", "rejected"])).build()
}

/// The state of a command just queued.
pub fn pending_state() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["pending"])).build()
}

/// The document, as served (built once).
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| crate::openapi_document().to_json().expect("the OpenAPI document serializes"));
    &JSON
}

/// This document
///
/// The OpenAPI 3.1 description of the gateway, generated from its code. No token needed.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object),
        (status = 503, description = TIMEOUT, body = ErrorBody),
    )
)]
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], json())
}

/// The API's documentation page
///
/// A self-contained HTML page that renders `/api/v1/openapi.json` for people. No token needed.
#[utoipa::path(
    get,
    path = "/api/v1/docs",
    operation_id = "docs",
    tag = TAG_OPERATIONS,
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 503, description = TIMEOUT, body = ErrorBody),
    )
)]
pub async fn docs() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], include_str!("docs.html"))
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, str::FromStr, time::Duration};

    use axum::{
        body::Body,
        http::{Method, Request, StatusCode},
    };
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::{AppState, MAX_BODY_BYTES};

    /// Every route of the router, as (method, path).
    const ROUTES: [(&str, &str); 40] = [
        ("get", "/api/v1/applications/{id}"),
        ("post", "/api/v1/applications/{id}/status"),
        ("get", "/api/v1/commands/{id}"),
        ("get", "/health"),
        ("get", "/api/v1/health"),
        ("get", "/ready"),
        ("get", "/health/deps"),
        ("get", "/metrics"),
        ("get", "/api/v1/openapi.json"),
        ("get", "/api/v1/docs"),
        ("get", "/api/v1/health/sync"),
        ("get", "/ops"),
        ("get", "/api/v1/admin/dead-letters"),
        ("get", "/api/v1/admin/dead-letters/counts"),
        ("get", "/api/v1/admin/dead-letters/{id}"),
        ("post", "/api/v1/admin/dead-letters/park"),
        ("post", "/api/v1/admin/dead-letters/unpark"),
        ("post", "/api/v1/admin/dead-letters/discard"),
        ("post", "/api/v1/admin/replays"),
        ("get", "/api/v1/admin/replays"),
        ("get", "/api/v1/admin/replays/{id}"),
        ("get", "/api/v1/admin/capabilities"),
        ("put", "/api/v1/admin/capabilities/{integration}"),
        ("put", "/api/v1/admin/capabilities/{integration}/panic"),
        ("get", "/api/v1/admin/capabilities/history"),
        ("post", "/api/v1/webhooks/qbo"),
        ("get", "/api/v1/advisor/digest"),
        ("get", "/api/v1/advisor/hygiene"),
        ("get", "/api/v1/advisor/decisions"),
        ("post", "/api/v1/documents/ingest"),
        ("get", "/api/v1/applications/{id}/tasks"),
        ("post", "/api/v1/applications/{id}/tasks/{taskId}/actions"),
        ("get", "/api/v1/inbox"),
        ("get", "/api/v1/calendar/slots"),
        ("post", "/api/v1/calendar/book"),
        ("get", "/api/v1/meetings/{id}"),
        ("get", "/api/v1/meetings/{id}/ics"),
        ("post", "/api/v1/meetings/{id}/cancel"),
        ("post", "/api/v1/meetings/{id}/resend"),
        ("post", "/api/v1/webhooks/graph"),
    ];
    const AUTHENTICATED: [&str; 28] = [
        "/api/v1/applications/{id}",
        "/api/v1/applications/{id}/status",
        "/api/v1/commands/{id}",
        "/api/v1/admin/dead-letters",
        "/api/v1/admin/dead-letters/counts",
        "/api/v1/admin/dead-letters/{id}",
        "/api/v1/admin/dead-letters/park",
        "/api/v1/admin/dead-letters/unpark",
        "/api/v1/admin/dead-letters/discard",
        "/api/v1/admin/replays",
        "/api/v1/admin/replays/{id}",
        "/api/v1/admin/capabilities",
        "/api/v1/admin/capabilities/{integration}",
        "/api/v1/admin/capabilities/{integration}/panic",
        "/api/v1/admin/capabilities/history",
        "/api/v1/advisor/digest",
        "/api/v1/advisor/hygiene",
        "/api/v1/advisor/decisions",
        "/api/v1/documents/ingest",
        "/api/v1/applications/{id}/tasks",
        "/api/v1/applications/{id}/tasks/{taskId}/actions",
        "/api/v1/inbox",
        "/api/v1/calendar/slots",
        "/api/v1/calendar/book",
        "/api/v1/meetings/{id}",
        "/api/v1/meetings/{id}/ics",
        "/api/v1/meetings/{id}/cancel",
        "/api/v1/meetings/{id}/resend",
    ];

    fn document() -> Value {
        serde_json::from_str(json()).expect("the served document is valid JSON")
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let paths = doc["paths"].as_object().expect("paths");
        paths.iter().flat_map(|(path, item)| item.as_object().into_iter().flatten().map(move |(method, op)| (method.clone(), path.clone(), op.clone()))).collect()
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_route_and_the_bearer_scheme() {
        let doc = document();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
        let documented: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(method, path, _)| (method, path)).collect();
        let routes: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        assert_eq!(documented, routes);

        let scheme = &doc["components"]["securitySchemes"][BEARER];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
        assert_eq!(scheme["bearerFormat"], "JWT");
        assert_eq!(doc["components"]["headers"]["RequestId"]["required"], true);
        for (method, path, op) in operations(&doc) {
            let responses = op["responses"].as_object().expect("responses");
            if AUTHENTICATED.contains(&path.as_str()) {
                assert_eq!(op["security"], json!([{ BEARER: [] }]), "{method} {path}");
                for status in ["400", "401", "403", "500", "503"] {
                    assert!(responses.contains_key(status), "{method} {path} declares {status}");
                }
                // Not found is an answer where the path or the body names something.
                if path.contains('{') || method == "post" {
                    assert!(responses.contains_key("404"), "{method} {path} declares 404");
                }
                assert_eq!(responses["401"]["headers"]["WWW-Authenticate"]["required"], true);
            } else {
                assert!(op.get("security").is_none(), "{method} {path} needs no token");
            }
            assert!(responses.contains_key("503"), "{method} {path}: the timeout");
            for (status, response) in responses {
                assert_eq!(response["headers"]["x-request-id"]["$ref"], "#/components/headers/RequestId", "{method} {path} {status}");
                let content = response["content"].as_object().unwrap_or_else(|| panic!("{method} {path} {status} has a body"));
                if status.starts_with('4') || (status.starts_with('5') && !path.starts_with("/ready") && path != "/health/deps") {
                    assert_eq!(content["application/json"]["schema"]["$ref"], "#/components/schemas/Error", "{method} {path} {status}");
                }
            }
        }
    }

    #[test]
    fn bodies_and_ids_are_described_as_the_gateway_checks_them() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let change = &schemas["StatusChange"];
        assert_eq!(change["additionalProperties"], false);
        assert_eq!(change["required"], json!(["status", "appVersion"]));
        assert_eq!(change["properties"]["status"]["enum"], json!(STATUSES));
        assert_eq!(change["properties"]["appVersion"]["minimum"], 1);
        assert_eq!(change["properties"]["reason"]["maxLength"], crate::status::MAX_REASON_CHARS);
        assert_eq!(schemas["Error"]["required"], json!(["code", "detail"]));

        let post = &doc["paths"]["/api/v1/applications/{id}/status"]["post"];
        assert_eq!(post["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/StatusChange");
        for status in ["202", "409", "413", "415", "422"] {
            assert!(post["responses"].get(status).is_some(), "POST status declares {status}");
        }
        assert_eq!(post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/StatusAccepted");
        assert_eq!(post["responses"]["202"]["headers"]["Location"]["required"], true);

        let id = &doc["paths"]["/api/v1/applications/{id}"]["get"]["parameters"][0];
        assert_eq!((id["name"].as_str(), id["in"].as_str(), id["required"].as_bool()), (Some("id"), Some("path"), Some(true)));
        let pattern = id["schema"]["pattern"].as_str().expect("a pattern");
        assert_eq!(pattern, r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$");
        let command = &doc["paths"]["/api/v1/commands/{id}"]["get"]["parameters"][0];
        assert_eq!(command["schema"]["format"], "uuid");
    }

    async fn state() -> AppState {
        crate::testing::state()
    }

    async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Each documented operation is served by the router (not its fallback), with a status the
    /// document declares for it.
    #[tokio::test]
    async fn the_router_serves_every_documented_operation() {
        let router = crate::router(state().await, Duration::from_millis(500));
        let doc = document();
        for (method, path, op) in operations(&doc) {
            let uri = path.replace("{id}", "x");
            let request = Request::builder().method(Method::from_str(&method.to_uppercase()).unwrap()).uri(&uri).body(Body::empty()).unwrap();
            let (status, body) = send(&router, request).await;
            assert_ne!(body["code"], "route_not_found", "{method} {path}");
            assert!(op["responses"].get(status.as_str()).is_some(), "{method} {path}: {status} {body} is not declared");
        }
        let (status, body) = send(&router, Request::get("/nowhere").body(Body::empty()).unwrap()).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("route_not_found")));
    }

    /// The edge answers as documented: JSON errors for bodies that are too large (with a
    /// Content-Length), for path segments that are not UTF-8 and for requests that time out.
    #[tokio::test]
    async fn edge_rejections_are_json_errors() {
        let router = crate::router(state().await, Duration::from_secs(5));
        let big = format!(r#"{{"status":"Open","appVersion":1,"reason":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let request = Request::post("/api/v1/applications/app-1/status")
            .header("content-type", "application/json")
            .header("content-length", big.len())
            .body(Body::from(big))
            .unwrap();
        assert_eq!(send(&router, request).await, (StatusCode::PAYLOAD_TOO_LARGE, json!({ "code": "body_too_large", "detail": "the body is larger than the gateway accepts" })));
        for (uri, code) in [("/api/v1/applications/%FF", "invalid_application_id"), ("/api/v1/applications/..%2F", "invalid_application_id"), ("/api/v1/commands/%C0", "invalid_command_id")] {
            let (status, body) = send(&router, Request::get(uri).body(Body::empty()).unwrap()).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{uri}");
        }
        let request = Request::post("/api/v1/applications/%FF/status").header("content-type", "application/json").body(Body::from("{}")).unwrap();
        assert_eq!(send(&router, request).await.1["code"], "invalid_application_id");

        // The timeout answers with an error body too (the layer of `crate::router`).
        let slow = axum::Router::new()
            .route("/slow", axum::routing::get(|| tokio::time::sleep(Duration::from_secs(5))))
            .layer(axum::middleware::from_fn_with_state(Duration::from_millis(20), crate::time_limit));
        let (status, body) = send(&slow, Request::get("/slow").body(Body::empty()).unwrap()).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("request_timeout")));
    }
}
