//! The intent-to-model routing matrix of seed 001 and the retrieval need of each intent.
//!
//! Seed 001's decision flow: complexity < 0.3 (simple) → fast tier; > 0.6 (complex) → smart
//! tier; in between (medium, both edges included) → fast when less than 1 s of the latency
//! budget is left, smart otherwise. The thresholds come from [`IntentSettings`]. A budget
//! that is not known (`None`) is not short: medium goes to the smart tier.

use std::time::Duration;

use mangaassist_config::IntentSettings;
use mangaassist_proto::v1::{Intent, ModelTier};

/// Where a complexity score falls in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    Simple,
    Medium,
    Complex,
}

/// The band of `complexity`: below `complexity_fast_below` simple, above
/// `complexity_smart_above` complex, otherwise (edges included) medium.
pub fn band(settings: &IntentSettings, complexity: f32) -> Band {
    if complexity < settings.complexity_fast_below {
        Band::Simple
    } else if complexity > settings.complexity_smart_above {
        Band::Complex
    } else {
        Band::Medium
    }
}

/// The routing matrix: the model tier for a message of `complexity` when `remaining_budget`
/// of the latency budget is left (`None`: not known).
pub fn route(
    settings: &IntentSettings,
    complexity: f32,
    remaining_budget: Option<Duration>,
) -> ModelTier {
    match band(settings, complexity) {
        Band::Simple => ModelTier::Fast,
        Band::Complex => ModelTier::Smart,
        Band::Medium => {
            let short = Duration::from_millis(u64::from(settings.medium_fast_budget_ms));
            match remaining_budget {
                Some(left) if left < short => ModelTier::Fast,
                _ => ModelTier::Smart,
            }
        }
    }
}

/// Base complexity per intent (seed 001's routing table): greeting, chitchat, faq and order
/// status are template-like; product search is a lookup; return/refund adds policy plus the
/// order; complaints need empathy and policy; recommendations weigh taste; comparisons are
/// multi-document analysis. The intent daemon adds the message's own features to it; the
/// benchmark routes a plain, confidently classified message of the intent with it alone.
pub fn base_complexity(intent: Intent) -> f32 {
    match intent {
        Intent::Greeting => 0.05,
        Intent::Chitchat => 0.10,
        Intent::OrderStatus => 0.15,
        Intent::Faq => 0.20,
        Intent::ProductSearch => 0.35,
        Intent::ReturnRefund => 0.40,
        Intent::Complaint => 0.50,
        Intent::Recommendation => 0.65,
        Intent::Comparison => 0.80,
        Intent::Unspecified => 0.50,
    }
}

