//! What the runner tells reporters. One direction: the runner emits, reporters consume;
//! nothing in a suite prints or writes reports itself.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::case::Suite;
use crate::failure::Failure;
use crate::host::HostInfo;
use crate::record::{RpcRecord, StepRecord};

use crate::target::TargetInfo;

/// Version of the `results.json` schema (`harness/schema/results.schema.json`).
pub const RESULTS_SCHEMA: &str = "cricket.results/v1";

#[derive(Debug, Clone, Serialize)]
pub struct RunMeta {
    pub run_id: String,
    /// RFC 3339.
    pub started_at: String,
    pub cricket_version: String,
    pub cri_api: String,
    pub target: TargetInfo,
    /// The embedded fixture registry (`127.0.0.1:PORT`).
    pub registry: String,
    pub host: HostInfo,
    pub jobs: usize,
    pub selection: SelectionMeta,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SelectionMeta {
    pub suites: Vec<String>,
    pub focus: Vec<String>,
    pub skip: Vec<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
    /// Failed, as the target's expectations say it does.
    Xfail,
    /// Passed although expected to fail: counts as a failure so expectations stay current.
    Xpass,
}

impl Outcome {
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::Xpass)
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
            Outcome::Xfail => "XFAIL",
            Outcome::Xpass => "XPASS",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseRecord {
    pub id: String,
    pub suite: Suite,
    pub area: String,
    pub summary: String,
    pub outcome: Outcome,
    /// Why it was skipped, or why it is expected to fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub duration_us: u64,
    pub steps: Vec<StepRecord>,
    pub rpcs: Vec<RpcRecord>,
    /// RPCs made beyond the per-case record limit: counted, not listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub rpcs_omitted: u64,
    /// Figures a case reports about itself (a property's seed, sequences and steps per second).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An object of this run still present on the target after cleanup.
#[derive(Debug, Clone, Serialize)]
pub struct Leak {
    pub kind: String,
    pub id: String,
    pub case: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub xfailed: usize,
    pub xpassed: usize,
}

impl Counts {
    pub fn add(&mut self, o: Outcome) {
        self.total += 1;
        match o {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail => self.failed += 1,
            Outcome::Skip => self.skipped += 1,
            Outcome::Xfail => self.xfailed += 1,
            Outcome::Xpass => self.xpassed += 1,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub counts: Counts,
    pub duration_us: u64,
    pub leaks: Vec<Leak>,
    /// The run was cut short (Ctrl-C or the target died); unstarted cases are not counted.
    pub interrupted: Option<String>,
}

impl RunSummary {
    /// True when every case passed, was skipped, or failed as expected.
    pub fn ok(&self) -> bool {
        self.counts.failed == 0 && self.counts.xpassed == 0 && self.interrupted.is_none()
    }

    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.duration_us)
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted(RunMeta),
    CaseStarted { id: String },
    CaseFinished(CaseRecord),
    RunFinished(RunSummary),
}

/// Consumes runner events. Errors (a report file that cannot be written) are reported at the
/// end of the run; they do not stop it.
pub trait Reporter: Send {
    fn on_event(&mut self, event: &Event) -> anyhow::Result<()>;
}
