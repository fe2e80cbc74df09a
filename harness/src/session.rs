//! One `cricket run`, wired end to end: report directory, target start, expectations, runner,
//! reporters, Ctrl-C, target stop. The CLI parses arguments into a [`RunRequest`] and maps the
//! result to an exit status; tests call the same function.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cricket_fixtures::catalog::Catalog;
use cricket_fixtures::registry::{Registry, Store, Throttle};
use cricket_fixtures::set;

use crate::case::CaseDef;
use crate::cx::{SuiteOptions, SuiteSettings};
use crate::event::{CaseRecord, Reporter, RunMeta, RunSummary, SelectionMeta};
use crate::expectations::{Blessed, Expectations, bless};
use crate::host::HostInfo;
use crate::report::{JsonReporter, JunitReporter, TerminalReporter};
use crate::runner::{self, Cancel, RunConfig};
use crate::select::Selection;
use crate::target::{self, StartOptions, TargetSpec};

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub target: TargetSpec,
    pub selection: Selection,
    pub jobs: usize,
    pub case_timeout: Option<Duration>,
    pub rpc_deadline: Duration,
    pub expectations: Option<PathBuf>,
    pub report_dir: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// Image map file remapping fixture names to the user's references (`--images`).
    pub images: Option<PathBuf>,
    /// Each suite's own settings (the property suite's seed and budget, the fuzz corpus).
    pub settings: SuiteSettings,
    /// Rewrite this expectations file from the run (`--bless-expectations`); the run judges
    /// against it when it exists and `expectations` is not given.
    pub bless: Option<PathBuf>,
}

/// The fixture registry of a run and the catalogue that points at it.
pub struct Fixtures {
    pub registry: Registry,
    pub catalog: Arc<Catalog>,
}

/// Builds the fixture images and serves them on `127.0.0.1:<free port>`; applies `map` over the
/// catalogue when given.
pub async fn start_fixtures(map: Option<&std::path::Path>) -> Result<Fixtures, SetupError> {
    let fixtures = tokio::task::spawn_blocking(|| set::build(None))
        .await
        .map_err(|e| SetupError(format!("building fixture images: {e}")))?
        .map_err(|e| SetupError(format!("building fixture images: {e}")))?;
    let store = Arc::new(Store::from_fixtures(&fixtures));
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let registry = Registry::start(listen, store, Throttle::default())
        .await
        .map_err(|e| SetupError(format!("starting the fixture registry: {e}")))?;
    let mut catalog = Catalog::at(&registry.host());
    if let Some(path) = map {
        catalog = catalog.remap(path).map_err(SetupError)?;
    }
    Ok(Fixtures {
        registry,
        catalog: Arc::new(catalog),
    })
}

/// Points a target we start at the fixture pause image, so no target ever needs a public
/// registry for its sandboxes.
pub fn use_fixture_pause(spec: &mut TargetSpec, catalog: &Catalog) {
    let Some(pause) = catalog.get("pause") else {
        return;
    };
    match spec {
        TargetSpec::Bundled(b) => {
            if !b.builtin_pause && !b.args.iter().any(|a| a == "--pause-image") {
                b.args
                    .extend(["--pause-image".to_string(), pause.to_string()]);
            }
        }
        TargetSpec::Containerd(c) => {
            c.sandbox_image.get_or_insert_with(|| pause.to_string());
        }
        TargetSpec::Endpoint { .. } => {}
    }
}

/// Where a finished run put its reports.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub summary: RunSummary,
    pub report_dir: PathBuf,
    pub junit: PathBuf,
    pub json: PathBuf,
    /// Problems that did not change case outcomes but must not pass silently (a report that
    /// could not be written, a target that did not stop cleanly).
    pub problems: Vec<String>,
    /// What `--bless-expectations` changed in its file.
    pub blessed: Option<Blessed>,
}

/// Bad usage or an unusable target: the CLI exits 2 with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// A run id: sortable by time, unique per process, and a valid Kubernetes label value.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let salt = (std::process::id() ^ now.timestamp_subsec_nanos()) & 0xffff;
    format!("{}-{salt:04x}", now.format("%Y%m%d-%H%M%S"))
}

