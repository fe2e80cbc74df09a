//! What one case did, as it happened: RPCs with timings, named steps, the last request sent and
//! every object it created. The runner turns this into a case record for the reporters, and
//! uses the object list to clean up even when the case itself was cancelled.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tonic::Code;

/// Longest request text kept for a failure report.
const REQUEST_TEXT_LIMIT: usize = 2048;

/// RPC records kept per case. A property case makes thousands of calls; the reports keep the
/// first ones and count the rest, so a long case cannot bloat results.json or the JUnit file.
pub const RPC_RECORD_LIMIT: usize = 1000;

/// One recorded RPC.
#[derive(Debug, Clone, Serialize)]
pub struct RpcRecord {
    pub method: &'static str,
    /// Offset from the start of the case, in microseconds.
    pub at_us: u64,
    pub duration_us: u64,
    /// gRPC code name (`Ok`, `NotFound`, …).
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub name: String,
    pub at_us: u64,
    pub duration_us: u64,
    pub ok: bool,
}

/// Objects a case created on the target, in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Created {
    pub sandboxes: Vec<String>,
    pub containers: Vec<String>,
}

#[derive(Debug, Default)]
struct Log {
    rpcs: Vec<RpcRecord>,
    steps: Vec<StepRecord>,
    step: Option<String>,
    last_request: Option<String>,
    created: Created,
    rpcs_omitted: u64,
    notes: BTreeMap<String, String>,
}

/// The note the terminal shows beside a case's outcome.
pub const SUMMARY_NOTE: &str = "summary";

/// Everything a finished case leaves for its report.
#[derive(Debug, Default)]
pub struct Taken {
    pub steps: Vec<StepRecord>,
    pub rpcs: Vec<RpcRecord>,
    /// Calls made beyond [`RPC_RECORD_LIMIT`], counted but not kept.
    pub rpcs_omitted: u64,
    pub notes: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    log: Mutex<Log>,
    /// Keeps no request text and no RPC records (benchmarks): formatting every request
    /// would be cricket's cost counted as the runtime's.
    quiet: bool,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            log: Mutex::new(Log::default()),
            quiet: false,
        }
    }

    /// A recorder that records no requests or RPCs, for timing loops.
    pub fn quiet() -> Self {
        Self {
            quiet: true,
            ..Self::new()
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        // A panic while holding the lock (inside a case) must not hide the record.
        let mut guard = match self.log.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    fn offset(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_micros() as u64
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn request(&self, method: &str, req: &dyn Debug) {
        if self.quiet {
            return;
        }
        let mut text = format!("{method} {req:?}");
        if text.len() > REQUEST_TEXT_LIMIT {
            let mut cut = REQUEST_TEXT_LIMIT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        self.with(|l| l.last_request = Some(text));
    }

    pub fn rpc(&self, method: &'static str, started: Instant, took: Duration, code: Code) {
        if self.quiet {
            return;
        }
        let at_us = self.offset(started);
        self.with(|l| {
            if l.rpcs.len() >= RPC_RECORD_LIMIT {
                l.rpcs_omitted += 1;
                return;
            }
            let step = l.step.clone();
            l.rpcs.push(RpcRecord {
                method,
                at_us,
                duration_us: took.as_micros() as u64,
                code: format!("{code:?}"),
                step,
            })
        });
    }

    pub fn begin_step(&self, name: &str) -> Instant {
        self.with(|l| l.step = Some(name.to_string()));
        Instant::now()
    }

    pub fn end_step(&self, name: &str, started: Instant, ok: bool) {
        let at_us = self.offset(started);
        self.with(|l| {
            l.step = None;
            l.steps.push(StepRecord {
                name: name.to_string(),
                at_us,
                duration_us: started.elapsed().as_micros() as u64,
                ok,
            });
        });
    }

    pub fn current_step(&self) -> Option<String> {
        self.with(|l| l.step.clone())
    }

    pub fn last_request(&self) -> Option<String> {
        self.with(|l| l.last_request.clone())
    }

    pub fn created_sandbox(&self, id: &str) {
        self.with(|l| l.created.sandboxes.push(id.to_string()));
    }

    pub fn created_container(&self, id: &str) {
        self.with(|l| l.created.containers.push(id.to_string()));
    }

    pub fn removed_sandbox(&self, id: &str) {
        self.with(|l| l.created.sandboxes.retain(|s| s != id));
    }

    pub fn removed_container(&self, id: &str) {
        self.with(|l| l.created.containers.retain(|c| c != id));
    }

    pub fn created(&self) -> Created {
        self.with(|l| l.created.clone())
    }

    /// A figure or fact about the case for its report (seed, sequences run, throughput);
    /// a later note under the same key replaces the earlier one.
    pub fn note(&self, key: &str, value: impl Into<String>) {
        let value = value.into();
        self.with(|l| l.notes.insert(key.to_string(), value));
    }

    pub fn take(&self) -> Taken {
        self.with(|l| Taken {
            steps: std::mem::take(&mut l.steps),
            rpcs: std::mem::take(&mut l.rpcs),
            rpcs_omitted: std::mem::take(&mut l.rpcs_omitted),
            notes: std::mem::take(&mut l.notes),
        })
    }
}
