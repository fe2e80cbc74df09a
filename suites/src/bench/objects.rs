//! Calls whose cost depends on what the runtime holds: ExecSync into a running container,
//! List calls with N objects present, and image pulls cold and warm.

use cricket_harness::bench::CritestFile;
use cricket_harness::{CriClient, cri};

use super::pods::{create, critest_file, datapoint, pod_config, remove_pods, run_pod};
use super::{BenchConfig, Samples, both, timed};
use cricket_harness::bench::unix_ns;

/// ExecSync round trips (`probe echo`) in one running container; every reply is checked, so a
/// runtime that answers fast without running the command does not post a figure.
pub(super) async fn exec_sync(
    c: &CriClient,
    cfg: &BenchConfig,
    s: &mut Samples,
) -> Result<(), String> {
    let config = pod_config(cfg, "exec");
    let (pod, _) = run_pod(c, &config).await?;
    let measured = async {
        let (id, _) = create(c, cfg, &pod, &config, "c").await?;
        let start = cri::StartContainerRequest {
            container_id: id.clone(),
        };
        timed("StartContainer", c.start_container(start)).await?;
        for i in 0..cfg.warmup + cfg.samples {
            let req = cri::ExecSyncRequest {
                container_id: id.clone(),
                cmd: ["/bin/probe", "echo", "cricket"].map(String::from).to_vec(),
                timeout: 10,
            };
            let (r, d) = timed("ExecSync", c.exec_sync(req)).await?;
            if r.exit_code != 0 || r.stdout != b"cricket\n" {
                return Err(format!(
                    "ExecSync `probe echo cricket` answered exit {} with stdout {:?}, expected 0 and \"cricket\\n\"",
                    r.exit_code,
                    String::from_utf8_lossy(&r.stdout)
                ));
            }
            if i >= cfg.warmup {
                s.add("ExecSync", "ExecSync round trip (probe echo)", d);
            }
        }
        for i in 0..cfg.warmup + cfg.samples {
            let d = exec_streaming(c, &id).await?;
            if i >= cfg.warmup {
                s.add("Exec", "Exec + SPDY stream + status (probe echo)", d);
            }
        }
        Ok(())
    };
    let r = measured.await;
    both(r, remove_pods(c, vec![pod]).await)
}

