//! `cricket fuzz`: the fuzz suite against a target, with its knobs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cricket_suites::fuzz::FuzzOptions;

use super::parse_duration;

#[derive(clap::Args)]
pub struct FuzzArgs {
    #[command(flatten)]
    run: super::run::Args,
    /// How long to send inputs (e.g. 60s, 10m)
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    duration: Duration,
    /// Corpus directory: inputs to start from; new interesting ones are added
    #[arg(long)]
    corpus: Option<PathBuf>,
}

pub fn main(a: FuzzArgs) -> ExitCode {
    let opts = FuzzOptions {
        duration: Some(a.duration),
        corpus: a.corpus,
        ..FuzzOptions::default()
    };
    super::run::run(a.run, Some(opts))
}
