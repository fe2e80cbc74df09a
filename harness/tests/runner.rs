//! Runner behaviour against a small in-process CRI server: outcomes, expectations, timeouts,
//! cleanup after failure/timeout/panic/cancel, leak reports and a target that dies mid-run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cricket_harness::event::{
    CaseRecord, Event, Outcome, Reporter, RunMeta, RunSummary, SelectionMeta,
};
use cricket_harness::expectations::Expectations;
use cricket_harness::host::HostInfo;
use cricket_harness::runner::{self, Cancel, RunConfig};
use cricket_harness::target::{Target, TargetInfo};
use cricket_harness::{CaseDef, CaseError, Cx, FailureKind, Suite, Tag, case_fn, cri, ensure};
use cricket_proto::{RuntimeService, RuntimeServiceServer};
use futures::FutureExt;
use futures::future::BoxFuture;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Sandboxes by id, with their labels. RemovePodSandbox fails for sandboxes named `stuck*`.
#[derive(Default, Clone)]
struct Fake {
    pods: Arc<Mutex<HashMap<String, HashMap<String, String>>>>,
    stuck: Arc<Mutex<Vec<String>>>,
    next: Arc<Mutex<u32>>,
}

impl Fake {
    fn pods(&self) -> Vec<String> {
        let mut v: Vec<String> = self.pods.lock().expect("lock").keys().cloned().collect();
        v.sort();
        v
    }
}

#[tonic::async_trait]
impl RuntimeService for Fake {
    async fn version(
        &self,
        _: Request<cri::VersionRequest>,
    ) -> Result<Response<cri::VersionResponse>, Status> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "1.0.0".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<cri::RunPodSandboxRequest>,
    ) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
        let cfg = r
            .into_inner()
            .config
            .ok_or_else(|| Status::invalid_argument("config is required"))?;
        let id = {
            let mut n = self.next.lock().expect("lock");
            *n += 1;
            format!("pod{n}")
        };
        if cfg
            .metadata
            .as_ref()
            .is_some_and(|m| m.name.starts_with("stuck"))
        {
            self.stuck.lock().expect("lock").push(id.clone());
        }
        self.pods
            .lock()
            .expect("lock")
            .insert(id.clone(), cfg.labels);
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        _: Request<cri::StopPodSandboxRequest>,
    ) -> Result<Response<cri::StopPodSandboxResponse>, Status> {
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<cri::RemovePodSandboxRequest>,
    ) -> Result<Response<cri::RemovePodSandboxResponse>, Status> {
        let id = r.into_inner().pod_sandbox_id;
        if self.stuck.lock().expect("lock").contains(&id) {
            return Err(Status::internal(format!("sandbox {id} is stuck")));
        }
        self.pods.lock().expect("lock").remove(&id);
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<cri::ListPodSandboxRequest>,
    ) -> Result<Response<cri::ListPodSandboxResponse>, Status> {
        let selector = r
            .into_inner()
            .filter
            .map(|f| f.label_selector)
            .unwrap_or_default();
        let items = self
            .pods
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, labels)| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .map(|(id, labels)| cri::PodSandbox {
                id: id.clone(),
                labels: labels.clone(),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(cri::ListPodSandboxResponse { items }))
    }

    async fn list_containers(
        &self,
        _: Request<cri::ListContainersRequest>,
    ) -> Result<Response<cri::ListContainersResponse>, Status> {
        Ok(Response::new(cri::ListContainersResponse::default()))
    }
}

struct FakeTarget {
    info: TargetInfo,
    channel: Channel,
    dead: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl Target for FakeTarget {
    fn info(&self) -> &TargetInfo {
        &self.info
    }
    fn channels(&self) -> (Channel, Channel) {
        (self.channel.clone(), self.channel.clone())
    }
    fn check_alive(&self) -> Result<(), String> {
        if self.dead.load(Ordering::SeqCst) {
            Err("fake runtime crashed".into())
        } else {
            Ok(())
        }
    }
    fn stop(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        async { Ok(()) }.boxed()
    }
}

async fn start_fake() -> (Fake, FakeTarget) {
    let fake = Fake::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("fake.sock");
    let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
    let svc = RuntimeServiceServer::new(fake.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let uri = format!("unix://{}", sock.display());
    let channel = cricket_harness::client::connect(&uri, Duration::from_secs(5))
        .await
        .expect("connect");
    let info = TargetInfo {
        kind: "endpoint".into(),
        endpoint: uri,
        ..Default::default()
    };
    (
        fake,
        FakeTarget {
            info,
            channel,
            dead: Arc::new(AtomicBool::new(false)),
            _dir: dir,
        },
    )
}

fn sandbox_request(cx: &Cx, name: &str) -> cri::RunPodSandboxRequest {
    cri::RunPodSandboxRequest {
        config: Some(cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: cx.unique_name(name),
                uid: cx.unique_name("uid"),
                namespace: "cricket".into(),
                attempt: 0,
            }),
            labels: cx.labels(),
            ..Default::default()
        }),
        runtime_handler: String::new(),
    }
}

