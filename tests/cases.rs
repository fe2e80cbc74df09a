//! Every registered case as a `cargo test` trial (libtest-mimic), run against one bundled
//! runtime started for the whole test binary. `cargo test --test cases -- runtime.version`
//! filters like any test; expected failures from the bundled expectations file apply.

use std::sync::Arc;
use std::time::Duration;

use cricket_fixtures::catalog::Catalog;
use cricket_harness::cx::{SuiteOptions, SuiteSettings};
use cricket_harness::event::Outcome;
use cricket_harness::expectations::Expectations;
use cricket_harness::host::HostInfo;
use cricket_harness::runner::{Cancel, RunConfig, run_case};
use cricket_harness::session;
use cricket_harness::target::{self, BundledOptions, StartOptions, TargetSpec};
use cricket_suites::fuzz::FuzzOptions;
use cricket_suites::property::PropertyOptions;
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let registry = cricket_suites::registry();
    let logs = tempfile::tempdir().expect("tempdir");
    let rt = Arc::new(tokio::runtime::Runtime::new().expect("tokio"));

    // Only start the registry and the runtime when some trial will run (`--list` needs none).
    let needs_target = !args.list;
    let fixtures = needs_target.then(|| {
        rt.block_on(session::start_fixtures(None))
            .unwrap_or_else(|e| panic!("fixtures: {e}"))
    });
    let target: Option<Arc<dyn target::Target>> = fixtures.as_ref().map(|f| {
        let mut spec = TargetSpec::Bundled(BundledOptions {
            binary: env!("CARGO_BIN_EXE_cricket").into(),
            args: Vec::new(),
            builtin_pause: false,
            network: "bridge".into(),
        });
        session::use_fixture_pause(&mut spec, &f.catalog);
        let opts = StartOptions {
            log_dir: logs.path().to_path_buf(),
            ready_timeout: Duration::from_secs(60),
        };
        let t = rt
            .block_on(target::start(&spec, &opts))
            .unwrap_or_else(|e| panic!("bundled runtime: {e}"));
        Arc::from(t)
    });
    let images = fixtures
        .as_ref()
        .map(|f| f.catalog.clone())
        .unwrap_or_else(|| Arc::new(Catalog::at("127.0.0.1:1")));
    let cfg = Arc::new(RunConfig {
        run_id: Arc::from(session::new_run_id().as_str()),
        jobs: 1,
        rpc_deadline: Duration::from_secs(30),
        case_timeout: None,
        expectations: Expectations::builtin("bundled").expect("bundled expectations"),
        host: HostInfo::probe(),
        images,
        // Property cases explore from a fixed seed for a short while here; `cricket run`
        // explores from a fresh seed each time.
        options: Arc::new(SuiteOptions {
            report_dir: Some(logs.path().to_path_buf()),
            target_pid: target.as_ref().and_then(|t| t.pid()),
            tolerate: Default::default(),
            settings: SuiteSettings::default()
                .with(PropertyOptions {
                    seed: Some(1),
                    budget: Some(Duration::from_secs(10)),
                    ..PropertyOptions::default()
                })
                .with(FuzzOptions {
                    seed: Some(1),
                    ..FuzzOptions::default()
                }),
        }),
    });

    // The fuzz suite floods the runtime every trial shares; tests/fuzz.rs runs it on its own.
    let trials = registry
        .iter()
        .filter(|c| c.suite != cricket_harness::Suite::Fuzz)
        .map(|&case| {
            let (rt, target, cfg) = (rt.clone(), target.clone(), cfg.clone());
            Trial::test(case.id, move || {
                let Some(target) = target else {
                    return Err(Failed::from("no target"));
                };
                let info = Arc::new(target.info().clone());
                let rec = rt.block_on(run_case(
                    case,
                    target.as_ref(),
                    &cfg,
                    info,
                    &Cancel::default(),
                ));
                match rec.outcome {
                    Outcome::Pass | Outcome::Xfail => Ok(()),
                    Outcome::Skip => {
                        eprintln!("{}: skipped: {}", case.id, rec.reason.unwrap_or_default());
                        Ok(())
                    }
                    Outcome::Fail | Outcome::Xpass => {
                        let f = rec
                            .failure
                            .map(|f| cricket_harness::CaseError::from(f).to_string());
                        Err(Failed::from(f.unwrap_or_else(|| "failed".into())))
                    }
                }
            })
            .with_kind(case.suite.name())
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(target);
    drop(fixtures);
    // Each case removes its own scratch directory; the run's parent is ours to remove.
    let _ = std::fs::remove_dir_all(cricket_harness::cx::run_scratch_root(&cfg.run_id));
    conclusion.exit();
}
