//! The property suite: random sequences of CRI calls, generated from a seed, run against the
//! target and checked step by step against a reference model of api.proto (`model.rs`). A
//! divergence is shrunk to the shortest sequence that still diverges, printed as a numbered
//! call list and saved as a replay file that `cricket run --replay FILE` runs again.

pub mod call;
mod driver;
pub mod machine;
pub mod model;
mod replay;
mod reply;
mod search;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cricket_harness::{CaseDef, CaseError, Cx, Failure, Req, Suite, Tag, case_fn, cri};
use proptest_state_machine::ReferenceStateMachine;

use call::{Call, IMAGES};
use driver::{Driver, SeqFailure, Traced};
use machine::Machine;
use search::{Candidate, Generator, Split, Verdict};

pub use replay::{ReplayFile, SavedDivergence, replay_case};

pub const SEQUENTIAL_ID: &str = "property.lifecycle.sequential";
pub const CONCURRENT_ID: &str = "property.lifecycle.concurrent";

/// Format tag of replay files.
pub const REPLAY_FORMAT: &str = "cricket.property-replay/v1";

const REQS: &[Req] = &[
    Req {
        rpc: "StopContainer",
        rule: model::rule::STOP,
    },
    Req {
        rpc: "RemovePodSandbox",
        rule: model::rule::REMOVE_POD,
    },
    Req {
        rpc: "StopPodSandbox",
        rule: model::rule::STOP_POD,
    },
    Req {
        rpc: "RemoveContainer",
        rule: model::rule::REMOVE,
    },
    Req {
        rpc: "ListContainers",
        rule: model::rule::LIST,
    },
    Req {
        rpc: "RemoveImage",
        rule: model::rule::REMOVE_IMAGE,
    },
];

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: SEQUENTIAL_ID,
        suite: Suite::Property,
        summary: "random sequences of pod, container, exec and image calls agree with the api.proto model at every step",
        reqs: REQS,
        tags: &[Tag::Lifecycle, Tag::Idempotence, Tag::Image],
        needs: &[],
        timeout: Duration::from_secs(900),
        run: case_fn!(sequential),
    },
    CaseDef {
        id: CONCURRENT_ID,
        suite: Suite::Property,
        summary: "three random sequences on disjoint pods run at once; each step and the final state agree with the union of their models",
        reqs: REQS,
        tags: &[Tag::Lifecycle, Tag::Concurrency],
        needs: &[],
        timeout: Duration::from_secs(900),
        run: case_fn!(concurrent),
    },
];

/// How much to generate, from the run's options or the property's defaults.
struct Settings {
    seed: u64,
    max_sequences: u32,
    steps: u32,
    budget: Option<Duration>,
    shrink_runs: u32,
    shrink_time: Duration,
}

