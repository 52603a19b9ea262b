//! `bench conversations`: replays written multi-turn conversations (data/eval/conversations.jsonl)
//! against a running gateway, each in its own session with a customer's pause between turns,
//! and reports per turn position and per kind of question how many answers were served
//! pre-computed or cached, their first-token latency against live answers, and how many served
//! answers were wrong:
//! - **wrong product**: a turn labelled with the series it is about got an answer whose first
//!   product is of another series;
//! - **stale stock**: in every `--sell-out-every`-th conversation the product of the first
//!   answer is set to 0 (`InventoryService.SetStock`) as soon as that answer ends, and any later
//!   answer of the conversation that offers it as available is stale.

use std::{
    collections::{BTreeMap, HashMap},
    io::Write as _,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use mangaassist_client::InventoryClient;
use mangaassist_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::{
    BenchError,
    conn::{Connection, Exchange, ms},
    driver::{RunConfig, TokenSource, vu_url},
    freshness::presents_as_available,
};

#[derive(Debug, Clone, clap::Args)]
pub struct ConversationsArgs {
    /// Gateway WebSocket URL [default: from gateway.listen].
    #[arg(long)]
    pub url: Option<String>,
    /// Conversations, one JSON object per line [default: <data>/eval/conversations.jsonl].
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Retrieval daemon endpoint (InventoryService, for the sell-outs) [default:
    /// mesh.retrieval.endpoint].
    #[arg(long)]
    pub retrieval: Option<String>,
    /// Conversations replayed at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The customer's pause between an answer and their next message.
    #[arg(long, default_value = "1s", value_parser = crate::cli::parse_duration)]
    pub think: Duration,
    /// Sell out the first answer's product in every N-th conversation (0: never).
    #[arg(long, default_value_t = 4)]
    pub sell_out_every: usize,
    #[arg(long, default_value = "bench-results/conversations")]
    pub out: PathBuf,
}

/// One line of the conversations file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Conversation {
    id: String,
    store: String,
    lang: String,
    turns: Vec<Turn>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Turn {
    say: String,
    /// The series the answer must be about.
    #[serde(default)]
    about: Option<String>,
    /// What the turn asks (a follow-up kind), for the report.
    #[serde(default)]
    ask: Option<String>,
}

/// What one turn got.
#[derive(Debug, Clone, Serialize)]
struct TurnResult {
    conversation: String,
    store: String,
    lang: String,
    position: usize,
    ask: String,
    served_from: String,
    first_token_ms: Option<f64>,
    error: Option<String>,
    /// About another product than the one the customer was last shown (a follow-up) or
    /// than its label (an opener).
    wrong_product: bool,
    /// About another series than the file's label (whatever the conversation showed): the
    /// live path's retrieval and model quality, not a serving error.
    off_label: bool,
    stale_stock: bool,
    /// Series of the products the answer named, in its order (for reading a wrong answer).
    series: Vec<String>,
}

fn load(path: &std::path::Path) -> Result<Vec<Conversation>, BenchError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BenchError::Usage(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let c: Conversation = serde_json::from_str(line)
            .map_err(|e| BenchError::Usage(format!("{}:{}: {e}", path.display(), i + 1)))?;
        if c.turns.is_empty() || c.turns.iter().any(|t| t.say.trim().is_empty()) {
            return Err(BenchError::Usage(format!(
                "{}:{}: a conversation needs turns, each with something to say",
                path.display(),
                i + 1
            )));
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(BenchError::Usage(format!(
            "{}: no conversations",
            path.display()
        )));
    }
    Ok(out)
}

/// Catalog facts the checks need: series and title by (store, product id).
type Catalog = HashMap<(String, String), (String, String)>;

#[allow(clippy::too_many_arguments)]
async fn replay(
    c: Conversation,
    index: usize,
    url: String,
    token: TokenSource,
    run_id: String,
    args: ConversationsArgs,
    catalog: Arc<Catalog>,
    inv: InventoryClient,
    sell_outs: Arc<SellOuts>,
) -> Result<Vec<TurnResult>, BenchError> {
    let cfg = RunConfig {
        token,
        store: Some(c.store.clone()),
        ..RunConfig::closed(url, 1, 0)
    };
    let conn =
        Connection::open_keeping_text(&vu_url(&cfg, index, &run_id)?, Duration::from_secs(30))
            .await?;
    let sell_out = args.sell_out_every > 0 && index.is_multiple_of(args.sell_out_every);
    let session = format!("conv-{run_id}-{}", c.id);
    let mut sold_out: Option<String> = None;
    // The series of the first product of the last answer that named one.
    let mut focus: Option<String> = None;
    let mut results = Vec::with_capacity(c.turns.len());
    for (position, turn) in c.turns.iter().enumerate() {
        if position > 0 {
            // The customer reads the answer before typing the next message.
            tokio::time::sleep(args.think).await;
        }
        let ex: Exchange = conn
            .send(
                format!("{session}-{position}"),
                turn.say.clone(),
                Some(session.clone()),
            )
            .await
            .unwrap_or_else(|_| {
                Exchange::failed(Instant::now(), "connection_closed", "the connection ended")
            });
        let first_token_ms = ex.first_chunk_at.map(|t| ms(t - ex.sent_at));
        let (served_from, product_ids) = match &ex.done {
            Some(d) => (d.served_from.clone(), d.product_ids.clone()),
            None => ("none".to_string(), vec![]),
        };
        let series_of = |id: &String| catalog.get(&(c.store.clone(), id.clone())).map(|x| &x.0);
        let first_series = product_ids.first().and_then(series_of).cloned();
        // A follow-up is about what the customer was last shown; an opener (or any turn
        // with a label but no conversation behind it) is checked against its label.
        let expected = match (&turn.ask, &focus) {
            (Some(ask), Some(f)) if ask != "similar" => Some(f.clone()),
            (Some(ask), _) if ask == "similar" => None,
            _ => turn.about.clone(),
        };
        let wrong_product = match (&expected, &first_series) {
            (Some(e), Some(got)) => e != got,
            _ => false,
        };
        let off_label = match (&turn.about, &first_series) {
            (Some(about), Some(got)) => about != got,
            _ => false,
        };
        if first_series.is_some() {
            focus = first_series.clone();
        }
        let stale_stock = sold_out.as_ref().is_some_and(|id| {
            catalog
                .get(&(c.store.clone(), id.clone()))
                .is_some_and(|(_, title)| presents_as_available(&ex.text, title))
        });
        if position == 0
            && sell_out
            && let Some(first) = product_ids.first()
            && sell_outs.hold(&inv, &c.store, first).await
        {
            sold_out = Some(first.clone());
        }
        results.push(TurnResult {
            conversation: c.id.clone(),
            store: c.store.clone(),
            lang: c.lang.clone(),
            position: position + 1,
            ask: turn.ask.clone().unwrap_or_else(|| {
                if position == 0 {
                    "opener".into()
                } else {
                    "other".into()
                }
            }),
            served_from,
            first_token_ms,
            error: ex.error.as_ref().map(|(code, m)| format!("{code}: {m}")),
            wrong_product,
            off_label,
            stale_stock,
            series: product_ids
                .iter()
                .map(|id| series_of(id).cloned().unwrap_or_else(|| format!("? {id}")))
                .collect(),
        });
    }
    if let Some(id) = sold_out {
        sell_outs.release(&inv, &c.store, &id).await;
    }
    drop(conn);
    Ok(results)
}

/// Products held sold out by conversations running at once. Two conversations may show the
/// same product: it stays at 0 until the last of them ends, then gets its stock back, so a
/// conversation never sees its sold-out product restocked by another.
#[derive(Default)]
struct SellOuts {
    held: tokio::sync::Mutex<HashMap<(String, String), (usize, u32)>>,
}

impl SellOuts {
    async fn hold(&self, inv: &InventoryClient, store: &str, product: &str) -> bool {
        let mut held = self.held.lock().await;
        let key = (store.to_string(), product.to_string());
        if let Some((holders, _)) = held.get_mut(&key) {
            *holders += 1;
            return true;
        }
        let Ok(r) = inv
            .get_stock(
                pb::GetStockRequest {
                    store_id: store.to_string(),
                    product_ids: vec![product.to_string()],
                },
                Duration::from_secs(5),
            )
            .await
        else {
            return false;
        };
        let before = r.stock.first().map_or(0, |s| s.quantity);
        if set_stock(inv, store, product, 0).await.is_err() {
            return false;
        }
        held.insert(key, (1, before));
        true
    }

    async fn release(&self, inv: &InventoryClient, store: &str, product: &str) {
        let mut held = self.held.lock().await;
        let key = (store.to_string(), product.to_string());
        let Some((holders, before)) = held.get_mut(&key) else {
            return;
        };
        *holders -= 1;
        if *holders == 0 {
            let before = *before;
            held.remove(&key);
            let _ = set_stock(inv, store, product, before).await;
        }
    }
}

async fn set_stock(
    inv: &InventoryClient,
    store: &str,
    product: &str,
    quantity: u32,
) -> Result<(), tonic::Status> {
    inv.set_stock(
        pb::SetStockRequest {
            store_id: store.to_string(),
            changes: vec![pb::StockChange {
                product_id: product.to_string(),
                quantity,
                price_yen: None,
            }],
            source: "bench conversations".into(),
        },
        Duration::from_secs(5),
    )
    .await
    .map(|_| ())
}

#[derive(Debug, Default, Serialize)]
struct Group {
    turns: usize,
    precomputed: usize,
    cache: usize,
    live: usize,
    errors: usize,
    wrong_product: usize,
    off_label: usize,
    stale_stock: usize,
    /// Served pre-computed or cached and wrong (the target is 0).
    wrong_served: usize,
    first_token_served_p50_ms: Option<f64>,
    first_token_live_p50_ms: Option<f64>,
    first_token_served_p99_ms: Option<f64>,
    first_token_live_p99_ms: Option<f64>,
}

fn group<'a>(turns: impl Iterator<Item = &'a TurnResult>) -> Group {
    let mut g = Group::default();
    let (mut served, mut live) = (Vec::new(), Vec::new());
    for t in turns {
        g.turns += 1;
        let was_served = match t.served_from.as_str() {
            "precomputed" => {
                g.precomputed += 1;
                true
            }
            "cache" => {
                g.cache += 1;
                true
            }
            "live" => {
                g.live += 1;
                false
            }
            _ => false,
        };
        if t.error.is_some() {
            g.errors += 1;
        }
        let wrong = t.wrong_product || t.stale_stock;
        g.wrong_product += usize::from(t.wrong_product);
        g.off_label += usize::from(t.off_label);
        g.stale_stock += usize::from(t.stale_stock);
        if was_served {
            g.wrong_served += usize::from(wrong);
        }
        if let Some(ms) = t.first_token_ms {
            if was_served {
                served.push(ms);
            } else if t.served_from == "live" {
                live.push(ms);
            }
        }
    }
    let p = |v: &[f64], q| mangaassist_stats::percentile(v, q);
    g.first_token_served_p50_ms = p(&served, 0.5);
    g.first_token_live_p50_ms = p(&live, 0.5);
    g.first_token_served_p99_ms = p(&served, 0.99);
    g.first_token_live_p99_ms = p(&live, 0.99);
    g
}

#[derive(Debug, Serialize)]
struct Report {
    conversations: usize,
    turns: usize,
    think_ms: f64,
    concurrency: usize,
    sold_out_conversations: usize,
    /// Second and later turns: the target is ≥ 30 % served pre-computed, 0 wrong.
    later_turns: Group,
    later_precomputed_share: f64,
    all: Group,
    by_position: BTreeMap<String, Group>,
    by_ask: BTreeMap<String, Group>,
    by_lang: BTreeMap<String, Group>,
    turns_detail: Vec<TurnResult>,
}

pub async fn run(
    args: &ConversationsArgs,
    ctx: &crate::cli::BenchContext,
) -> Result<i32, BenchError> {
    let (default_url, retrieval_endpoint, data_dir) = (
        ctx.default_url.as_str(),
        ctx.retrieval_endpoint.as_str(),
        ctx.data_dir.as_path(),
    );
    let (token_key, tokens) = (ctx.token_key.clone(), ctx.service_tokens.clone());
    if args.concurrency == 0 {
        return Err(BenchError::Usage("--concurrency must be at least 1".into()));
    }
    let file = args
        .file
        .clone()
        .unwrap_or_else(|| data_dir.join("eval/conversations.jsonl"));
    let conversations = load(&file)?;
    let catalog: Catalog =
        mangaassist_catalog::load_products(&data_dir.join("catalog/products.jsonl"))
            .map_err(|e| BenchError::Usage(format!("catalog: {e}")))?
            .into_iter()
            .map(|p| ((p.store_id, p.id), (p.series, p.title)))
            .collect();
    for c in &conversations {
        for t in &c.turns {
            if let Some(about) = &t.about
                && !catalog.values().any(|(s, _)| s == about)
            {
                return Err(BenchError::Usage(format!(
                    "{}: conversation {}: no series `{about}` in the catalog",
                    file.display(),
                    c.id
                )));
            }
        }
    }
    let url = args.url.clone().unwrap_or_else(|| default_url.to_string());
    let endpoint = args
        .retrieval
        .clone()
        .unwrap_or_else(|| retrieval_endpoint.to_string());
    let inv = InventoryClient::connect_with(&endpoint, tokens)
        .map_err(|e| BenchError::Usage(format!("--retrieval {endpoint}: {e}")))?;
    let token = token_key.map_or(TokenSource::None, TokenSource::Mint);
    let run_id = format!("{:08x}", rand::random::<u32>());
    let catalog = Arc::new(catalog);
    let sell_outs = Arc::new(SellOuts::default());
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let mut tasks = Vec::with_capacity(conversations.len());
    let n = conversations.len();
    for (i, c) in conversations.into_iter().enumerate() {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BenchError::Usage(e.to_string()))?;
        let fut = replay(
            c,
            i,
            url.clone(),
            token.clone(),
            run_id.clone(),
            args.clone(),
            catalog.clone(),
            inv.clone(),
            sell_outs.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        }));
    }
    let mut turns = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => turns.extend(r),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(BenchError::Usage(format!("a replay task failed: {e}"))),
        }
    }
    let later = group(turns.iter().filter(|t| t.position > 1));
    let share = if later.turns == 0 {
        0.0
    } else {
        later.precomputed as f64 / later.turns as f64
    };
    let mut by_position: BTreeMap<String, Vec<&TurnResult>> = BTreeMap::new();
    let mut by_ask: BTreeMap<String, Vec<&TurnResult>> = BTreeMap::new();
    let mut by_lang: BTreeMap<String, Vec<&TurnResult>> = BTreeMap::new();
    for t in &turns {
        by_position
            .entry(format!("{:02}", t.position))
            .or_default()
            .push(t);
        by_ask.entry(t.ask.clone()).or_default().push(t);
        by_lang
            .entry(format!("{}/{}", t.store, t.lang))
            .or_default()
            .push(t);
    }
    let collect = |m: BTreeMap<String, Vec<&TurnResult>>| {
        m.into_iter()
            .map(|(k, v)| (k, group(v.into_iter())))
            .collect::<BTreeMap<_, _>>()
    };
    let report = Report {
        conversations: n,
        turns: turns.len(),
        think_ms: args.think.as_secs_f64() * 1000.0,
        concurrency: args.concurrency,
        sold_out_conversations: if args.sell_out_every == 0 {
            0
        } else {
            n.div_ceil(args.sell_out_every)
        },
        all: group(turns.iter()),
        later_precomputed_share: share,
        later_turns: later,
        by_position: collect(by_position),
        by_ask: collect(by_ask),
        by_lang: collect(by_lang),
        turns_detail: turns.clone(),
    };
    write_report(args, &report, started.elapsed())?;
    let failed = report.later_turns.wrong_served > 0 || report.all.errors > 0;
    Ok(i32::from(failed))
}

