//! Following the inventory from a consumer: in process (a broadcast receiver) or over gRPC
//! (`InventoryService.Watch`), reconnecting with backoff and resuming after the last change
//! seen.

use std::{sync::Arc, time::Duration};

use futures::{Stream, StreamExt, future::BoxFuture, stream::BoxStream};
use mangaassist_proto::v1 as pb;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::{Change, Inventory, StockView, watch};

/// Opens a watch stream after a sequence number (a remote `Watch` call).
pub type OpenWatch = Arc<
    dyn Fn(
            u64,
        ) -> BoxFuture<
            'static,
            Result<BoxStream<'static, Result<pb::InventoryEvent, tonic::Status>>, tonic::Status>,
        > + Send
        + Sync,
>;

/// Where a consumer reads changes from.
#[derive(Clone)]
pub enum FeedSource {
    /// The inventory of this process.
    Local(Inventory),
    /// The retrieval daemon's `InventoryService.Watch`.
    Remote(OpenWatch),
}

/// A running follower: its view, and a token that stops it.
#[derive(Clone)]
pub struct Follower {
    pub view: StockView,
    stop: CancellationToken,
}

impl Follower {
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Follows `source` until `stop`: keeps a [`StockView`] and calls `on_change` for every
/// change, in order, after the view has it. `name` labels logs and metrics. After a
/// disconnection the view is not ready until the feed has caught up again, and the changes
/// missed meanwhile are delivered (as their latest state).
pub fn follow(
    source: FeedSource,
    name: &'static str,
    on_change: impl Fn(&Change) + Send + Sync + 'static,
    stop: CancellationToken,
) -> Follower {
    let view = StockView::default();
    let follower = Follower {
        view: view.clone(),
        stop: stop.clone(),
    };
    #[allow(
        clippy::disallowed_methods,
        reason = "ends when the owner stops it; each iteration is one connection"
    )]
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            let after = view.seq();
            let stream: Result<BoxStream<'static, _>, tonic::Status> = match &source {
                FeedSource::Local(inv) => Ok(watch(inv, after, stop.child_token()).boxed()),
                FeedSource::Remote(open) => tokio::select! {
                    () = stop.cancelled() => return,
                    s = open(after) => s,
                },
            };
            let mut reached = false;
            let outcome = match stream {
                Ok(s) => run(name, s, &view, &on_change, &stop, &mut reached).await,
                Err(e) => Err(e),
            };
            view.set_ready(false);
            match outcome {
                Ok(()) if stop.is_cancelled() => return,
                Ok(()) => tracing::warn!(feed = name, "inventory feed ended, reconnecting"),
                Err(e) => {
                    tracing::warn!(feed = name, error = %e, "inventory feed failed, reconnecting");
                }
            }
            metrics::counter!("inventory_feed_reconnects_total", "feed" => name).increment(1);
            let jitter = rand::rng().random_range(0.5..1.0);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
            }
            // A connection that caught up was healthy: start the next wait short again.
            backoff = if reached {
                Duration::from_millis(50)
            } else {
                (backoff * 2).min(MAX_BACKOFF)
            };
        }
    });
    follower
}

async fn run(
    name: &'static str,
    mut stream: impl Stream<Item = Result<pb::InventoryEvent, tonic::Status>> + Unpin,
    view: &StockView,
    on_change: &(impl Fn(&Change) + Send + Sync),
    stop: &CancellationToken,
    reached: &mut bool,
) -> Result<(), tonic::Status> {
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            n = stream.next() => n,
        };
        let Some(event) = next.transpose()? else {
            return Ok(());
        };
        let change = match event.event {
            Some(pb::inventory_event::Event::Stock(s)) => Change::Stock(s),
            Some(pb::inventory_event::Event::FlashSale(f)) => Change::FlashSale(f),
            Some(pb::inventory_event::Event::CaughtUp(upto)) => {
                let seen = view.seq();
                if upto < seen {
                    // The inventory was reset (a new store file): what we hold may be
                    // gone there. Start again from nothing.
                    view.clear();
                    return Err(tonic::Status::aborted(format!(
                        "inventory is at change {upto}, behind the {seen} already seen: resyncing"
                    )));
                }
                *reached = true;
                view.set_ready(true);
                continue;
            }
            None => continue,
        };
        if change.seq() <= view.seq() {
            continue;
        }
        if *reached {
            // Live changes only: catch-up after a reconnection is late by design.
            let lag = crate::now_ms().saturating_sub(change.changed_ms()).max(0);
            metrics::histogram!("inventory_feed_lag_ms", "feed" => name).record(lag as f64);
        }
        view.apply(&change);
        on_change(&change);
    }
}
