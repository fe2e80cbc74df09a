//! `cricket diff OLD NEW`: compare two runs (results.json or bench.json). Exit 1 when a case
//! that did not fail before fails now.

use std::path::PathBuf;
use std::process::ExitCode;

use super::fail_usage;

#[derive(clap::Args)]
pub struct Args {
    /// The earlier run's results.json (or bench.json)
    old: PathBuf,
    /// The later run's results.json (or bench.json)
    new: PathBuf,
}

pub fn main(a: Args) -> ExitCode {
    match cricket_harness::diff::diff_files(&a.old, &a.new) {
        Err(e) => fail_usage(e),
        Ok(d) => {
            print!("{}", d.render());
            if d.regressed() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
