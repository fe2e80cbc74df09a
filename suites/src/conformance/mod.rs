//! Conformance cases, one file per area. Each case quotes the `api.proto` sentence it
//! enforces in its `req`, and states its tags, needs and timeout.

pub mod concurrency;
pub mod container;
pub mod container_config;
pub mod events;
pub mod exec;
pub mod idempotence;
pub mod image;
pub mod image_store;
pub mod logs;
pub mod negative;
pub mod pod;
pub mod runtime;
pub mod stats;
pub mod streaming;
pub mod streams;
pub mod util;

use cricket_harness::CaseDef;

/// Every area's case table.
pub const CASES: &[&[CaseDef]] = &[
    concurrency::CASES,
    container::CASES,
    container_config::CASES,
    events::CASES,
    exec::CASES,
    exec::USER_CASES,
    idempotence::CASES,
    image::CASES,
    image_store::CASES,
    logs::CASES,
    negative::CASES,
    negative::LIST_CASES,
    negative::MALFORMED_CASES,
    pod::CASES,
    pod::RESOURCE_CASES,
    pod::SYSCTL_CASES,
    runtime::CASES,
    runtime::CONFIG_CASES,
    stats::CASES,
    stats::POD_CASES,
    streaming::CASES,
    streams::CASES,
    streams::STATS_CASES,
];

/// A conformance case definition in one line per field.
pub const fn case(
    id: &'static str,
    summary: &'static str,
    reqs: &'static [cricket_harness::Req],
    tags: &'static [cricket_harness::Tag],
    needs: &'static [cricket_harness::Need],
    timeout_secs: u64,
    run: cricket_harness::CaseFn,
) -> CaseDef {
    CaseDef {
        id,
        suite: cricket_harness::Suite::Conformance,
        summary,
        reqs,
        tags,
        needs,
        timeout: std::time::Duration::from_secs(timeout_secs),
        run,
    }
}
