//! `bench release`: the release spike's first minute on the answers pre-warmed for it (seed
//! 004 Q19). Schedules a volume's release with precompute (due at once), waits until its
//! answers are written, then opens `--customers` sessions that each ask one question about the
//! new volume, worded the way customers word it (hand-written phrasings below, English and
//! Japanese, with the pre-warmed wordings among them), `--concurrency` at a time. It reports
//! how many were served from the pre-warmed answers, first-token latency served against live,
//! and answers about another product (wrong).

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use mangaassist_catalog::Product;
use mangaassist_client::PrecomputeClient;
use mangaassist_proto::v1 as pb;
use serde::Serialize;

use crate::{
    BenchError,
    conn::{Connection, Exchange, ms},
    driver::{RunConfig, TokenSource, vu_url},
};

#[derive(Debug, Clone, clap::Args)]
pub struct ReleaseArgs {
    /// Gateway WebSocket URL [default: from gateway.listen].
    #[arg(long)]
    pub url: Option<String>,
    /// Precompute daemon endpoint [default: mesh.precompute.endpoint].
    #[arg(long)]
    pub precompute: Option<String>,
    #[arg(long, default_value = "manga_jp")]
    pub store: String,
    /// The volume released [default: the highest volume of the store's series with the most
    /// volumes, Japanese names preferred].
    #[arg(long)]
    pub product: Option<String>,
    /// Customers, each in a session of their own asking one question.
    #[arg(long, default_value_t = 400)]
    pub customers: usize,
    /// Customers asking at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    #[arg(long, default_value = "bench-results/release")]
    pub out: PathBuf,
}

/// What a customer asks, and the phrasings (`{s}` series, `{n}` volume, `{j}` Japanese series
/// name). Written by hand as customers type them: some word for word what precompute
/// pre-warms, most not.
const PHRASINGS: &[(&str, &str, &[&str])] = &[
    (
        "next",
        "en",
        &[
            "When is {s}, Vol. {n} out?",
            "when does {s} volume {n} come out",
            "Is {s} vol {n} out yet?",
            "{s} {n} release date?",
        ],
    ),
    (
        "stock",
        "en",
        &[
            "Is {s}, Vol. {n} in stock?",
            "do you have {s} volume {n} in stock",
            "is {s} {n} available?",
            "Can I buy {s} vol. {n} now?",
        ],
    ),
    (
        "price",
        "en",
        &[
            "What is the price of {s}, Vol. {n}?",
            "how much is {s} volume {n}",
            "{s} vol {n} price?",
        ],
    ),
    (
        "about",
        "en",
        &[
            "Tell me more about {s}, Vol. {n}",
            "what happens in {s} volume {n}?",
        ],
    ),
    (
        "similar",
        "en",
        &["Recommend something like {s}", "anything similar to {s}?"],
    ),
    (
        "next",
        "ja",
        &["{j}の{n}巻はいつ発売ですか？", "{j} {n}巻 発売日はいつ？"],
    ),
    (
        "stock",
        "ja",
        &["{j}の{n}巻の在庫はありますか？", "{j}{n}巻ありますか"],
    ),
    (
        "price",
        "ja",
        &["{j}の{n}巻はいくらですか？", "{j} {n}巻の値段を教えて"],
    ),
    ("similar", "ja", &["{j}に似た漫画はありますか？"]),
];

/// One customer's question and what came back.
#[derive(Debug, Clone, Serialize)]
struct Asked {
    ask: &'static str,
    lang: &'static str,
    text: String,
    served_from: String,
    first_token_ms: Option<f64>,
    error: Option<String>,
    /// A question about the volume whose answer names no product or starts with another
    /// (similar-title questions are about other series by design and never count).
    wrong: bool,
}

#[derive(Debug, Default, Serialize)]
struct Group {
    asked: usize,
    prewarmed: usize,
    cache: usize,
    live: usize,
    errors: usize,
    wrong: usize,
    first_token_prewarmed_p50_ms: Option<f64>,
    first_token_prewarmed_p99_ms: Option<f64>,
    first_token_live_p50_ms: Option<f64>,
    first_token_live_p99_ms: Option<f64>,
}

fn group<'a>(items: impl Iterator<Item = &'a Asked>) -> Group {
    let mut g = Group::default();
    let (mut pre, mut live) = (Vec::new(), Vec::new());
    for a in items {
        g.asked += 1;
        g.wrong += usize::from(a.wrong);
        if a.error.is_some() {
            g.errors += 1;
            continue;
        }
        match a.served_from.as_str() {
            "precomputed" => {
                g.prewarmed += 1;
                pre.extend(a.first_token_ms);
            }
            "cache" => g.cache += 1,
            _ => {
                g.live += 1;
                live.extend(a.first_token_ms);
            }
        }
    }
    let p = |v: &[f64], q| mangaassist_stats::percentile(v, q);
    g.first_token_prewarmed_p50_ms = p(&pre, 0.5);
    g.first_token_prewarmed_p99_ms = p(&pre, 0.99);
    g.first_token_live_p50_ms = p(&live, 0.5);
    g.first_token_live_p99_ms = p(&live, 0.99);
    g
}

