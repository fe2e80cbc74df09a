//! Conformance cases, one file per area. Each case quotes the `api.proto` sentence it
//! enforces in its `req`, and states its tags, needs and timeout.

pub mod container;
pub mod image;
pub mod runtime;
pub mod util;

use cricket_harness::CaseDef;

/// Every area's case table.
pub const CASES: &[&[CaseDef]] = &[container::CASES, image::CASES, runtime::CASES];
