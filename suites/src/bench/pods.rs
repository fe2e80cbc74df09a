//! Pod lifecycles: startup (the Kubernetes pod-startup SLI shape, RunPodSandbox → every
//! container running, images pre-pulled), each lifecycle RPC and status call on its own, the
//! full teardown, and the concurrency sweep.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cricket_harness::bench::{
    CritestDatapoint, CritestFile, CritestResults, Summary, SweepLevel, unix_ns,
};
use cricket_harness::{CriClient, cri};

use super::{BenchConfig, Samples, err, timed};

const LABEL_RUN: &str = "cricket.run";

/// Grace period of StopContainer: the containers run `probe pause`, which exits on SIGTERM,
/// so this is a graceful stop as kubelet does it and never waits the whole period.
const STOP_TIMEOUT_S: i64 = 10;

pub(super) fn pod_config(cfg: &BenchConfig, key: &str) -> cri::PodSandboxConfig {
    let name = format!("bench-{key}-{}", cfg.run_id);
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            uid: name,
            namespace: "cricket-bench".into(),
            attempt: 0,
        }),
        hostname: "bench".into(),
        labels: [(LABEL_RUN.to_string(), cfg.run_id.clone())].into(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(crate::kit::kubelet::sandbox_security_context()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(cfg: &BenchConfig, name: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: cfg.image.clone(),
            ..Default::default()
        }),
        command: vec!["/bin/probe".into(), "pause".into()],
        labels: [(LABEL_RUN.to_string(), cfg.run_id.clone())].into(),
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(crate::kit::kubelet::container_security_context()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) async fn run_pod(
    c: &CriClient,
    config: &cri::PodSandboxConfig,
) -> Result<(String, Duration), String> {
    let (r, d) = timed(
        "RunPodSandbox",
        c.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        }),
    )
    .await?;
    Ok((r.pod_sandbox_id, d))
}

pub(super) async fn create(
    c: &CriClient,
    cfg: &BenchConfig,
    pod: &str,
    pod_config: &cri::PodSandboxConfig,
    name: &str,
) -> Result<(String, Duration), String> {
    let (r, d) = timed(
        "CreateContainer",
        c.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(container_config(cfg, name)),
            sandbox_config: Some(pod_config.clone()),
        }),
    )
    .await?;
    Ok((r.container_id, d))
}

async fn start(c: &CriClient, id: &str) -> Result<Duration, String> {
    let req = cri::StartContainerRequest {
        container_id: id.to_string(),
    };
    Ok(timed("StartContainer", c.start_container(req)).await?.1)
}

/// StopPodSandbox then RemovePodSandbox, each timed.
pub(super) async fn stop_and_remove_pod(
    c: &CriClient,
    pod: &str,
) -> Result<(Duration, Duration), String> {
    let id = || pod.to_string();
    let stop = cri::StopPodSandboxRequest {
        pod_sandbox_id: id(),
    };
    let (_, d_stop) = timed("StopPodSandbox", c.stop_pod_sandbox(stop)).await?;
    let remove = cri::RemovePodSandboxRequest {
        pod_sandbox_id: id(),
    };
    let (_, d_remove) = timed("RemovePodSandbox", c.remove_pod_sandbox(remove)).await?;
    Ok((d_stop, d_remove))
}

