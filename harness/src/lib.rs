//! cricket's engine. Data flows one way: a [`target`] is started, the [`runner`] runs
//! [`case`]s against it through the timed [`client`], and emits [`event`]s that the
//! [`report`]ers turn into terminal output, JUnit XML and `results.json`.

pub mod bench;
pub mod case;
pub mod client;
pub mod cx;
pub mod diff;
pub mod event;
pub mod expectations;
pub mod failure;
pub mod host;
pub mod record;
pub mod report;
pub mod runner;
pub mod select;
pub mod session;
pub mod streaming;
pub mod target;

pub use case::{CaseDef, CaseFn, Need, Req, Suite, Tag};
pub use client::CriClient;
pub use cx::Cx;
pub use failure::{CaseError, Failure, FailureKind};
pub use futures::future::BoxFuture;

/// The CRI message types, re-exported so suites need no direct proto dependency.
pub use cricket_proto::v1 as cri;

/// Every RPC of the pinned CRI API as `(service, method)`.
pub fn cri_rpcs() -> &'static [(&'static str, &'static str)] {
    cricket_proto::RPCS
}

/// Whether `s` is one JSON value; cases use it to check fields api.proto says hold JSON.
pub fn json_check(s: &str) -> Result<(), String> {
    serde_json::from_str::<serde_json::Value>(s)
        .map(drop)
        .map_err(|e| e.to_string())
}
