//! Benchmark runs, results and their reports. The workloads live in `cricket-suites`
//! (`bench/`); this module is how a run is set up (`config`, `session`), what the workloads
//! produce and what reads it: metrics with hdrhistogram statistics,
//! the environment they were measured in, `bench.json`, critest-compatible files, the
//! terminal table, the HTML page and the baselines a later run is held to.
//!
//! Several targets are measured in one invocation so their figures compare under the same
//! machine load; every report puts them side by side with ratios.

pub mod baseline;
pub mod config;
pub mod html;
pub mod session;
pub mod stats;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::{CgroupMode, HostInfo};

pub use baseline::Baseline;
pub use config::{BenchConfig, Workload};
pub use stats::Summary;

pub const BENCH_SCHEMA: &str = "cricket.bench/v2";

/// One measured quantity of one target, e.g. `pod_startup_1c` or `ListContainers_500`.
/// `name` is the stable key baselines and `cricket diff` match on; `title` is for people.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: String,
    pub title: String,
    pub summary: Summary,
}

/// What the figures depend on besides the runtime's code.
#[derive(Debug, Clone, Serialize)]
pub struct BenchEnv {
    pub kernel: String,
    pub cgroup: CgroupMode,
    pub cpus: usize,
    pub target: String,
    pub runtime_name: String,
    pub runtime_version: String,
    pub runtime_api_version: String,
    /// Pod networking: a CNI plugin chain, the bundled runtime's bridge, or none.
    pub network: String,
    /// Whether the host's cgroups are mounted with `favordynmods` (see
    /// [`crate::host::cgroup_favordynmods_from`]): worth ~10 ms per container start to every
    /// runtime alike.
    pub cgroup_favordynmods: bool,
}

impl BenchEnv {
    pub fn new(host: &HostInfo, info: &crate::target::TargetInfo, network: &str) -> Self {
        Self {
            kernel: host.kernel.clone(),
            cgroup: host.cgroup,
            cpus: host.cpus,
            target: info.kind.clone(),
            runtime_name: info.runtime_name.clone(),
            runtime_version: info.runtime_version.clone(),
            runtime_api_version: info.runtime_api_version.clone(),
            network: network.to_string(),
            cgroup_favordynmods: crate::host::cgroup_favordynmods_from(
                &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
            ),
        }
    }
}

/// Every figure of one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetBench {
    pub target: String,
    pub env: BenchEnv,
    pub metrics: Vec<Metric>,
    /// Pod startup with several pods starting at once (`--concurrency`).
    pub sweep: Vec<SweepLevel>,
    /// The same samples in critest's `LifecycleBenchmarksResultsSet` files.
    #[serde(skip)]
    pub critest: Vec<CritestFile>,
}

impl TargetBench {
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// One concurrency level: latency of each pod's startup and pods completed per second.
#[derive(Debug, Clone, Serialize)]
pub struct SweepLevel {
    pub concurrency: usize,
    pub pod_startup: Summary,
    /// Whole pod lifecycles (startup and teardown) completed per second of wall time.
    pub pods_per_sec: f64,
}

/// critest's benchmark output (`pkg/benchmark/util.go`), so dashboards built for
/// `critest -benchmark` can read cricket's samples.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CritestResults {
    pub operations_names: Vec<String>,
    pub num_parallel: u32,
    pub datapoints: Vec<CritestDatapoint>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CritestDatapoint {
    pub sample_index: usize,
    pub start_time: i64,
    pub end_time: i64,
    pub operations_durations_ns: Vec<u64>,
    pub meta_info: BTreeMap<String, String>,
}

/// One critest output file: `pod_benchmark_data.json`, `container_benchmark_data.json`, …
#[derive(Debug, Clone)]
pub struct CritestFile {
    pub file: &'static str,
    pub results: CritestResults,
}

/// `bench.json`: the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchDoc {
    pub schema: &'static str,
    pub run_id: String,
    pub host: HostInfo,
    /// The knobs the run used (samples, warm-up, list sizes, concurrency levels, …).
    pub config: serde_json::Value,
    pub targets: Vec<TargetBench>,
}

/// Writes `bench.json` (at `json`, or in `dir`), the critest files under
/// `dir/critest/<target>/` and `dir/index.html`. Returns the bench.json path.
pub fn write_reports(doc: &BenchDoc, dir: &Path, json: Option<&Path>) -> Result<PathBuf, String> {
    let write = |path: &Path, bytes: Vec<u8>| -> Result<(), String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    for t in &doc.targets {
        for f in &t.critest {
            write(
                &dir.join("critest").join(&t.target).join(f.file),
                pretty(&f.results)?,
            )?;
        }
    }
    write(&dir.join("index.html"), html::page(doc).into_bytes())?;
    let path = json.map_or_else(|| dir.join("bench.json"), Path::to_path_buf);
    write(&path, pretty(doc)?)?;
    Ok(path)
}

fn pretty<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec_pretty(v).map_err(|e| format!("encoding JSON: {e}"))
}

/// Nanoseconds since the epoch, for critest's `startTime`/`endTime`.
pub fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
