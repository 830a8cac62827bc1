//! The advisor's two bill trays, from qbo-mirror's read model:
//! - `GET /api/v1/advisor/hygiene?limit=&advisor=`: bills with issues: those qbo-mirror found in
//!   the bill itself (`missing_vendor`, `missing_account`, `uncategorised_account`,
//!   `non_positive_amount`) plus `overdue` (open and due before today) and `duplicate_doc_number`
//!   (another bill of the realm has the same vendor and doc number), sorted by due date (none
//!   first), realm and id;
//! - `GET /api/v1/advisor/decisions?limit=&advisor=`: open bills ready for a decision (balance
//!   above 0, due today or later, no issue at all, so neither tray shows a bill twice), sorted by
//!   due date, then the largest balance first.
//!
//! Both read only what their indexes lead to: the hygiene tray is a UNION of three small queries
//! (the partial index of bills with issues per realm; the partial index of open bills in due-date
//! order, overdue part; the duplicate doc numbers per realm, then their bills by the doc-number
//! index), each limited before they are merged; the decision console walks the open bills' index
//! in its own order and stops at the limit.

use std::sync::LazyLock;

use axum::{Extension, body::Bytes, extract::State, response::Response};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    advisor::{self, Params, Portfolio},
    digest::{scoped, statement},
};
use crate::{
    AppState,
    auth::Principal,
    error::{ApiError, ErrorBody},
    openapi::{self, TAG_QBO},
};

pub const MAX_LIMIT: i64 = 500;
pub const HYGIENE_LIMIT: i64 = 100;
pub const DECISIONS_LIMIT: i64 = 50;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HygieneTray {
    pub advisor: String,
    /// The day (UTC) "overdue" is measured from.
    pub today: NaiveDate,
    /// Sorted by due date (bills without one first), realm id and bill id.
    pub bills: Vec<HygieneBill>,
}

/// A bill with issues. Amounts are in cents.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HygieneBill {
    pub realm_id: String,
    pub company: Option<String>,
    pub bill_id: String,
    pub vendor_name: Option<String>,
    pub doc_number: Option<String>,
    pub due_date: Option<NaiveDate>,
    pub total_cents: i64,
    pub balance_cents: i64,
    /// `missing_vendor`, `missing_account`, `uncategorised_account`, `non_positive_amount`,
    /// `overdue`, `duplicate_doc_number` (at least one).
    #[schema(min_items = 1, example = json!(["missing_account", "overdue"]))]
    pub issues: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionConsole {
    pub advisor: String,
    /// The day (UTC) from which bills count as due.
    pub today: NaiveDate,
    /// Sorted by due date, then the largest balance first.
    pub bills: Vec<DecisionBill>,
}

/// An open bill ready for a decision. Amounts are in cents.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionBill {
    pub realm_id: String,
    pub company: Option<String>,
    pub bill_id: String,
    pub vendor_name: Option<String>,
    pub doc_number: Option<String>,
    pub due_date: NaiveDate,
    pub balance_cents: i64,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, which [`Params`] reads