async fn passes(cx: &Cx) -> Result<(), CaseError> {
    cx.step("version", async {
        Ok(cx
            .cri()
            .version(cri::VersionRequest::default())
            .await
            .map(drop)?)
    })
    .await
}

async fn fails_after_sandbox(cx: &Cx) -> Result<(), CaseError> {
    cx.step("run sandbox", async {
        Ok(cx
            .cri()
            .run_pod_sandbox(sandbox_request(cx, "p"))
            .await
            .map(drop)?)
    })
    .await?;
    cx.step("check", async {
        let sum = std::hint::black_box(1) + 1;
        ensure!("t.arithmetic", sum == 3, "arithmetic is broken on purpose");
        Ok(())
    })
    .await
}

async fn hangs_after_sandbox(cx: &Cx) -> Result<(), CaseError> {
    cx.cri().run_pod_sandbox(sandbox_request(cx, "p")).await?;
    cx.step("wait forever", async {
        std::future::pending::<()>().await;
        Ok(())
    })
    .await
}

async fn panics_after_sandbox(cx: &Cx) -> Result<(), CaseError> {
    cx.cri().run_pod_sandbox(sandbox_request(cx, "p")).await?;
    panic!("boom");
}

async fn skips(_: &Cx) -> Result<(), CaseError> {
    Err(CaseError::skip("not on this target"))
}

async fn leaves_stuck_sandbox(cx: &Cx) -> Result<(), CaseError> {
    cx.cri()
        .run_pod_sandbox(sandbox_request(cx, "stuck"))
        .await?;
    Ok(())
}

const fn def(id: &'static str, run: cricket_harness::CaseFn, timeout_ms: u64) -> CaseDef {
    CaseDef {
        id,
        suite: Suite::Conformance,
        summary: "runner test",
        reqs: &[],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_millis(timeout_ms),
        run,
    }
}

static PASS: CaseDef = def("t.pass", case_fn!(passes), 5_000);
static FAIL: CaseDef = def("t.fail", case_fn!(fails_after_sandbox), 5_000);
static HANG: CaseDef = def("t.hang", case_fn!(hangs_after_sandbox), 200);
static PANIC: CaseDef = def("t.panic", case_fn!(panics_after_sandbox), 5_000);
static SKIP: CaseDef = def("t.skip", case_fn!(skips), 5_000);
static STUCK: CaseDef = def("t.stuck", case_fn!(leaves_stuck_sandbox), 5_000);
static LONG: CaseDef = def("t.long", case_fn!(hangs_after_sandbox), 60_000);

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Event>>>);

impl Reporter for Collect {
    fn on_event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.0.lock().expect("lock").push(e.clone());
        Ok(())
    }
}

impl Collect {
    fn records(&self) -> Vec<CaseRecord> {
        let mut records: Vec<CaseRecord> = self
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|e| {
                if let Event::CaseFinished(r) = e {
                    Some(r.clone())
                } else {
                    None
                }
            })
            .collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        records
    }
}

fn config(expectations: Expectations, jobs: usize) -> RunConfig {
    RunConfig {
        run_id: Arc::from("test-run"),
        jobs,
        rpc_deadline: Duration::from_secs(5),
        case_timeout: None,
        expectations,
        host: HostInfo::probe(),
        images: std::sync::Arc::new(cricket_fixtures::catalog::Catalog::at("127.0.0.1:1")),
        options: Default::default(),
    }
}

fn meta(t: &FakeTarget) -> RunMeta {
    RunMeta {
        run_id: "test-run".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        cricket_version: "test".into(),
        cri_api: "v0.36.3".into(),
        target: t.info.clone(),
        registry: "127.0.0.1:1".into(),
        host: HostInfo::probe(),
        jobs: 2,
        selection: SelectionMeta::default(),
    }
}

