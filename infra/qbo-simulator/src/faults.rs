//! Injected faults for `/v3` and `/oauth2` requests (never `/control`).
//!
//! Lifetime and latency (`probability`, `count`, `durationSecs`, `latencyMs`, `afterEffect`) are
//! the shared ones of `simulator_kit::faults`. This simulator's part matches requests whose path
//! contains `pathContains` (default: all) and, with `realmId`, only that realm's; it answers 429
//! `ThrottleExceeded` (a 429 storm), a 5xx `SystemFault` (an outage), or a `SystemFault` inside
//! an HTTP 200 (`faultIn200`).

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use simulator_kit::faults::{FaultKind, check_status, outside_control};

use crate::error::Fault;

/// The active faults.
pub type Faults = simulator_kit::Faults<QboFault>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QboFaultSpec {
    pub status: Option<u16>,
    #[serde(rename = "faultIn200")]
    pub fault_in_200: Option<bool>,
    pub realm_id: Option<String>,
    pub path_contains: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QboFault {
    status: Option<u16>,
    #[serde(rename = "faultIn200")]
    fault_in_200: bool,
    realm_id: Option<String>,
    path_contains: Option<String>,
}

/// A request as faults see it: its path and the realm in it.
pub struct Call<'r> {
    pub path: &'r str,
    pub realm_id: Option<&'r str>,
}

impl FaultKind for QboFault {
    type Spec = QboFaultSpec;
    type Request<'r> = Call<'r>;
    type Answer = Fault;
    const ANSWERS: &'static str = "status, faultIn200";

    fn from_spec(spec: QboFaultSpec) -> Result<Self, String> {
        let fault_in_200 = spec.fault_in_200.unwrap_or(false);
        if spec.status.is_some() && fault_in_200 {
            return Err("status and faultIn200 exclude each other".into());
        }
        check_status(spec.status)?;
        outside_control(spec.path_contains.as_deref())?;
        Ok(Self {
            status: spec.status,
            fault_in_200,
            realm_id: spec.realm_id,
            path_contains: spec.path_contains,
        })
    }

    fn matches(&self, call: &Call<'_>) -> bool {
        self.path_contains
            .as_deref()
            .is_none_or(|p| call.path.contains(p))
            && self
                .realm_id
                .as_deref()
                .is_none_or(|r| Some(r) == call.realm_id)
    }

    fn answer(&self) -> Option<Fault> {
        if self.fault_in_200 {
            return Some(Fault::system(StatusCode::OK));
        }
        match self.status? {
            429 => Some(Fault::throttled()),
            s => Some(Fault::system(
                StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    type FaultSpec = simulator_kit::FaultSpec<QboFaultSpec>;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    fn call<'r>(path: &'r str, realm_id: Option<&'r str>) -> Call<'r> {
        Call { path, realm_id }
    }

    #[test]
    fn realm_and_path_scoping_and_counts() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        faults
            .add(spec(r#"{"status": 429, "realmId": "7", "count": 1}"#))
            .unwrap();
        faults
            .add(spec(r#"{"faultIn200": true, "pathContains": "/cdc"}"#))
            .unwrap();
        assert!(
            faults
                .fire(&call("/v3/company/8/query", Some("8")), &mut rng)
                .is_none()
        );
        let hit = faults
            .fire(&call("/v3/company/7/query", Some("7")), &mut rng)
            .unwrap();
        assert_eq!(hit.answer.unwrap().error.code, "3001");
        assert!(
            faults
                .fire(&call("/v3/company/7/query", Some("7")), &mut rng)
                .is_none()
        );
        let hit = faults
            .fire(&call("/v3/company/7/cdc", Some("7")), &mut rng)
            .unwrap();
        assert_eq!(hit.answer.unwrap().status, StatusCode::OK);
    }

    #[test]
    fn rejects_nonsense() {
        let mut faults = Faults::default();
        for bad in [
            r#"{}"#,
            r#"{"status": 404}"#,
            r#"{"status": 503, "faultIn200": true}"#,
            r#"{"status": 503, "probability": 2}"#,
            r#"{"status": 503, "pathContains": "/control"}"#,
        ] {
            assert!(faults.add(spec(bad)).is_err(), "{bad}");
        }
    }
}
