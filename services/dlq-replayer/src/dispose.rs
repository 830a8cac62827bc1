//! Setting dead letters aside: park (held out of replays until unparked), unpark, discard (never
//! replayed). Each is audited (`disposition_log`: who, when, why), and a parked or discarded dead
//! letter no longer counts as waiting for an operator (`handled`, which the gateway reads).

use chrono::DateTime;

use crate::{Tools, filter::Filter, read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Park,
    Unpark,
    Discard,
}

impl Action {
    /// What the dead letters are afterwards: `parked`, `unparked` or `discarded`.
    pub fn done(self) -> &'static str {
        match self {
            Self::Park => "parked",
            Self::Unpark => "unparked",
            Self::Discard => "discarded",
        }
    }

    /// The disposition recorded (`None`: the park is lifted).
    fn disposition(self) -> Option<&'static str> {
        match self {
            Self::Park => Some("parked"),
            Self::Unpark => None,
            Self::Discard => Some("discarded"),
        }
    }
}

/// Which dead letters a caller may set aside.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Every id must be found (within the tenant); the CLI records ids it cannot find too.
    pub must_exist: bool,
}

/// One park, unpark or discard.
#[derive(Debug, Clone)]
pub struct Disposal {
    pub ids: Vec<String>,
    pub action: Action,
    pub reason: String,
    pub operator: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DisposeError {
    #[error("a reason is required: say why")]
    NoReason,
    #[error("no dead letter {}", .0.join(", "))]
    NotFound(Vec<String>),
    #[error("the audit database failed")]
    Audit(#[from] sqlx::Error),
    #[error("the dead letters could not be read")]
    Read(#[source] anyhow::Error),
}

impl Disposal {
    pub async fn apply(&self, tools: &Tools, scope: &Scope) -> Result<(), DisposeError> {
        let reason = self.reason.trim();
        if reason.is_empty() {
            return Err(DisposeError::NoReason);
        }
        // The topic and age of each: for the gateway's count of dead letters still waiting, and
        // to check they are the caller's to set aside.
        let filter = Filter { ids: self.ids.clone(), tenant: scope.tenant.clone(), ..Filter::default() };
        let found = read::scan(&tools.settings.kafka, &tools.codec, &filter).await.map_err(DisposeError::Read)?;
        if scope.must_exist || scope.tenant.is_some() {
            let missing: Vec<String> = self.ids.iter().filter(|id| !found.iter().any(|i| i.envelope.dead_letter_id == **id)).cloned().collect();
            if !missing.is_empty() {
                return Err(DisposeError::NotFound(missing));
            }
        }
        let audit = &tools.audit;
        audit.set_disposition(&self.ids, self.action.disposition(), reason, &self.operator).await?;
        match self.action.disposition() {
            Some(how) => {
                let handled: Vec<_> = found
                    .iter()
                    .map(|i| (i.envelope.dead_letter_id.clone(), i.topic.clone(), DateTime::from_timestamp_millis(i.envelope.dead_lettered_at).unwrap_or_default(), how))
                    .collect();
                audit.mark_handled(&handled).await?;
            }
            None => audit.unmark_parked(&self.ids).await?,
        }
        Ok(())
    }
}