async fn run_on(
    target: &FakeTarget,
    cases: &[&'static CaseDef],
    cfg: RunConfig,
    cancel: &Cancel,
) -> (Vec<CaseRecord>, RunSummary) {
    let collect = Collect::default();
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(collect.clone())];
    let (summary, errors) =
        runner::run(cases, target, &cfg, meta(target), &mut reporters, cancel).await;
    assert!(errors.is_empty(), "{errors:?}");
    (collect.records(), summary)
}

async fn run(cases: &[&'static CaseDef], exp: Expectations) -> (Fake, Vec<CaseRecord>, RunSummary) {
    let (fake, target) = start_fake().await;
    let (records, summary) = run_on(&target, cases, config(exp, 2), &Cancel::default()).await;
    (fake, records, summary)
}

fn outcome<'a>(records: &'a [CaseRecord], id: &str) -> &'a CaseRecord {
    records
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no record for {id}"))
}

#[tokio::test]
async fn outcomes_and_cleanup_after_fail_timeout_and_panic() {
    let (fake, records, summary) = run(
        &[&PASS, &FAIL, &HANG, &PANIC, &SKIP],
        Expectations::default(),
    )
    .await;
    assert_eq!(outcome(&records, "t.pass").outcome, Outcome::Pass);
    assert_eq!(outcome(&records, "t.skip").outcome, Outcome::Skip);
    assert_eq!(
        outcome(&records, "t.skip").reason.as_deref(),
        Some("not on this target")
    );

    let fail = outcome(&records, "t.fail");
    assert_eq!(fail.outcome, Outcome::Fail);
    let f = fail.failure.as_ref().expect("failure");
    assert_eq!(f.step.as_deref(), Some("check"));
    assert!(f.message.contains("broken on purpose"), "{f:?}");
    assert!(
        f.request
            .as_deref()
            .is_some_and(|r| r.starts_with("RunPodSandbox")),
        "{f:?}"
    );

    let hang = outcome(&records, "t.hang")
        .failure
        .as_ref()
        .expect("failure");
    assert_eq!(hang.message, "timed out after 200ms");
    assert_eq!(
        (hang.kind, hang.check.as_str()),
        (FailureKind::Timeout, "case.timeout")
    );
    assert_eq!(hang.step.as_deref(), Some("wait forever"));

    let panic = outcome(&records, "t.panic")
        .failure
        .as_ref()
        .expect("failure");
    assert!(panic.message.contains("panicked: boom"), "{panic:?}");

    // Every sandbox created by the failed, timed-out and panicked cases was removed.
    assert_eq!(fake.pods(), Vec::<String>::new());
    assert!(summary.leaks.is_empty());
    assert_eq!(summary.counts.failed, 3);
    assert!(!summary.ok());
    // Cleanup is recorded as a step with its RPCs.
    let hang_rec = outcome(&records, "t.hang");
    assert!(hang_rec.steps.iter().any(|s| s.name == "cleanup" && s.ok));
    assert!(
        hang_rec
            .rpcs
            .iter()
            .any(|r| r.method == "RemovePodSandbox" && r.step.as_deref() == Some("cleanup"))
    );
}

