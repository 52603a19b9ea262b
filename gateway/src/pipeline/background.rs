//! The budget of background work: follow-up prediction runs only while live messages leave
//! room for it. A live message counts itself in for as long as it is being answered, except
//! while it waits on the model (its generation call and stream: the model runs elsewhere, and
//! this box is idle for it); a prediction asks for a slot and is skipped (not queued) when
//! live messages are being worked on here or the slots are taken, because a prediction that
//! runs late competes with the next customer for the same cores and is worth less than their
//! first token.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct BackgroundBudget {
    live: AtomicUsize,
    /// Live messages waiting on the model (counted in `live` too).
    on_model: AtomicUsize,
    /// Background work is skipped while more than this many *other* live messages are in
    /// flight.
    live_threshold: usize,
    predictions: Arc<Semaphore>,
}

/// Held while a live message is answered.
#[derive(Debug)]
pub struct LiveMessage<'a>(&'a BackgroundBudget);

impl Drop for LiveMessage<'_> {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Held while a live message waits on the model.
#[derive(Debug)]
pub struct OnModel<'a>(&'a BackgroundBudget);

impl Drop for OnModel<'_> {
    fn drop(&mut self) {
        self.0.on_model.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why background work was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Live messages are in flight.
    LiveLoad,
    /// Every prediction slot is taken.
    Busy,
}

impl Shed {
    pub fn label(self) -> &'static str {
        match self {
            Self::LiveLoad => "live_load",
            Self::Busy => "busy",
        }
    }
}

impl BackgroundBudget {
    pub fn new(live_threshold: usize, max_predictions: usize) -> Self {
        Self {
            live: AtomicUsize::new(0),
            on_model: AtomicUsize::new(0),
            live_threshold,
            predictions: Arc::new(Semaphore::new(max_predictions.max(1))),
        }
    }

    pub fn live(&self) -> LiveMessage<'_> {
        self.live.fetch_add(1, Ordering::Relaxed);
        LiveMessage(self)
    }

    /// Marks a live message as waiting on the model until dropped.
    pub fn on_model(&self) -> OnModel<'_> {
        self.on_model.fetch_add(1, Ordering::Relaxed);
        OnModel(self)
    }

    pub fn live_in_flight(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Live messages being worked on here (in flight, not waiting on the model).
    pub fn live_working(&self) -> usize {
        self.live_in_flight()
            .saturating_sub(self.on_model.load(Ordering::Relaxed))
    }

    /// A prediction slot, unless live work is waiting. `own_live` is how many of the live
    /// messages in flight are the caller's own (the message whose answer triggers it).
    pub fn try_prediction(&self, own_live: usize) -> Result<OwnedSemaphorePermit, Shed> {
        let others = self.live_working().saturating_sub(own_live);
        if others > self.live_threshold {
            return Err(Shed::LiveLoad);
        }
        self.predictions
            .clone()
            .try_acquire_owned()
            .map_err(|_| Shed::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prediction_yields_to_other_live_messages_and_to_its_slot_limit() {
        let b = BackgroundBudget::new(0, 1);
        let own = b.live();
        let permit = b.try_prediction(1).expect("alone: a slot");
        assert_eq!(b.try_prediction(1).err(), Some(Shed::Busy));
        drop(permit);
        let other = b.live();
        assert_eq!(b.try_prediction(1).err(), Some(Shed::LiveLoad));
        {
            // Another message waiting on its model leaves this box free.
            let _waiting = b.on_model();
            assert!(b.try_prediction(1).is_ok());
        }
        assert_eq!(b.try_prediction(1).err(), Some(Shed::LiveLoad));
        drop(other);
        assert!(b.try_prediction(1).is_ok());
        drop(own);
        assert_eq!(b.live_in_flight(), 0);
    }
}
