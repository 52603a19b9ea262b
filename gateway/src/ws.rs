//! One WebSocket connection: a reader loop that validates frames and starts answers, and a
//! writer task that owns the socket's sending half.

use std::{sync::Arc, time::Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    orchestrator::{Orchestrator, Query},
    protocol::{ClientFrame, ErrorCode, ServerFrame, parse_client_frame},
};

/// Answers in flight per connection before new queries get a `busy` error.
const MAX_IN_FLIGHT: usize = 4;

/// Close code sent when the gateway shuts down: "service restart", reconnect later (RFC 6455).
pub const CLOSE_SERVICE_RESTART: u16 = 1012;

pub struct Connection {
    pub session_id: String,
    pub user_id: String,
    pub store_id: String,
}

pub async fn run(
    socket: WebSocket,
    conn: Connection,
    orchestrator: Arc<Orchestrator>,
    shutdown: CancellationToken,
) {
    metrics::gauge!("websocket_connections").increment(1.0);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<ServerFrame>(256);
    let writer_shutdown = CancellationToken::new();
    let writer_stop = writer_shutdown.clone();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = rx.recv() => match frame {
                    Some(f) => {
                        if sink.send(Message::Text(f.to_json().into())).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                () = writer_stop.cancelled() => {
                    // Flush what is queued, then say goodbye with a reconnect hint.
                    while let Ok(f) = rx.try_recv() {
                        if sink.send(Message::Text(f.to_json().into())).await.is_err() {
                            break;
                        }
                    }
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: CLOSE_SERVICE_RESTART,
                            reason: "server restarting, reconnect".into(),
                        })))
                        .await;
                    break;
                }
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let max_bytes = orchestrator.settings.max_frame_bytes;
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            () = shutdown.cancelled() => break,
        };
        let Some(Ok(msg)) = msg else { break };
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                let _ = tx
                    .send(ServerFrame::error(
                        None,
                        ErrorCode::UnsupportedFrame,
                        "binary frames are not supported; send JSON text frames",
                    ))
                    .await;
                continue;
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if text.len() > max_bytes {
            let _ = tx
                .send(ServerFrame::error(
                    None,
                    ErrorCode::FrameTooLarge,
                    format!(
                        "frame of {} bytes exceeds the {max_bytes}-byte limit",
                        text.len()
                    ),
                ))
                .await;
            continue;
        }
        let received = Instant::now();
        match parse_client_frame(text.as_str()) {
            Err((code, message)) => {
                metrics::counter!("websocket_bad_frames_total", "code" => format!("{code:?}"))
                    .increment(1);
                let _ = tx.send(ServerFrame::error(None, code, message)).await;
            }
            Ok(ClientFrame::Ping) => {
                let _ = tx.send(ServerFrame::Pong).await;
            }
            Ok(ClientFrame::Query {
                text,
                session_id,
                store_id,
                message_id,
            }) => {
                let message_id = message_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    let _ = tx
                        .send(ServerFrame::error(
                            Some(message_id),
                            ErrorCode::Busy,
                            format!("{MAX_IN_FLIGHT} answers already in flight on this connection"),
                        ))
                        .await;
                    continue;
                };
                let query = Query {
                    message_id,
                    session_id: session_id
                        .filter(|s| !s.trim().is_empty())
                        .unwrap_or_else(|| conn.session_id.clone()),
                    user_id: conn.user_id.clone(),
                    store_id: store_id
                        .filter(|s| !s.trim().is_empty())
                        .unwrap_or_else(|| conn.store_id.clone()),
                    text,
                    received,
                };
                let orch = orchestrator.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    orch.handle(query, tx).await;
                    drop(permit);
                });
            }
        }
    }
    // Let answers in flight finish (the server's grace period bounds this), then close.
    let _ = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await;
    writer_shutdown.cancel();
    drop(tx);
    let _ = writer.await;
    metrics::gauge!("websocket_connections").decrement(1.0);
}
