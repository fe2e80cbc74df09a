//! `cricket bench`: pod-startup latency for one or more targets in the same invocation.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cricket_harness::bench::{self, BenchConfig};
use cricket_harness::session;
use cricket_harness::target::{self, BundledOptions, ContainerdOptions, StartOptions, TargetSpec};

use super::fail_usage;
use super::run::TargetKind;

#[derive(clap::Args)]
pub struct Args {
    /// Targets to measure, in order (repeatable): bundled, containerd
    #[arg(long, value_enum, default_values_t = [TargetKind::Bundled])]
    target: Vec<TargetKind>,
    /// Measured pods per target
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pods: u32,
    /// Warm-up pods per target, not measured
    #[arg(long, default_value_t = 3)]
    warmup: u32,
    /// Where bench.json goes [default: reports/<run-id>/bench.json]
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn main(a: Args) -> ExitCode {
    if a.target.contains(&TargetKind::Endpoint) {
        return fail_usage(
            "cricket bench measures targets it starts (bundled, containerd); --target endpoint is not supported here yet",
        );
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail_usage(format!("cannot start the async runtime: {e}")),
    };
    rt.block_on(async move {
        let run_id = session::new_run_id();
        let dir = PathBuf::from("reports").join(&run_id);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return fail_usage(format!("cannot create {}: {e}", dir.display()));
        }
        let fixtures = match session::start_fixtures(None).await {
            Ok(f) => f,
            Err(e) => return fail_usage(e),
        };
        let cfg = BenchConfig {
            pods: a.pods as usize,
            warmup: a.warmup as usize,
            image: fixtures.catalog.get("probe").unwrap_or_default().to_string(),
            run_id: run_id.clone(),
        };
        let mut results = Vec::new();
        for kind in &a.target {
            let mut spec = match kind {
                TargetKind::Bundled => TargetSpec::Bundled(BundledOptions {
                    binary: match std::env::current_exe() {
                        Ok(p) => p,
                        Err(e) => return fail_usage(format!("cannot locate the cricket binary: {e}")),
                    },
                    args: Vec::new(),
                }),
                _ => TargetSpec::Containerd(ContainerdOptions::default()),
            };
            session::use_fixture_pause(&mut spec, &fixtures.catalog);
            let opts = StartOptions { log_dir: dir.clone(), ready_timeout: Duration::from_secs(60) };
            let mut t = match target::start(&spec, &opts).await {
                Ok(t) => t,
                Err(e) => return fail_usage(e),
            };
            eprintln!("cricket bench: {} pods (+{} warm-up) against {}", a.pods, a.warmup, spec.kind());
            let r = bench::pod_startup(t.as_ref(), &cfg).await;
            let _ = t.stop().await;
            match r {
                Ok(r) => results.push(r),
                Err(e) => {
                    eprintln!("cricket bench: {} failed: {e}", spec.kind());
                    return ExitCode::from(1);
                }
            }
        }
        print!("{}", bench::table(&results));
        let path = a.json.unwrap_or_else(|| dir.join("bench.json"));
        let doc = serde_json::json!({ "schema": "cricket.bench/v1", "run_id": run_id, "host": cricket_harness::host::HostInfo::probe(), "targets": results });
        match serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string()).and_then(|b| std::fs::write(&path, b).map_err(|e| e.to_string())) {
            Ok(()) => {
                println!("bench: {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail_usage(format!("writing {}: {e}", path.display())),
        }
    })
}