/// What `kubectl exec` costs end to end: the Exec RPC, the SPDY upgrade and streams (as
/// client-go opens them), the command's output and its status. Checked like ExecSync.
async fn exec_streaming(c: &CriClient, id: &str) -> Result<std::time::Duration, String> {
    use cricket_harness::streaming::{RemoteCommand, StdioWanted};
    use cricket_stream::remotecommand::{ExitStatus, SPDY_CLIENT_PROTOCOLS};
    let want = StdioWanted {
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let req = cri::ExecRequest {
        container_id: id.to_string(),
        cmd: ["/bin/probe", "echo", "cricket"].map(String::from).to_vec(),
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let within = std::time::Duration::from_secs(30);
    let t = std::time::Instant::now();
    let (r, _) = timed("Exec", c.exec(req)).await?;
    let session = RemoteCommand::spdy(&r.url, &SPDY_CLIENT_PROTOCOLS, want, within)
        .await
        .map_err(|e| format!("connecting to the Exec URL {}: {e}", r.url))?;
    let out = session
        .finish(within)
        .await
        .map_err(|e| format!("the exec session: {e}"))?;
    let d = t.elapsed();
    if out.status != ExitStatus::Success || out.stdout != b"cricket\n" {
        return Err(format!(
            "streaming exec of `probe echo cricket` ended {:?} with stdout {:?}, expected success and \"cricket\\n\"",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(d)
}

/// ListPodSandbox and ListContainers (no filter, as kubelet's relist) with `size` pods of one
/// created container each present, for every size in ascending order. Objects are added
/// between sizes, never rebuilt.
pub(super) async fn lists(
    c: &CriClient,
    cfg: &BenchConfig,
    s: &mut Samples,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), String> {
    let mut sizes = cfg.list_sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let mut pods: Vec<String> = Vec::new();
    let r = async {
        for size in sizes {
            progress(&format!(
                "lists: creating {size} pods with a container each"
            ));
            grow(c, cfg, &mut pods, size).await?;
            for i in 0..cfg.warmup + cfg.samples {
                let req = cri::ListPodSandboxRequest { filter: None };
                let (r, d_pods) = timed("ListPodSandbox", c.list_pod_sandbox(req)).await?;
                let req = cri::ListContainersRequest { filter: None };
                let (rc, d_ctrs) = timed("ListContainers", c.list_containers(req)).await?;
                if r.items.len() < size || rc.containers.len() < size {
                    return Err(format!(
                        "with {size} pods of one container present, ListPodSandbox returned {} \
                         and ListContainers {}",
                        r.items.len(),
                        rc.containers.len()
                    ));
                }
                if i >= cfg.warmup {
                    let title = format!("ListPodSandbox, {size} pods present");
                    s.add(&format!("ListPodSandbox_{size}"), &title, d_pods);
                    let title = format!("ListContainers, {size} containers present");
                    s.add(&format!("ListContainers_{size}"), &title, d_ctrs);
                }
            }
        }
        Ok(())
    }
    .await;
    progress(&format!("lists: removing {} pods", pods.len()));
    both(r, remove_pods(c, pods).await)
}

/// Adds pods (each with one created, not started, container) until there are `size`, four
/// at a time: setting up is not what is measured.
async fn grow(
    c: &CriClient,
    cfg: &BenchConfig,
    pods: &mut Vec<String>,
    size: usize,
) -> Result<(), String> {
    use futures::StreamExt;
    let made: Vec<Result<String, String>> = futures::stream::iter(pods.len()..size)
        .map(|i| async move {
            let config = pod_config(cfg, &format!("list-{i}"));
            let (pod, _) = run_pod(c, &config).await?;
            create(c, cfg, &pod, &config, "c").await?;
            Ok(pod)
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut first_err = None;
    for m in made {
        match m {
            Ok(p) => pods.push(p),
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn image(reference: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec {
        image: reference.to_string(),
        ..Default::default()
    })
}

/// Warm pulls, ImageStatus and ListImages of the small image; cold pulls of the large one
/// (removed before each, so every layer crosses the wire and is unpacked again).
pub(super) async fn images(
    c: &CriClient,
    cfg: &BenchConfig,
    s: &mut Samples,
) -> Result<Vec<CritestFile>, String> {
    let mut listing = critest_file("image_listing_benchmark_data.json", &["ListImages"]);
    for i in 0..cfg.warmup + cfg.samples {
        let req = cri::ImageStatusRequest {
            image: image(&cfg.image),
            verbose: false,
        };
        let (st, d_status) = timed("ImageStatus", c.image_status(req)).await?;
        if st.image.is_none() {
            return Err(format!(
                "ImageStatus: {} is not present after a pull",
                cfg.image
            ));
        }
        let req = cri::PullImageRequest {
            image: image(&cfg.image),
            ..Default::default()
        };
        let (_, d_pull) = timed("PullImage", c.pull_image(req)).await?;
        let started = unix_ns();
        let (_, d_list) = timed(
            "ListImages",
            c.list_images(cri::ListImagesRequest { filter: None }),
        )
        .await?;
        if i >= cfg.warmup {
            s.add("ImageStatus", "ImageStatus", d_status);
            s.add("PullImage_warm", "PullImage, warm (image present)", d_pull);
            s.add("ListImages", "ListImages", d_list);
            listing.results.datapoints.push(datapoint(
                i - cfg.warmup,
                started,
                unix_ns(),
                &[d_list],
                Default::default(),
            ));
        }
    }
    let mut lifecycle = critest_file(
        "image_lifecycle_benchmark_data.json",
        &["PullImage", "ImageStatus", "RemoveImage"],
    );
    let remove = || cri::RemoveImageRequest {
        image: image(&cfg.large_image),
    };
    timed("RemoveImage", c.remove_image(remove())).await?;
    let r = cold_pulls(c, cfg, s, &mut lifecycle).await;
    // The large image is removed after each pull; after a failure midway it may not be.
    let cleanup = c
        .remove_image(remove())
        .await
        .map(drop)
        .map_err(|e| format!("RemoveImage {} (cleanup): {}", cfg.large_image, e.message()));
    both(r, cleanup)?;
    Ok(vec![lifecycle, listing])
}

async fn cold_pulls(
    c: &CriClient,
    cfg: &BenchConfig,
    s: &mut Samples,
    lifecycle: &mut CritestFile,
) -> Result<(), String> {
    let remove = || cri::RemoveImageRequest {
        image: image(&cfg.large_image),
    };
    let warmup = cfg.warmup.min(1);
    for i in 0..warmup + cfg.pulls {
        let started = unix_ns();
        let req = cri::PullImageRequest {
            image: image(&cfg.large_image),
            ..Default::default()
        };
        let (pulled, d_pull) = timed("PullImage", c.pull_image(req)).await?;
        let req = cri::ImageStatusRequest {
            image: image(&cfg.large_image),
            verbose: false,
        };
        let (st, d_status) = timed("ImageStatus", c.image_status(req)).await?;
        let size = st.image.map(|i| i.size).unwrap_or(0);
        if size < 32 << 20 {
            return Err(format!(
                "ImageStatus of {} after a pull reports {size} bytes; the large fixture image has 64 MiB",
                cfg.large_image
            ));
        }
        let (_, d_remove) = timed("RemoveImage", c.remove_image(remove())).await?;
        if i >= warmup {
            s.add(
                "PullImage_cold",
                "PullImage, cold (64 MiB in 4 layers)",
                d_pull,
            );
            s.add("RemoveImage", "RemoveImage (64 MiB image)", d_remove);
            lifecycle.results.datapoints.push(datapoint(
                i - warmup,
                started,
                unix_ns(),
                &[d_pull, d_status, d_remove],
                [("imageId".to_string(), pulled.image_ref)].into(),
            ));
        }
    }
    Ok(())
}
