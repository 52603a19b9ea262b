//! `[precompute]`: scheduled jobs that pre-generate popular answers.

use serde::{Deserialize, Serialize};

use super::{choice, within};
use crate::ConfigError;

choice! {
    /// `precompute.scheduler_lease`.
    pub enum SchedulerLease {
        /// Every replica's scheduler runs every job (right for the one embedded scheduler).
        #[default]
        None = "none",
        /// A lease in the shared Redis of the `redis` section: one replica runs each
        /// scheduled run of a job.
        Redis = "redis",
    }
}

choice! {
    /// `precompute.demand_store`.
    pub enum DemandStore {
        /// In the daemon, saved to `<data.state_dir>/precompute-demand.json` at shutdown
        /// (right for one replica).
        #[default]
        Memory = "memory",
        /// In the shared Redis of the `redis` section: every replica ranks by every
        /// gateway's reports.
        Redis = "redis",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrecomputeSettings {
    /// Run the scheduled jobs (the RPCs work either way).
    pub scheduler: bool,
    /// Trending-title answers (seed 001: hourly).
    pub trending_interval_seconds: u64,
    /// Genre recommendations (seed 001: nightly).
    pub genre_interval_seconds: u64,
    /// Titles per store in the trending job.
    pub trending_titles: u32,
    /// Follow-up questions pre-generated after each answer.
    pub follow_ups: u32,
    /// Follow-up batches being generated at once; a prediction request beyond this is shed
    /// (answered with nothing written) rather than queued, so background work from every
    /// gateway together stays bounded.
    pub max_follow_up_batches: u32,
    /// Run every job once shortly after start so a fresh mesh has warm answers.
    pub run_at_start: bool,
    /// With several precompute replicas, `redis` makes one of them run each scheduled run
    /// (a lease per job for its interval); `none` (default) lets every scheduler run.
    pub scheduler_lease: SchedulerLease,
    /// Where the demand the trending job ranks by is counted (see `DemandStore`).
    pub demand_store: DemandStore,
    /// An answer naming a product counts half as much for trending after this long.
    pub trending_half_life_seconds: u64,
    /// How often the `release_prewarm` job looks for releases due to be pre-warmed.
    pub release_check_seconds: u64,
    /// How long before a scheduled release its answers are written (seed 004: an hour).
    pub release_lead_seconds: u64,
    /// How long after the release its pre-warmed answers live (seed 004: two hours); stock
    /// changes rewrite them meanwhile.
    pub release_keep_seconds: u64,
}

impl Default for PrecomputeSettings {
    fn default() -> Self {
        Self {
            scheduler: true,
            trending_interval_seconds: 3_600,
            genre_interval_seconds: 24 * 3_600,
            trending_titles: 10,
            follow_ups: 5,
            max_follow_up_batches: 8,
            run_at_start: true,
            scheduler_lease: SchedulerLease::None,
            demand_store: DemandStore::Memory,
            trending_half_life_seconds: 6 * 3_600,
            release_check_seconds: 300,
            release_lead_seconds: 3_600,
            release_keep_seconds: 2 * 3_600,
        }
    }
}

impl PrecomputeSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        // A zero period means nothing (the scheduler would quietly run it every second).
        const YEAR: u64 = 366 * 24 * 3_600;
        within(
            "precompute.trending_interval_seconds",
            self.trending_interval_seconds,
            1..=YEAR,
        )?;
        within(
            "precompute.genre_interval_seconds",
            self.genre_interval_seconds,
            1..=YEAR,
        )?;
        within(
            "precompute.trending_titles",
            self.trending_titles,
            0..=1_000,
        )?;
        within("precompute.follow_ups", self.follow_ups, 0..=20)?;
        within(
            "precompute.release_check_seconds",
            self.release_check_seconds,
            1..=24 * 3_600,
        )?;
        within(
            "precompute.release_lead_seconds",
            self.release_lead_seconds,
            0..=30 * 24 * 3_600,
        )?;
        within(
            "precompute.release_keep_seconds",
            self.release_keep_seconds,
            60..=30 * 24 * 3_600,
        )?;
        within(
            "precompute.trending_half_life_seconds",
            self.trending_half_life_seconds,
            60..=YEAR,
        )?;
        within(
            "precompute.max_follow_up_batches",
            self.max_follow_up_batches,
            1..=1_000,
        )
    }
}
