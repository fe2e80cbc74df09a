//! Replay files: a shrunk failing sequence (or set of concurrent ones) with the divergence it
//! showed, saved beside the reports and read back by `cricket run --replay FILE`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::call::Call;
use super::{CASES, CONCURRENT_ID, REPLAY_FORMAT, SEQUENTIAL_ID};

/// A saved failing sequence set, for `cricket run --suite property --replay FILE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayFile {
    pub format: String,
    pub case: String,
    pub seed: u64,
    /// The target it failed on (`kind runtime version`).
    pub target: String,
    pub divergence: SavedDivergence,
    /// One sequence for the sequential property; several run at once for the concurrent one.
    pub sequences: Vec<Vec<Call>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedDivergence {
    /// Which sequence (0-based) and which call (1-based; none = end-of-sequence checks).
    pub sequence: usize,
    pub step: Option<usize>,
    pub message: String,
    pub expected: String,
    pub actual: String,
    pub rule: String,
}

impl ReplayFile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read replay file {}: {e}", path.display()))?;
        let file: ReplayFile = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a cricket replay file: {e}", path.display()))?;
        if file.format != REPLAY_FORMAT {
            return Err(format!(
                "{}: replay format {:?}, this cricket reads {REPLAY_FORMAT:?}",
                path.display(),
                file.format
            ));
        }
        if !CASES.iter().any(|c| c.id == file.case) {
            return Err(format!(
                "{}: unknown property {:?} (known: {SEQUENTIAL_ID}, {CONCURRENT_ID})",
                path.display(),
                file.case
            ));
        }
        let want = if file.case == CONCURRENT_ID { 2.. } else { 1.. };
        if !want.contains(&file.sequences.len()) || file.sequences.iter().any(Vec::is_empty) {
            return Err(format!(
                "{}: {} sequence(s), some empty; nothing to replay",
                path.display(),
                file.sequences.len()
            ));
        }
        Ok(file)
    }
}

/// The property a replay file belongs to, for the CLI to select it.
pub fn replay_case(path: &Path) -> Result<&'static str, String> {
    let file = ReplayFile::load(path)?;
    CASES
        .iter()
        .map(|c| c.id)
        .find(|id| *id == file.case)
        .ok_or_else(|| format!("unknown property {:?}", file.case))
}
