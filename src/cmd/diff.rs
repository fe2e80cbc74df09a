//! `cricket diff OLD NEW`: compare two runs (results.json or bench.json). Exit 1 when a case
//! that did not fail before fails now, or a benchmark p50 grew beyond the tolerance.

use std::path::PathBuf;
use std::process::ExitCode;

use super::fail_usage;

#[derive(clap::Args)]
pub struct Args {
    /// The earlier run's results.json (or bench.json)
    old: PathBuf,
    /// The later run's results.json (or bench.json)
    new: PathBuf,
    /// bench.json: a p50 more than this many percent above the old one counts as a regression
    #[arg(long, default_value_t = 50)]
    tolerance: u64,
}

pub fn main(a: Args) -> ExitCode {
    match cricket_harness::diff::diff_files(&a.old, &a.new) {
        Err(e) => fail_usage(e),
        Ok(d) => {
            print!("{}", d.render(a.tolerance));
            if d.regressed(a.tolerance) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
