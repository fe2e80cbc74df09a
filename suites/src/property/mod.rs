//! The property suite: random sequences of CRI calls, generated from a seed, run against the
//! target and checked step by step against a reference model of api.proto (`model.rs`). A
//! divergence is shrunk to the shortest sequence that still diverges, printed as a numbered
//! call list and saved as a replay file that `cricket run --replay FILE` runs again.
//! The search and shrinking live in `runner.rs`, one sequence's calls in `driver.rs`, the
//! report and replay file of a divergence in `outcome.rs`.

pub mod call;
mod driver;
pub mod machine;
pub mod model;
mod options;
mod outcome;
mod replay;
mod reply;
mod runner;
mod search;

use std::collections::BTreeSet;
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri};
use proptest_state_machine::ReferenceStateMachine;

use crate::kit;
use call::IMAGES;
use machine::Machine;
use options::Settings;
use runner::Runner;
use search::{Generator, Split};

pub use options::PropertyOptions;
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

async fn property(cx: &Cx, kind: Kind) -> Result<(), CaseError> {
    let image_refs = IMAGES
        .iter()
        .map(|n| cx.image(n))
        .collect::<Result<Vec<_>, _>>()?;
    cx.step("pull probe", kit::pull(cx, "probe")).await?;
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
    let known: Vec<&str> = model::TOLERABLE.iter().map(|(k, _, _)| *k).collect();
    let tolerate: BTreeSet<String> = cx.options().tolerate.keys().cloned().collect();
    if let Some(bad) = tolerate.iter().find(|t| !known.contains(&t.as_str())) {
        return Err(CaseError::harness(
            "harness.tolerate",
            format!(
                "the expectations file tolerates {bad:?}, which is no property check (known: {})",
                known.join(", ")
            ),
        ));
    }
    let runner = Runner {
        cx,
        kind,
        image_refs,
        tolerate,
    };
    let o = cx.settings::<PropertyOptions>();
    if let Some(path) = &o.replay {
        return runner.replay(path).await;
    }
    let (budget, steps) = match kind {
        Kind::Sequential => (Duration::from_secs(25), 20),
        Kind::Concurrent => (Duration::from_secs(15), 12),
    };
    let s = Settings::from(&o, budget, steps);
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
