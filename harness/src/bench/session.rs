//! One `cricket bench`, wired end to end: fixtures, each target started in turn (a target that
//! cannot start does not cost the others their figures), the workloads, reports, baselines.
//! The CLI parses arguments into a [`BenchRequest`], prints what comes back and maps it to an
//! exit status; tests call the same function. The workloads themselves are the suites', passed
//! in as a function so the harness never depends on them.

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;

use super::config::BenchConfig;
use super::{BENCH_SCHEMA, Baseline, BenchDoc, TargetBench, table, write_reports};
use crate::host::HostInfo;
use crate::session::{self, SetupError};
use crate::target::{self, StartOptions, Target, TargetSpec};

/// Runs the workloads against one started target: `(target, its networking, config, progress)`.
pub type Workloads = for<'a> fn(
    &'a dyn Target,
    &'a str,
    &'a BenchConfig,
    &'a (dyn Fn(&str) + Sync),
) -> BoxFuture<'a, Result<TargetBench, String>>;

#[derive(Debug, Clone)]
pub struct BenchRequest {
    /// Targets in order; ratios are against the first.
    pub targets: Vec<TargetSpec>,
    /// The knobs; `image`, `large_image` and `run_id` are filled in here.
    pub config: BenchConfig,
    pub report_dir: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// Held to these (loaded, and each for a measured target).
    pub baselines: Vec<Baseline>,
    /// Write a baseline per measured target here, with these tolerances (below %, above %).
    pub save_baselines: Option<(PathBuf, u64, u64)>,
}

/// What a bench run produced, for the CLI to print and judge.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub run_id: String,
    /// The side-by-side terminal table.
    pub table: String,
    pub bench_json: PathBuf,
    pub html: PathBuf,
    pub baselines_written: Vec<PathBuf>,
    /// One line per p50 outside its baseline's range.
    pub out_of_range: Vec<String>,
    /// Targets whose workloads failed (with why) or that could not start.
    pub failed: Vec<String>,
    pub unstarted: Vec<String>,
}

impl BenchResult {
    /// True when every target was measured and every figure is inside its baseline.
    pub fn ok(&self) -> bool {
        self.out_of_range.is_empty() && self.failed.is_empty() && self.unstarted.is_empty()
    }
}

/// Checks a request before anything starts: every baseline belongs to a measured target, no
/// target is given twice.
pub fn validate(req: &BenchRequest) -> Result<(), SetupError> {
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = req.targets.iter().find(|s| !seen.insert(s.kind())) {
        return Err(SetupError(format!(
            "--target {} is given twice",
            dup.kind()
        )));
    }
    for b in &req.baselines {
        if !req.targets.iter().any(|s| s.kind() == b.target) {
            return Err(SetupError(format!(
                "a baseline is for target {}, which is not measured (add --target {})",
                b.target, b.target
            )));
        }
    }
    let mut levels = req.config.concurrency.clone();
    levels.sort_unstable();
    if levels.windows(2).any(|w| w[0] == w[1]) {
        return Err(SetupError("--concurrency lists a level twice".into()));
    }
    Ok(())
}

pub async fn run(
    mut req: BenchRequest,
    workloads: Workloads,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<BenchResult, SetupError> {
    validate(&req)?;
    let run_id = session::new_run_id();
    req.config.run_id = run_id.clone();
    let dir = req
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
    std::fs::create_dir_all(&dir)
        .map_err(|e| SetupError(format!("cannot create {}: {e}", dir.display())))?;
    let fixtures = session::start_fixtures(None).await?;
    match (fixtures.catalog.get("probe"), fixtures.catalog.get("large")) {
        (Some(probe), Some(large)) => {
            req.config.image = probe.to_string();
            req.config.large_image = large.to_string();
        }
        _ => {
            return Err(SetupError(
                "the fixture catalogue lacks the probe or large image".into(),
            ));
        }
    }
    let cfg = &req.config;
    let mut results = Vec::new();
    let mut failed = Vec::new();
    let mut unstarted = Vec::new();
    for mut spec in req.targets.clone() {
        session::use_fixture_pause(&mut spec, &fixtures.catalog);
        let kind = spec.kind();
        let opts = StartOptions {
            log_dir: dir.clone(),
            ready_timeout: Duration::from_secs(60),
        };
        let mut t = match target::start(&spec, &opts).await {
            Ok(t) => t,
            Err(e) => {
                progress(&format!("{kind}: {e}"));
                unstarted.push(format!("{kind}: {e}"));
                continue;
            }
        };
        progress(&format!(
            "{kind}: {} samples (+{} warm-up) per metric",
            cfg.samples, cfg.warmup
        ));
        let step = |what: &str| progress(&format!("{kind}: {what}"));
        let network = spec.network();
        let r = workloads(t.as_ref(), &network, cfg, &step).await;
        if let Err(e) = t.stop().await {
            progress(&format!("stopping {kind}: {e}"));
        }
        match r {
            Ok(r) => results.push(r),
            Err(e) => {
                progress(&format!("{kind} failed: {e}"));
                failed.push(format!("{kind}: {e}"));
            }
        }
    }
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
    // Reports first: a baseline that cannot be written must not cost the figures.
    let bench_json = write_reports(&doc, &dir, req.json.as_deref()).map_err(SetupError)?;
    let mut baselines_written = Vec::new();
    if let Some((bdir, below, above)) = &req.save_baselines {
        let on = format!(
            "{} CPUs, kernel {}, cgroup {:?}, run {run_id}: cricket bench --samples {} --warmup {}",
            host.cpus, host.kernel, host.cgroup, cfg.samples, cfg.warmup
        );
        for r in &doc.targets {
            let b = Baseline::from_bench(r, *below, *above, &on);
            let path = bdir.join(format!("{}.json", r.target));
            let bytes = serde_json::to_vec_pretty(&b)
                .map_err(|e| SetupError(format!("encoding {}: {e}", path.display())))?;
            std::fs::create_dir_all(bdir)
                .and_then(|()| std::fs::write(&path, bytes))
                .map_err(|e| SetupError(format!("writing {}: {e}", path.display())))?;
            baselines_written.push(path);
        }
    }
    let mut out_of_range = Vec::new();
    for b in &req.baselines {
        match doc.targets.iter().find(|r| r.target == b.target) {
            Some(r) => {
                out_of_range.extend(b.check(r).iter().map(ToString::to_string));
                let missing = b.unmeasured(r);
                if !missing.is_empty() {
                    progress(&format!(
                        "not measured this run, not judged: {} {}",
                        b.target,
                        missing.join(", ")
                    ));
                }
            }
            None => progress(&format!("baseline for {} has no measured target", b.target)),
        }
    }
    Ok(BenchResult {
        run_id,
        table: table::render(&doc.targets),
        html: dir.join("index.html"),
        bench_json,
        baselines_written,
        out_of_range,
        failed,
        unstarted,
    })
}
