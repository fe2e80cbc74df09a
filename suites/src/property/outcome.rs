//! What a candidate did on the runtime, and how a divergence is told: the readable report
//! (numbered calls with their replies, the divergence under its call) and the replay file
//! saved beside the reports so that `cricket run --replay FILE` runs it again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cricket_harness::{CaseError, Cx, Failure, FailureKind};

use super::REPLAY_FORMAT;
use super::call::Call;
use super::driver::{SeqFailure, Traced};
use super::replay::{ReplayFile, SavedDivergence};

/// What one candidate did on the runtime.
pub(super) struct RunOutcome {
    /// (which sequence, where, the trace of every sequence).
    pub(super) failure: Option<(usize, SeqFailure)>,
    /// Tolerated divergences seen, by kind.
    pub(super) tolerated: BTreeMap<&'static str, u64>,
    pub(super) traces: Vec<Vec<Traced>>,
    pub(super) seen: Vec<usize>,
    pub(super) calls: usize,
}

pub(super) struct Found {
    pub(super) sequences: Vec<Vec<Call>>,
    pub(super) outcome: RunOutcome,
    pub(super) after_sequences: u32,
    pub(super) original_calls: usize,
}

pub(super) fn total(seqs: &[Vec<Call>]) -> usize {
    seqs.iter().map(Vec::len).sum()
}

/// Writes the shrunk divergence as a replay file beside the reports (or in the temp dir).
pub(super) fn save(cx: &Cx, found: &Found, seed: u64) -> Result<PathBuf, CaseError> {
    let Some((k, f)) = &found.outcome.failure else {
        return Err(CaseError::harness(
            "harness.internal",
            "internal: a found failure without a divergence",
        ));
    };
    let t = cx.target();
    let file = ReplayFile {
        format: REPLAY_FORMAT.into(),
        case: cx.case_id().into(),
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
    let dir = cx
        .options()
        .report_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("replay-{}-{}.json", cx.case_id(), cx.run_id()));
    let text = serde_json::to_string_pretty(&file).map_err(|e| {
        CaseError::harness("harness.replay", format!("encoding the replay file: {e}"))
    })?;
    std::fs::write(&path, text + "\n").map_err(|e| {
        CaseError::harness(
            "harness.replay",
            format!("cannot write replay file {}: {e}", path.display()),
        )
    })?;
    cx.note("replay_file", path.display().to_string());
    Ok(path)
}

/// The readable report: numbered calls with their replies, the divergence under its call. It
/// fails with the divergence's check id, as a harness error when cricket could not make a call.
pub(super) fn failure(head: String, outcome: &RunOutcome, replay: &Path) -> CaseError {
    let Some((k, f)) = &outcome.failure else {
        return CaseError::harness("harness.internal", head);
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
    let kind = if f.divergence.check.starts_with("harness.") {
        FailureKind::Harness
    } else {
        FailureKind::Mismatch
    };
    let mut failure = Failure::new(kind, f.divergence.check, text);
    failure.step = Some(match f.step {
        Some(n) => format!("call {n}"),
        None => "end-of-sequence checks".into(),
    });
    failure.expected = Some(f.divergence.expected.clone());
    failure.actual = Some(f.divergence.actual.clone());
    failure.into()
}
