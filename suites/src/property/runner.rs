//! Searching for a divergence: fresh candidates until the budget ends or one diverges, then
//! shrinking it (proptest's pass, then a greedy one) to the shortest that still diverges. Also
//! one candidate's run on the runtime (its sequences at once, the end checks, cleanup) and the
//! one-off run of a replay file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Instant;

use cricket_harness::{CaseError, Cx};

use super::Kind;
use super::call::{self, Call};
use super::driver::{Driver, SeqFailure};
use super::machine;
use super::model;
use super::options::Settings;
use super::outcome::{self, Found, RunOutcome, total};
use super::replay::ReplayFile;
use super::reply;
use super::search::{Candidate, Generator, Verdict};

/// Runs one property's candidates; the cases build it once per run.
pub(super) struct Runner<'a> {
    pub(super) cx: &'a Cx,
    pub(super) kind: Kind,
    pub(super) image_refs: Vec<String>,
    /// The `[tolerate]` names of the target's expectations, checked against the model's.
    pub(super) tolerate: BTreeSet<String>,
}

impl Runner<'_> {
    pub(super) async fn search(
        &self,
        generator: &mut Generator,
        s: &Settings,
    ) -> Result<(), CaseError> {
        let started = Instant::now();
        let (mut sequences, mut calls, mut attempt, mut shrink_runs) = (0u32, 0usize, 0u32, 0u32);
        let mut found: Option<Found> = None;
        let mut tolerated: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut shrink_started = None;
        while let Some(candidate) = generator.next().await {
            let candidate: Candidate =
                candidate.map_err(|e| CaseError::harness("harness.generator", e))?;
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
                return Err(CaseError::harness(
                    "harness.budget",
                    "no sequence ran: the budget ended before the first one",
                ));
            }
            return Ok(());
        };
        cx.note("shrink_runs", shrink_runs.to_string());
        let path = outcome::save(cx, &found, s.seed)?;
        let head = format!(
            "the runtime diverged from the model after {} sequence(s) (seed {}); shrunk from {} to {} calls in {shrink_runs} runs",
            found.after_sequences,
            s.seed,
            found.original_calls,
            total(&found.sequences)
        );
        Err(outcome::failure(head, &found.outcome, &path))
    }

    /// Runs a replay file's sequences once.
    pub(super) async fn replay(&self, path: &Path) -> Result<(), CaseError> {
        let file = ReplayFile::load(path).map_err(|e| CaseError::harness("harness.replay", e))?;
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
        Err(outcome::failure(head, &outcome, path))
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
                            check: model::MODEL_DIVERGED,
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
                        check: model::MODEL_DIVERGED,
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
