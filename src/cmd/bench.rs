//! `cricket bench`: latency benchmarks of one or more targets in the same invocation, side
//! by side. Workloads are `cricket_suites::bench`; reports are `cricket_harness::bench`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cricket_harness::bench::{self, BENCH_SCHEMA, Baseline, BenchDoc};
use cricket_harness::host::HostInfo;
use cricket_harness::session;
use cricket_harness::target::{self, StartOptions, TargetSpec};
use cricket_suites::bench::{BenchConfig, Workload};

use super::fail_usage;
use super::run::TargetKind;

#[derive(clap::Args)]
pub struct Args {
    /// Targets to measure, in order (repeatable): bundled, containerd, endpoint. Ratios are
    /// against the first
    #[arg(long, value_enum, default_values_t = [TargetKind::Bundled])]
    target: Vec<TargetKind>,
    /// CRI endpoint for --target endpoint (unix:///path/to.sock)
    #[arg(long)]
    endpoint: Option<String>,
    /// containerd binary for --target containerd [default: from PATH]
    #[arg(long)]
    containerd_bin: Option<PathBuf>,
    /// Measured samples per metric (pods per pod metric, calls per RPC metric)
    #[arg(long, visible_alias = "pods", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    samples: u32,
    /// Samples taken first and thrown away in every loop
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    warmup: u32,
    /// Measured cold pulls of the 64 MiB fixture image
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pulls: u32,
    /// Object counts for the List benchmarks (pods with one container each)
    #[arg(long, value_delimiter = ',', default_values_t = [10u32, 100, 500], value_parser = clap::value_parser!(u32).range(1..=10_000))]
    list_sizes: Vec<u32>,
    /// Concurrency levels of the pod-startup sweep (latency and pods/s per level)
    #[arg(long, value_delimiter = ',', default_values_t = [1u16, 2, 4, 8], value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: Vec<u16>,
    /// What to measure, comma-separated: pods, exec, lists, images, sweep [default: all]
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Report directory: bench.json, index.html, critest/<target>/*.json [default: reports/<run-id>]
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// Where bench.json goes [default: <report-dir>/bench.json]
    #[arg(long)]
    json: Option<PathBuf>,
    /// Fail (exit 1) when a p50 lands outside this baseline's range (repeatable; matched by
    /// the target named in the file)
    #[arg(long)]
    baseline: Vec<PathBuf>,
    /// Write a baseline per measured target into this directory (`<target>.json`)
    #[arg(long)]
    save_baselines: Option<PathBuf>,
    /// Saved baselines: how many percent above the measured p50 a later p50 may be
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    tolerance: u64,
    /// Saved baselines: how many percent below the measured p50 a later p50 may be (100 = no
    /// lower bound)
    #[arg(long, default_value_t = 75, value_parser = clap::value_parser!(u64).range(0..=100))]
    tolerance_below: u64,
}

fn spec(a: &Args, kind: TargetKind) -> Result<TargetSpec, String> {
    super::run::spec_of(kind, a.endpoint.clone(), None, a.containerd_bin.clone())
}

fn config(a: &Args, run_id: &str) -> Result<BenchConfig, String> {
    let workloads = if a.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        a.workloads
            .iter()
            .map(|w| Workload::parse(w.trim()))
            .collect::<Result<_, _>>()?
    };
    Ok(BenchConfig {
        samples: a.samples as usize,
        warmup: a.warmup as usize,
        pulls: a.pulls as usize,
        list_sizes: a.list_sizes.iter().map(|&n| n as usize).collect(),
        concurrency: a.concurrency.iter().map(|&n| usize::from(n)).collect(),
        workloads,
        image: String::new(),
        large_image: String::new(),
        run_id: run_id.to_string(),
    })
}

pub fn main(a: Args) -> ExitCode {
    if a.endpoint.is_some() && !a.target.contains(&TargetKind::Endpoint) {
        return fail_usage("--endpoint only goes with --target endpoint");
    }
    let mut specs = Vec::new();
    for &kind in &a.target {
        match spec(&a, kind) {
            Ok(s) => specs.push(s),
            Err(e) => return fail_usage(e),
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = specs.iter().find(|s| !seen.insert(s.kind())) {
        return fail_usage(format!("--target {} is given twice", dup.kind()));
    }
    let mut baselines = Vec::new();
    for p in &a.baseline {
        match Baseline::load(p) {
            Ok(b) if !specs.iter().any(|s| s.kind() == b.target) => {
                return fail_usage(format!(
                    "baseline {} is for target {}, which is not measured (add --target {})",
                    p.display(),
                    b.target,
                    b.target
                ));
            }
            Ok(b) => baselines.push(b),
            Err(e) => return fail_usage(e),
        }
    }
    let mut levels = a.concurrency.clone();
    levels.sort_unstable();
    if levels.windows(2).any(|w| w[0] == w[1]) {
        return fail_usage("--concurrency lists a level twice");
    }
    let run_id = session::new_run_id();
    let mut cfg = match config(&a, &run_id) {
        Ok(c) => c,
        Err(e) => return fail_usage(e),
    };
    let dir = a
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail_usage(format!("cannot create {}: {e}", dir.display()));
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail_usage(format!("cannot start the async runtime: {e}")),
    };
    rt.block_on(async move {
        let fixtures = match session::start_fixtures(None).await {
            Ok(f) => f,
            Err(e) => return fail_usage(e),
        };
        match (fixtures.catalog.get("probe"), fixtures.catalog.get("large")) {
            (Some(probe), Some(large)) => {
                cfg.image = probe.to_string();
                cfg.large_image = large.to_string();
            }
            _ => return fail_usage("the fixture catalogue lacks the probe or large image"),
        }
        let mut results = Vec::new();
        let mut failed = Vec::new();
        let mut unstarted = Vec::new();
        for mut spec in specs {
            session::use_fixture_pause(&mut spec, &fixtures.catalog);
            let kind = spec.kind();
            let opts = StartOptions {
                log_dir: dir.clone(),
                ready_timeout: Duration::from_secs(60),
            };
            // A target that cannot start does not cost the others their figures.
            let mut t = match target::start(&spec, &opts).await {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("cricket: {kind}: {e}");
                    unstarted.push(kind);
                    continue;
                }
            };
            eprintln!(
                "cricket bench: {kind}: {} samples (+{} warm-up) per metric",
                cfg.samples, cfg.warmup
            );
            let progress = |what: &str| eprintln!("cricket bench: {kind}: {what}");
            let r = cricket_suites::bench::run(t.as_ref(), &spec.network(), &cfg, &progress).await;
            if let Err(e) = t.stop().await {
                eprintln!("cricket bench: stopping {kind}: {e}");
            }
            match r {
                Ok(r) => results.push(r),
                Err(e) => {
                    eprintln!("cricket bench: {kind} failed: {e}");
                    failed.push(kind);
                }
            }
        }
        print!("{}", bench::table::render(&results));
        let host = HostInfo::probe();
        let doc = BenchDoc {
            schema: BENCH_SCHEMA,
            run_id: run_id.clone(),
            host: host.clone(),
            config: serde_json::json!({
                "samples": cfg.samples,
                "warmup": cfg.warmup,
                "pulls": cfg.pulls,
                "list_sizes": cfg.list_sizes,
                "concurrency": cfg.concurrency,
                "workloads": cfg.workloads.iter().map(|w| w.name()).collect::<Vec<_>>(),
                "image": cfg.image,
                "large_image": cfg.large_image,
            }),
            targets: results,
        };
        match bench::write_reports(&doc, &dir, a.json.as_deref()) {
            Ok(path) => println!("bench: {} {}", path.display(), dir.join("index.html").display()),
            Err(e) => return fail_usage(e),
        }
        if let Some(bdir) = &a.save_baselines {
            let on = format!(
                "{} CPUs, kernel {}, cgroup {:?}, run {run_id}: cricket bench --samples {} --warmup {}",
                host.cpus, host.kernel, host.cgroup, a.samples, a.warmup
            );
            for r in &doc.targets {
                let b = Baseline::from_bench(r, a.tolerance_below, a.tolerance, &on);
                let path = bdir.join(format!("{}.json", r.target));
                let written = std::fs::create_dir_all(bdir).and_then(|()| {
                    std::fs::write(&path, serde_json::to_vec_pretty(&b).unwrap_or_default())
                });
                if let Err(e) = written {
                    return fail_usage(format!("writing {}: {e}", path.display()));
                }
                println!("baseline: {}", path.display());
            }
        }
        let mut out_of_range = Vec::new();
        for b in &baselines {
            match doc.targets.iter().find(|r| r.target == b.target) {
                Some(r) => {
                    out_of_range.extend(b.check(r));
                    let missing = b.unmeasured(r);
                    if !missing.is_empty() {
                        eprintln!(
                            "cricket bench: not measured this run, not judged: {} {}",
                            b.target,
                            missing.join(", ")
                        );
                    }
                }
                None => eprintln!("cricket bench: baseline for {} has no measured target", b.target),
            }
        }
        for r in &out_of_range {
            println!("{r}");
        }
        if !unstarted.is_empty() {
            ExitCode::from(super::USAGE)
        } else if out_of_range.is_empty() && failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    })
}
