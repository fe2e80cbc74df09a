//! Runs selected cases against a target: in parallel up to `jobs`, each under its timeout,
//! each followed by cleanup of what it created (also after failure, timeout, panic or Ctrl-C),
//! then a leak check over the whole run. Emits events; reporters do the rest.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cricket_proto::v1 as cri;
use futures::{FutureExt, StreamExt};
use tokio::sync::{Notify, mpsc};
use tonic::Code;

use cricket_fixtures::catalog::Catalog;

use crate::case::{CaseDef, Need, Tag};
use crate::client::CriClient;
use crate::cx::{CASE_LABEL, Cx, RUN_LABEL, SuiteOptions};
use crate::event::{CaseRecord, Counts, Event, Leak, Outcome, Reporter, RunMeta, RunSummary};
use crate::expectations::Expectations;
use crate::expectations::Verdict;
use crate::failure::{CaseError, Failure, FailureKind, checks};
use crate::host::{self, HostInfo};
use crate::record::Recorder;
use crate::target::{Target, TargetInfo};

/// How long cleanup of one case may take before it is reported as failed.
const CLEANUP_BUDGET: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub run_id: Arc<str>,
    pub jobs: usize,
    /// Deadline of every single RPC.
    pub rpc_deadline: Duration,
    /// Replaces every case's own timeout when set (`--case-timeout`).
    pub case_timeout: Option<Duration>,
    pub expectations: Expectations,
    pub host: HostInfo,
    /// Where cases get image references from.
    pub images: Arc<Catalog>,
    pub options: Arc<SuiteOptions>,
}

/// Stops a run: no new case starts, running cases are cut short and cleaned up.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<(Mutex<Option<String>>, Notify)>,
}

impl Cancel {
    pub fn cancel(&self, reason: impl Into<String>) {
        {
            let mut r = match self.inner.0.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if r.is_none() {
                *r = Some(reason.into());
            }
        }
        self.inner.1.notify_waiters();
    }

    pub fn reason(&self) -> Option<String> {
        match self.inner.0.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub async fn cancelled(&self) -> String {
        loop {
            let notified = self.inner.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.reason() {
                return r;
            }
            notified.await;
        }
    }
}

/// Runs `cases` and feeds every event to `reporters`. Returns the summary and any reporter
/// errors (a report that could not be written).
pub async fn run(
    cases: &[&'static CaseDef],
    target: &dyn Target,
    cfg: &RunConfig,
    meta: RunMeta,
    reporters: &mut [Box<dyn Reporter>],
    cancel: &Cancel,
) -> (RunSummary, Vec<String>) {
    let mut errors = Vec::new();
    let mut emit = |ev: Event, errors: &mut Vec<String>| {
        for r in reporters.iter_mut() {
            if let Err(e) = r.on_event(&ev) {
                errors.push(format!("{e:#}"));
            }
        }
    };
    let started = Instant::now();
    let info = Arc::new(meta.target.clone());
    emit(Event::RunStarted(meta), &mut errors);

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut counts = Counts::default();
    // Ordinary cases share the runtime; a `serial` one takes it whole.
    let exclusive = tokio::sync::RwLock::new(());
    {
        let work = futures::stream::iter(cases.iter().copied())
            .map(|case| {
                let tx = tx.clone();
                let info = info.clone();
                let exclusive = &exclusive;
                async move {
                    let _shared;
                    let _alone;
                    if case.tags.contains(&Tag::Serial) {
                        _alone = exclusive.write().await;
                    } else {
                        _shared = exclusive.read().await;
                    }
                    if cancel.reason().is_some() {
                        return;
                    }
                    let _ = tx.send(Event::CaseStarted {
                        id: case.id.to_string(),
                    });
                    let record = run_case(case, target, cfg, info, cancel).await;
                    let _ = tx.send(Event::CaseFinished(record));
                }
            })
            .buffer_unordered(cfg.jobs.max(1))
            .collect::<Vec<()>>();
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                Some(ev) = rx.recv() => {
                    if let Event::CaseFinished(r) = &ev {
                        counts.add(r.outcome);
                    }
                    emit(ev, &mut errors);
                }
                _ = &mut work => break,
            }
        }
    }
    drop(tx);
    while let Some(ev) = rx.recv().await {
        if let Event::CaseFinished(r) = &ev {
            counts.add(r.outcome);
        }
        emit(ev, &mut errors);
    }

