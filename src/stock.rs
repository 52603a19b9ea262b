//! `mangaassist stock` and `mangaassist flash-sale`: operators' changes to the live inventory
//! through the retrieval daemon's `InventoryService`.

use std::{collections::BTreeMap, fmt::Write as _, path::Path, time::Duration};

use anyhow::{Context, bail};
use mangaassist_client::InventoryClient;
use mangaassist_proto::v1 as pb;
use serde::Deserialize;

/// One line of a bulk stock feed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedLine {
    store_id: String,
    product_id: String,
    quantity: u32,
    #[serde(default)]
    price_yen: Option<u32>,
    /// A new volume's release time (RFC 3339, UTC): precompute pre-warms its answers.
    #[serde(default)]
    release_at: Option<String>,
}

/// A change read from a feed, with where it came from.
#[derive(Debug)]
pub struct FeedChange {
    pub line: usize,
    pub store_id: String,
    pub change: pb::StockChange,
    /// Unix milliseconds the volume goes on sale, when the line announces a release.
    pub release_at_ms: Option<i64>,
}

/// Most problems listed from one bad file.
const MAX_REPORTED: usize = 20;

/// Parses a JSONL feed (`{"store_id", "product_id", "quantity", "price_yen"?}` per line;
/// blank lines skipped). Every bad line is reported as `file:line: reason`; any bad line
/// fails the whole file, so a feed is applied whole or not at all.
pub fn parse_feed(path: &Path, text: &str) -> anyhow::Result<Vec<FeedChange>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let parsed: Result<FeedLine, String> = serde_json::from_str(raw).map_err(|e| e.to_string());
        let checked = parsed.and_then(|l| {
            if l.store_id.trim().is_empty() || l.product_id.trim().is_empty() {
                return Err("store_id and product_id must not be empty".into());
            }
            if l.quantity > mangaassist_inventory::MAX_QUANTITY {
                return Err(format!(
                    "quantity {} is above the limit of {}",
                    l.quantity,
                    mangaassist_inventory::MAX_QUANTITY
                ));
            }
            if let Some(p) = l.price_yen
                && (p == 0 || p > mangaassist_inventory::MAX_PRICE_YEN)
            {
                return Err(format!(
                    "price_yen {p} is outside 1..={}",
                    mangaassist_inventory::MAX_PRICE_YEN
                ));
            }
            let release_at_ms = match &l.release_at {
                Some(at) => Some(
                    crate::release::release_time(Some(at), None)
                        .map_err(|e| format!("release_at: {e:#}"))?,
                ),
                None => None,
            };
            Ok((l, release_at_ms))
        });
        match checked {
            Ok((l, release_at_ms)) => out.push(FeedChange {
                line,
                store_id: l.store_id,
                change: pb::StockChange {
                    product_id: l.product_id,
                    quantity: l.quantity,
                    price_yen: l.price_yen,
                },
                release_at_ms,
            }),
            Err(e) => problems.push(format!("{}:{line}: {e}", path.display())),
        }
    }
    if !problems.is_empty() {
        let mut msg = format!("{} bad line(s), nothing applied:", problems.len());
        for p in problems.iter().take(MAX_REPORTED) {
            let _ = write!(msg, "\n  {p}");
        }
        if problems.len() > MAX_REPORTED {
            let _ = write!(msg, "\n  ... and {} more", problems.len() - MAX_REPORTED);
        }
        bail!(msg);
    }
    if out.is_empty() {
        bail!("{}: no changes in the file", path.display());
    }
    Ok(out)
}

const DEADLINE: Duration = Duration::from_secs(30);

fn show(s: &pb::StockState) -> String {
    format!(
        "{:<10} {:<12} {:>6} in stock  {:>7} yen  change #{}  {}",
        s.store_id, s.product_id, s.quantity, s.price_yen, s.seq, s.title
    )
}

