//! The QBO simulator's faults, for `/v3` and `/oauth2` requests (the common model is
//! `simulator_kit::Faults`): `realmId` scopes a fault to one realm's `/v3/company/{realmId}/...`
//! requests; it answers 429 `ThrottleExceeded` (a 429 storm), a 5xx `SystemFault` (an outage), or
//! a `SystemFault` inside an HTTP 200 (`faultIn200`).

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use simulator_kit::{Answer, FaultKind};

use crate::{error::Fault, middleware::realm_in_path};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QboFaultSpec {
    #[serde(rename = "faultIn200")]
    fault_in_200: Option<bool>,
    realm_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QboFault {
    #[serde(rename = "faultIn200")]
    fault_in_200: bool,
    realm_id: Option<String>,
}

impl FaultKind for QboFault {
    type Spec = QboFaultSpec;
    /// The `SystemFault` inside a 200.
    type Custom = Fault;

    fn answers(spec: &QboFaultSpec) -> Vec<(&'static str, bool)> {
        vec![("faultIn200", spec.fault_in_200.unwrap_or(false))]
    }

    fn build(spec: QboFaultSpec, _status: Option<u16>) -> Result<Self, String> {
        Ok(Self {
            fault_in_200: spec.fault_in_200.unwrap_or(false),
            realm_id: spec.realm_id,
        })
    }

    fn matches(&self, _method: &str, path: &str) -> bool {
        self.realm_id
            .as_deref()
            .is_none_or(|r| Some(r) == realm_in_path(path))
    }

    fn answer(&self, status: Option<u16>) -> Option<Answer<Fault>> {
        if self.fault_in_200 {
            return Some(Answer::Custom(Fault::system(StatusCode::OK)));
        }
        status.map(|s| Answer::status(s, None))
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};
    use simulator_kit::{FaultSpec, Faults};

    use super::*;

    fn add(faults: &mut Faults<QboFault>, json: &str) -> Result<u64, String> {
        serde_json::from_str::<FaultSpec<QboFaultSpec>>(json)
            .map_err(|e| e.to_string())
            .and_then(|spec| faults.add(spec))
    }

    #[test]
    fn realm_and_path_scoping_and_counts() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        add(
            &mut faults,
            r#"{"status": 429, "realmId": "7", "count": 1}"#,
        )
        .unwrap();
        add(
            &mut faults,
            r#"{"faultIn200": true, "pathContains": "/cdc"}"#,
        )
        .unwrap();
        let query = |realm: &str| format!("/v3/company/{realm}/query");
        assert!(faults.fire("GET", &query("8"), &mut rng).is_none());
        let hit = faults.fire("GET", &query("7"), &mut rng).unwrap();
        assert!(matches!(
            hit.answer,
            Some(Answer::Error { status, retry_after_secs: None }) if status == 429
        ));
        assert!(faults.fire("GET", &query("7"), &mut rng).is_none());
        let hit = faults.fire("GET", "/v3/company/7/cdc", &mut rng).unwrap();
        let Some(Answer::Custom(fault)) = hit.answer else {
            panic!("expected a fault inside a 200");
        };
        assert_eq!(
            (fault.status, fault.error.code.as_str()),
            (StatusCode::OK, "10000")
        );
        let listed = serde_json::to_value(faults.list()).unwrap();
        assert_eq!(listed[0]["faultIn200"], serde_json::json!(true));
    }

    #[test]
    fn rejects_nonsense() {
        let mut faults = Faults::default();
        for (bad, reason) in [
            (r#"{}"#, "a fault needs status, faultIn200 or latencyMs"),
            (r#"{"status": 404}"#, "status must be one of"),
            (
                r#"{"status": 503, "faultIn200": true}"#,
                "status and faultIn200 exclude each other",
            ),
            (r#"{"status": 503, "probability": 2}"#, "probability"),
            (r#"{"status": 503, "pathContains": "/control"}"#, "/control"),
            (r#"{"status": 503, "method": "GET"}"#, "unknown field"),
        ] {
            let err = add(&mut faults, bad).unwrap_err();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }
}
