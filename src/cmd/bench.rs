//! `cricket bench`: latency benchmarks of one or more targets in the same invocation, side
//! by side. Workloads are `cricket_suites::bench`; reports are `cricket_harness::bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use cricket_harness::bench::session::BenchRequest;
use cricket_harness::bench::{self, Baseline, BenchConfig, Workload};
use cricket_harness::target::TargetSpec;

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
    /// Pod networking of the bundled targets: bridge (the runtime's own), cni (Debian's CNI
    /// plugins, as containerd uses them) or none; the bench env records it
    #[arg(long, value_parser = ["bridge", "cni", "none"], default_value = "bridge")]
    bundled_network: String,
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
    let mut spec = super::run::spec_of(kind, a.endpoint.clone(), None, a.containerd_bin.clone())?;
    if let TargetSpec::Bundled(b) = &mut spec {
        b.network = a.bundled_network.clone();
    }
    Ok(spec)
}

fn request(a: &Args) -> Result<BenchRequest, String> {
    if a.endpoint.is_some() && !a.target.contains(&TargetKind::Endpoint) {
        return Err("--endpoint only goes with --target endpoint".into());
    }
    let targets = a
        .target
        .iter()
        .map(|&kind| spec(a, kind))
        .collect::<Result<Vec<_>, _>>()?;
    let mut baselines = Vec::new();
    for p in &a.baseline {
        let b = Baseline::load(p)?;
        if !targets.iter().any(|s| s.kind() == b.target) {
            return Err(format!(
                "baseline {} is for target {}, which is not measured (add --target {})",
                p.display(),
                b.target,
                b.target
            ));
        }
        baselines.push(b);
    }
    let workloads = if a.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        a.workloads
            .iter()
            .map(|w| Workload::parse(w.trim()))
            .collect::<Result<_, _>>()?
    };
    Ok(BenchRequest {
        targets,
        config: BenchConfig {
            samples: a.samples as usize,
            warmup: a.warmup as usize,
            pulls: a.pulls as usize,
            list_sizes: a.list_sizes.iter().map(|&n| n as usize).collect(),
            concurrency: a.concurrency.iter().map(|&n| usize::from(n)).collect(),
            workloads,
            image: String::new(),
            large_image: String::new(),
            run_id: String::new(),
        },
        report_dir: a.report_dir.clone(),
        json: a.json.clone(),
        baselines,
        save_baselines: a
            .save_baselines
            .clone()
            .map(|d| (d, a.tolerance_below, a.tolerance)),
    })
}

pub fn main(a: Args) -> ExitCode {
    let req = match request(&a).and_then(|r| {
        bench::session::validate(&r).map_err(|e| e.0)?;
        Ok(r)
    }) {
        Ok(r) => r,
        Err(e) => return fail_usage(e),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail_usage(format!("cannot start the async runtime: {e}")),
    };
    let progress = |what: &str| eprintln!("cricket bench: {what}");
    let result = match rt.block_on(bench::session::run(
        req,
        cricket_suites::bench::workloads,
        &progress,
    )) {
        Ok(r) => r,
        Err(e) => return fail_usage(e),
    };
    print!("{}", result.table);
    println!(
        "bench: {} {}",
        result.bench_json.display(),
        result.html.display()
    );
    for p in &result.baselines_written {
        println!("baseline: {}", p.display());
    }
    for r in &result.out_of_range {
        println!("{r}");
    }
    for u in &result.unstarted {
        eprintln!("cricket: {u}");
    }
    if !result.unstarted.is_empty() {
        ExitCode::from(super::USAGE)
    } else if result.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
