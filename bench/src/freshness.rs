//! `bench freshness`: open-loop load while stock flips, counting answers that present a
//! sold-out product as available (issue: ≤ 1 s from a stock change to no answer anywhere
//! offering the product).
//!
//! Every flip sets one product that answers have named to 0 (or back to its stock) through
//! `InventoryService.SetStock`. An answer is checked against a product when the product was
//! sold out for the whole answer: its zero was acknowledged before the question was sent and
//! no restore was sent before the answer ended. It presents the product as available when a
//! line of the text names the product's title without saying it is out of stock. Its
//! staleness is how long after the acknowledgement the question was sent; violations after
//! the bound must be 0. The bench also follows the inventory feed over gRPC like a remote
//! consumer and reports the lag from each `SetStock` call to its event.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::Write as _,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use mangaassist_client::InventoryClient;
use mangaassist_proto::v1 as pb;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::{
    BenchError,
    conn::{Connection, Exchange, ms},
    driver::{RunConfig, TokenSource, next_arrival, vu_url},
};

#[derive(Debug, Clone, clap::Args)]
pub struct FreshnessArgs {
    /// Gateway WebSocket URL [default: from gateway.listen].
    #[arg(long)]
    pub url: Option<String>,
    /// Retrieval daemon endpoint (InventoryService) [default: mesh.retrieval.endpoint].
    #[arg(long)]
    pub retrieval: Option<String>,
    /// Where the bench follows the inventory feed to time it [default: --retrieval]: with
    /// several retrieval replicas, the one the gateway's process follows.
    #[arg(long)]
    pub watch: Option<String>,
    /// Messages per second (Poisson arrivals).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How long to run the load.
    #[arg(long, default_value = "30s", value_parser = crate::cli::parse_duration)]
    pub duration: Duration,
    /// Time between stock flips.
    #[arg(long, default_value = "100ms", value_parser = crate::cli::parse_duration)]
    pub flip_every: Duration,
    /// Connections (each its own user and session).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// The freshness bound: violations later than this fail the run.
    #[arg(long, default_value = "1s", value_parser = crate::cli::parse_duration)]
    pub bound: Duration,
    #[arg(long, default_value = "manga_jp")]
    pub store: String,
    /// Distinct questions (asked again and again, so caches fill and serve).
    #[arg(long, default_value_t = 60)]
    pub questions: usize,
    #[arg(long, default_value = "bench-results/freshness")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// One stock flip as the bench made it.
#[derive(Debug, Clone)]
struct Flip {
    product: String,
    quantity: u32,
    sent: Instant,
    acked: Instant,
    seq: u64,
}

#[derive(Debug, Serialize)]
struct Quantiles {
    n: usize,
    p50: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

fn quantiles(v: &[f64]) -> Quantiles {
    Quantiles {
        n: v.len(),
        p50: mangaassist_stats::percentile(v, 0.5),
        p99: mangaassist_stats::percentile(v, 0.99),
        max: v
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))),
    }
}

#[derive(Debug, Serialize)]
struct Report {
    store: String,
    rate: f64,
    duration_s: f64,
    connections: usize,
    bound_ms: f64,
    flips: usize,
    answers: usize,
    errors: usize,
    /// Answers that named a product sold out for the whole answer.
    checked: usize,
    violations: usize,
    violations_after_bound: usize,
    /// Time from a zero's acknowledgement to the question of each violating answer.
    violation_staleness_ms: Quantiles,
    /// From `SetStock` sent to its event on a gRPC `Watch` stream.
    feed_lag_ms: Quantiles,
    first_token_ms: Quantiles,
    /// Answers by `done.served_from`.
    served_from: BTreeMap<String, usize>,
    /// Checked answers by `done.served_from`.
    checked_served_from: BTreeMap<String, usize>,
    /// Answers that ended with `done` but no text, by `done.served_from` (should be none).
    empty_answers: BTreeMap<String, usize>,
}

/// Whether `text` offers `title` for sale: a line names it and does not say it is sold out.
pub(crate) fn presents_as_available(text: &str, title: &str) -> bool {
    !title.is_empty()
        && text
            .lines()
            .any(|l| l.contains(title) && !l.contains("out of stock") && !l.contains("在庫切れ"))
}

