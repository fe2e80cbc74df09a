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
    /// Also start pods this many at a time, e.g. 1,2,4,8 (latency and pods/s per level)
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: Vec<u16>,
    /// Warm-up pods per target, not measured
    #[arg(long, default_value_t = 3)]
    warmup: u32,
    /// Where bench.json goes [default: reports/<run-id>/bench.json]
    #[arg(long)]
    json: Option<PathBuf>,
    /// Fail (exit 1) when a target's p50 regresses beyond this baseline (repeatable; matched
    /// by the target named in the file)
    #[arg(long)]
    baseline: Vec<PathBuf>,
    /// Write a baseline per measured target into this directory (`<target>.json`)
    #[arg(long)]
    save_baselines: Option<PathBuf>,
    /// Tolerance written into saved baselines, in percent above the measured p50
    #[arg(long, default_value_t = 100)]
    tolerance: u64,
}

pub fn main(a: Args) -> ExitCode {
    if a.target.contains(&TargetKind::Endpoint) {
        return fail_usage(
            "cricket bench measures targets it starts (bundled, containerd); --target endpoint is not supported here yet",
        );
    }
    let mut baselines = Vec::new();
    for p in &a.baseline {
        match bench::Baseline::load(p) {
            Ok(b) => baselines.push(b),
            Err(e) => return fail_usage(e),
        }
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
            let levels: Vec<usize> = a.concurrency.iter().map(|&l| usize::from(l)).collect();
            let r = match bench::pod_startup(t.as_ref(), &cfg).await {
                Ok(mut r) if !levels.is_empty() => bench::sweep(t.as_ref(), &cfg, &levels).await.map(|s| {
                    r.sweep = s;
                    r
                }),
                other => other,
            };
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
        if let Some(dir) = &a.save_baselines {
            let host = cricket_harness::host::HostInfo::probe();
            let on = format!("{} cpus, kernel {}, cgroup {:?}, run {run_id}", host.cpus, host.kernel, host.cgroup);
            for r in &results {
                let b = bench::Baseline::from_bench(r, a.tolerance, &on);
                let path = dir.join(format!("{}.json", r.target));
                let written = std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(&b).unwrap_or_default()));
                if let Err(e) = written {
                    return fail_usage(format!("writing {}: {e}", path.display()));
                }
                println!("baseline: {}", path.display());
            }
        }
        // critest's LifecycleBenchmarksResultsSet shape, beside our own bench.json.
        for r in &results {
            let path = dir.join(format!("{}-pod_container_benchmark_data.json", r.target));
            let written = serde_json::to_vec_pretty(&r.critest)
                .map_err(|e| e.to_string())
                .and_then(|b| std::fs::write(&path, b).map_err(|e| e.to_string()));
            if let Err(e) = written {
                return fail_usage(format!("writing {}: {e}", path.display()));
            }
        }
        let mut regressions = Vec::new();
        for b in &baselines {
            match results.iter().find(|r| r.target == b.target) {
                Some(r) => regressions.extend(b.regressions(r)),
                None => eprintln!("cricket bench: baseline for {} has no measured target", b.target),
            }
        }
        for r in &regressions {
            println!("REGRESSION {r}");
        }
        let path = a.json.unwrap_or_else(|| dir.join("bench.json"));
        let doc = serde_json::json!({ "schema": "cricket.bench/v1", "run_id": run_id, "host": cricket_harness::host::HostInfo::probe(), "targets": results });
        match serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string()).and_then(|b| std::fs::write(&path, b).map_err(|e| e.to_string())) {
            Ok(()) => {
                println!("bench: {}", path.display());
                if regressions.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
            }
            Err(e) => fail_usage(format!("writing {}: {e}", path.display())),
        }
    })
}