impl Settings {
    fn from(cx: &Cx, default_budget: Duration, default_steps: u32) -> Self {
        let o = &cx.options().property;
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sequential,
    Concurrent,
}

async fn sequential(cx: &Cx) -> Result<(), CaseError> {
    property(cx, Kind::Sequential).await
}

async fn concurrent(cx: &Cx) -> Result<(), CaseError> {
    property(cx, Kind::Concurrent).await
}

/// What one candidate did on the runtime.
struct RunOutcome {
    /// (which sequence, where, the trace of every sequence).
    failure: Option<(usize, SeqFailure)>,
    /// Tolerated divergences seen, by kind.
    tolerated: BTreeMap<&'static str, u64>,
    traces: Vec<Vec<Traced>>,
    seen: Vec<usize>,
    calls: usize,
}

struct Found {
    sequences: Vec<Vec<Call>>,
    outcome: RunOutcome,
    after_sequences: u32,
    original_calls: usize,
}

async fn property(cx: &Cx, kind: Kind) -> Result<(), CaseError> {
    let image_refs = IMAGES
        .iter()
        .map(|n| cx.image(n))
        .collect::<Result<Vec<_>, _>>()?;
    cx.step("pull probe", crate::conformance::util::pull(cx, "probe"))
        .await?;
    if kind == Kind::Sequential {
        // The model starts with the property images absent.
        cx.step("reset property images", async {
            for r in &image_refs[1..] {
                cx.cri()
                    .remove_image(cri::RemoveImageRequest {
                        image: Some(cri::ImageSpec {
                            image: r.clone(),
                            ..Default::default()
                        }),
                    })
                    .await?;
            }
            Ok(())
        })
        .await?;
    }
    let known: Vec<&str> = model::TOLERABLE.iter().map(|(k, _)| *k).collect();
    let tolerate: BTreeSet<String> = cx.options().property.tolerate.keys().cloned().collect();
    if let Some(bad) = tolerate.iter().find(|t| !known.contains(&t.as_str())) {
        return Err(CaseError::fail(format!(
            "the expectations file tolerates {bad:?}, which is no property check (known: {})",
            known.join(", ")
        )));
    }
    let runner = Runner {
        cx,
        kind,
        image_refs,
        tolerate,
    };
    if let Some(path) = &cx.options().property.replay {
        return runner.replay(path).await;
    }
    let (budget, steps) = match kind {
        Kind::Sequential => (Duration::from_secs(25), 20),
        Kind::Concurrent => (Duration::from_secs(15), 12),
    };
    let s = Settings::from(cx, budget, steps);
    let mut generator = match kind {
        Kind::Sequential => {
            let split: Split<_> = |(_, calls, seen)| vec![(calls, seen)];
            Generator::spawn(
                Machine::<true>::sequential_strategy(1..=s.steps as usize),
                split,
                s.seed,
                s.max_sequences,
            )
        }
        Kind::Concurrent => {
            let one = || Machine::<false>::sequential_strategy(1..=s.steps as usize);
            let split: Split<_> =
                |((_, a, sa), (_, b, sb), (_, c, sc))| vec![(a, sa), (b, sb), (c, sc)];
            Generator::spawn((one(), one(), one()), split, s.seed, s.max_sequences)
        }
    };
    runner.search(&mut generator, &s).await
}

struct Runner<'a> {
    cx: &'a Cx,
    kind: Kind,
    image_refs: Vec<String>,
    tolerate: BTreeSet<String>,
}

