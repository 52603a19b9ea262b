//! What customers ask about, for the trending job: every answer that names catalog products
//! counts them here, and the gateway reports the counts to precompute every
//! `gateway.demand_report_seconds` (and once more at shutdown) in one `RecordDemand`. One
//! call per interval instead of one per message keeps this off the hot path.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use mangaassist_proto::v1 as pb;

use crate::mesh::Mesh;

/// Products one gateway counts between reports; beyond it new products wait for the next
/// interval (the catalog is far smaller, so only a peer naming invented ids gets here).
const CAPACITY: usize = 100_000;
/// How long a report may take.
const REPORT_DEADLINE: Duration = Duration::from_secs(2);

/// Adds `n` answers to `key`; a product new to a full tally waits for the next interval.
fn add(counts: &mut HashMap<(String, String), u32>, key: (String, String), n: u32) {
    if let Some(c) = counts.get_mut(&key) {
        *c = c.saturating_add(n);
    } else if counts.len() < CAPACITY {
        counts.insert(key, n);
    } else {
        metrics::counter!("demand_counts_dropped_total").increment(1);
    }
}

/// Answers per (store, product) since the last report.
#[derive(Default)]
pub struct DemandTally {
    counts: Mutex<HashMap<(String, String), u32>>,
}

impl DemandTally {
    /// One answer of `store` named `products` (each counted once per answer).
    pub fn record(&self, store: &str, products: &[String]) {
        if products.is_empty() {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (i, p) in products.iter().enumerate() {
            if products[..i].contains(p) {
                continue;
            }
            add(&mut counts, (store.to_string(), p.clone()), 1);
        }
    }

    fn take(&self) -> Vec<pb::DemandCount> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        counts
            .into_iter()
            .map(|((store_id, product_id), count)| pb::DemandCount {
                store_id,
                product_id,
                // The daemon's bound; a gateway answering that much between reports is
                // reporting it next time anyway.
                count: count.min(1_000_000),
            })
            .collect()
    }

    /// Sends the counts so far; kept for the next report when precompute cannot take them
    /// (restarting, down), so a short outage loses nothing.
    pub async fn report(&self, mesh: &dyn Mesh) {
        let counts = self.take();
        if counts.is_empty() {
            return;
        }
        let req = pb::RecordDemandRequest {
            counts: counts.clone(),
        };
        match mesh.record_demand(req, REPORT_DEADLINE).await {
            Ok(r) => {
                metrics::counter!("demand_reports_total", "result" => "ok").increment(1);
                if r.unknown > 0 {
                    tracing::debug!(
                        unknown = r.unknown,
                        "precompute knows some reported products under no store"
                    );
                }
            }
            Err(e) => {
                metrics::counter!("demand_reports_total", "result" => "failed").increment(1);
                tracing::debug!(error = %e, "demand not reported; kept for the next report");
                // A refusal of the request itself (a bug, not an outage) would repeat
                // forever: only keep counts that can still go through.
                if e.code() != tonic::Code::InvalidArgument {
                    let mut held = self.counts.lock().unwrap_or_else(|e| e.into_inner());
                    for c in counts {
                        add(&mut held, (c.store_id, c.product_id), c.count);
                    }
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn pending(&self) -> HashMap<(String, String), u32> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