fn questions(products: &[mangaassist_catalog::Product], n: usize, rng: &mut StdRng) -> Vec<String> {
    let mut series: Vec<&str> = products.iter().map(|p| p.series.as_str()).collect();
    series.sort_unstable();
    series.dedup();
    let mut genres: Vec<&str> = products
        .iter()
        .flat_map(|p| p.genres.iter().map(String::as_str))
        .collect();
    genres.sort_unstable();
    genres.dedup();
    let mut out = HashSet::new();
    let mut guard = 0;
    while out.len() < n && guard < n * 20 {
        guard += 1;
        let s = series[rng.random_range(0..series.len().max(1))];
        let g = genres[rng.random_range(0..genres.len().max(1))];
        let q = match rng.random_range(0..5) {
            0 => format!("Recommend some {g} manga"),
            1 => format!("Is {s} volume {} in stock?", rng.random_range(1..4)),
            2 => format!("Something like {s}?"),
            3 => format!("What {g} manga should I read?"),
            _ => format!("Tell me about {s}"),
        };
        out.insert(q);
    }
    let mut v: Vec<String> = out.into_iter().collect();
    v.sort();
    v
}

pub async fn run(args: &FreshnessArgs, ctx: &crate::cli::BenchContext) -> Result<i32, BenchError> {
    let (default_url, retrieval_endpoint, data_dir) = (
        ctx.default_url.as_str(),
        ctx.retrieval_endpoint.as_str(),
        ctx.data_dir.as_path(),
    );
    let (token_key, tokens) = (ctx.token_key.clone(), ctx.service_tokens.clone());
    if !(args.rate.is_finite() && args.rate > 0.0) || args.connections == 0 {
        return Err(BenchError::Usage(
            "--rate must be positive and --connections at least 1".into(),
        ));
    }
    let url = args.url.clone().unwrap_or_else(|| default_url.to_string());
    let endpoint = args
        .retrieval
        .clone()
        .unwrap_or_else(|| retrieval_endpoint.to_string());
    let inv = InventoryClient::connect_with(&endpoint, tokens.clone())
        .map_err(|e| BenchError::Usage(format!("--retrieval {endpoint}: {e}")))?;
    let watch_endpoint = args.watch.clone().unwrap_or_else(|| endpoint.clone());
    let watched = InventoryClient::connect_with(&watch_endpoint, tokens)
        .map_err(|e| BenchError::Usage(format!("--watch {watch_endpoint}: {e}")))?;
    let products: Vec<mangaassist_catalog::Product> =
        mangaassist_catalog::load_products(&data_dir.join("catalog/products.jsonl"))
            .map_err(|e| BenchError::Usage(format!("catalog: {e}")))?
            .into_iter()
            .filter(|p| p.store_id == args.store)
            .collect();
    if products.is_empty() {
        return Err(BenchError::Usage(format!(
            "no products in store `{}`",
            args.store
        )));
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let pool = questions(&products, args.questions, &mut rng);

    // The feed as a remote consumer sees it: seq → time received.
    let seen: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let follower = {
        let seen = seen.clone();
        mangaassist_inventory::follow(
            watched.feed(),
            "bench",
            move |c| {
                seen.lock().insert(c.seq(), Instant::now());
            },
            stop.clone(),
        )
    };
    let ready_by = Instant::now() + Duration::from_secs(10);
    while !follower.view.is_ready() {
        if Instant::now() > ready_by {
            return Err(BenchError::Usage(format!(
                "the inventory feed at {watch_endpoint} did not catch up within 10 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let cfg = RunConfig {
        token: token_key.map_or(TokenSource::None, TokenSource::Mint),
        store: Some(args.store.clone()),
        duration: Some(args.duration),
        ..RunConfig::closed(url, args.connections, 0)
    };
    let run_id = format!("fresh{}", rng.random::<u32>());
    let mut conns = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let u = vu_url(&cfg, i, &run_id)?;
        conns.push(Connection::open_keeping_text(&u, Duration::from_secs(30)).await?);
    }

    // Products answers named, the flips made, and each flipped product's stock before.
    let named: Arc<Mutex<Vec<String>>> = Arc::default();
    let flips: Arc<Mutex<Vec<Flip>>> = Arc::default();
    let flipper = {
        let (named, flips, inv, store) = (
            named.clone(),
            flips.clone(),
            inv.clone(),
            args.store.clone(),
        );
        let (every, seed, stop) = (args.flip_every, args.seed, stop.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            let mut original: HashMap<String, u32> = HashMap::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let pick = {
                    let n = named.lock();
                    if n.is_empty() {
                        continue;
                    }
                    n[rng.random_range(0..n.len())].clone()
                };
                let current = match inv
                    .get_stock(
                        pb::GetStockRequest {
                            store_id: store.clone(),
                            product_ids: vec![pick.clone()],
                        },
                        Duration::from_secs(5),
                    )
                    .await
                {
                    Ok(r) => r.stock.first().map_or(0, |s| s.quantity),
                    Err(_) => continue,
                };
                let before = *original.entry(pick.clone()).or_insert(current);
                let quantity = if current == 0 { before.max(5) } else { 0 };
                let sent = Instant::now();
                let r = inv
                    .set_stock(
                        pb::SetStockRequest {
                            store_id: store.clone(),
                            changes: vec![pb::StockChange {
                                product_id: pick.clone(),
                                quantity,
                                price_yen: None,
                            }],
                            source: "bench freshness".into(),
                        },
                        Duration::from_secs(5),
                    )
                    .await;
                if let Ok(r) = r {
                    flips.lock().push(Flip {
                        product: pick,
                        quantity,
                        sent,
                        acked: Instant::now(),
                        seq: r.applied.first().map_or(0, |s| s.seq),
                    });
                }
            }
            original
        })
    };

    // Open-loop load.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Exchange>();
    let started = Instant::now();
    let mut next = started;
    let mut k: u64 = 0;
    let mut answers: Vec<Exchange> = Vec::new();
    while started.elapsed() < args.duration {
        next = next_arrival(&mut rng, next, args.rate);
        tokio::time::sleep_until(next.into()).await;
        let c = &conns[(k as usize) % conns.len()];
        let q = pool[rng.random_range(0..pool.len())].clone();
        let reply = c.send(format!("{run_id}-{k}"), q, None);
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Ok(ex) = reply.await {
                let _ = tx.send(ex);
            }
        });
        k += 1;
        // Feed the flipper with what answers name.
        while let Ok(ex) = rx.try_recv() {
            if let Some(d) = &ex.done {
                let mut n = named.lock();
                for p in &d.product_ids {
                    if !n.contains(p) {
                        n.push(p.clone());
                    }
                }
            }
            answers.push(ex);
        }
    }
    drop(tx);
    for c in conns {
        c.close().await;
    }
    while let Some(ex) = rx.recv().await {
        answers.push(ex);
    }
    stop.cancel();
    let original = flipper.await.unwrap_or_default();
    // Leave the shop as it was.
    for (product, quantity) in &original {
        let _ = inv
            .set_stock(
                pb::SetStockRequest {
                    store_id: args.store.clone(),
                    changes: vec![pb::StockChange {
                        product_id: product.clone(),
                        quantity: *quantity,
                        price_yen: None,
                    }],
                    source: "bench freshness (restore)".into(),
                },
                Duration::from_secs(5),
            )
            .await;
    }
    let flips = flips.lock().clone();
    let titles: HashMap<String, String> = products
        .iter()
        .map(|p| (p.id.clone(), p.title.clone()))
        .collect();
    let report = analyse(args, &answers, &flips, &titles, &seen.lock());
    write_report(args, &report)?;
    Ok(i32::from(report.violations_after_bound > 0))
}