/// Times every call of a one-container pod's life, in the order kubelet makes them, and the
/// same samples in critest's pod and container benchmark files.
pub(super) async fn one_container(
    c: &CriClient,
    cfg: &BenchConfig,
    s: &mut Samples,
) -> Result<Vec<CritestFile>, String> {
    let mut pod_file = critest_file(
        "pod_benchmark_data.json",
        &[
            "RunPodSandbox",
            "PodSandboxStatus",
            "StopPodSandbox",
            "RemovePodSandbox",
        ],
    );
    let mut ctr_file = critest_file(
        "container_benchmark_data.json",
        &[
            "CreateContainer",
            "StartContainer",
            "ContainerStatus",
            "StopContainer",
            "RemoveContainer",
        ],
    );
    for i in 0..cfg.warmup + cfg.samples {
        let started = unix_ns();
        let config = pod_config(cfg, &format!("1c-{i}"));
        let (pod, d_run) = run_pod(c, &config).await?;
        let status = cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        };
        let (st, d_pstatus) = timed("PodSandboxStatus", c.pod_sandbox_status(status)).await?;
        let ready = st.status.map(|s| s.state) == Some(cri::PodSandboxState::SandboxReady as i32);
        if !ready {
            return Err(format!(
                "PodSandboxStatus: pod {pod} is not SANDBOX_READY after RunPodSandbox"
            ));
        }
        let (id, d_create) = create(c, cfg, &pod, &config, "c").await?;
        let d_start = start(c, &id).await?;
        let status = cri::ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        };
        let (st, d_cstatus) = timed("ContainerStatus", c.container_status(status)).await?;
        let running =
            st.status.map(|s| s.state) == Some(cri::ContainerState::ContainerRunning as i32);
        if !running {
            return Err(format!(
                "ContainerStatus: container {id} is not RUNNING after StartContainer"
            ));
        }
        let stop = cri::StopContainerRequest {
            container_id: id.clone(),
            timeout: STOP_TIMEOUT_S,
        };
        let (_, d_cstop) = timed("StopContainer", c.stop_container(stop)).await?;
        let remove = cri::RemoveContainerRequest {
            container_id: id.clone(),
        };
        let (_, d_cremove) = timed("RemoveContainer", c.remove_container(remove)).await?;
        let (d_pstop, d_premove) = stop_and_remove_pod(c, &pod).await?;
        if i < cfg.warmup {
            continue;
        }
        let index = i - cfg.warmup;
        s.add(
            "pod_startup_1c",
            "pod startup, 1 container",
            d_run + d_create + d_start,
        );
        s.add(
            "teardown_1c",
            "teardown, 1 container",
            d_cstop + d_cremove + d_pstop + d_premove,
        );
        for (name, d) in [
            ("RunPodSandbox", d_run),
            ("PodSandboxStatus", d_pstatus),
            ("CreateContainer", d_create),
            ("StartContainer", d_start),
            ("ContainerStatus", d_cstatus),
            ("StopContainer", d_cstop),
            ("RemoveContainer", d_cremove),
            ("StopPodSandbox", d_pstop),
            ("RemovePodSandbox", d_premove),
        ] {
            s.add(name, name, d);
        }
        let meta = |k: &str, v: &str| (k.to_string(), v.to_string());
        let ended = unix_ns();
        pod_file.results.datapoints.push(datapoint(
            index,
            started,
            ended,
            &[d_run, d_pstatus, d_pstop, d_premove],
            [
                meta("podId", &pod),
                meta(
                    "podSandboxName",
                    &config.metadata.map(|m| m.name).unwrap_or_default(),
                ),
            ]
            .into(),
        ));
        ctr_file.results.datapoints.push(datapoint(
            index,
            started,
            ended,
            &[d_create, d_start, d_cstatus, d_cstop, d_cremove],
            [meta("podId", &pod), meta("containerId", &id)].into(),
        ));
    }
    Ok(vec![pod_file, ctr_file])
}

/// A pod of three containers created and started one after the other (as kubelet's
/// SyncPod does), torn down by StopPodSandbox + RemovePodSandbox alone — the runtime stops
/// and removes the containers itself.
pub(super) async fn three_containers(
    c: &CriClient,
    cfg: &BenchConfig,
    s: &mut Samples,
) -> Result<(), String> {
    for i in 0..cfg.warmup + cfg.samples {
        let config = pod_config(cfg, &format!("3c-{i}"));
        let (pod, mut startup) = run_pod(c, &config).await?;
        for n in 0..3 {
            let (id, d_create) = create(c, cfg, &pod, &config, &format!("c{n}")).await?;
            startup += d_create + start(c, &id).await?;
        }
        let (d_stop, d_remove) = stop_and_remove_pod(c, &pod).await?;
        if i >= cfg.warmup {
            s.add("pod_startup_3c", "pod startup, 3 containers", startup);
            s.add(
                "teardown_3c",
                "teardown, 3 containers (by pod)",
                d_stop + d_remove,
            );
        }
    }
    Ok(())
}

