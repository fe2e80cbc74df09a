//! The benchmark workloads behind `cricket bench`: what is timed and in which order. The
//! statistics and reports are `cricket_harness::bench`.
//!
//! Every figure is client-side wall time around one gRPC call (or a named sequence of them),
//! the way kubelet experiences the runtime; the client records nothing while timing
//! (`Recorder::quiet`). Images are pulled before anything is timed except the pull
//! benchmarks; the first `warmup` samples of every loop (and of every sweep level) are thrown
//! away.

mod objects;
mod pods;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use cricket_harness::bench::{BenchConfig, Workload};
use cricket_harness::bench::{BenchEnv, CritestFile, Metric, Summary, TargetBench};
use cricket_harness::host::HostInfo;
use cricket_harness::record::Recorder;
use cricket_harness::target::Target;
use cricket_harness::{CriClient, cri};

/// Samples per metric, in the order metrics were first recorded.
#[derive(Default)]
struct Samples {
    order: Vec<(String, String)>,
    by_name: BTreeMap<String, Vec<Duration>>,
}

impl Samples {
    fn add(&mut self, name: &str, title: &str, d: Duration) {
        if !self.by_name.contains_key(name) {
            self.order.push((name.to_string(), title.to_string()));
        }
        self.by_name.entry(name.to_string()).or_default().push(d);
    }

    fn into_metrics(mut self) -> Vec<Metric> {
        self.order
            .into_iter()
            .map(|(name, title)| Metric {
                summary: Summary::of(&self.by_name.remove(&name).unwrap_or_default()),
                name,
                title,
            })
            .collect()
    }
}

fn err(what: &str) -> impl FnOnce(tonic::Status) -> String + '_ {
    move |s| format!("{what}: {:?}: {}", s.code(), s.message())
}

/// Awaits one call and how long it took.
async fn timed<T>(
    what: &str,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<(T, Duration), String> {
    let t = Instant::now();
    let r = call.await.map_err(err(what))?;
    Ok((r, t.elapsed()))
}

/// The first error, with a later cleanup error appended rather than lost.
fn both(r: Result<(), String>, cleanup: Result<(), String>) -> Result<(), String> {
    match (r, cleanup) {
        (Err(e), Err(c)) => Err(format!("{e}; then cleaning up: {c}")),
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// Runs the selected workloads against one target. Whatever the outcome, the pods this run
/// labelled are removed before returning.
/// The workloads as the bench session takes them (`cricket_harness::bench::session::Workloads`).
pub fn workloads<'a>(
    target: &'a dyn Target,
    network: &'a str,
    cfg: &'a BenchConfig,
    progress: &'a (dyn Fn(&str) + Sync),
) -> futures::future::BoxFuture<'a, Result<TargetBench, String>> {
    Box::pin(run(target, network, cfg, progress))
}

pub async fn run(
    target: &dyn Target,
    network: &str,
    cfg: &BenchConfig,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<TargetBench, String> {
    let (rt, img) = target.channels();
    // Pulls of the large image and teardown of hundreds of pods can take a while on a slow
    // runtime; the deadline only bounds a hung call.
    let c = CriClient::new(
        rt,
        img,
        Duration::from_secs(120),
        Arc::new(Recorder::quiet()),
    );
    let result = measure(&c, cfg, progress).await;
    let cleanup = pods::remove_labelled(&c, &cfg.run_id).await;
    let (samples, critest, sweep) = match (result, cleanup) {
        (Ok(r), Ok(())) => r,
        (Err(e), Ok(())) | (Ok(_), Err(e)) => return Err(e),
        (Err(e), Err(c)) => return Err(format!("{e}; then cleaning up: {c}")),
    };
    let info = target.info();
    Ok(TargetBench {
        target: info.kind.clone(),
        env: BenchEnv::new(&HostInfo::probe(), info, network),
        metrics: samples.into_metrics(),
        sweep,
        critest,
    })
}

type Measured = (
    Samples,
    Vec<CritestFile>,
    Vec<cricket_harness::bench::SweepLevel>,
);

async fn measure(
    c: &CriClient,
    cfg: &BenchConfig,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Measured, String> {
    let mut s = Samples::default();
    let mut critest = Vec::new();
    c.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: cfg.image.clone(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .map_err(err("pre-pulling the image"))?;
    if cfg.wants(Workload::Pods) {
        progress("pod lifecycle, 1 container");
        critest.extend(pods::one_container(c, cfg, &mut s).await?);
        progress("pod startup, 3 containers");
        pods::three_containers(c, cfg, &mut s).await?;
    }
    if cfg.wants(Workload::Exec) {
        progress("ExecSync");
        objects::exec_sync(c, cfg, &mut s).await?;
    }
    if cfg.wants(Workload::Lists) {
        progress("lists");
        objects::lists(c, cfg, &mut s, progress).await?;
    }
    if cfg.wants(Workload::Images) {
        progress("images");
        critest.extend(objects::images(c, cfg, &mut s).await?);
    }
    let mut sweep = Vec::new();
    if cfg.wants(Workload::Sweep) && !cfg.concurrency.is_empty() {
        progress("concurrency sweep");
        sweep = pods::sweep(c, cfg).await?;
    }
    Ok((s, critest, sweep))
}