fn analyse(
    args: &FreshnessArgs,
    answers: &[Exchange],
    flips: &[Flip],
    titles: &HashMap<String, String>,
    seen: &HashMap<u64, Instant>,
) -> Report {
    let mut by_product: HashMap<&str, Vec<&Flip>> = HashMap::new();
    for f in flips {
        by_product.entry(f.product.as_str()).or_default().push(f);
    }
    for v in by_product.values_mut() {
        v.sort_by_key(|f| f.sent);
    }
    let (mut checked, mut violations, mut late) = (0, 0, 0);
    let mut staleness = Vec::new();
    let mut served_from: BTreeMap<String, usize> = BTreeMap::new();
    let mut checked_from: BTreeMap<String, usize> = BTreeMap::new();
    let mut ttft = Vec::new();
    let mut errors = 0;
    let mut empty: BTreeMap<String, usize> = BTreeMap::new();
    for ex in answers {
        let Some(done) = &ex.done else {
            errors += 1;
            continue;
        };
        if ex.text.trim().is_empty() {
            *empty.entry(done.served_from.clone()).or_default() += 1;
        }
        *served_from.entry(done.served_from.clone()).or_default() += 1;
        if let Some(first) = ex.first_chunk_at {
            ttft.push(ms(first.duration_since(ex.sent_at)));
        }
        let end = ex.done_at.unwrap_or(ex.sent_at);
        let mut counted = false;
        for p in &done.product_ids {
            let Some(timeline) = by_product.get(p.as_str()) else {
                continue;
            };
            // The last change acknowledged before the question, and none sent during it.
            let Some(zero) = timeline
                .iter()
                .rev()
                .find(|f| f.acked <= ex.sent_at)
                .filter(|f| f.quantity == 0)
            else {
                continue;
            };
            if timeline
                .iter()
                .any(|f| f.sent > zero.sent && f.sent < end && f.quantity > 0)
            {
                continue;
            }
            if !counted {
                checked += 1;
                *checked_from.entry(done.served_from.clone()).or_default() += 1;
                counted = true;
            }
            let title = titles.get(p).map_or("", String::as_str);
            if presents_as_available(&ex.text, title) {
                violations += 1;
                let stale = ms(ex.sent_at.duration_since(zero.acked));
                if stale > ms(args.bound) {
                    late += 1;
                }
                staleness.push(stale);
            }
        }
    }
    let lag: Vec<f64> = flips
        .iter()
        .filter_map(|f| {
            seen.get(&f.seq)
                .map(|t| ms(t.saturating_duration_since(f.sent)))
        })
        .collect();
    Report {
        store: args.store.clone(),
        rate: args.rate,
        duration_s: args.duration.as_secs_f64(),
        connections: args.connections,
        bound_ms: ms(args.bound),
        flips: flips.len(),
        answers: answers.len(),
        errors,
        checked,
        violations,
        violations_after_bound: late,
        violation_staleness_ms: quantiles(&staleness),
        feed_lag_ms: quantiles(&lag),
        first_token_ms: quantiles(&ttft),
        served_from,
        checked_served_from: checked_from,
        empty_answers: empty,
    }
}

