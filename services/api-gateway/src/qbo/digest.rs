//! `GET /api/v1/advisor/digest?since=&advisor=`: per client company (realm) of the advisor's
//! portfolio, sorted by company name: cash (bank accounts), AP due within 7 and 30 days, overdue AP
//! and AR, runway in weeks and the changes since `since` (default: 24 hours ago).
//!
//! One query, which reads per realm a handful of rows: accounts of the realm (primary key),
//! `open_by_due` (the open amounts per due date qbo-mirror keeps with every change) and at most
//! 1,001 transaction-log rows (`transaction_log_recent`). It never reads bills.

use std::sync::LazyLock;

use axum::{Extension, body::Bytes, extract::State, response::Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::advisor::{self, Params, Portfolio};
use crate::{
    AppState,
    auth::Principal,
    error::{ApiError, ErrorBody},
    openapi::{self, TAG_QBO},
};

/// Changes are counted up to this many per client (`changesCapped` past it).
pub const MAX_CHANGES: i64 = 1_000;
/// Days in the AP horizon the runway is measured against.
const RUNWAY_HORIZON_DAYS: f64 = 30.0;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Digest {
    /// Whose portfolio (the token's subject, or `?advisor=`).
    pub advisor: String,
    /// Changes are counted from this time.
    pub since: DateTime<Utc>,
    /// The day (UTC) "due" and "overdue" are measured from.
    pub today: NaiveDate,
    /// Sorted by company name (then realm id).
    pub clients: Vec<ClientDigest>,
}

/// One client company. Amounts are in cents.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientDigest {
    #[schema(example = "9341453050734271")]
    pub realm_id: String,
    pub company: Option<String>,
    /// `active`, or `revoked` (its QBO connection was revoked: the figures stopped moving).
    #[schema(example = "active")]
    pub state: String,
    /// When qbo-mirror last completed a sync of it.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// The balance of its active bank accounts.
    pub cash_cents: i64,
    /// Open bills due from today to 7 days from now.
    #[serde(rename = "apDue7Cents")]
    pub ap_due7_cents: i64,
    /// Open bills due from today to 30 days from now.
    #[serde(rename = "apDue30Cents")]
    pub ap_due30_cents: i64,
    /// Open bills due before today.
    pub ap_overdue_cents: i64,
    /// Open invoices due before today.
    pub ar_overdue_cents: i64,
    /// Cash over the weekly AP of the next 30 days (`cash / (apDue30 / (30/7))`); null when
    /// nothing is due.
    pub runway_weeks: Option<f64>,
    /// Changes qbo-mirror applied since `since`, counted up to 1,000.
    #[schema(minimum = 0, maximum = 1000)]
    pub changes_since: i64,
    /// True when there were more than 1,000.
    pub changes_capped: bool,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, which [`Params`] reads
pub struct DigestQuery {
    /// Count changes from this time (RFC 3339); default 24 hours ago.
    #[param(value_type = Option<String>, format = DateTime, example = "2025-01-31T08:00:00Z")]
    since: Option<String>,
    /// Another advisor of the caller's tenant (ops and admin; a staff caller only itself).
    #[param(min_length = 1, max_length = 256)]
    advisor: Option<String>,
}

/// Weeks of runway: `cash / (apDue30 / (30/7))`, `None` when nothing is due in 30 days.
pub fn runway_weeks(cash_cents: i64, ap_due30_cents: i64) -> Option<f64> {
    (ap_due30_cents > 0).then(|| cash_cents as f64 / (ap_due30_cents as f64 / (RUNWAY_HORIZON_DAYS / 7.0)))
}

/// `$1` advisor, `$2` tenant, `$3` today, `$4` since. `{tenant}` is the tenant's predicate.
const QUERY: &str = r#"
SELECT r.realm_id, r.company_name, r.state, r.last_synced_at,
       coalesce((SELECT sum(a.current_balance_cents) FROM read_api.qbo_accounts a
                 WHERE a.realm_id = r.realm_id AND a.account_type = 'Bank' AND a.active AND NOT a.deleted), 0)::bigint,
       coalesce(o.ap7, 0)::bigint, coalesce(o.ap30, 0)::bigint, coalesce(o.ap_overdue, 0)::bigint, coalesce(o.ar_overdue, 0)::bigint,
       (SELECT count(*) FROM (SELECT 1 FROM read_api.qbo_transaction_log t
                              WHERE t.realm_id = r.realm_id AND t.recorded_at >= $4 LIMIT 1001) c)
FROM read_api.qbo_realms r
LEFT JOIN LATERAL (
    SELECT sum(d.balance_cents) FILTER (WHERE d.entity = 'Bill' AND d.due_date >= $3 AND d.due_date <= $3 + 7) AS ap7,
           sum(d.balance_cents) FILTER (WHERE d.entity = 'Bill' AND d.due_date >= $3) AS ap30,
           sum(d.balance_cents) FILTER (WHERE d.entity = 'Bill' AND d.due_date < $3) AS ap_overdue,
           sum(d.balance_cents) FILTER (WHERE d.entity = 'Invoice') AS ar_overdue
    FROM read_api.qbo_open_by_due d
    WHERE d.realm_id = r.realm_id
      AND ((d.entity = 'Bill' AND d.due_date <= $3 + 30) OR (d.entity = 'Invoice' AND d.due_date < $3))
) o ON true
WHERE r.advisor_id = $1 AND {tenant}
ORDER BY r.company_name COLLATE "C" NULLS LAST, r.realm_id COLLATE "C"
"#;

/// The statement for a tenant-scoped caller, and for one without a tenant (authentication disabled).
pub(super) fn scoped(query: &str) -> [String; 2] {
    [query.replace("{tenant}", "r.tenant_id = $2"), query.replace("{tenant}", "$2::text IS NULL")]
}

/// One of [`scoped`]'s statements, built once from a constant (no input goes into them).
pub(super) fn statement(statements: &'static LazyLock<[String; 2]>, tenant: Option<&str>) -> &'static str {
    statements[usize::from(tenant.is_none())].as_str()
}

static STATEMENTS: LazyLock<[String; 2]> = LazyLock::new(|| scoped(QUERY));

type Row = (String, Option<String>, String, Option<DateTime<Utc>>, i64, i64, i64, i64, i64, i64);

/// The advisor's portfolio digest
///
/// Per client company of the advisor, from qbo-mirror's read model (never from QBO): cash from
/// bank accounts, AP due within 7 and 30 days, overdue AP and AR, runway in weeks, and the changes
/// since `since`. Roles staff, ops and admin, within the token's tenant.
#[utoipa::path(
    get,
    path = "/api/v1/advisor/digest",
    operation_id = "advisorDigest",
    tag = TAG_QBO,
    params(DigestQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The portfolio, one entry per client company", body = Digest),
        (status = 400, description = "`invalid_query`: an unknown or repeated parameter, a `since` that is not RFC 3339, an `advisor` that is not 1-256 characters", body = ErrorBody),
        (status = 401, description = openapi::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = openapi::ADVISOR_FORBIDDEN, body = ErrorBody),
        (status = 500, description = openapi::INTERNAL, body = ErrorBody),
        (status = 503, description = openapi::UNAVAILABLE_QBO, body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>, Extension(caller): Extension<Principal>, params: Params) -> Result<Response, ApiError> {
    advisor::require_viewer(&caller)?;
    let params = params.only(&["since", "advisor"])?;
    let since = params.since()?;
    let portfolio = Portfolio::of(&caller, params.advisor()?)?;
    let today = advisor::today();
    let key = portfolio.key("digest", today, &since.map(|s| s.to_rfc3339()).unwrap_or_default());
    let body = state.qbo.views.get_or_load("digest", key, || load(state.pool.clone(), portfolio, since, today)).await?;
    Ok(advisor::json_response(body))
}

/// The digest (`since` absent: 24 hours ago), serialized.
async fn load(pool: sqlx::PgPool, portfolio: Portfolio, since: Option<DateTime<Utc>>, today: NaiveDate) -> Result<Bytes, ApiError> {
    let since = since.unwrap_or_else(|| Utc::now() - chrono::Duration::hours(24));
    let rows: Vec<Row> = sqlx::query_as(statement(&STATEMENTS, portfolio.tenant.as_deref()))
        .bind(&portfolio.advisor)
        .bind(portfolio.tenant.as_deref())
        .bind(today)
        .bind(since)
        .fetch_all(&pool)
        .await
        .map_err(advisor::read_failed)?;
    let clients = rows
        .into_iter()
        .map(|(realm_id, company, state, last_synced_at, cash, ap7, ap30, ap_overdue, ar_overdue, changes)| ClientDigest {
            realm_id,
            company,
            state,
            last_synced_at,
            cash_cents: cash,
            ap_due7_cents: ap7,
            ap_due30_cents: ap30,
            ap_overdue_cents: ap_overdue,
            ar_overdue_cents: ar_overdue,
            runway_weeks: runway_weeks(cash, ap30),
            changes_since: changes.min(MAX_CHANGES),
            changes_capped: changes > MAX_CHANGES,
        })
        .collect();
    advisor::to_json(&Digest { advisor: portfolio.advisor, since, today, clients })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runway_is_cash_over_a_weeks_ap() {
        // 30 days of AP = 30/7 weeks: 3,000.00 due over 30 days is 700.00 a week.
        assert_eq!(runway_weeks(700_000, 300_000), Some(10.0));
        assert_eq!(runway_weeks(70_000, 300_000), Some(1.0));
        assert_eq!(runway_weeks(0, 300_000), Some(0.0));
        let weeks = runway_weeks(1_000_000, 123_456).unwrap();
        assert!((weeks - 1_000_000.0 * 30.0 / (7.0 * 123_456.0)).abs() < 1e-9, "{weeks}");
        assert!(runway_weeks(-70_000, 300_000).unwrap() < 0.0, "an overdrawn bank: negative");
        assert_eq!(runway_weeks(1_000, 0), None, "nothing due");
        assert_eq!(runway_weeks(1_000, -5), None);
    }

    #[test]
    fn field_names_are_the_contracts() {
        let client = ClientDigest {
            realm_id: "1".into(),
            company: None,
            state: "active".into(),
            last_synced_at: None,
            cash_cents: 1,
            ap_due7_cents: 2,
            ap_due30_cents: 3,
            ap_overdue_cents: 4,
            ar_overdue_cents: 5,
            runway_weeks: runway_weeks(1, 3),
            changes_since: 6,
            changes_capped: false,
        };
        let value = serde_json::to_value(&client).unwrap();
        let mut names: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "apDue30Cents", "apDue7Cents", "apOverdueCents", "arOverdueCents", "cashCents", "changesCapped", "changesSince", "company",
                "lastSyncedAt", "realmId", "runwayWeeks", "state"
            ]
        );
        assert!(STATEMENTS[0].contains("r.tenant_id = $2") && STATEMENTS[1].contains("$2::text IS NULL"));
    }
}