/// At each level, `level` workers run whole one-container pod lifecycles back to back until
/// `samples` pods have started; latency of each startup and pods completed per second. Each
/// level starts with `warmup` untimed lifecycles run `level` at a time.
pub(super) async fn sweep(c: &CriClient, cfg: &BenchConfig) -> Result<Vec<SweepLevel>, String> {
    let lifecycle = |key: String| async move {
        let config = pod_config(cfg, &key);
        let (pod, d_run) = run_pod(c, &config).await?;
        let started = async {
            let (id, d_create) = create(c, cfg, &pod, &config, "c").await?;
            Ok::<_, String>(d_run + d_create + start(c, &id).await?)
        }
        .await;
        let torn = stop_and_remove_pod(c, &pod).await.map(drop);
        let d = started.map_err(|e| match &torn {
            Err(t) => format!("{e}; then cleaning up: {t}"),
            Ok(()) => e,
        })?;
        torn.map(|()| d)
    };
    let mut out = Vec::new();
    let mut levels = cfg.concurrency.clone();
    levels.sort_unstable();
    levels.dedup();
    for level in levels {
        // More workers than pods would not run at that concurrency.
        let level = level.clamp(1, cfg.samples.max(1));
        if out.iter().any(|l: &SweepLevel| l.concurrency == level) {
            continue;
        }
        let run_batch = |first: usize, count: usize, keyp: &'static str| {
            let workers = (0..level).map(move |w| async move {
                let mut lat = Vec::new();
                let mut errors = Vec::new();
                let mut i = w;
                while i < count {
                    match lifecycle(format!("{keyp}{level}-{}", first + i)).await {
                        Ok(d) => lat.push(d),
                        Err(e) => {
                            errors.push(e);
                            break;
                        }
                    }
                    i += level;
                }
                (lat, errors)
            });
            // Every worker finishes its call before the level ends, even after another
            // failed: an abandoned RunPodSandbox could otherwise leave a pod behind.
            futures::future::join_all(workers)
        };
        let (_, errors): (Vec<_>, Vec<_>) = run_batch(0, cfg.warmup, "w").await.into_iter().unzip();
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(e);
        }
        let started = Instant::now();
        let (lat, errors): (Vec<Vec<Duration>>, Vec<Vec<String>>) =
            run_batch(0, cfg.samples, "x").await.into_iter().unzip();
        let wall = started.elapsed().as_secs_f64().max(1e-9);
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(e);
        }
        let lat: Vec<Duration> = lat.into_iter().flatten().collect();
        out.push(SweepLevel {
            concurrency: level,
            pods_per_sec: lat.len() as f64 / wall,
            pod_startup: Summary::of(&lat),
        });
    }
    Ok(out)
}

/// Stops and removes every pod carrying this run's label (after a failure midway, or objects
/// a list benchmark left). Containers go with their pods.
pub(super) async fn remove_labelled(c: &CriClient, run_id: &str) -> Result<(), String> {
    let filter = cri::PodSandboxFilter {
        label_selector: [(LABEL_RUN.to_string(), run_id.to_string())].into(),
        ..Default::default()
    };
    let pods = c
        .list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await
        .map_err(err("ListPodSandbox (cleanup)"))?
        .items;
    remove_pods(c, pods.into_iter().map(|p| p.id).collect()).await
}

/// Removes pods four at a time: teardown is not what is measured here, but hundreds of
/// pods one by one would dominate the run time on a slow runtime.
pub(super) async fn remove_pods(c: &CriClient, ids: Vec<String>) -> Result<(), String> {
    use futures::StreamExt;
    let results: Vec<Result<_, String>> = futures::stream::iter(ids)
        .map(|id| async move { stop_and_remove_pod(c, &id).await })
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().try_for_each(|r| r.map(drop))
}

pub(super) fn critest_file(file: &'static str, ops: &[&str]) -> CritestFile {
    CritestFile {
        file,
        results: CritestResults {
            operations_names: ops.iter().map(|s| s.to_string()).collect(),
            num_parallel: 1,
            datapoints: Vec::new(),
        },
    }
}

pub(super) fn datapoint(
    index: usize,
    started: i64,
    ended: i64,
    ops: &[Duration],
    meta_info: BTreeMap<String, String>,
) -> CritestDatapoint {
    CritestDatapoint {
        sample_index: index,
        start_time: started,
        end_time: ended,
        operations_durations_ns: ops
            .iter()
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .collect(),
        meta_info,
    }
}
