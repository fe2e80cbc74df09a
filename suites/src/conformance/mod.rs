//! Conformance cases, one file per area. Each case quotes the `api.proto` sentence it
//! enforces in its `req`, and states its tags, needs and timeout.

pub mod runtime;

use cricket_harness::CaseDef;

/// Every area's case table.
pub const CASES: &[&[CaseDef]] = &[runtime::CASES];