impl Runner<'_> {
    async fn search(&self, generator: &mut Generator, s: &Settings) -> Result<(), CaseError> {
        let started = Instant::now();
        let (mut sequences, mut calls, mut attempt, mut shrink_runs) = (0u32, 0usize, 0u32, 0u32);
        let mut found: Option<Found> = None;
        let mut tolerated: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut shrink_started = None;
        while let Some(candidate) = generator.next().await {
            let candidate: Candidate = candidate.map_err(CaseError::fail)?;
            if candidate.fresh {
                if s.budget.is_some_and(|b| started.elapsed() >= b) {
                    generator.verdict(Verdict::Stop).await;
                    break;
                }
            } else {
                let since = *shrink_started.get_or_insert_with(Instant::now);
                if shrink_runs >= s.shrink_runs || since.elapsed() >= s.shrink_time {
                    generator.verdict(Verdict::Stop).await;
                    break;
                }
                shrink_runs += 1;
            }
            attempt += 1;
            let outcome = self.run(&candidate.sequences, attempt).await;
            calls += outcome.calls;
            for (k, n) in &outcome.tolerated {
                *tolerated.entry(*k).or_insert(0) += n;
            }
            if candidate.fresh {
                sequences += candidate.sequences.len() as u32;
            }
            if outcome.failure.is_none() {
                generator.verdict(Verdict::Pass).await;
                continue;
            }
            generator.verdict(Verdict::Fail(outcome.seen.clone())).await;
            let size: usize = candidate.sequences.iter().map(Vec::len).sum();
            let original_calls = found.as_ref().map_or(size, |f| f.original_calls);
            if found.as_ref().is_none_or(|f| size <= total(&f.sequences)) {
                found = Some(Found {
                    sequences: candidate.sequences,
                    outcome,
                    after_sequences: sequences,
                    original_calls,
                });
            }
        }
        // proptest's shrinking deletes calls in one pass and stops at the first simplification
        // it cannot undo; a greedy pass then drops every call the failure does not need
        // (renumbering slots), until no single deletion still fails.
        if let Some(f) = &mut found {
            let since = *shrink_started.get_or_insert_with(Instant::now);
            let images = self.kind == Kind::Sequential;
            'greedy: loop {
                let mut shorter_found = false;
                for k in 0..f.sequences.len() {
                    let mut i = f.sequences[k].len();
                    while i > 0 {
                        i -= 1;
                        if shrink_runs >= s.shrink_runs || since.elapsed() >= s.shrink_time {
                            break 'greedy;
                        }
                        let Some(shorter) = call::without(&f.sequences[k], i) else {
                            continue;
                        };
                        if shorter.is_empty() || !machine::valid(&shorter, images) {
                            continue;
                        }
                        let mut candidate = f.sequences.clone();
                        candidate[k] = shorter;
                        // Divergences that hang on timing (a container exiting before a
                        // stop) may not show on one run: a deletion counts as passing only
                        // after three passing runs.
                        for _ in 0..3 {
                            attempt += 1;
                            shrink_runs += 1;
                            let outcome = self.run(&candidate, attempt).await;
                            calls += outcome.calls;
                            if outcome.failure.is_some() {
                                f.sequences = candidate;
                                f.outcome = outcome;
                                shorter_found = true;
                                break;
                            }
                        }
                    }
                }
                if !shorter_found {
                    break;
                }
            }
        }
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let cx = self.cx;
        cx.note("seed", s.seed.to_string());
        cx.note("sequences", sequences.to_string());
        cx.note("calls", calls.to_string());
        cx.note(
            "sequences_per_s",
            format!("{:.1}", f64::from(sequences) / secs),
        );
        cx.note("calls_per_s", format!("{:.1}", calls as f64 / secs));
        let mut known = String::new();
        for (k, n) in &tolerated {
            cx.note(&format!("tolerated.{k}"), n.to_string());
            known.push_str(&format!("; tolerated {k} x{n}"));
        }
        cx.note(
            cricket_harness::record::SUMMARY_NOTE,
            format!(
                "{sequences} sequences, {calls} calls in {secs:.1}s: {:.1} sequences/s, {:.0} calls/s; seed {}{known}",
                f64::from(sequences) / secs,
                calls as f64 / secs,
                s.seed
            ),
        );
        let Some(found) = found else {
            if sequences == 0 {
                return Err(CaseError::fail(
                    "no sequence ran: the budget ended before the first one",
                ));
            }
            return Ok(());
        };
        cx.note("shrink_runs", shrink_runs.to_string());
        let path = self.save(&found, s.seed)?;
        let head = format!(
            "the runtime diverged from the model after {} sequence(s) (seed {}); shrunk from {} to {} calls in {shrink_runs} runs",
            found.after_sequences,
            s.seed,
            found.original_calls,
            total(&found.sequences)
        );
        Err(self.failure(head, &found.outcome, &path))
    }

    /// Runs a replay file's sequences once.
    async fn replay(&self, path: &Path) -> Result<(), CaseError> {
        let file = ReplayFile::load(path).map_err(CaseError::fail)?;
        if file.case != self.cx.case_id() {
            return Err(CaseError::skip(format!(
                "replaying {} (a {} sequence)",
                path.display(),
                file.case
            )));
        }
        let outcome = self.run(&file.sequences, 1).await;
        self.cx.note("replay", path.display().to_string());
        self.cx.note("calls", outcome.calls.to_string());
        if outcome.failure.is_none() {
            self.cx.note(
                cricket_harness::record::SUMMARY_NOTE,
                format!(
                    "replayed {} call(s) from {}: no divergence",
                    total(&file.sequences),
                    path.display()
                ),
            );
            return Ok(());
        }
        let head = format!(
            "replay of {} ({} call(s), first seen on {}) diverges",
            path.display(),
            total(&file.sequences),
            file.target
        );
        Err(self.failure(head, &outcome, path))
    }

    /// Runs one candidate: its sequences (at once, when several), the end checks, cleanup.
    async fn run(&self, sequences: &[Vec<Call>], attempt: u32) -> RunOutcome {
        let cx = self.cx;
        let attempt_labels = {
            let mut l = cx.labels();
            l.insert("cricket.attempt".into(), attempt.to_string());
            l
        };
        let scratch = match cx.scratch() {
            Ok(d) => d.join(format!("a{attempt}")),
            Err(e) => std::env::temp_dir().join(format!("cricket-property-{attempt}-{e}")),
        };
        let mut drivers: Vec<Driver<'_>> = (0..sequences.len())
            .map(|k| {
                let mut labels = attempt_labels.clone();
                labels.insert("cricket.seq".into(), k.to_string());
                // Both properties may run at once in one run: their names must differ too.
                let tag = if self.kind == Kind::Sequential {
                    'q'
                } else {
                    'c'
                };
                let suffix = format!("{}-{tag}{attempt}s{k}", cx.run_id());
                let mut d = Driver::new(
                    cx,
                    labels,
                    suffix,
                    self.image_refs.clone(),
                    scratch.join(format!("s{k}")),
                    self.kind == Kind::Sequential,
                );
                d.model.tolerate = self.tolerate.clone();
                d
            })
            .collect();
        let runs = futures::future::join_all(
            drivers
                .iter_mut()
                .zip(sequences)
                .map(|(d, calls)| d.run_calls(calls)),
        )
        .await;
        let seen: Vec<usize> = runs.iter().map(|(n, _)| *n).collect();
        let calls = seen.iter().sum();
        let mut failure = runs
            .into_iter()
            .enumerate()
            .find_map(|(k, (_, r))| r.err().map(|f| (k, f)));
        if failure.is_none() && drivers.len() > 1 {
            failure = union_check(&drivers, &attempt_labels).await;
        }
        if failure.is_none() {
            for (k, d) in drivers.iter_mut().enumerate() {
                if let Err(divergence) = d.final_check().await {
                    failure = Some((
                        k,
                        SeqFailure {
                            step: None,
                            divergence,
                        },
                    ));
                    break;
                }
            }
        }
        for (k, d) in drivers.iter_mut().enumerate() {
            if let Err(e) = d.cleanup().await
                && failure.is_none()
            {
                failure = Some((
                    k,
                    SeqFailure {
                        step: None,
                        divergence: model::Divergence {
                            message: format!("removing the sequence's pods: {e}"),
                            expected: "every object removed".into(),
                            actual: e,
                            rule: model::rule::REMOVE_POD,
                        },
                    },
                ));
            }
        }
        let _ = std::fs::remove_dir_all(&scratch);
        let mut tolerated = BTreeMap::new();
        for d in &drivers {
            for (k, n) in &d.model.tolerated {
                *tolerated.entry(*k).or_insert(0) += n;
            }
        }
        RunOutcome {
            failure,
            tolerated,
            traces: drivers.into_iter().map(|d| d.trace).collect(),
            seen,
            calls,
        }
    }

    fn save(&self, found: &Found, seed: u64) -> Result<PathBuf, CaseError> {
        let Some((k, f)) = &found.outcome.failure else {
            return Err(CaseError::fail(
                "internal: a found failure without a divergence",
            ));
        };
        let t = self.cx.target();
        let file = ReplayFile {
            format: REPLAY_FORMAT.into(),
            case: self.cx.case_id().into(),
            seed,
            target: format!("{} {} {}", t.kind, t.runtime_name, t.runtime_version),
            divergence: SavedDivergence {
                sequence: *k,
                step: f.step,
                message: f.divergence.message.clone(),
                expected: f.divergence.expected.clone(),
                actual: f.divergence.actual.clone(),
                rule: f.divergence.rule.into(),
            },
            sequences: found.sequences.clone(),
        };
        let dir = self
            .cx
            .options()
            .report_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!(
            "replay-{}-{}.json",
            self.cx.case_id(),
            self.cx.run_id()
        ));
        let text = serde_json::to_string_pretty(&file)
            .map_err(|e| CaseError::fail(format!("encoding the replay file: {e}")))?;
        std::fs::write(&path, text + "\n").map_err(|e| {
            CaseError::fail(format!("cannot write replay file {}: {e}", path.display()))
        })?;
        self.cx.note("replay_file", path.display().to_string());
        Ok(path)
    }

    /// The readable report: numbered calls with their replies, the divergence under its call.
    fn failure(&self, head: String, outcome: &RunOutcome, replay: &Path) -> CaseError {
        let Some((k, f)) = &outcome.failure else {
            return CaseError::fail(head);
        };
        let mut text = head;
        for (i, trace) in outcome.traces.iter().enumerate() {
            if outcome.traces.len() > 1 {
                text.push_str(&format!(
                    "\n  sequence {i} (run at the same time as the others):"
                ));
            }
            for (n, t) in trace.iter().enumerate() {
                text.push_str(&format!("\n  {:>2}. {} -> {}", n + 1, t.call, t.reply));
                if i == *k && f.step == Some(n + 1) {
                    text.push_str(&format!("\n      ^ {}", f.divergence.message));
                }
            }
        }
        if f.step.is_none() {
            text.push_str(&format!(
                "\n  at the end-of-sequence checks{}: {}",
                if outcome.traces.len() > 1 {
                    format!(" of sequence {k}")
                } else {
                    String::new()
                },
                f.divergence.message
            ));
        }
        text.push_str(&format!("\n  api.proto: \"{}\"", f.divergence.rule));
        text.push_str(&format!(
            "\n  replay: cricket run --suite property --replay {}",
            replay.display()
        ));
        CaseError::Fail(Failure {
            message: text,
            step: Some(match f.step {
                Some(n) => format!("call {n}"),
                None => "end-of-sequence checks".into(),
            }),
            expected: Some(f.divergence.expected.clone()),
            actual: Some(f.divergence.actual.clone()),
            request: None,
        })
    }
}