pub struct HygieneQuery {
    /// How many bills (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Another advisor of the caller's tenant (ops and admin; a staff caller only itself).
    #[param(min_length = 1, max_length = 256)]
    advisor: Option<String>,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, which [`Params`] reads
pub struct DecisionsQuery {
    /// How many bills (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Another advisor of the caller's tenant (ops and admin; a staff caller only itself).
    #[param(min_length = 1, max_length = 256)]
    advisor: Option<String>,
}

/// `$1` advisor, `$2` tenant, `$3` limit, `$4` today. Each part joins the advisor's realms by
/// their primary key (the planner memoizes it), so the overdue part can walk `bills_open_by_due`
/// in due-date order and stop at the limit.
const HYGIENE: &str = r#"
WITH picked AS (
    (SELECT b.realm_id, b.id, b.due_date FROM read_api.qbo_bills b
     JOIN read_api.qbo_realms r ON r.realm_id = b.realm_id AND r.advisor_id = $1 AND {tenant}
     WHERE cardinality(b.issues) > 0 AND NOT b.deleted
     ORDER BY b.due_date NULLS FIRST, b.realm_id, b.id LIMIT $3)
    UNION
    (SELECT b.realm_id, b.id, b.due_date FROM read_api.qbo_bills b
     JOIN read_api.qbo_realms r ON r.realm_id = b.realm_id AND r.advisor_id = $1 AND {tenant}
     WHERE b.balance_cents > 0 AND NOT b.deleted AND b.due_date < $4
     ORDER BY b.due_date, b.realm_id, b.id LIMIT $3)
    UNION
    (SELECT b.realm_id, b.id, b.due_date FROM read_api.qbo_bill_doc_numbers d
     JOIN read_api.qbo_realms r ON r.realm_id = d.realm_id AND r.advisor_id = $1 AND {tenant}
     JOIN read_api.qbo_bills b ON b.realm_id = d.realm_id AND b.vendor_id = d.vendor_id AND b.doc_number = d.doc_number
     WHERE d.bills > 1 AND NOT b.deleted AND b.doc_number IS NOT NULL
     ORDER BY b.due_date NULLS FIRST, b.realm_id, b.id LIMIT $3)
)
SELECT b.realm_id, r.company_name, b.id, b.vendor_name, b.doc_number, b.due_date, b.total_cents, b.balance_cents,
       b.issues
       || CASE WHEN b.balance_cents > 0 AND b.due_date < $4 THEN ARRAY['overdue'] ELSE ARRAY[]::text[] END
       || CASE WHEN EXISTS (SELECT 1 FROM read_api.qbo_bill_doc_numbers d
                            WHERE d.realm_id = b.realm_id AND d.vendor_id = b.vendor_id AND d.doc_number = b.doc_number AND d.bills > 1)
               THEN ARRAY['duplicate_doc_number'] ELSE ARRAY[]::text[] END
FROM (SELECT realm_id, id, due_date FROM picked ORDER BY due_date NULLS FIRST, realm_id, id LIMIT $3) p
JOIN read_api.qbo_bills b ON b.realm_id = p.realm_id AND b.id = p.id
JOIN read_api.qbo_realms r ON r.realm_id = b.realm_id
ORDER BY b.due_date NULLS FIRST, b.realm_id, b.id
"#;

/// `$1` advisor, `$2` tenant, `$3` limit, `$4` today. Walks `bills_open_by_due` in its order
/// (due date, balance descending) from today, and stops at the limit.
const DECISIONS: &str = r#"
SELECT b.realm_id, r.company_name, b.id, b.vendor_name, b.doc_number, b.due_date, b.balance_cents
FROM read_api.qbo_bills b
JOIN read_api.qbo_realms r ON r.realm_id = b.realm_id AND r.advisor_id = $1 AND {tenant}
WHERE b.balance_cents > 0 AND NOT b.deleted AND b.due_date >= $4 AND b.issues = '{}'::text[]
  AND NOT EXISTS (SELECT 1 FROM read_api.qbo_bill_doc_numbers d
                  WHERE d.realm_id = b.realm_id AND d.vendor_id = b.vendor_id AND d.doc_number = b.doc_number AND d.bills > 1)
ORDER BY b.due_date, b.balance_cents DESC, b.realm_id, b.id
LIMIT $3
"#;

static HYGIENE_STATEMENTS: LazyLock<[String; 2]> = LazyLock::new(|| scoped(HYGIENE));
static DECISION_STATEMENTS: LazyLock<[String; 2]> = LazyLock::new(|| scoped(DECISIONS));

/// The portfolio, the limit and today, from the caller and the query string.
fn request(caller: &Principal, params: Params, default_limit: i64) -> Result<(Portfolio, i64, NaiveDate), ApiError> {
    advisor::require_viewer(caller)?;
    let params = params.only(&["limit", "advisor"])?;
    let limit = params.limit(default_limit, MAX_LIMIT)?;
    let portfolio = Portfolio::of(caller, params.advisor()?)?;
    Ok((portfolio, limit, advisor::today()))
}

type HygieneRow = (String, Option<String>, String, Option<String>, Option<String>, Option<NaiveDate>, i64, i64, Vec<String>);

/// The hygiene tray
///
/// Bills of the advisor's client companies that need attention: missing vendor, missing or
/// uncategorised account, zero or negative amount (found by qbo-mirror in the bill), overdue, or a
/// doc number another bill of the same vendor has. From qbo-mirror's read model. Roles staff, ops
/// and admin, within the token's tenant.
#[utoipa::path(
    get,
    path = "/api/v1/advisor/hygiene",
    operation_id = "advisorHygiene",
    tag = TAG_QBO,
    params(HygieneQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Bills with issues, by due date (bills without one first)", body = HygieneTray),
        (status = 400, description = "`invalid_limit` (not 1-500) or `invalid_query` (an unknown or repeated parameter, an `advisor` that is not 1-256 characters)", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADVISOR_FORBIDDEN, body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = openapi::UNAVAILABLE_QBO, body = ErrorBody),
    )
)]
pub async fn hygiene(State(state): State<AppState>, Extension(caller): Extension<Principal>, params: Params) -> Result<Response, ApiError> {
    let (portfolio, limit, today) = request(&caller, params, HYGIENE_LIMIT)?;
    let key = portfolio.key("hygiene", today, &limit.to_string());
    let body = state.qbo.views.get_or_load("hygiene", key, || load_hygiene(state.pool.clone(), portfolio, limit, today)).await?;
    Ok(advisor::json_response(body))
}

