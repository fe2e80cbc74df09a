//! The fuzz suite's knobs. The harness carries them to the case without knowing them
//! (`cx.settings`), so it never depends on this suite.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of the fuzz suite, from `cricket fuzz` (or `cricket run --suite fuzz`). Unset
/// fields take the suite's defaults.
#[derive(Debug, Clone, Default)]
pub struct FuzzOptions {
    pub seed: Option<u64>,
    /// How long to send inputs [default: the suite's short budget].
    pub duration: Option<Duration>,
    /// Inputs to start from and to add interesting ones to.
    pub corpus: Option<PathBuf>,
    /// Re-send exactly the input saved in this finding file.
    pub replay: Option<PathBuf>,
}