#[tokio::test]
async fn expectations_turn_failures_into_xfail_and_passes_into_xpass() {
    let exp = Expectations::parse(
        "[xfail]\n\"t.fail\" = { check = \"t.arithmetic\", reason = \"known bug\" }\n\"t.pass\" = { check = \"t.anything\", reason = \"stale entry\" }\n[skip]\n\"t.hang\" = { check = \"case.timeout\", reason = \"too slow here\" }\n",
        "test",
    )
    .expect("parse");
    let (_, records, summary) = run(&[&PASS, &FAIL, &HANG], exp).await;
    assert_eq!(outcome(&records, "t.fail").outcome, Outcome::Xfail);
    assert_eq!(
        outcome(&records, "t.fail").reason.as_deref(),
        Some("known bug")
    );
    let xpass = outcome(&records, "t.pass");
    assert_eq!(xpass.outcome, Outcome::Xpass);
    assert!(
        xpass
            .failure
            .as_ref()
            .is_some_and(|f| f.message.contains("remove the xfail entry"))
    );
    assert_eq!(outcome(&records, "t.hang").outcome, Outcome::Skip);
    assert_eq!(
        outcome(&records, "t.hang").reason.as_deref(),
        Some("too slow here")
    );
    // XPass fails the run; XFail alone would not.
    assert!(!summary.ok());
    assert_eq!(
        (
            summary.counts.xfailed,
            summary.counts.xpassed,
            summary.counts.skipped
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn xfail_alone_keeps_the_run_green() {
    let exp = Expectations::parse(
        "[xfail]\n\"t.fail\" = { check = \"t.arithmetic\", reason = \"known bug\" }\n",
        "test",
    )
    .expect("parse");
    let (_, _, summary) = run(&[&PASS, &FAIL], exp).await;
    assert!(summary.ok(), "{summary:?}");
}

/// An expectation names the check a case fails at; failing at any other check fails the run,
/// so an xfail cannot hide a second fault in the same case.
#[tokio::test]
async fn failing_at_another_check_than_the_pinned_one_fails_the_run() {
    let exp = Expectations::parse(
        "[xfail]\n\"t.fail\" = { check = \"t.other_rule\", reason = \"known bug\" }\n\"t.panic\" = { check = \"t.arithmetic\", reason = \"known bug\" }\n",
        "test",
    )
    .expect("parse");
    let (_, records, summary) = run(&[&FAIL, &PANIC], exp).await;
    let rec = outcome(&records, "t.fail");
    assert_eq!(rec.outcome, Outcome::Fail);
    let f = rec.failure.as_ref().expect("failure");
    assert_eq!(f.check, "t.arithmetic");
    assert_eq!(f.kind, FailureKind::Assertion);
    assert!(
        f.message.starts_with(
            "failed differently than expected: expected `t.other_rule`, got `t.arithmetic`"
        ),
        "{}",
        f.message
    );
    let p = outcome(&records, "t.panic")
        .failure
        .as_ref()
        .expect("failure");
    assert_eq!(
        (p.kind, p.check.as_str()),
        (FailureKind::Panic, "case.panic")
    );
    assert!(!summary.ok());
}

#[tokio::test]
async fn failed_cleanup_fails_the_case_and_the_leak_is_reported() {
    let (fake, records, summary) = run(&[&STUCK], Expectations::default()).await;
    let rec = outcome(&records, "t.stuck");
    assert_eq!(rec.outcome, Outcome::Fail);
    let f = rec.failure.as_ref().expect("failure");
    assert!(
        f.message.starts_with("cleanup failed: RemovePodSandbox") && f.kind == FailureKind::Cleanup,
        "{f:?}"
    );
    assert_eq!(summary.leaks.len(), 1, "{:?}", summary.leaks);
    assert_eq!(summary.leaks[0].kind, "sandbox");
    assert_eq!(summary.leaks[0].case, "t_stuck");
    assert_eq!(fake.pods().len(), 1);
}

#[tokio::test]
async fn cancel_interrupts_running_cases_and_still_cleans_up() {
    let (fake, target) = start_fake().await;
    let cancel = Cancel::default();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c2.cancel("SIGINT received");
    });
    let (records, summary) = run_on(
        &target,
        &[&LONG, &PASS],
        config(Expectations::default(), 1),
        &cancel,
    )
    .await;
    assert_eq!(summary.interrupted.as_deref(), Some("SIGINT received"));
    assert!(!summary.ok());
    // The running case was cut short and cleaned up; the queued one never started.
    assert_eq!(records.len(), 1);
    let f = records[0].failure.as_ref().expect("failure");
    assert!(
        f.message.starts_with("interrupted (SIGINT received)"),
        "{f:?}"
    );
    assert_eq!(fake.pods(), Vec::<String>::new());
}

#[tokio::test]
async fn a_dead_target_fails_remaining_cases_without_hanging() {
    let (_, target) = start_fake().await;
    target.dead.store(true, Ordering::SeqCst);
    let (records, summary) = run_on(
        &target,
        &[&PASS, &FAIL],
        config(Expectations::default(), 1),
        &Cancel::default(),
    )
    .await;
    assert!(
        summary
            .interrupted
            .as_deref()
            .is_some_and(|r| r.contains("fake runtime crashed"))
    );
    assert_eq!(records.len(), 1);
    assert!(
        records[0]
            .failure
            .as_ref()
            .is_some_and(|f| f.message.contains("target is not running"))
    );
    assert!(!summary.ok());
}