/// Product questions need the catalog; FAQ, complaints and returns need policy documents;
/// greetings, small talk and order status (answered from the order record) do not.
pub fn needs_retrieval(intent: Intent) -> bool {
    !matches!(
        intent,
        Intent::Greeting | Intent::Chitchat | Intent::OrderStatus
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Option<Duration> {
        Some(Duration::from_millis(v))
    }

    #[test]
    fn routing_matrix() {
        let s = IntentSettings::default(); // fast < 0.3, smart > 0.6, medium budget 1000 ms
        assert_eq!(route(&s, 0.1, None), ModelTier::Fast);
        assert_eq!(route(&s, 0.1, ms(5_000)), ModelTier::Fast);
        assert_eq!(route(&s, 0.9, None), ModelTier::Smart);
        assert_eq!(route(&s, 0.9, ms(100)), ModelTier::Smart);
        assert_eq!(route(&s, 0.45, None), ModelTier::Smart, "unknown budget");
        assert_eq!(route(&s, 0.45, ms(999)), ModelTier::Fast, "short budget");
        assert_eq!(
            route(&s, 0.45, ms(1_000)),
            ModelTier::Smart,
            "budget allows"
        );
        assert_eq!(route(&s, 0.6, ms(10)), ModelTier::Fast);
    }

    /// Every edge of the matrix, on both sides.
    #[test]
    fn matrix_boundaries() {
        let s = IntentSettings::default();
        let below = |x: f32| f32::from_bits(x.to_bits() - 1);
        let above = |x: f32| f32::from_bits(x.to_bits() + 1);
        // Lower edge: 0.3 itself is medium, anything below is simple whatever the budget.
        assert_eq!(band(&s, below(0.3)), Band::Simple);
        assert_eq!(band(&s, 0.3), Band::Medium);
        assert_eq!(route(&s, below(0.3), ms(5_000)), ModelTier::Fast);
        assert_eq!(route(&s, 0.3, ms(5_000)), ModelTier::Smart);
        assert_eq!(route(&s, 0.3, ms(500)), ModelTier::Fast);
        // Upper edge: 0.6 itself is medium, anything above is complex whatever the budget.
        assert_eq!(band(&s, 0.6), Band::Medium);
        assert_eq!(band(&s, above(0.6)), Band::Complex);
        assert_eq!(route(&s, 0.6, ms(999)), ModelTier::Fast);
        assert_eq!(route(&s, above(0.6), ms(999)), ModelTier::Smart);
        // Budget edge: 1 ms short of `medium_fast_budget_ms` is short, exactly it is not.
        assert_eq!(route(&s, 0.45, ms(999)), ModelTier::Fast);
        assert_eq!(route(&s, 0.45, ms(1_000)), ModelTier::Smart);
        // No budget left at all is the shortest budget there is.
        assert_eq!(route(&s, 0.45, Some(Duration::ZERO)), ModelTier::Fast);
        // Scores outside [0, 1] still land in a band.
        assert_eq!(route(&s, -1.0, None), ModelTier::Fast);
        assert_eq!(route(&s, 2.0, ms(0)), ModelTier::Smart);
    }

    #[test]
    fn thresholds_come_from_the_settings() {
        let s = IntentSettings {
            complexity_fast_below: 0.5,
            complexity_smart_above: 0.5,
            medium_fast_budget_ms: 200,
            ..IntentSettings::default()
        };
        assert_eq!(route(&s, 0.45, ms(5_000)), ModelTier::Fast);
        assert_eq!(route(&s, 0.5, ms(199)), ModelTier::Fast);
        assert_eq!(route(&s, 0.5, ms(200)), ModelTier::Smart);
        assert_eq!(route(&s, 0.55, ms(0)), ModelTier::Smart);
    }

    /// A plain, confident message of each intent, with the full budget, routes as seed 001's
    /// table says: the template-like intents to the fast tier, the rest to the smart one.
    #[test]
    fn intent_priors_route_like_the_seed_table() {
        let s = IntentSettings::default();
        for (intent, tier) in [
            (Intent::Greeting, ModelTier::Fast),
            (Intent::Chitchat, ModelTier::Fast),
            (Intent::OrderStatus, ModelTier::Fast),
            (Intent::Faq, ModelTier::Fast),
            (Intent::ProductSearch, ModelTier::Smart),
            (Intent::ReturnRefund, ModelTier::Smart),
            (Intent::Complaint, ModelTier::Smart),
            (Intent::Recommendation, ModelTier::Smart),
            (Intent::Comparison, ModelTier::Smart),
        ] {
            assert_eq!(route(&s, base_complexity(intent), None), tier, "{intent:?}");
        }
    }

    #[test]
    fn retrieval_needs() {
        assert!(!needs_retrieval(Intent::Greeting));
        assert!(!needs_retrieval(Intent::Chitchat));
        assert!(!needs_retrieval(Intent::OrderStatus));
        for i in [
            Intent::Faq,
            Intent::ProductSearch,
            Intent::Recommendation,
            Intent::Comparison,
            Intent::Complaint,
            Intent::ReturnRefund,
        ] {
            assert!(needs_retrieval(i), "{i:?}");
        }
    }
}