async fn load_hygiene(pool: sqlx::PgPool, portfolio: Portfolio, limit: i64, today: NaiveDate) -> Result<Bytes, ApiError> {
    let rows: Vec<HygieneRow> = sqlx::query_as(statement(&HYGIENE_STATEMENTS, portfolio.tenant.as_deref()))
        .bind(&portfolio.advisor)
        .bind(portfolio.tenant.as_deref())
        .bind(limit)
        .bind(today)
        .fetch_all(&pool)
        .await
        .map_err(advisor::read_failed)?;
    let bills = rows
        .into_iter()
        .map(|(realm_id, company, bill_id, vendor_name, doc_number, due_date, total_cents, balance_cents, issues)| HygieneBill {
            realm_id,
            company,
            bill_id,
            vendor_name,
            doc_number,
            due_date,
            total_cents,
            balance_cents,
            issues,
        })
        .collect();
    advisor::to_json(&HygieneTray { advisor: portfolio.advisor, today, bills })
}

type DecisionRow = (String, Option<String>, String, Option<String>, Option<String>, NaiveDate, i64);

/// The decision console
///
/// Open bills of the advisor's client companies ready for a decision (due today or later, no
/// issue), by due date and then the largest balance first. From qbo-mirror's read model. Roles
/// staff, ops and admin, within the token's tenant.
#[utoipa::path(
    get,
    path = "/api/v1/advisor/decisions",
    operation_id = "advisorDecisions",
    tag = TAG_QBO,
    params(DecisionsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Open bills, by due date, then balance (largest first)", body = DecisionConsole),
        (status = 400, description = "`invalid_limit` (not 1-500) or `invalid_query` (an unknown or repeated parameter, an `advisor` that is not 1-256 characters)", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADVISOR_FORBIDDEN, body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = openapi::UNAVAILABLE_QBO, body = ErrorBody),
    )
)]
pub async fn decisions(State(state): State<AppState>, Extension(caller): Extension<Principal>, params: Params) -> Result<Response, ApiError> {
    let (portfolio, limit, today) = request(&caller, params, DECISIONS_LIMIT)?;
    let key = portfolio.key("decisions", today, &limit.to_string());
    let body = state.qbo.views.get_or_load("decisions", key, || load_decisions(state.pool.clone(), portfolio, limit, today)).await?;
    Ok(advisor::json_response(body))
}

async fn load_decisions(pool: sqlx::PgPool, portfolio: Portfolio, limit: i64, today: NaiveDate) -> Result<Bytes, ApiError> {
    let rows: Vec<DecisionRow> = sqlx::query_as(statement(&DECISION_STATEMENTS, portfolio.tenant.as_deref()))
        .bind(&portfolio.advisor)
        .bind(portfolio.tenant.as_deref())
        .bind(limit)
        .bind(today)
        .fetch_all(&pool)
        .await
        .map_err(advisor::read_failed)?;
    let bills = rows
        .into_iter()
        .map(|(realm_id, company, bill_id, vendor_name, doc_number, due_date, balance_cents)| DecisionBill {
            realm_id,
            company,
            bill_id,
            vendor_name,
            doc_number,
            due_date,
            balance_cents,
        })
        .collect();
    advisor::to_json(&DecisionConsole { advisor: portfolio.advisor, today, bills })
}
