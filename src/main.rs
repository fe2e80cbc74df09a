//! `cricket`: the command line. Parses arguments, wires libraries, maps results to exit
//! status (0 all as expected, 1 a case failed, 2 bad usage or a target that could not start).
//! Everything else lives in the harness, suites and runtime crates.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cricket",
    version,
    about = "CRI conformance, property, fuzz and benchmark suite"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run cases against a target runtime and write JUnit + JSON reports.
    Run(Box<cmd::run::Args>),
    /// List the registered cases.
    List(cmd::list::Args),
    /// Serve the bundled CRI runtime on a unix socket.
    Runtime(cmd::runtime::Args),
    /// Compare two runs: outcome changes (newly failing first) and latency ratios.
    Diff(cmd::diff::Args),
    /// Fuzz a target's CRI socket (structure-aware and wire-level inputs to all 41 RPCs) and its
    /// streaming port (bent URLs and upgrade requests).
    Fuzz(Box<cmd::fuzz::FuzzArgs>),
    /// Latency benchmarks (pod startup, every lifecycle RPC, ExecSync, lists, pulls) of one or more targets, side by side.
    Bench(cmd::bench::Args),
    /// Serve the fixture images over the OCI distribution API.
    Registry(cmd::registry::Args),
    /// List, export or push the fixture images.
    Images(cmd::images::Args),
}

fn main() -> ExitCode {
    // Hidden helper modes of the bundled runtime, entered by exec from `cricket runtime`:
    // single-threaded processes that must not start an async runtime or parse user flags.
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("__shim") => {
            let spec = argv
                .get(2)
                .map(std::path::PathBuf::from)
                .unwrap_or_default();
            return ExitCode::from(cricket_runtime::shim::main(&spec).clamp(0, 255) as u8);
        }
        Some("__exec") => {
            let spec = argv.get(2).cloned().unwrap_or_default();
            return ExitCode::from(cricket_runtime::exec::helper_main(&spec).clamp(0, 255) as u8);
        }
        _ => {}
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cmd::usage_error(e),
    };
    if matches!(
        cli.command,
        Command::List(_) | Command::Images(_) | Command::Diff(_)
    ) {
        // Listing commands end quietly when their reader goes away (`cricket list | head`).
        // Only these: a runtime or a run must see EPIPE, not die of SIGPIPE.
        // SAFETY: restoring the default disposition before any thread is started.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match cli.command {
        Command::Run(a) => cmd::run::main(*a),
        Command::List(a) => cmd::list::main(a),
        Command::Runtime(a) => cmd::runtime::main(a),
        Command::Bench(a) => cmd::bench::main(a),
        Command::Fuzz(a) => cmd::fuzz::main(*a),
        Command::Diff(a) => cmd::diff::main(a),
        Command::Registry(a) => cmd::registry::main(a),
        Command::Images(a) => cmd::images::main(a),
    }
}