fn row(name: &str, g: &Group) -> String {
    let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} | {} |\n",
        g.turns,
        g.precomputed,
        g.cache,
        g.live,
        g.errors,
        f(g.first_token_served_p50_ms),
        f(g.first_token_served_p99_ms),
        f(g.first_token_live_p50_ms),
        f(g.first_token_live_p99_ms),
        g.wrong_served,
        g.wrong_product + g.stale_stock,
        g.off_label,
    )
}

fn write_report(args: &ConversationsArgs, r: &Report, took: Duration) -> Result<(), BenchError> {
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
    let header = "| turns | n | pre-computed | cached | live | errors | first token served p50 / p99 ms | live p50 / p99 ms | wrong served | wrong (any path) | off label |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
    let mut md = format!(
        "# Conversation replay\n\n{} conversations, {} turns, {} at once, {:.0} ms between an \
         answer and the next message, the first answer's product sold out in {} of them; {:.0} s.\n\n\
         **Second and later turns served pre-computed: {:.1} %** ({} of {}); wrong among served \
         answers: **{}**.\n\n## By turn position\n\n{header}",
        r.conversations,
        r.turns,
        r.concurrency,
        r.think_ms,
        r.sold_out_conversations,
        took.as_secs_f64(),
        r.later_precomputed_share * 100.0,
        r.later_turns.precomputed,
        r.later_turns.turns,
        r.later_turns.wrong_served,
    );
    md.push_str(&row("all", &r.all));
    md.push_str(&row("2nd and later", &r.later_turns));
    for (k, g) in &r.by_position {
        md.push_str(&row(&format!("turn {}", k.trim_start_matches('0')), g));
    }
    md.push_str(&format!("\n## By question\n\n{header}"));
    for (k, g) in &r.by_ask {
        md.push_str(&row(k, g));
    }
    md.push_str(&format!("\n## By store and language\n\n{header}"));
    for (k, g) in &r.by_lang {
        md.push_str(&row(k, g));
    }
    let path = args.out.join("summary.md");
    std::fs::write(&path, &md).map_err(|source| BenchError::Write {
        path: path.clone(),
        source,
    })?;
    let _ = writeln!(std::io::stdout(), "{md}");
    Ok(())
}
