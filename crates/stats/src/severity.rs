use std::fmt;

use serde::{Deserialize, Serialize};

/// Seed 002 "Regression Severity Classification". Ordered by urgency, so
/// `Severity::None < Severity::Sev3 < Severity::Sev2 < Severity::Sev1` and `max()` picks the
/// worst. Serialized as its [`label`](Severity::label).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    #[serde(rename = "none")]
    None,
    /// Warning: log and flag on the dashboard.
    #[serde(rename = "SEV-3")]
    Sev3,
    /// Alert: page the on-call.
    #[serde(rename = "SEV-2")]
    Sev2,
    /// Critical: auto-rollback and page the SRE team.
    #[serde(rename = "SEV-1")]
    Sev1,
}

impl Severity {
    /// `"none"`, `"SEV-3"`, `"SEV-2"` or `"SEV-1"`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Sev3 => "SEV-3",
            Severity::Sev2 => "SEV-2",
            Severity::Sev1 => "SEV-1",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Severity of a relative p95 increase (`0.12` = +12 %), seed 002's row
/// "10-25 % / 25-50 % / more than 50 %". Lower bounds are inclusive and the SEV-1 bound is
/// exclusive as the seed writes it: `[0.10, 0.25)` SEV-3, `[0.25, 0.50]` SEV-2, `> 0.50`
/// SEV-1. Below 10 %, a decrease, or NaN: none.
pub fn latency_severity(p95_change: f64) -> Severity {
    classify(p95_change, 0.10, 0.25, 0.50)
}

/// Severity of an error rate given as a fraction of requests (`0.02` = 2 %), seed 002's
/// "1-3 % / 3-10 % / > 10 %" row with the same inclusivity: `[0.01, 0.03)` SEV-3,
/// `[0.03, 0.10]` SEV-2, `> 0.10` SEV-1.
pub fn error_rate_severity(error_rate: f64) -> Severity {
    classify(error_rate, 0.01, 0.03, 0.10)
}

fn classify(value: f64, sev3_from: f64, sev2_from: f64, sev1_above: f64) -> Severity {
    if value > sev1_above {
        Severity::Sev1
    } else if value >= sev2_from {
        Severity::Sev2
    } else if value >= sev3_from {
        Severity::Sev3
    } else {
        // Also NaN: every comparison above is false.
        Severity::None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn latency_boundaries() {
        assert_eq!(latency_severity(-0.5), Severity::None);
        assert_eq!(latency_severity(0.0), Severity::None);
        assert_eq!(latency_severity(0.0999), Severity::None);
        assert_eq!(latency_severity(0.10), Severity::Sev3);
        assert_eq!(latency_severity(0.2499), Severity::Sev3);
        assert_eq!(latency_severity(0.25), Severity::Sev2);
        assert_eq!(latency_severity(0.50), Severity::Sev2);
        assert_eq!(latency_severity(0.5001), Severity::Sev1);
        assert_eq!(latency_severity(f64::INFINITY), Severity::Sev1);
        assert_eq!(latency_severity(f64::NAN), Severity::None);
    }

    #[test]
    fn error_rate_boundaries() {
        assert_eq!(error_rate_severity(0.0), Severity::None);
        assert_eq!(error_rate_severity(0.0099), Severity::None);
        assert_eq!(error_rate_severity(0.01), Severity::Sev3);
        assert_eq!(error_rate_severity(0.0299), Severity::Sev3);
        assert_eq!(error_rate_severity(0.03), Severity::Sev2);
        assert_eq!(error_rate_severity(0.10), Severity::Sev2);
        assert_eq!(error_rate_severity(0.1001), Severity::Sev1);
        assert_eq!(error_rate_severity(1.0), Severity::Sev1);
        assert_eq!(error_rate_severity(f64::NAN), Severity::None);
    }

    #[test]
    fn ordering_labels_and_serde() {
        assert!(Severity::None < Severity::Sev3);
        assert!(Severity::Sev3 < Severity::Sev2);
        assert!(Severity::Sev2 < Severity::Sev1);
        assert_eq!(
            [Severity::Sev3, Severity::Sev1, Severity::None]
                .into_iter()
                .max(),
            Some(Severity::Sev1)
        );
        for (s, label) in [
            (Severity::None, "none"),
            (Severity::Sev3, "SEV-3"),
            (Severity::Sev2, "SEV-2"),
            (Severity::Sev1, "SEV-1"),
        ] {
            assert_eq!(s.label(), label);
            assert_eq!(s.to_string(), label);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{label}\""));
            assert_eq!(serde_json::from_str::<Severity>(&json).unwrap(), s);
        }
    }
}