#[derive(Debug, Serialize)]
struct Report {
    store: String,
    product_id: String,
    title: String,
    prewarm_ms: f64,
    prewarmed_answers: u32,
    customers: usize,
    concurrency: usize,
    all: Group,
    by_question: BTreeMap<String, Group>,
    asked: Vec<Asked>,
}

/// The default release: the newest volume of the store's longest series.
fn pick(products: &[Product], store: &str) -> Option<Product> {
    let mut volumes: BTreeMap<&str, usize> = BTreeMap::new();
    for p in products.iter().filter(|p| p.store_id == store) {
        *volumes.entry(p.series.as_str()).or_default() += 1;
    }
    let (series, _) = volumes
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))?;
    products
        .iter()
        .filter(|p| p.store_id == store && p.series == series)
        .max_by_key(|p| p.volume)
        .cloned()
}

fn fill(template: &str, p: &Product) -> String {
    template
        .replace("{s}", &p.series)
        .replace("{n}", &p.volume.to_string())
        .replace("{j}", p.series_ja.as_deref().unwrap_or(&p.series))
}

pub async fn run(args: &ReleaseArgs, ctx: &crate::cli::BenchContext) -> Result<i32, BenchError> {
    if args.customers == 0 || args.concurrency == 0 {
        return Err(BenchError::Usage(
            "--customers and --concurrency must be at least 1".into(),
        ));
    }
    let products = mangaassist_catalog::load_products(&ctx.data_dir.join("catalog/products.jsonl"))
        .map_err(|e| BenchError::Usage(format!("catalog: {e}")))?;
    let product = match &args.product {
        Some(id) => products
            .iter()
            .find(|p| &p.id == id && p.store_id == args.store)
            .cloned()
            .ok_or_else(|| {
                BenchError::Usage(format!("no product `{id}` in store `{}`", args.store))
            })?,
        None => pick(&products, &args.store)
            .ok_or_else(|| BenchError::Usage(format!("store `{}` has no products", args.store)))?,
    };
    let endpoint = args
        .precompute
        .clone()
        .unwrap_or_else(|| ctx.precompute_endpoint.clone());
    let precompute = PrecomputeClient::connect_with(&endpoint, ctx.service_tokens.clone())
        .map_err(|e| BenchError::Usage(format!("--precompute {endpoint}: {e}")))?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let rpc = |s: tonic::Status| BenchError::Usage(format!("precompute: {}", s.message()));
    let started = Instant::now();
    // Ten minutes away: inside any lead of ten minutes or more, so due at once.
    precompute
        .schedule_release(
            pb::ScheduleReleaseRequest {
                store_id: args.store.clone(),
                product_id: product.id.clone(),
                release_at_ms: now_ms + 10 * 60 * 1000,
            },
            Duration::from_secs(10),
        )
        .await
        .map_err(rpc)?;
    let until = Instant::now() + Duration::from_secs(300);
    let info = loop {
        let l = precompute
            .list_releases(
                pb::ListReleasesRequest {
                    store_id: args.store.clone(),
                },
                Duration::from_secs(10),
            )
            .await
            .map_err(rpc)?;
        if let Some(r) = l
            .releases
            .into_iter()
            .find(|r| r.product_id == product.id && r.warmed_ms >= now_ms)
        {
            break r;
        }
        if Instant::now() > until {
            return Err(BenchError::Usage(
                "the release was not pre-warmed within 5 minutes (precompute.release_lead_seconds under 10 min?)".into(),
            ));
        }
        // Polling the schedule for the background run.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let prewarm_ms = ms(Instant::now() - started);
    let url = args.url.clone().unwrap_or_else(|| ctx.default_url.clone());
    let token = ctx
        .token_key
        .clone()
        .map_or(TokenSource::None, TokenSource::Mint);
    let run_id = format!("{:08x}", rand::random::<u32>());
    let japanese = product.series_ja.is_some();
    let mut pool: Vec<(&'static str, &'static str, String)> = Vec::new();
    for (ask, lang, ts) in PHRASINGS {
        if *lang == "en" || japanese {
            pool.extend(ts.iter().map(|t| (*ask, *lang, fill(t, &product))));
        }
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let product = Arc::new(product);
    let mut tasks = Vec::with_capacity(args.customers);
    for i in 0..args.customers {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BenchError::Usage(e.to_string()))?;
        let (ask, lang, text) = pool[rand::random::<u32>() as usize % pool.len()].clone();
        let cfg = RunConfig {
            token: token.clone(),
            store: Some(args.store.clone()),
            ..RunConfig::closed(url.clone(), 1, 0)
        };
        let (run_id, product) = (run_id.clone(), product.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let conn =
                Connection::open(&vu_url(&cfg, i, &run_id)?, Duration::from_secs(30)).await?;
            let session = format!("release-{run_id}-{i}");
            let ex: Exchange = conn
                .send(format!("{session}-0"), text.clone(), Some(session))
                .await
                .unwrap_or_else(|_| {
                    Exchange::failed(Instant::now(), "connection_closed", "the connection ended")
                });
            let (served_from, ids) = match &ex.done {
                Some(d) => (d.served_from.clone(), d.product_ids.clone()),
                None => ("none".to_string(), vec![]),
            };
            let wrong = ex.done.is_some()
                && ask != "similar"
                && ids.first().is_none_or(|id| *id != product.id);
            Ok::<_, BenchError>(Asked {
                ask,
                lang,
                text,
                served_from,
                first_token_ms: ex.first_chunk_at.map(|t| ms(t - ex.sent_at)),
                error: ex.error.as_ref().map(|(c, m)| format!("{c}: {m}")),
                wrong,
            })
        }));
    }
    let mut asked = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(Ok(a)) => asked.push(a),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(BenchError::Usage(format!("a customer task failed: {e}"))),
        }
    }
    let mut by: BTreeMap<String, Vec<&Asked>> = BTreeMap::new();
    for a in &asked {
        by.entry(format!("{} ({})", a.ask, a.lang))
            .or_default()
            .push(a);
    }
    let report = Report {
        store: args.store.clone(),
        product_id: product.id.clone(),
        title: product.title.clone(),
        prewarm_ms,
        prewarmed_answers: info.written,
        customers: args.customers,
        concurrency: args.concurrency,
        all: group(asked.iter()),
        by_question: by
            .into_iter()
            .map(|(k, v)| (k, group(v.into_iter())))
            .collect(),
        asked: asked.clone(),
    };
    write(args, &report)?;
    Ok(i32::from(report.all.errors > 0))
}

