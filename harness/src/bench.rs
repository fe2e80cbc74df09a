//! Pod-startup benchmark: the Kubernetes pod-startup SLI shape (RunPodSandbox → container
//! running, image pre-pulled), sampled N times per target after warm-up, teardown untimed.
//! Several targets run in one invocation so their figures compare under the same load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::CriClient;
use crate::cri;
use crate::record::Recorder;
use crate::target::Target;

/// Latency summary of one metric, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub n: usize,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: u64,
    /// Every sample, in the order taken.
    pub samples_us: Vec<u64>,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Self {
        let us: Vec<u64> = samples.iter().map(|d| d.as_micros() as u64).collect();
        let mut sorted = us.clone();
        sorted.sort_unstable();
        let pct = |p: f64| -> u64 {
            if sorted.is_empty() {
                return 0;
            }
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        Self {
            n: us.len(),
            p50_us: pct(50.0),
            p90_us: pct(90.0),
            p99_us: pct(99.0),
            max_us: sorted.last().copied().unwrap_or(0),
            mean_us: if us.is_empty() {
                0
            } else {
                us.iter().sum::<u64>() / us.len() as u64
            },
            samples_us: us,
        }
    }
}

/// Per-RPC and end-to-end latencies of one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetBench {
    pub target: String,
    pub runtime: String,
    /// RunPodSandbox + CreateContainer + StartContainer.
    pub pod_startup: Summary,
    pub run_pod_sandbox: Summary,
    pub create_container: Summary,
    pub start_container: Summary,
    pub teardown: Summary,
    /// Pod startup with several pods starting at once (`--concurrency`).
    pub sweep: Vec<SweepLevel>,
    /// Every measured sample in critest's `LifecycleBenchmarksResultsSet` shape.
    #[serde(skip)]
    pub critest: CritestResults,
}

/// One concurrency level: latency of each pod's startup and pods completed per second.
#[derive(Debug, Clone, Serialize)]
pub struct SweepLevel {
    pub concurrency: usize,
    pub pod_startup: Summary,
    pub pods_per_sec: f64,
}

/// Starts `cfg.pods` pods at each level of concurrency (each worker runs a pod's whole
/// lifecycle, teardown included, then the next) and reports latency and throughput.
pub async fn sweep(
    target: &dyn Target,
    cfg: &BenchConfig,
    levels: &[usize],
) -> Result<Vec<SweepLevel>, String> {
    let (rt, img) = target.channels();
    let c = CriClient::new(rt, img, Duration::from_secs(60), Arc::new(Recorder::new()));
    let mut out = Vec::new();
    for &level in levels {
        let level = level.max(1);
        let started = Instant::now();
        let workers = (0..level).map(|w| {
            let c = c.clone();
            async move {
                let mut lat = Vec::new();
                let mut i = w;
                while i < cfg.pods {
                    let s = one_pod(&c, cfg, 1_000_000 * level + i).await?;
                    lat.push(s.run + s.create + s.start);
                    i += level;
                }
                Ok::<_, String>(lat)
            }
        });
        let lat: Vec<Duration> = futures::future::try_join_all(workers)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let wall = started.elapsed().as_secs_f64().max(1e-9);
        out.push(SweepLevel {
            concurrency: level,
            pods_per_sec: lat.len() as f64 / wall,
            pod_startup: Summary::of(&lat),
        });
    }
    Ok(out)
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
    pub meta_info: std::collections::BTreeMap<String, String>,
}

fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub struct BenchConfig {
    pub pods: usize,
    pub warmup: usize,
    pub image: String,
    pub run_id: String,
}

fn err(what: &str) -> impl FnOnce(tonic::Status) -> String + '_ {
    move |s| format!("{what}: {:?}: {}", s.code(), s.message())
}

