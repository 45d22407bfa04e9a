//! The JSON form of a fault, as `POST /_sandbox/faults` takes it and `GET` answers it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DEFAULT_OVERSIZE_BYTES, Fault, FaultAction, FaultRoute};
use crate::error::SandboxError;

/// The JSON form of a fault (`POST /_sandbox/faults`, and `GET` answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub(crate) struct FaultSpec {
    /// The route (see [`Fault`]).
    pub route: String,
    /// `none`, `status`, `drop`, `garbage`, `truncate` or `oversize`. Default: `none`.
    #[serde(default = "default_action")]
    pub action: String,
    /// The status, for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The body size, for `oversize`. Default: 2 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<usize>,
    /// Latency in milliseconds. Default: 0.
    #[serde(default)]
    pub latency_ms: u64,
    /// Applies to the next `times` requests only. Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

fn default_action() -> String {
    "none".to_owned()
}

impl FaultSpec {
    /// The JSON form of a route's fault.
    pub(crate) fn from_fault(route: &FaultRoute, fault: &Fault) -> Self {
        let (action, status, bytes) = match fault.action {
            FaultAction::Pass => ("none", None, None),
            FaultAction::Status(s) => ("status", Some(s), None),
            FaultAction::Drop => ("drop", None, None),
            FaultAction::Garbage => ("garbage", None, None),
            FaultAction::Truncate => ("truncate", None, None),
            FaultAction::Oversize(n) => ("oversize", None, Some(n)),
        };
        Self {
            route: route.as_str().to_owned(),
            action: action.to_owned(),
            status,
            bytes,
            latency_ms: u64::try_from(fault.latency.as_millis()).unwrap_or(u64::MAX),
            times: fault.times,
        }
    }

    /// The validated route.
    pub(crate) fn route(&self) -> Result<FaultRoute, SandboxError> {
        FaultRoute::parse(&self.route)
    }

    /// The fault, validated.
    pub(crate) fn to_fault(&self) -> Result<Fault, SandboxError> {
        let action = match self.action.as_str() {
            "none" => FaultAction::Pass,
            "status" => FaultAction::Status(self.status.ok_or_else(|| {
                SandboxError::Fault("action \"status\" needs \"status\": 400..599".into())
            })?),
            "drop" => FaultAction::Drop,
            "garbage" => FaultAction::Garbage,
            "truncate" => FaultAction::Truncate,
            "oversize" => FaultAction::Oversize(self.bytes.unwrap_or(DEFAULT_OVERSIZE_BYTES)),
            other => {
                return Err(SandboxError::Fault(format!(
                    "unknown action {other:?}: none, status, drop, garbage, truncate or oversize"
                )));
            }
        };
        if self.status.is_some() && self.action != "status" {
            return Err(SandboxError::Fault(
                "\"status\" is only for action \"status\"".into(),
            ));
        }
        if self.bytes.is_some() && self.action != "oversize" {
            return Err(SandboxError::Fault(
                "\"bytes\" is only for action \"oversize\"".into(),
            ));
        }
        let fault = Fault {
            latency: Duration::from_millis(self.latency_ms),
            action,
            times: self.times,
        };
        fault.validate()?;
        Ok(fault)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let parse = |s: &str| serde_json::from_str::<FaultSpec>(s).unwrap().to_fault();
        assert_eq!(
            parse(r#"{"route":"/","action":"drop"}"#).unwrap(),
            Fault::drop_connection()
        );
        assert_eq!(
            parse(r#"{"route":"/","action":"oversize"}"#).unwrap(),
            Fault::oversize()
        );
        assert!(parse(r#"{"route":"/","action":"status"}"#).is_err());
        assert!(parse(r#"{"route":"/","action":"status","status":200}"#).is_err());
        assert!(parse(r#"{"route":"/","action":"explode"}"#).is_err());
        assert!(parse(r#"{"route":"/","action":"drop","status":500}"#).is_err());
        assert!(parse(r#"{"route":"/","latency_ms":999999999}"#).is_err());
        assert!(parse(r#"{"route":"/","action":"drop","times":0}"#).is_err());
        assert!(serde_json::from_str::<FaultSpec>(r#"{"route":"/","colour":1}"#).is_err());
        let f = Fault::status(429)
            .with_latency(Duration::from_millis(5))
            .times(3);
        let spec = FaultSpec::from_fault(&FaultRoute::parse("/x").unwrap(), &f);
        assert_eq!(spec.to_fault().unwrap(), f);
        assert_eq!(f.describe(), "status 429 after 5 ms");
    }

    #[test]
    fn the_documented_spec() {
        let slow_then_503 = Fault::status(503)
            .with_latency(Duration::from_millis(200))
            .times(2);
        let f: FaultSpec = serde_json::from_str(
            r#"{"route": "/v1/users", "action": "status", "status": 503, "latency_ms": 200, "times": 2}"#,
        )
        .unwrap();
        assert_eq!(f.route, "/v1/users");
        assert_eq!(f.to_fault().unwrap(), slow_then_503);
    }
}