fn fmt_q(q: &Quantiles) -> String {
    let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    format!(
        "n {} · p50 {} · p99 {} · max {}",
        q.n,
        f(q.p50),
        f(q.p99),
        f(q.max)
    )
}

fn write_report(args: &FreshnessArgs, r: &Report) -> Result<(), BenchError> {
    std::fs::create_dir_all(&args.out).map_err(|source| BenchError::Write {
        path: args.out.clone(),
        source,
    })?;
    let json = serde_json::to_string_pretty(r).map_err(|e| BenchError::Usage(e.to_string()))?;
    let path = args.out.join("results.json");
    std::fs::write(&path, json).map_err(|source| BenchError::Write {
        path: path.clone(),
        source,
    })?;
    let verdict = if r.violations_after_bound == 0 {
        "PASS"
    } else {
        "FAIL"
    };
    let md = format!(
        "# Freshness under load ({verdict})\n\n\
         Store `{}`, {} msg/s open loop for {:.0} s over {} connections; a stock flip every {:?}.\n\n\
         | what | value |\n|---|---|\n\
         | answers (errors) | {} ({}) |\n\
         | stock flips | {} |\n\
         | answers naming a product sold out throughout | {} |\n\
         | … presenting it as available | {} |\n\
         | … of those later than the {:.0} ms bound | **{}** |\n\
         | staleness of those answers, ms | {} |\n\
         | SetStock → event on a gRPC Watch, ms | {} |\n\
         | first token, ms | {} |\n\
         | answers by path | {:?} |\n\
         | checked answers by path | {:?} |\n\
         | answers without text, by path | {:?} |\n",
        r.store,
        r.rate,
        r.duration_s,
        r.connections,
        args.flip_every,
        r.answers,
        r.errors,
        r.flips,
        r.checked,
        r.violations,
        r.bound_ms,
        r.violations_after_bound,
        fmt_q(&r.violation_staleness_ms),
        fmt_q(&r.feed_lag_ms),
        fmt_q(&r.first_token_ms),
        r.served_from,
        r.checked_served_from,
        r.empty_answers,
    );
    let path = args.out.join("summary.md");
    std::fs::write(&path, &md).map_err(|source| BenchError::Write {
        path: path.clone(),
        source,
    })?;
    let _ = writeln!(std::io::stdout(), "{md}");
    Ok(())
}
