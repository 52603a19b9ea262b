//! The `Watch` stream of one watcher.

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::{Change, Inventory};
use mangaassist_proto::v1 as pb;

/// Events a watcher may have in flight before the sender waits for it: a watcher that stops
/// reading holds one task and this buffer, and catches up from state when it reads again.
const WATCHER_BUFFER: usize = 256;

/// Every change after `after_seq` as state, then `caught_up`, then live changes. A watcher
/// that falls behind the broadcast buffer is sent the state changed since the last change
/// it got (so it never misses one, and never gets one twice). Ends when the receiver is
/// dropped or `stop` is cancelled.
pub fn watch(
    inventory: &Inventory,
    after_seq: u64,
    stop: tokio_util::sync::CancellationToken,
) -> ReceiverStream<Result<pb::InventoryEvent, tonic::Status>> {
    let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
    let inventory = inventory.clone();
    // Subscribe before reading the state: a change made in between is in both, and the
    // sequence numbers drop the copy.
    let mut live = inventory.subscribe();
    #[allow(
        clippy::disallowed_methods,
        reason = "ends when the watcher goes away or the daemon stops"
    )]
    tokio::spawn(async move {
        let mut sent = after_seq;
        let send = |c: Change| tx.send(Ok(c.into_event()));
        let catch_up = |sent: &mut u64| {
            let (changes, seq) = inventory.changes_after(*sent);
            let upto = seq.max(*sent);
            *sent = upto;
            (changes, upto)
        };
        let (changes, upto) = catch_up(&mut sent);
        for c in changes {
            if send(c).await.is_err() {
                return;
            }
        }
        let caught_up = pb::InventoryEvent {
            event: Some(pb::inventory_event::Event::CaughtUp(upto)),
        };
        if tx.send(Ok(caught_up)).await.is_err() {
            return;
        }
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                () = tx.closed() => return,
                n = live.recv() => n,
            };
            match next {
                Ok(c) if c.seq() <= sent => {}
                Ok(c) => {
                    sent = c.seq();
                    if send(c).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    metrics::counter!("inventory_watch_resyncs_total").increment(1);
                    tracing::debug!(missed = n, "inventory watcher fell behind, sending state");
                    let (changes, _) = catch_up(&mut sent);
                    for c in changes {
                        if send(c).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    ReceiverStream::new(rx)
}