fn total(seqs: &[Vec<Call>]) -> usize {
    seqs.iter().map(Vec::len).sum()
}

/// After concurrent sequences: the runtime's lists of this attempt's objects must be exactly
/// the union of the sequences' models.
async fn union_check(
    drivers: &[Driver<'_>],
    attempt_labels: &HashMap<String, String>,
) -> Option<(usize, SeqFailure)> {
    let first = drivers.first()?;
    let all = first.snapshot_with(attempt_labels.clone()).await;
    let (pods, containers) = match all {
        Ok(v) => v,
        Err(divergence) => {
            return Some((
                0,
                SeqFailure {
                    step: None,
                    divergence,
                },
            ));
        }
    };
    for view in pods
        .iter()
        .map(|p| (&p.labels, &p.id))
        .chain(containers.iter().map(|c| (&c.labels, &c.id)))
    {
        let owner = view
            .0
            .get("cricket.seq")
            .and_then(|s| s.parse::<usize>().ok());
        if owner.is_none_or(|k| k >= drivers.len()) {
            return Some((
                0,
                SeqFailure {
                    step: None,
                    divergence: model::Divergence {
                        message: "the runtime lists an object that belongs to no sequence".into(),
                        expected: "only objects of the sequences".into(),
                        actual: format!("{} with labels {:?}", reply::short(view.1), view.0),
                        rule: model::rule::LIST,
                    },
                },
            ));
        }
    }
    for (k, d) in drivers.iter().enumerate() {
        let mine = |l: &HashMap<String, String>| l.get("cricket.seq") == Some(&k.to_string());
        let p: Vec<_> = pods.iter().filter(|v| mine(&v.labels)).cloned().collect();
        let c: Vec<_> = containers
            .iter()
            .filter(|v| mine(&v.labels))
            .cloned()
            .collect();
        let mut model = d.model.clone();
        let checked = model
            .check_pod_list(&p, None, None, None)
            .and_then(|_| model.check_container_list(&c, None, None, None, None));
        if let Err(mut divergence) = checked {
            divergence.message = format!("the union of the models: {}", divergence.message);
            return Some((
                k,
                SeqFailure {
                    step: None,
                    divergence,
                },
            ));
        }
    }
    None
}
