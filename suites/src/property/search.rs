//! Generation and shrinking. proptest's value trees are not `Send`, and a case body is an async
//! future that must be, so the trees live on a thread of their own: it hands out candidate
//! sequences and takes back verdicts, while the case runs each candidate against the runtime.
//! The shrink loop is proptest's own (simplify while failing, complicate after a pass);
//! proptest-state-machine's tree drops calls the failing run never reached, then whole calls,
//! then simplifies the ones left, with slot references kept valid by the preconditions.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tokio::sync::mpsc;

use super::call::Call;

/// The sequences of one candidate (one for the sequential property, several run at once for
/// the concurrent one), each with proptest-state-machine's "calls seen" counter.
pub type Split<V> = fn(V) -> Vec<(Vec<Call>, Option<Arc<AtomicUsize>>)>;

#[derive(Debug)]
pub struct Candidate {
    pub sequences: Vec<Vec<Call>>,
    /// A fresh sequence (not a shrink of a failing one).
    pub fresh: bool,
}

#[derive(Debug)]
pub enum Verdict {
    Pass,
    /// Failed after running this many calls of each sequence.
    Fail(Vec<usize>),
    /// No more candidates are wanted.
    Stop,
}

/// Hands out candidates from a seeded generator thread.
pub struct Generator {
    candidates: mpsc::Receiver<Result<Candidate, String>>,
    verdicts: mpsc::Sender<Verdict>,
}

/// A 32-byte ChaCha seed from the user's 64-bit one.
fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, chunk) in b.chunks_mut(8).enumerate() {
        let v = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(i as u64)
            .rotate_left(17 * i as u32);
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    b
}

impl Generator {
    /// Starts generating up to `max` fresh candidates from `strategy` with `seed`.
    pub fn spawn<S>(strategy: S, split: Split<S::Value>, seed: u64, max: u32) -> Self
    where
        S: Strategy + Send + 'static,
    {
        let (cand_tx, cand_rx) = mpsc::channel(1);
        let (verdict_tx, verdict_rx) = mpsc::channel(1);
        std::thread::Builder::new()
            .name("cricket-property-gen".into())
            .spawn(move || {
                let failed = cand_tx.clone();
                let run = std::panic::AssertUnwindSafe(|| {
                    generate(strategy, split, seed, max, cand_tx, verdict_rx)
                });
                if let Err(p) = std::panic::catch_unwind(run) {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    let _ =
                        failed.blocking_send(Err(format!("the sequence generator failed: {what}")));
                }
            })
            .map(drop)
            .unwrap_or_else(|e| eprintln!("cricket: cannot start the property generator: {e}"));
        Self {
            candidates: cand_rx,
            verdicts: verdict_tx,
        }
    }

    /// The next candidate; `None` when generation is over (count reached, or shrinking done).
    pub async fn next(&mut self) -> Option<Result<Candidate, String>> {
        self.candidates.recv().await
    }

    pub async fn verdict(&self, v: Verdict) {
        // A generator that has finished no longer listens; nothing is lost.
        let _ = self.verdicts.send(v).await;
    }
}

fn generate<S: Strategy>(
    strategy: S,
    split: Split<S::Value>,
    seed: u64,
    max: u32,
    tx: mpsc::Sender<Result<Candidate, String>>,
    mut rx: mpsc::Receiver<Verdict>,
) {
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)),
    );
    // Shrinking revisits candidates (an undone deletion is the last failing sequence again);
    // their verdicts are remembered instead of run twice, as proptest's result cache does.
    let mut seen: HashMap<Vec<Vec<Call>>, bool> = HashMap::new();
    let mut offer = |tx: &mpsc::Sender<_>, rx: &mut mpsc::Receiver<Verdict>, value, fresh: bool| {
        let parts = split(value);
        let counters: Vec<_> = parts.iter().map(|(_, c)| c.clone()).collect();
        let sequences: Vec<Vec<Call>> = parts.into_iter().map(|(s, _)| s).collect();
        if !fresh && let Some(failed) = seen.get(&sequences) {
            let v = if *failed {
                Verdict::Fail(sequences.iter().map(Vec::len).collect())
            } else {
                Verdict::Pass
            };
            return (v, counters);
        }
        let key = sequences.clone();
        if tx
            .blocking_send(Ok(Candidate { sequences, fresh }))
            .is_err()
        {
            return (Verdict::Stop, counters);
        }
        let v = rx.blocking_recv().unwrap_or(Verdict::Stop);
        match v {
            Verdict::Fail(_) => {
                seen.insert(key, true);
            }
            Verdict::Pass => {
                seen.insert(key, false);
            }
            Verdict::Stop => {}
        }
        (v, counters)
    };
    for _ in 0..max {
        let mut tree = match strategy.new_tree(&mut runner) {
            Ok(t) => t,
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("generating a sequence: {e}")));
                return;
            }
        };
        let (verdict, counters) = offer(&tx, &mut rx, tree.current(), true);
        match verdict {
            Verdict::Pass => continue,
            Verdict::Stop => return,
            Verdict::Fail(seen) => {
                // Calls after the failing one were never run: the tree drops them first. A
                // tuple of sequences simplifies one element at a time and would find the
                // others' counters still set, so only a single sequence uses them.
                if let ([Some(c)], [n]) = (counters.as_slice(), seen.as_slice()) {
                    c.store(*n, Ordering::SeqCst);
                }
            }
        }
        if !tree.simplify() {
            return;
        }
        loop {
            let (verdict, _) = offer(&tx, &mut rx, tree.current(), false);
            let more = match verdict {
                Verdict::Fail(_) => tree.simplify(),
                Verdict::Pass => tree.complicate(),
                Verdict::Stop => return,
            };
            if !more {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::property::machine::Machine;
    use proptest_state_machine::ReferenceStateMachine;

    /// Shrinking a failure that needs "a StopContainer after a RunPodSandbox" ends at those two
    /// calls — the loop converges without a runtime in sight.
    #[tokio::test]
    async fn shrinks_to_the_calls_the_failure_needs() {
        let strategy = Machine::<true>::sequential_strategy(20..=20);
        let split: Split<_> = |(_, calls, seen)| vec![(calls, seen)];
        let mut generator = Generator::spawn(strategy, split, 42, 200);
        let fails = |calls: &[Call]| -> Option<usize> {
            let run = calls
                .iter()
                .position(|c| matches!(c, Call::RunPodSandbox { .. }))?;
            let stop = calls[run..]
                .iter()
                .position(|c| matches!(c, Call::StopContainer { .. }))?;
            Some(run + stop + 1)
        };
        let mut smallest: Option<Vec<Call>> = None;
        while let Some(c) = generator.next().await {
            let c = c.expect("candidate");
            match fails(&c.sequences[0]) {
                Some(n) => {
                    smallest = Some(c.sequences[0][..n].to_vec());
                    generator.verdict(Verdict::Fail(vec![n])).await;
                }
                None => generator.verdict(Verdict::Pass).await,
            }
        }
        let smallest = smallest.expect("some generated sequence fails");
        assert!(
            smallest.len() <= 4,
            "shrunk to {} calls: {smallest:?}",
            smallest.len()
        );
    }
}
