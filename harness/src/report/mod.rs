//! Reporters: each turns runner events into one output. They never influence the run.

mod json;
mod junit;
mod terminal;

pub use json::JsonReporter;
pub use junit::{JunitReporter, junit_report};
pub use terminal::TerminalReporter;

use std::path::Path;

use anyhow::Context;

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader (a CI system
/// collecting reports, or a run interrupted mid-write) never sees half a file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
