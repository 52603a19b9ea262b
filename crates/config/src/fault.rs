//! Fault injection specs: `retrieval=hang`, `intent=error:1.0`, `generation.Generate=latency:300ms`.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an injected fault does to a matching RPC.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// Delay the RPC by this much before handling it.
    Latency(Duration),
    /// Fail this fraction of RPCs (0..=1) with `UNAVAILABLE`.
    Error(f64),
    /// Never answer (the caller's deadline is the only way out).
    Hang,
}

/// One fault rule. `method` narrows it to one RPC of the service (`Retrieve`).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub service: String,
    pub method: Option<String>,
    pub kind: FaultKind,
}

pub const SERVICES: [&str; 7] = [
    "intent",
    "retrieval",
    "memory",
    "cache",
    "generation",
    "precompute",
    "gateway",
];

impl FaultSpec {
    /// Whether the rule applies to an RPC of `service` (daemon name) named `method`.
    pub fn matches(&self, service: &str, method: &str) -> bool {
        self.service == service && self.method.as_deref().is_none_or(|m| m == method)
    }
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (target, action) = s
            .split_once('=')
            .ok_or_else(|| format!("fault `{s}`: expected TARGET=ACTION, e.g. retrieval=hang"))?;
        let (service, method) = match target.split_once('.') {
            Some((svc, m)) if !m.is_empty() => (svc, Some(m.to_string())),
            Some(_) => return Err(format!("fault `{s}`: empty method after `.`")),
            None => (target, None),
        };
        if !SERVICES.contains(&service) {
            return Err(format!(
                "fault `{s}`: unknown service `{service}` (one of {})",
                SERVICES.join(", ")
            ));
        }
        let (name, arg) = match action.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (action, None),
        };
        let kind = match (name, arg) {
            ("hang", None) => FaultKind::Hang,
            ("latency", Some(d)) => FaultKind::Latency(
                humantime::parse_duration(d)
                    .map_err(|e| format!("fault `{s}`: bad duration `{d}`: {e}"))?,
            ),
            ("error", rate) => {
                let rate = match rate {
                    None => 1.0,
                    Some(r) => r
                        .parse::<f64>()
                        .map_err(|_| format!("fault `{s}`: error rate `{r}` is not a number"))?,
                };
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!("fault `{s}`: error rate must be within 0..=1"));
                }
                FaultKind::Error(rate)
            }
            _ => {
                return Err(format!(
                    "fault `{s}`: action must be hang, latency:DURATION or error[:RATE]"
                ));
            }
        };
        Ok(FaultSpec {
            service: service.to_string(),
            method,
            kind,
        })
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.service)?;
        if let Some(m) = &self.method {
            write!(f, ".{m}")?;
        }
        match self.kind {
            FaultKind::Hang => f.write_str("=hang"),
            FaultKind::Latency(d) => write!(f, "=latency:{}", humantime::format_duration(d)),
            FaultKind::Error(r) => write!(f, "=error:{r}"),
        }
    }
}

impl Serialize for FaultSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FaultSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let f: FaultSpec = "retrieval=hang".parse().unwrap();
        assert_eq!(f.kind, FaultKind::Hang);
        assert!(f.matches("retrieval", "Retrieve"));
        let f: FaultSpec = "intent=error:0.25".parse().unwrap();
        assert_eq!(f.kind, FaultKind::Error(0.25));
        let f: FaultSpec = "generation.Generate=latency:300ms".parse().unwrap();
        assert_eq!(f.kind, FaultKind::Latency(Duration::from_millis(300)));
        assert!(f.matches("generation", "Generate"));
        assert!(!f.matches("generation", "ListPrompts"));
        assert_eq!(f.to_string(), "generation.Generate=latency:300ms");
    }

    #[test]
    fn rejects_bad_specs_with_a_reason() {
        for bad in [
            "retrieval",
            "nosuch=hang",
            "intent=error:2",
            "intent=latency:soon",
            "intent=explode",
            "intent.=hang",
        ] {
            let err = bad.parse::<FaultSpec>().unwrap_err();
            assert!(err.contains("fault"), "{bad}: {err}");
        }
    }
}
