//! The property suite's knobs, and what they come to once the suite's defaults fill the gaps.
//! The harness carries them to the cases without knowing them (`cx.settings`), so it never
//! depends on this suite.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of the property suite, from `cricket run --seed/--sequences/--steps/--budget/
/// --replay`. Unset fields take the suite's defaults.
#[derive(Debug, Clone, Default)]
pub struct PropertyOptions {
    pub seed: Option<u64>,
    pub sequences: Option<u32>,
    pub steps: Option<u32>,
    pub budget: Option<Duration>,
    /// Re-run exactly the sequences saved in this replay file instead of generating.
    pub replay: Option<PathBuf>,
}

/// How much to generate, from the run's options or the property's defaults.
pub(super) struct Settings {
    pub(super) seed: u64,
    pub(super) max_sequences: u32,
    pub(super) steps: u32,
    pub(super) budget: Option<Duration>,
    pub(super) shrink_runs: u32,
    pub(super) shrink_time: Duration,
}

impl Settings {
    pub(super) fn from(o: &PropertyOptions, default_budget: Duration, default_steps: u32) -> Self {
        let seed = o.seed.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        });
        // A count without a time budget runs that many sequences however long they take.
        let budget = match (o.budget, o.sequences) {
            (Some(b), _) => Some(b),
            (None, Some(_)) => None,
            (None, None) => Some(default_budget),
        };
        Self {
            seed,
            max_sequences: o.sequences.unwrap_or(100_000),
            steps: o.steps.unwrap_or(default_steps).max(1),
            budget,
            shrink_runs: 500,
            shrink_time: Duration::from_secs(120),
        }
    }
}
