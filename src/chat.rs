//! Terminal client of the gateway: sends one query, shows the status line, streams the answer
//! as it arrives and ends with the `done` metadata.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use mangaassist_protocol::{
    ClientFrame, Done, ErrorCode, ProductCard, ServerFrame, ServerFrameError, StockLevel,
};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

/// What one exchange produced (the CLI prints it; tests assert on it).
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    pub status: Vec<String>,
    pub chunks: Vec<String>,
    /// The cards of the products the answer names.
    pub products: Vec<ProductCard>,
    pub done: Option<Box<Done>>,
    /// Code and message of the `error` frame that ended the exchange.
    pub error: Option<(ErrorCode, String)>,
    /// Time from sending to the first chunk, as the client saw it.
    pub first_chunk: Option<Duration>,
    /// Time from sending to `done` (or the error frame).
    pub elapsed: Duration,
}

impl Transcript {
    pub fn answer(&self) -> String {
        self.chunks.concat()
    }
}

/// Options of one exchange.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    pub url: String,
    pub session: Option<String>,
    pub store: Option<String>,
    pub user: Option<String>,
    /// JWT for the gateway (`mangaassist token --user U`); the CLI issues one from the
    /// configured secret when none is given.
    pub token: Option<String>,
    pub timeout: Duration,
}

/// The `/ws` URL; a token goes in the Authorization header instead (see [`ask`]), since the
/// gateway takes only short-lived tickets in URLs.
fn connect_url(o: &ChatOptions) -> String {
    let mut params = vec![];
    if o.token.is_none()
        && let Some(u) = &o.user
    {
        params.push(format!("user_id={u}"));
    }
    if let Some(s) = &o.session {
        params.push(format!("session_id={s}"));
    }
    if params.is_empty() {
        o.url.clone()
    } else {
        let sep = if o.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}{}", o.url, params.join("&"))
    }
}

/// Sends `text` and collects the answer. `on_event` sees every frame as it arrives.
pub async fn ask(
    o: &ChatOptions,
    text: &str,
    mut on_event: impl FnMut(&ServerFrame),
) -> anyhow::Result<Transcript> {
    let url = connect_url(o);
    let mut request = url
        .as_str()
        .into_client_request()
        .with_context(|| format!("bad gateway URL {url}"))?;
    if let Some(t) = &o.token {
        let value = format!("Bearer {t}")
            .parse()
            .context("the token is not a valid header value")?;
        request.headers_mut().insert("authorization", value);
    }
    let (mut ws, _) = tokio::time::timeout(o.timeout, tokio_tungstenite::connect_async(request))
        .await
        .with_context(|| format!("timed out connecting to {url}"))?
        .with_context(|| format!("cannot connect to {url} (is `mangaassist up` running?)"))?;
    let query = ClientFrame::Query {
        text: text.to_string(),
        session_id: o.session.clone(),
        store_id: o.store.clone(),
        message_id: None,
    };
    let sent = Instant::now();
    ws.send(Message::Text(query.to_json().into())).await?;
    let mut t = Transcript::default();
    let deadline = tokio::time::Instant::now() + o.timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .context("timed out waiting for the answer")?;
        let Some(msg) = msg else {
            bail!("connection closed before the answer was complete")
        };
        let Message::Text(raw) = msg? else { continue };
        let frame = match mangaassist_protocol::parse_server_frame(raw.as_str()) {
            Ok(f) => f,
            // A frame type from a newer gateway: nothing this client needs.
            Err(ServerFrameError::UnknownType(_)) => continue,
            Err(e) => return Err(e).context("gateway sent a bad frame"),
        };
        on_event(&frame);
        match frame {
            ServerFrame::Status { text, .. } => t.status.push(text),
            ServerFrame::Chunk { text, .. } => {
                t.first_chunk.get_or_insert_with(|| sent.elapsed());
                t.chunks.push(text);
            }
            ServerFrame::Done(done) => {
                t.done = Some(done);
                break;
            }
            ServerFrame::Error { code, message, .. } => {
                t.error = Some((code, message));
                break;
            }
            ServerFrame::Products { products, .. } => t.products = products,
            ServerFrame::Pong
            | ServerFrame::Heartbeat { .. }
            | ServerFrame::Stock(_)
            | ServerFrame::History { .. } => {}
        }
    }
    t.elapsed = sent.elapsed();
    let _ = ws.close(None).await;
    Ok(t)
}

/// One product card as a terminal line: `  • One Piece, Vol. 1 — Eiichiro Oda — 1,680 yen — in stock [B0…]`.
pub fn product_line(p: &ProductCard) -> String {
    let stock = match p.stock {
        StockLevel::InStock => "in stock".to_string(),
        StockLevel::LowStock => format!("only {} left", p.quantity),
        StockLevel::SoldOut => "sold out".to_string(),
    };
    let author = if p.author.is_empty() {
        String::new()
    } else {
        format!(" — {}", p.author)
    };
    format!(
        "  • {}{author} — {} — {stock} [{}]",
        p.title, p.price_text, p.id
    )
}

/// The `mangaassist chat` command: streams to stdout, status and metadata to stderr.
pub async fn run(o: ChatOptions, text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let t = ask(&o, text, |f| match f {
        ServerFrame::Status { text, .. } => {
            let _ = writeln!(err, "\x1b[2m… {text}\x1b[0m");
        }
        ServerFrame::Chunk { text, .. } => {
            let _ = write!(out, "{text}");
            let _ = out.flush();
        }
        _ => {}
    })
    .await?;
    let _ = writeln!(out);
    for p in &t.products {
        let _ = writeln!(out, "{}", product_line(p));
    }
    if let Some(d) = &t.done {
        let _ = writeln!(
            err,
            "\x1b[2m[{} · {} · first token {} ms · total {} ms · {} tokens{}{} · trace {}]\x1b[0m",
            d.intent,
            d.model,
            d.first_token_ms,
            d.total_ms,
            d.tokens,
            match (d.served_from.as_str(), d.stock_removed.len()) {
                ("cache", 0) => " · from the cache".to_string(),
                ("precomputed", 0) => " · pre-computed".to_string(),
                ("cache" | "precomputed", n) => {
                    format!(" · {} minus {n} sold-out product(s)", d.served_from)
                }
                _ if d.cache_hit => " · cache hit".to_string(),
                _ => String::new(),
            },
            match d.degradation.as_str() {
                "full" => String::new(),
                l => format!(" · degraded: {l}"),
            },
            d.trace_id,
        );
    }
    if let Some((code, message)) = &t.error {
        bail!("gateway error {code}: {message}");
    }
    Ok(())
}