/// Sends a parsed feed: products are checked first (an unknown one fails the file with its
/// line), then each store's changes go in batches.
pub async fn import(
    client: &InventoryClient,
    path: &Path,
    changes: Vec<FeedChange>,
) -> anyhow::Result<usize> {
    let mut by_store: BTreeMap<String, Vec<FeedChange>> = BTreeMap::new();
    for c in changes {
        by_store.entry(c.store_id.clone()).or_default().push(c);
    }
    let mut problems = Vec::new();
    for (store, cs) in &by_store {
        for chunk in cs.chunks(mangaassist_inventory::MAX_CHANGES_PER_CALL) {
            let ids = chunk.iter().map(|c| c.change.product_id.clone()).collect();
            let r = client
                .get_stock(
                    pb::GetStockRequest {
                        store_id: store.clone(),
                        product_ids: ids,
                    },
                    DEADLINE,
                )
                .await
                .map_err(|s| anyhow::anyhow!("store `{store}`: {}", s.message()))
                .with_context(|| format!("{}: checking products", path.display()))?;
            for c in chunk {
                if r.missing.contains(&c.change.product_id) {
                    problems.push(format!(
                        "{}:{}: product `{}` is not in store `{store}`'s catalog",
                        path.display(),
                        c.line,
                        c.change.product_id
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        let shown: Vec<String> = problems.into_iter().take(MAX_REPORTED).collect();
        bail!(
            "{n} bad line(s), nothing applied:\n  {}",
            shown.join("\n  ")
        );
    }
    let mut applied = 0;
    for (store, cs) in by_store {
        for chunk in cs.chunks(mangaassist_inventory::MAX_CHANGES_PER_CALL) {
            let r = client
                .set_stock(
                    pb::SetStockRequest {
                        store_id: store.clone(),
                        changes: chunk.iter().map(|c| c.change.clone()).collect(),
                        source: format!("feed:{}", path.display()),
                    },
                    DEADLINE,
                )
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))
                .with_context(|| {
                    format!(
                        "{}: lines {}..={} (store `{store}`), after {applied} change(s) applied",
                        path.display(),
                        chunk.first().map_or(0, |c| c.line),
                        chunk.last().map_or(0, |c| c.line)
                    )
                })?;
            applied += r.applied.len();
        }
    }
    Ok(applied)
}

pub async fn set(
    client: &InventoryClient,
    store: &str,
    product: &str,
    quantity: u32,
    price: Option<u32>,
) -> anyhow::Result<String> {
    let r = client
        .set_stock(
            pb::SetStockRequest {
                store_id: store.to_string(),
                changes: vec![pb::StockChange {
                    product_id: product.to_string(),
                    quantity,
                    price_yen: price,
                }],
                source: "cli".into(),
            },
            DEADLINE,
        )
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    Ok(r.applied.iter().map(show).collect::<Vec<_>>().join("\n"))
}

pub async fn get(
    client: &InventoryClient,
    store: &str,
    products: &[String],
) -> anyhow::Result<String> {
    let r = client
        .get_stock(
            pb::GetStockRequest {
                store_id: store.to_string(),
                product_ids: products.to_vec(),
            },
            DEADLINE,
        )
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    let mut out: Vec<String> = r.stock.iter().map(show).collect();
    for m in &r.missing {
        out.push(format!("{store:<10} {m:<12} not in the catalog"));
    }
    out.push(format!(
        "flash-sale mode: {}",
        if r.flash_sale { "on" } else { "off" }
    ));
    Ok(out.join("\n"))
}

pub async fn flash_sale(client: &InventoryClient, store: &str, on: bool) -> anyhow::Result<String> {
    let r = client
        .set_flash_sale(
            pb::SetFlashSaleRequest {
                store_id: store.to_string(),
                on,
            },
            DEADLINE,
        )
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    let s = r.state.context("no state in the answer")?;
    Ok(format!(
        "{}: flash-sale mode {} (change #{})",
        s.store_id,
        if s.on { "on" } else { "off" },
        s.seq
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_with_bad_lines_is_refused_with_each_line_named() {
        let text = "{\"store_id\":\"manga_jp\",\"product_id\":\"A\",\"quantity\":3}\n\nnot json\n{\"store_id\":\"manga_jp\",\"product_id\":\"B\",\"quantity\":1,\"price_yen\":0}\n{\"store_id\":\"manga_jp\",\"product_id\":\"C\",\"quantity\":1,\"colour\":\"red\"}\n";
        let e = parse_feed(Path::new("feed.jsonl"), text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 bad line(s)"), "{e}");
        assert!(e.contains("feed.jsonl:3:"), "{e}");
        assert!(e.contains("feed.jsonl:4: price_yen 0"), "{e}");
        assert!(e.contains("feed.jsonl:5:") && e.contains("colour"), "{e}");
        let ok = parse_feed(
            Path::new("f"),
            "{\"store_id\":\"s\",\"product_id\":\"A\",\"quantity\":3,\"price_yen\":500}\n",
        )
        .unwrap();
        assert_eq!(ok[0].line, 1);
        assert_eq!(ok[0].change.price_yen, Some(500));
        assert!(parse_feed(Path::new("f"), "\n\n").is_err());
        let release = parse_feed(
            Path::new("f"),
            "{\"store_id\":\"s\",\"product_id\":\"A\",\"quantity\":0,\"release_at\":\"2027-01-05T15:00:00Z\"}\n{\"store_id\":\"s\",\"product_id\":\"B\",\"quantity\":0,\"release_at\":\"soon\"}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(release.contains("f:2: release_at"), "{release}");
        let ok = parse_feed(
            Path::new("f"),
            "{\"store_id\":\"s\",\"product_id\":\"A\",\"quantity\":0,\"release_at\":\"2027-01-05T15:00:00Z\"}\n",
        )
        .unwrap();
        assert_eq!(ok[0].release_at_ms, Some(1_799_161_200_000));
    }
}