pub async fn run(req: RunRequest, registry: &[&'static CaseDef]) -> Result<RunResult, SetupError> {
    let cases = req.selection.apply(registry);
    if cases.is_empty() {
        return Err(SetupError(format!(
            "no case matches the selection (suites {:?}, focus {:?}, skip {:?}, tags {:?}); `cricket list` shows the cases",
            req.selection
                .suites
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>(),
            req.selection.focus,
            req.selection.skip,
            req.selection
                .tags
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>(),
        )));
    }
    let expectations = match (&req.expectations, &req.bless) {
        (Some(path), _) => Expectations::load(path),
        (None, Some(path)) if path.exists() => Expectations::load(path),
        (None, Some(_)) => Ok(Expectations::default()),
        (None, None) => Expectations::builtin(req.target.kind()),
    }
    .map_err(SetupError)?;
    expectations.check_known(registry).map_err(SetupError)?;

    let run_id = new_run_id();
    let report_dir = req
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
    std::fs::create_dir_all(&report_dir).map_err(|e| {
        SetupError(format!(
            "cannot create report directory {}: {e}",
            report_dir.display()
        ))
    })?;
    let junit = req
        .junit
        .clone()
        .unwrap_or_else(|| report_dir.join("junit.xml"));
    let json = req
        .json
        .clone()
        .unwrap_or_else(|| report_dir.join("results.json"));

    // Signals are taken from here on, so a Ctrl-C during set-up still stops the runtime we
    // start instead of orphaning it (it runs in its own process group).
    let cancel = Cancel::default();
    let watcher = tokio::spawn(watch_signals(cancel.clone()));
    let fixtures = match start_fixtures(req.images.as_deref()).await {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir(&report_dir);
            return Err(e);
        }
    };
    let mut spec = req.target.clone();
    use_fixture_pause(&mut spec, &fixtures.catalog);

    let opts = StartOptions {
        log_dir: report_dir.clone(),
        ready_timeout: Duration::from_secs(60),
    };
    let mut target = match target::start(&spec, &opts).await {
        Ok(t) => t,
        Err(e) => {
            // Leave no empty run directory behind for a run that never started (a directory
            // holding the runtime's log stays: it explains the failure).
            let _ = std::fs::remove_dir(&report_dir);
            return Err(SetupError(e.0));
        }
    };
    if let Some(why) = cancel.reason() {
        let _ = target.stop().await;
        watcher.abort();
        return Err(SetupError(format!("interrupted during set-up: {why}")));
    }

    let host = HostInfo::probe();
    let tolerate = expectations.tolerate.clone();
    let cfg = RunConfig {
        run_id: Arc::from(run_id.as_str()),
        jobs: req.jobs,
        rpc_deadline: req.rpc_deadline,
        case_timeout: req.case_timeout,
        expectations,
        host: host.clone(),
        images: fixtures.catalog.clone(),
        options: Arc::new(SuiteOptions {
            report_dir: Some(report_dir.clone()),
            target_pid: target.pid(),
            tolerate,
            settings: req.settings.clone(),
        }),
    };
    let meta = RunMeta {
        run_id: run_id.clone(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        cricket_version: env!("CARGO_PKG_VERSION").to_string(),
        cri_api: cricket_proto::CRI_API_TAG.to_string(),
        target: target.info().clone(),
        registry: fixtures.registry.host(),
        host,
        jobs: req.jobs,
        selection: SelectionMeta {
            suites: req
                .selection
                .suites
                .iter()
                .map(|s| s.name().to_string())
                .collect(),
            focus: req.selection.focus.clone(),
            skip: req.selection.skip.clone(),
            tags: req
                .selection
                .tags
                .iter()
                .map(|t| t.name().to_string())
                .collect(),
        },
    };
    let records = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut reporters: Vec<Box<dyn Reporter>> = vec![
        Box::new(TerminalReporter::new(cases.len())),
        Box::new(JunitReporter::new(junit.clone())),
        Box::new(JsonReporter::new(json.clone())),
        Box::new(Collect(records.clone())),
    ];

    let (summary, mut problems) =
        runner::run(&cases, target.as_ref(), &cfg, meta, &mut reporters, &cancel).await;
    watcher.abort();
    if let Err(e) = target.stop().await {
        problems.push(format!("stopping the {} target: {e:#}", req.target.kind()));
    }
    let blessed = match &req.bless {
        Some(path) if summary.interrupted.is_none() => {
            let records = match records.lock() {
                Ok(g) => g.clone(),
                Err(p) => p.into_inner().clone(),
            };
            match bless_file(path, &records, req.target.kind()) {
                Ok(b) => Some(b),
                Err(e) => {
                    problems.push(e);
                    None
                }
            }
        }
        Some(path) => {
            problems.push(format!(
                "the run was interrupted: {} is left as it was",
                path.display()
            ));
            None
        }
        None => None,
    };
    Ok(RunResult {
        summary,
        report_dir,
        junit,
        json,
        problems,
        blessed,
    })
}

/// Keeps the case records for what runs after the reporters (blessing expectations).
struct Collect(Arc<std::sync::Mutex<Vec<CaseRecord>>>);

impl Reporter for Collect {
    fn on_event(&mut self, event: &crate::event::Event) -> anyhow::Result<()> {
        if let crate::event::Event::CaseFinished(r) = event {
            match self.0.lock() {
                Ok(mut g) => g.push(r.clone()),
                Err(p) => p.into_inner().push(r.clone()),
            }
        }
        Ok(())
    }
}

/// Rewrites `path` from the run's records (a new file starts from a header naming the target).
fn bless_file(path: &Path, records: &[CaseRecord], kind: &str) -> Result<Blessed, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "# Expected outcomes of the {kind} target, written by `cricket run --bless-expectations`.\n# Give every blessed entry a real reason: the api.proto sentence the runtime breaks, or the feature it lacks.\n[xfail]\n\n[skip]\n"
        ),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let (out, what) = bless(&text, records)?;
    std::fs::write(path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(what)
}

/// SIGINT (Ctrl-C) or SIGTERM stop the run gracefully: running cases are cut short and
/// cleaned up, reports are written, the target is stopped.
async fn watch_signals(cancel: Cancel) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let which = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    eprintln!("cricket: {which} received: stopping after cleanup (send again to force)");
    cancel.cancel(format!("{which} received"));
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
    std::process::exit(130);
}
