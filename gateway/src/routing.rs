//! Model routing on top of the seed-001 matrix the intent daemon applies
//! ([`mangaassist_domain::route`]: complexity < 0.3 → fast, > 0.6 → smart, in between by
//! remaining budget), gateway policy only:
//! - adaptive routing (seed 000 scenario 1, root cause B): while the smart tier's live
//!   first-token p95 is above a threshold, medium-complexity messages go to the fast tier;
//! - misroute guard (root cause C): faq/greeting routed to the smart tier is counted and logged;
//! - the quality gate (seed 001) lives in the orchestrator: a low-confidence fast answer is
//!   re-asked of the smart tier while the budget allows.

use std::time::Duration;

use mangaassist_config::{IntentSettings, RoutingSettings};
use mangaassist_domain::routing::{self as matrix, Band};
use mangaassist_proto::v1::{self as pb, Intent, ModelTier};
use mangaassist_resilience::{AdaptiveConfig, AdaptiveRouter, RoutingSnapshot};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

/// The tier a message goes to and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub tier: ModelTier,
    /// `matrix` (intent daemon's choice), `fallback` (intent unavailable: gateway applied the
    /// matrix), `adaptive` (smart tier slow, medium sent to fast), `escalated` (quality gate).
    pub reason: &'static str,
}

pub struct Router {
    settings: RoutingSettings,
    /// The matrix's thresholds.
    intent: IntentSettings,
    adaptive: Mutex<AdaptiveRouter>,
}

/// What `/routing` shows.
#[derive(Debug, Clone, Serialize)]
pub struct RouterStatus {
    pub adaptive_enabled: bool,
    pub quality_gate: bool,
    pub medium_complexity_to_fast: bool,
    pub smart_first_token: RoutingSnapshot,
}

impl Router {
    pub fn new(settings: &RoutingSettings, intent: &IntentSettings) -> Self {
        let cfg = AdaptiveConfig {
            threshold_ms: settings.smart_p95_threshold_ms as f64,
            recover_below_ms: settings.recover_below_ms as f64,
            window: Duration::from_secs(settings.window_seconds),
            min_samples: settings.min_samples as usize,
            enabled: settings.adaptive,
        };
        Self {
            settings: settings.clone(),
            intent: intent.clone(),
            adaptive: Mutex::new(AdaptiveRouter::new(cfg)),
        }
    }

    pub fn quality_gate(&self) -> bool {
        self.settings.quality_gate
    }

    pub fn escalation_min_budget(&self) -> Duration {
        Duration::from_millis(self.settings.escalation_min_budget_ms)
    }

    /// The seed-001 matrix, for when the intent daemon could not answer.
    pub fn matrix(&self, complexity: f32, budget_left: Duration) -> ModelTier {
        matrix::route(&self.intent, complexity, Some(budget_left))
    }

    /// Final tier for a classified message.
    pub fn route(&self, c: &pb::ClassifyResponse, intent: Intent, from_daemon: bool) -> Route {
        let tier = ModelTier::try_from(c.tier).unwrap_or(ModelTier::Fast);
        let mut route = Route {
            tier: if tier == ModelTier::Unspecified {
                ModelTier::Fast
            } else {
                tier
            },
            reason: if from_daemon { "matrix" } else { "fallback" },
        };
        let medium = matrix::band(&self.intent, c.complexity) == Band::Medium;
        if route.tier == ModelTier::Smart
            && medium
            && self.adaptive.lock().medium_to_fast(Instant::now())
        {
            route = Route {
                tier: ModelTier::Fast,
                reason: "adaptive",
            };
            metrics::counter!("routing_adaptive_total", "intent" => intent.label()).increment(1);
        }
        if route.tier == ModelTier::Smart && matches!(intent, Intent::Faq | Intent::Greeting) {
            metrics::counter!("misroute_total", "intent" => intent.label()).increment(1);
            tracing::warn!(
                intent = intent.label(),
                complexity = c.complexity,
                classifier = %c.classifier,
                "misroute: a simple intent was routed to the smart tier"
            );
        }
        metrics::counter!("routed_total", "tier" => route.tier.label(), "reason" => route.reason)
            .increment(1);
        route
    }

    /// Feeds the adaptive window with a smart-tier model first-token time.
    pub fn observe_first_token(&self, tier: ModelTier, ms: f64) {
        if tier == ModelTier::Smart {
            self.adaptive
                .lock()
                .record_smart_first_token(Instant::now(), ms);
        }
    }

    pub fn status(&self) -> RouterStatus {
        let now = Instant::now();
        let a = self.adaptive.lock();
        RouterStatus {
            adaptive_enabled: self.settings.adaptive,
            quality_gate: self.settings.quality_gate,
            medium_complexity_to_fast: a.medium_to_fast(now),
            smart_first_token: a.snapshot(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(tier: ModelTier, complexity: f32) -> pb::ClassifyResponse {
        pb::ClassifyResponse {
            tier: tier as i32,
            complexity,
            ..Default::default()
        }
    }

    #[test]
    fn matrix_follows_seed_001() {
        let r = Router::new(&RoutingSettings::default(), &IntentSettings::default());
        assert_eq!(r.matrix(0.1, Duration::from_secs(5)), ModelTier::Fast);
        assert_eq!(r.matrix(0.9, Duration::from_millis(10)), ModelTier::Smart);
        assert_eq!(r.matrix(0.5, Duration::from_secs(5)), ModelTier::Smart);
        assert_eq!(r.matrix(0.5, Duration::from_millis(500)), ModelTier::Fast);
    }

    #[tokio::test]
    async fn slow_smart_tier_sends_medium_traffic_to_fast_and_recovers() {
        let settings = RoutingSettings {
            min_samples: 5,
            ..RoutingSettings::default()
        };
        let r = Router::new(&settings, &IntentSettings::default());
        let medium = classified(ModelTier::Smart, 0.5);
        let complex = classified(ModelTier::Smart, 0.9);
        assert_eq!(
            r.route(&medium, Intent::Recommendation, true).tier,
            ModelTier::Smart
        );
        for _ in 0..10 {
            r.observe_first_token(ModelTier::Smart, 2_500.0);
        }
        let routed = r.route(&medium, Intent::Recommendation, true);
        assert_eq!((routed.tier, routed.reason), (ModelTier::Fast, "adaptive"));
        // Complex questions still get the smart tier.
        assert_eq!(
            r.route(&complex, Intent::Comparison, true).tier,
            ModelTier::Smart
        );
        assert!(r.status().medium_complexity_to_fast);
        // Enough fast samples that the slow ones fall out of the top 5 %.
        for _ in 0..400 {
            r.observe_first_token(ModelTier::Smart, 300.0);
        }
        assert_eq!(
            r.route(&medium, Intent::Recommendation, true).tier,
            ModelTier::Smart
        );
    }
}
