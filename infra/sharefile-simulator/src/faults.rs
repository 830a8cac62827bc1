//! The ShareFile simulator's faults, for `/oauth`, `/sf/v3` and `ChunkUri` requests (the common
//! model is `simulator_kit::Faults`): the kit's standard options (`method`, `retryAfterSecs`,
//! `timeout` with `holdSecs`), answered as ShareFile errors (429 `Throttled`, 5xx), and
//! `uploadError`, on `ChunkUri` uploads only: HTTP 200 `ERROR: <message>`.

use serde::{Deserialize, Serialize};
use simulator_kit::{Answer, FaultKind, Standard, StandardSpec};

use crate::{error::UploadError, upload::UPLOAD_PATH};

/// The standard fields spelled out: a nested `flatten` would defeat `deny_unknown_fields`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareFileFaultSpec {
    retry_after_secs: Option<u64>,
    timeout: Option<bool>,
    hold_secs: Option<f64>,
    method: Option<String>,
    upload_error: Option<bool>,
    message: Option<String>,
}

impl ShareFileFaultSpec {
    fn standard(&self) -> StandardSpec {
        StandardSpec {
            retry_after_secs: self.retry_after_secs,
            timeout: self.timeout,
            hold_secs: self.hold_secs,
            method: self.method.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareFileFault {
    #[serde(flatten)]
    standard: Standard,
    upload_error: bool,
    message: Option<String>,
}

impl FaultKind for ShareFileFault {
    type Spec = ShareFileFaultSpec;
    type Custom = UploadError;

    fn answers(spec: &ShareFileFaultSpec) -> Vec<(&'static str, bool)> {
        let mut answers = Standard::answers(&spec.standard());
        answers.push(("uploadError", spec.upload_error.unwrap_or(false)));
        answers
    }

    fn build(spec: ShareFileFaultSpec, status: Option<u16>) -> Result<Self, String> {
        let standard = Standard::build(spec.standard(), status)?;
        let upload_error = spec.upload_error.unwrap_or(false);
        if spec.message.is_some() && !upload_error {
            return Err("message applies to uploadError only".into());
        }
        Ok(Self {
            standard,
            upload_error,
            message: spec.message,
        })
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.standard.matches(method, path) && (!self.upload_error || path == UPLOAD_PATH)
    }

    fn answer(&self, status: Option<u16>) -> Option<Answer<UploadError>> {
        if self.upload_error {
            let message = self.message.clone();
            return Some(Answer::Custom(UploadError(message.unwrap_or_else(|| {
                "The upload could not be completed (simulated)".into()
            }))));
        }
        self.standard.answer_with(status)
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};
    use simulator_kit::{FaultSpec, Faults};

    use super::*;

    fn add(faults: &mut Faults<ShareFileFault>, json: &str) -> Result<u64, String> {
        serde_json::from_str::<FaultSpec<ShareFileFaultSpec>>(json)
            .map_err(|e| e.to_string())
            .and_then(|spec| faults.add(spec))
    }

    #[test]
    fn scoping_counts_and_upload_errors() {
        let mut faults = Faults::default();
        let mut rng = StdRng::seed_from_u64(1);
        add(
            &mut faults,
            r#"{"status": 429, "retryAfterSecs": 7, "method": "POST", "count": 1}"#,
        )
        .unwrap();
        add(
            &mut faults,
            r#"{"uploadError": true, "message": "disk full"}"#,
        )
        .unwrap();
        assert!(faults.fire("GET", "/sf/v3/Items(x)", &mut rng).is_none());
        let Some(Answer::Error {
            status,
            retry_after_secs,
        }) = faults
            .fire("POST", "/sf/v3/Items(x)/Folder", &mut rng)
            .unwrap()
            .answer
        else {
            panic!("expected an error answer");
        };
        assert_eq!((status.as_u16(), retry_after_secs), (429, Some(7)));
        assert!(
            faults
                .fire("POST", "/sf/v3/Items(x)/Folder", &mut rng)
                .is_none()
        );
        let hit = faults.fire("POST", UPLOAD_PATH, &mut rng).unwrap();
        assert!(matches!(hit.answer, Some(Answer::Custom(UploadError(m))) if m == "disk full"));
        let listed = serde_json::to_value(faults.list()).unwrap();
        assert_eq!(listed[0]["uploadError"], serde_json::json!(true));
        assert_eq!(listed[0]["holdSecs"], serde_json::json!(600.0));
    }

    #[test]
    fn rejects_nonsense() {
        let mut faults = Faults::default();
        for (bad, reason) in [
            (
                r#"{}"#,
                "a fault needs status, timeout, uploadError or latencyMs",
            ),
            (r#"{"status": 404}"#, "status must be one of"),
            (
                r#"{"status": 503, "uploadError": true}"#,
                "status, timeout and uploadError exclude each other",
            ),
            (r#"{"status": 503, "timeout": true}"#, "exclude each other"),
            (r#"{"latencyMs": 5, "retryAfterSecs": 1}"#, "needs a status"),
            (r#"{"status": 503, "message": "x"}"#, "uploadError only"),
            (r#"{"status": 503, "probability": 2}"#, "probability"),
            (r#"{"status": 503, "pathContains": "/control"}"#, "/control"),
            (r#"{"timeout": true, "holdSecs": 0}"#, "holdSecs"),
            (r#"{"status": 503, "realmId": "1"}"#, "unknown field"),
        ] {
            let err = add(&mut faults, bad).unwrap_err();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }
}