fn write(args: &ReleaseArgs, r: &Report) -> Result<(), BenchError> {
    std::fs::create_dir_all(&args.out).map_err(|source| BenchError::Write {
        path: args.out.clone(),
        source,
    })?;
    let path = args.out.join("results.json");
    let json = serde_json::to_string_pretty(r).map_err(|e| BenchError::Usage(e.to_string()))?;
    std::fs::write(&path, json).map_err(|source| BenchError::Write { path, source })?;
    let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
    let row = |name: &str, g: &Group| {
        format!(
            "| {name} | {} | {} ({:.0} %) | {} | {} | {} | {} / {} | {} / {} | {} |\n",
            g.asked,
            g.prewarmed,
            100.0 * g.prewarmed as f64 / g.asked.max(1) as f64,
            g.cache,
            g.live,
            g.errors,
            f(g.first_token_prewarmed_p50_ms),
            f(g.first_token_prewarmed_p99_ms),
            f(g.first_token_live_p50_ms),
            f(g.first_token_live_p99_ms),
            g.wrong,
        )
    };
    let mut md = format!(
        "# Release spike on pre-warmed answers\n\n{} ({} in {}): {} answers pre-warmed in {:.0} ms; \
         then {} customers, {} at once, one question each.\n\n**Served from the pre-warmed \
         answers: {} of {} ({:.1} %)**; wrong answers: **{}**.\n\n\
         | question | asked | pre-warmed | cached | live | errors | first token pre-warmed p50 / p99 ms | live p50 / p99 ms | wrong |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        r.title,
        r.product_id,
        r.store,
        r.prewarmed_answers,
        r.prewarm_ms,
        r.customers,
        r.concurrency,
        r.all.prewarmed,
        r.all.asked,
        100.0 * r.all.prewarmed as f64 / r.all.asked.max(1) as f64,
        r.all.wrong,
    );
    md.push_str(&row("all", &r.all));
    for (k, g) in &r.by_question {
        md.push_str(&row(k, g));
    }
    let path = args.out.join("summary.md");
    std::fs::write(&path, &md).map_err(|source| BenchError::Write { path, source })?;
    let _ = writeln!(std::io::stdout(), "{md}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phrasing_names_the_volume_or_the_series() {
        for (ask, lang, ts) in PHRASINGS {
            for t in *ts {
                let named = if *lang == "ja" {
                    t.contains("{j}")
                } else {
                    t.contains("{s}")
                };
                assert!(named, "{ask}/{lang}: {t}");
                if *ask != "similar" {
                    assert!(t.contains("{n}"), "{ask}/{lang}: {t}");
                }
            }
        }
    }
}