    let leaks = if target.check_alive().is_ok() {
        leak_check(target, cfg).await
    } else {
        Vec::new()
    };
    remove_scratch(&crate::cx::run_scratch_root(&cfg.run_id));
    let summary = RunSummary {
        counts,
        duration_us: started.elapsed().as_micros() as u64,
        leaks,
        interrupted: cancel.reason(),
    };
    emit(Event::RunFinished(summary.clone()), &mut errors);
    (summary, errors)
}

/// Runs one case to a record: pre-checks, body under timeout and cancellation, cleanup,
/// expectations.
pub async fn run_case(
    case: &'static CaseDef,
    target: &dyn Target,
    cfg: &RunConfig,
    info: Arc<TargetInfo>,
    cancel: &Cancel,
) -> CaseRecord {
    let recorder = Arc::new(Recorder::new());
    let started = Instant::now();
    let finish =
        |outcome: Outcome, reason: Option<String>, failure: Option<Failure>, rec: &Recorder| {
            let taken = rec.take();
            CaseRecord {
                id: case.id.to_string(),
                suite: case.suite,
                area: case.area().to_string(),
                summary: case.summary.to_string(),
                outcome,
                reason,
                failure,
                duration_us: started.elapsed().as_micros() as u64,
                steps: taken.steps,
                rpcs: taken.rpcs,
                rpcs_omitted: taken.rpcs_omitted,
                notes: taken.notes,
            }
        };

    if let Some(reason) = cfg.expectations.skip_reason(case.id) {
        return finish(Outcome::Skip, Some(reason.to_string()), None, &recorder);
    }
    let unmet = |n: &Need| host::unmet(*n, &cfg.host).or_else(|| info.unmet(*n));
    if let Some(reason) = case.needs.iter().find_map(unmet) {
        return finish(Outcome::Skip, Some(reason), None, &recorder);
    }
    if let Err(dead) = target.check_alive() {
        cancel.cancel(format!("target stopped: {dead}"));
        let f = Failure::new(
            FailureKind::TargetExited,
            checks::TARGET_DOWN,
            format!("target is not running: {dead}"),
        );
        return finish(Outcome::Fail, None, Some(f), &recorder);
    }

    let (rt, img) = target.channels();
    let client = CriClient::new(rt, img, cfg.rpc_deadline, recorder.clone());
    let cx = Cx::new(
        client.clone(),
        cfg.run_id.clone(),
        case.id,
        info,
        cfg.images.clone(),
        cfg.options.clone(),
    );
    let timeout = cfg.case_timeout.unwrap_or(case.timeout);
    let body = AssertUnwindSafe((case.run)(&cx)).catch_unwind();
    let harness_failure =
        |kind, check, message| Err(CaseError::from(Failure::new(kind, check, message)));
    let result: Result<(), CaseError> = tokio::select! {
        r = tokio::time::timeout(timeout, body) => match r {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => harness_failure(FailureKind::Panic, checks::PANIC, format!("case panicked: {}", panic_text(&*panic))),
            Err(_) => harness_failure(FailureKind::Timeout, checks::TIMEOUT, format!("timed out after {}", humanize(timeout))),
        },
        reason = cancel.cancelled() => harness_failure(FailureKind::Interrupted, checks::INTERRUPTED, format!("interrupted ({reason}) before the case finished")),
    };
    drop(cx);
    let result = result.map_err(|e| match e {
        CaseError::Fail(mut f) => {
            if f.step.is_none() {
                f.step = recorder.current_step();
            }
            if f.request.is_none() {
                f.request = recorder.last_request();
            }
            CaseError::Fail(f)
        }
        skip => skip,
    });
    let cleanup_error = cleanup(&client, &recorder).await;
    remove_scratch(&crate::cx::scratch_dir(&cfg.run_id, case.id));
    let dead = target.check_alive().err();
    if let Some(d) = &dead {
        cancel.cancel(format!("target stopped: {d}"));
    }

    let result = match result {
        Err(CaseError::Skip { reason }) => {
            return finish(Outcome::Skip, Some(reason), None, &recorder);
        }
        Err(CaseError::Fail(mut f)) => {
            if let Some(d) = dead {
                // The target dying explains the failure better than whatever the case saw.
                f.message = format!("{}\n  (the target exited: {d})", f.message);
                f.kind = FailureKind::TargetExited;
                f.check = checks::TARGET_EXITED.to_string();
            }
            Err(*f)
        }
        Ok(()) => match cleanup_error {
            Some(e) => {
                let mut f = Failure::new(
                    FailureKind::Cleanup,
                    checks::CLEANUP,
                    format!("cleanup failed: {e}"),
                );
                f.step = Some("cleanup".into());
                Err(f)
            }
            None => Ok(()),
        },
    };
    match cfg.expectations.judge(case.id, result) {
        Verdict::Pass => finish(Outcome::Pass, None, None, &recorder),
        // The failure is kept: an expected failure still shows what it was.
        Verdict::Xfail(reason, f) => finish(Outcome::Xfail, Some(reason), Some(f), &recorder),
        Verdict::Fail(f) => finish(Outcome::Fail, None, Some(f), &recorder),
        Verdict::Xpass(f) => {
            let reason = cfg.expectations.xfail(case.id).map(|p| p.reason.clone());
            finish(Outcome::Xpass, reason, Some(f), &recorder)
        }
    }
}