/// Runs the pod-startup benchmark against one target.
pub async fn pod_startup(target: &dyn Target, cfg: &BenchConfig) -> Result<TargetBench, String> {
    let (rt, img) = target.channels();
    let c = CriClient::new(rt, img, Duration::from_secs(60), Arc::new(Recorder::new()));
    c.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: cfg.image.clone(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .map_err(err("pre-pulling the image"))?;
    let (mut total, mut run, mut create, mut start, mut teardown) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut critest = CritestResults {
        operations_names: [
            "RunPodSandbox",
            "CreateContainer",
            "StartContainer",
            "StopAndRemovePodSandbox",
        ]
        .map(String::from)
        .to_vec(),
        num_parallel: 1,
        datapoints: Vec::new(),
    };
    for i in 0..cfg.warmup + cfg.pods {
        let PodSample {
            started_unix,
            run: d_run,
            create: d_create,
            start: d_start,
            teardown: d_teardown,
            pod,
            id,
        } = one_pod(&c, cfg, i).await?;
        if i >= cfg.warmup {
            critest.datapoints.push(CritestDatapoint {
                sample_index: i - cfg.warmup,
                start_time: started_unix,
                end_time: unix_ns(),
                operations_durations_ns: [d_run, d_create, d_start, d_teardown]
                    .iter()
                    .map(|d| d.as_nanos() as u64)
                    .collect(),
                meta_info: [
                    ("podId".to_string(), pod.clone()),
                    ("containerId".to_string(), id.clone()),
                ]
                .into(),
            });
            total.push(d_run + d_create + d_start);
            run.push(d_run);
            create.push(d_create);
            start.push(d_start);
            teardown.push(d_teardown);
        }
    }
    let info = target.info();
    Ok(TargetBench {
        target: info.kind.clone(),
        runtime: format!("{} {}", info.runtime_name, info.runtime_version),
        pod_startup: Summary::of(&total),
        run_pod_sandbox: Summary::of(&run),
        create_container: Summary::of(&create),
        start_container: Summary::of(&start),
        teardown: Summary::of(&teardown),
        sweep: Vec::new(),
        critest,
    })
}

/// One pod: run, create, start (timed), then stop and remove. Returns the four durations,
/// the start time (unix ns) and the ids.
struct PodSample {
    started_unix: i64,
    run: Duration,
    create: Duration,
    start: Duration,
    teardown: Duration,
    pod: String,
    id: String,
}

async fn one_pod(c: &CriClient, cfg: &BenchConfig, i: usize) -> Result<PodSample, String> {
    let name = format!("bench-{i}-{}", cfg.run_id);
    let pod_cfg = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            uid: name.clone(),
            namespace: "cricket-bench".into(),
            attempt: 0,
        }),
        hostname: "bench".into(),
        labels: [("cricket.run".to_string(), cfg.run_id.clone())].into(),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let ctr = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "c".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: cfg.image.clone(),
            ..Default::default()
        }),
        command: vec!["/bin/probe".into(), "sleep".into(), "inf".into()],
        labels: [("cricket.run".to_string(), cfg.run_id.clone())].into(),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    };
    let started_unix = unix_ns();
    let t0 = Instant::now();
    let pod = c
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_cfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .map_err(err("RunPodSandbox"))?
        .pod_sandbox_id;
    let t1 = Instant::now();
    let id = c
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(ctr),
            sandbox_config: Some(pod_cfg),
        })
        .await
        .map_err(err("CreateContainer"))?
        .container_id;
    let t2 = Instant::now();
    c.start_container(cri::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .map_err(err("StartContainer"))?;
    let t3 = Instant::now();
    c.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .map_err(err("StopPodSandbox"))?;
    c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .map_err(err("RemovePodSandbox"))?;
    let t4 = Instant::now();
    Ok(PodSample {
        started_unix,
        run: t1 - t0,
        create: t2 - t1,
        start: t3 - t2,
        teardown: t4 - t3,
        pod,
        id,
    })
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// The terminal table: one block per metric, one row per target, and the ratio of each
/// target's p50 to the first target's.
pub fn table(results: &[TargetBench]) -> String {
    let mut out = String::new();
    type Pick = fn(&TargetBench) -> &Summary;
    let metrics: [(&str, Pick); 5] = [
        ("pod startup (run+create+start)", |t| &t.pod_startup),
        ("RunPodSandbox", |t| &t.run_pod_sandbox),
        ("CreateContainer", |t| &t.create_container),
        ("StartContainer", |t| &t.start_container),
        ("teardown (stop+remove pod)", |t| &t.teardown),
    ];
    for t in results.iter().filter(|t| !t.sweep.is_empty()) {
        out.push_str(&format!(
            "concurrency sweep, {} (pod startup latency and pods/s incl. teardown)\n",
            t.target
        ));
        for l in &t.sweep {
            out.push_str(&format!(
                "  x{:<3} n={:<4} p50 {:>10}  p99 {:>10}  {:>7.1} pods/s\n",
                l.concurrency,
                l.pod_startup.n,
                ms(l.pod_startup.p50_us),
                ms(l.pod_startup.p99_us),
                l.pods_per_sec
            ));
        }
    }
    for (name, get) in metrics {
        out.push_str(&format!("{name}\n"));
        let base = results.first().map(|t| get(t).p50_us.max(1)).unwrap_or(1);
        for t in results {
            let s = get(t);
            out.push_str(&format!(
                "  {:<12} n={:<4} p50 {:>10}  p90 {:>10}  p99 {:>10}  max {:>10}  ({:.1}x the first target's p50)\n",
                t.target,
                s.n,
                ms(s.p50_us),
                ms(s.p90_us),
                ms(s.p99_us),
                ms(s.max_us),
                s.p50_us as f64 / base as f64
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Summary::of(&d);
        assert_eq!(
            (s.p50_us, s.p90_us, s.p99_us, s.max_us, s.n),
            (50, 90, 99, 100, 100)
        );
        let one = Summary::of(&[Duration::from_micros(7)]);
        assert_eq!((one.p50_us, one.p99_us), (7, 7));
        assert_eq!(Summary::of(&[]).p50_us, 0);
    }
}

/// A committed expectation for one target (`reports/baselines/<target>.json`), Kata-style: a
/// midpoint per metric and how far above it a p50 may go before the run fails.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Baseline {
    pub schema: String,
    pub target: String,
    /// Where the numbers come from (machine kind, date, command).
    pub measured_on: String,
    pub metrics: std::collections::BTreeMap<String, BaselineMetric>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct BaselineMetric {
    pub p50_us: u64,
    /// A p50 more than this many percent above `p50_us` is a regression.
    pub max_regression_percent: u64,
}

pub const BASELINE_SCHEMA: &str = "cricket.baseline/v1";

fn metrics_of(t: &TargetBench) -> [(&'static str, &Summary); 5] {
    [
        ("pod_startup", &t.pod_startup),
        ("run_pod_sandbox", &t.run_pod_sandbox),
        ("create_container", &t.create_container),
        ("start_container", &t.start_container),
        ("teardown", &t.teardown),
    ]
}

impl Baseline {
    /// A baseline from a measurement, allowing `percent` above each p50.
    pub fn from_bench(t: &TargetBench, percent: u64, measured_on: &str) -> Self {
        Self {
            schema: BASELINE_SCHEMA.into(),
            target: t.target.clone(),
            measured_on: measured_on.into(),
            metrics: metrics_of(t)
                .into_iter()
                .map(|(m, s)| {
                    (
                        m.to_string(),
                        BaselineMetric {
                            p50_us: s.p50_us,
                            max_regression_percent: percent,
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read baseline {}: {e}", path.display()))?;
        let b: Self =
            serde_json::from_str(&text).map_err(|e| format!("baseline {}: {e}", path.display()))?;
        if b.schema != BASELINE_SCHEMA {
            return Err(format!(
                "baseline {}: schema {:?}, expected {BASELINE_SCHEMA:?}",
                path.display(),
                b.schema
            ));
        }
        Ok(b)
    }

    /// The metrics of `t` whose p50 regressed beyond the tolerance, as readable lines.
    pub fn regressions(&self, t: &TargetBench) -> Vec<String> {
        let mut out = Vec::new();
        for (name, s) in metrics_of(t) {
            let Some(m) = self.metrics.get(name) else {
                continue;
            };
            let limit = m.p50_us.saturating_mul(100 + m.max_regression_percent) / 100;
            if s.p50_us > limit {
                out.push(format!(
                    "{} {name}: p50 {} > {} (baseline {} + {}%)",
                    t.target,
                    ms(s.p50_us),
                    ms(limit),
                    ms(m.p50_us),
                    m.max_regression_percent
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod baseline_tests {
    use super::*;

    fn bench(p50_ms: u64) -> TargetBench {
        let s = Summary::of(&[Duration::from_millis(p50_ms)]);
        TargetBench {
            target: "bundled".into(),
            runtime: "cricket 0.1.0".into(),
            pod_startup: s.clone(),
            run_pod_sandbox: s.clone(),
            create_container: s.clone(),
            start_container: s.clone(),
            teardown: s,
            sweep: Vec::new(),
            critest: CritestResults::default(),
        }
    }

    #[test]
    fn regressions_beyond_tolerance_only() {
        let b = Baseline::from_bench(&bench(10), 50, "test");
        assert!(
            b.regressions(&bench(15)).is_empty(),
            "exactly at +50% is allowed"
        );
        assert!(b.regressions(&bench(9)).is_empty());
        let r = b.regressions(&bench(16));
        assert_eq!(r.len(), 5);
        assert!(r[0].contains("pod_startup"), "{r:?}");
    }
}