/// Removes what the case created, containers first. NotFound is fine (the case removed it, or
/// the runtime removed it with its sandbox). Returns the first real error.
async fn cleanup(client: &CriClient, recorder: &Recorder) -> Option<String> {
    let created = recorder.created();
    if created.containers.is_empty() && created.sandboxes.is_empty() {
        return None;
    }
    let began = recorder.begin_step("cleanup");
    let work = async {
        let mut first_err = None;
        let mut note = |what: &str, r: Result<(), tonic::Status>| {
            if let Err(s) = r
                && s.code() != Code::NotFound
                && first_err.is_none()
            {
                first_err = Some(format!("{what}: {:?}: {}", s.code(), s.message()));
            }
        };
        for id in created.containers.iter().rev() {
            let r = client
                .stop_container(cri::StopContainerRequest {
                    container_id: id.clone(),
                    timeout: 0,
                })
                .await;
            note(&format!("StopContainer {id}"), r.map(drop));
            let r = client
                .remove_container(cri::RemoveContainerRequest {
                    container_id: id.clone(),
                })
                .await;
            note(&format!("RemoveContainer {id}"), r.map(drop));
        }
        for id in created.sandboxes.iter().rev() {
            let r = client
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await;
            note(&format!("StopPodSandbox {id}"), r.map(drop));
            let r = client
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await;
            note(&format!("RemovePodSandbox {id}"), r.map(drop));
        }
        first_err
    };
    let result = match tokio::time::timeout(CLEANUP_BUDGET, work).await {
        Ok(r) => r,
        Err(_) => Some(format!(
            "cleanup did not finish within {}",
            humanize(CLEANUP_BUDGET)
        )),
    };
    recorder.end_step("cleanup", began, result.is_none());
    result
}

/// Lists what still carries this run's label, reports it, and tries once more to remove it.
async fn leak_check(target: &dyn Target, cfg: &RunConfig) -> Vec<Leak> {
    let (rt, img) = target.channels();
    let client = CriClient::new(rt, img, cfg.rpc_deadline, Arc::new(Recorder::new()));
    let selector =
        std::collections::HashMap::from([(RUN_LABEL.to_string(), cfg.run_id.to_string())]);
    let mut leaks = Vec::new();
    let case_of = |labels: &std::collections::HashMap<String, String>| {
        labels.get(CASE_LABEL).cloned().unwrap_or_default()
    };
    let containers = client
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                label_selector: selector.clone(),
                ..Default::default()
            }),
        })
        .await;
    if let Ok(list) = containers {
        for c in list.containers {
            leaks.push(Leak {
                kind: "container".into(),
                id: c.id.clone(),
                case: case_of(&c.labels),
            });
            let _ = client
                .stop_container(cri::StopContainerRequest {
                    container_id: c.id.clone(),
                    timeout: 0,
                })
                .await;
            let _ = client
                .remove_container(cri::RemoveContainerRequest { container_id: c.id })
                .await;
        }
    }
    let pods = client
        .list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                label_selector: selector,
                ..Default::default()
            }),
        })
        .await;
    if let Ok(list) = pods {
        for p in list.items {
            leaks.push(Leak {
                kind: "sandbox".into(),
                id: p.id.clone(),
                case: case_of(&p.labels),
            });
            let _ = client
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: p.id.clone(),
                })
                .await;
            let _ = client
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: p.id,
                })
                .await;
        }
    }
    leaks
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// `1.5s`, `250ms`, `2m0s`: durations as people read them in failure messages.
pub fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{}s", s as u64)
        } else {
            format!("{s:.1}s")
        }
    } else {
        format!("{}m{}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Removes a scratch directory, unmounting anything a runtime left mounted inside it first.
fn remove_scratch(dir: &std::path::Path) {
    if dir.exists() {
        let _ = crate::target::remove_state_dir(dir);
    }
}
