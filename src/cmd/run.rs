//! `cricket run`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cricket_harness::cx::SuiteSettings;
use cricket_harness::select::Selection;
use cricket_harness::session::{self, RunRequest};
use cricket_harness::target::{BundledOptions, ContainerdOptions, TargetSpec};
use cricket_harness::{Suite, Tag};
use cricket_suites::fuzz::FuzzOptions;
use cricket_suites::property::PropertyOptions;

use super::{fail_usage, parse_duration};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    /// cricket's own runtime, started as a child process (sandboxes from the fixture pause image)
    Bundled,
    /// the same with no pause image: sandboxes hold their namespaces with cricket's own pause
    /// process, as a plain `cricket runtime` does
    BundledBuiltinPause,
    /// Debian's containerd, started with a private config in a temporary directory
    Containerd,
    /// an already-running runtime at --endpoint
    Endpoint,
}

#[derive(clap::Args)]
pub struct Args {
    /// Runtime to test [default: bundled, or endpoint when --endpoint is given]
    #[arg(long, value_enum)]
    target: Option<TargetKind>,
    /// CRI endpoint of a running runtime (unix:///path/to.sock)
    #[arg(long)]
    endpoint: Option<String>,
    /// Image service endpoint when it differs from --endpoint
    #[arg(long)]
    image_endpoint: Option<String>,
    /// Suites to run, comma-separated: conformance, property, fuzz [default: conformance, property]
    #[arg(long, value_delimiter = ',')]
    suite: Vec<String>,
    /// Only cases whose id matches (glob, or an id prefix such as `runtime`); repeatable
    #[arg(long)]
    focus: Vec<String>,
    /// Leave out cases whose id matches; repeatable
    #[arg(long)]
    skip: Vec<String>,
    /// Only cases with any of these tags, comma-separated
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Cases run in parallel [default: number of cores]
    #[arg(short = 'j', long = "jobs", value_parser = clap::value_parser!(u16).range(1..=1024))]
    jobs: Option<u16>,
    /// Timeout for every case, replacing each case's own (e.g. 30s, 2m)
    #[arg(long, value_parser = parse_duration)]
    case_timeout: Option<Duration>,
    /// Deadline of each single RPC
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    rpc_timeout: Duration,
    /// Expected outcomes file [default: the built-in fixtures/expectations/<target>.toml]
    #[arg(long)]
    expectations: Option<PathBuf>,
    /// Report directory [default: reports/<run-id>]
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// JUnit XML path [default: <report-dir>/junit.xml]
    #[arg(long)]
    junit: Option<PathBuf>,
    /// results.json path [default: <report-dir>/results.json]
    #[arg(long)]
    json: Option<PathBuf>,
    /// Image map file: remaps fixture names to your own references (TOML `[images] probe = "…"`)
    #[arg(long)]
    images: Option<PathBuf>,
    /// containerd binary for --target containerd [default: from PATH]
    #[arg(long)]
    containerd_bin: Option<PathBuf>,
    /// Pod networking of the bundled runtime: bridge (its own bridge, pod IPs, host ports),
    /// cni (Debian's CNI plugins with a network list cricket writes) or none (loopback only;
    /// the network cases then skip)
    #[arg(long, value_parser = ["bridge", "cni", "none"], default_value = "bridge")]
    bundled_network: String,
    /// Seed of the property generator and the fuzzer [default: from the clock; printed]
    #[arg(long)]
    seed: Option<u64>,
    /// Property suite: fresh sequences to run per property [default: as many as the budget allows]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    sequences: Option<u32>,
    /// Property suite: most calls in one sequence [default: 20, or 12 per concurrent sequence]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=200))]
    steps: Option<u32>,
    /// Property suite: time for generating sequences per property, shrinking not included
    /// (e.g. 30s) [default: 25s sequential, 15s concurrent]
    #[arg(long, value_parser = parse_duration)]
    budget: Option<Duration>,
    /// Run exactly what a replay file saved: a property sequence, or (cricket fuzz) a finding
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Rewrite this expectations file from the run: failing cases are pinned to the check they
    /// fail at (reasons already written are kept), passing cases lose their entry. The run
    /// judges against this file when it exists
    #[arg(long, conflicts_with = "expectations")]
    bless_expectations: Option<PathBuf>,
}

fn target_spec(a: &Args) -> Result<TargetSpec, String> {
    let kind = match (a.target, &a.endpoint) {
        (None, Some(_)) => TargetKind::Endpoint,
        (None, None) => TargetKind::Bundled,
        (Some(k), Some(_)) if k != TargetKind::Endpoint => {
            return Err(
                format!("--endpoint only goes with --target endpoint, not {k:?}").to_lowercase(),
            );
        }
        (Some(k), _) => k,
    };
    if a.image_endpoint.is_some() && kind != TargetKind::Endpoint {
        return Err("--image-endpoint only goes with --endpoint".into());
    }
    let mut spec = spec_of(
        kind,
        a.endpoint.clone(),
        a.image_endpoint.clone(),
        a.containerd_bin.clone(),
    )?;
    match &mut spec {
        TargetSpec::Bundled(b) => b.network = a.bundled_network.clone(),
        _ if a.bundled_network != "bridge" => {
            return Err("--bundled-network only goes with the bundled targets".into());
        }
        _ => {}
    }
    Ok(spec)
}

/// The target a `--target` names, with its own options (shared with `cricket bench`).
pub fn spec_of(
    kind: TargetKind,
    endpoint: Option<String>,
    image_endpoint: Option<String>,
    containerd_bin: Option<PathBuf>,
) -> Result<TargetSpec, String> {
    Ok(match kind {
        TargetKind::Bundled | TargetKind::BundledBuiltinPause => {
            TargetSpec::Bundled(BundledOptions {
                binary: std::env::current_exe()
                    .map_err(|e| format!("cannot locate the cricket binary: {e}"))?,
                args: Vec::new(),
                builtin_pause: kind == TargetKind::BundledBuiltinPause,
                network: "bridge".into(),
            })
        }
        TargetKind::Containerd => TargetSpec::Containerd(ContainerdOptions {
            binary: containerd_bin,
            ..ContainerdOptions::default()
        }),
        TargetKind::Endpoint => {
            // As crictl: the flag, CONTAINER_RUNTIME_ENDPOINT / IMAGE_SERVICE_ENDPOINT, the
            // crictl config file, then crictl's default sockets.
            let env = |k: &str| std::env::var(k).ok();
            let found = cricket_harness::target::discover::find(
                endpoint.as_deref(),
                image_endpoint.as_deref(),
                &env,
            )?;
            eprintln!(
                "cricket: endpoint {} (from {}){}",
                found.runtime,
                found.source,
                found
                    .image
                    .as_ref()
                    .map(|i| format!(", image endpoint {i}"))
                    .unwrap_or_default()
            );
            TargetSpec::Endpoint {
                endpoint: found.runtime,
                image_endpoint: found.image,
                connect_timeout: found.connect_timeout,
            }
        }
    })
}

fn selection(a: &Args) -> Result<Selection, String> {
    let suites = a
        .suite
        .iter()
        .map(|s| {
            Suite::parse(s).ok_or_else(|| {
                format!("unknown suite {s:?} (known: conformance, property, fuzz, bench)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if suites.contains(&Suite::Bench) {
        return Err(
            "benchmarks run with `cricket bench` (they time the target and need it to themselves)"
                .into(),
        );
    }
    let tags = a
        .tags
        .iter()
        .map(|t| {
            Tag::parse(t).ok_or_else(|| {
                let known: Vec<&str> = Tag::ALL.iter().map(|t| t.name()).collect();
                format!("unknown tag {t:?} (known: {})", known.join(", "))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Selection {
        suites,
        focus: a.focus.clone(),
        skip: a.skip.clone(),
        tags,
    })
}

pub fn main(a: Args) -> ExitCode {
    run(a, None)
}

/// `cricket fuzz` is `cricket run --suite fuzz` with its own knobs; `--seed` and `--replay`
/// then belong to the fuzzer.
pub fn run(mut a: Args, fuzz: Option<FuzzOptions>) -> ExitCode {
    let (target, mut selection) = match (target_spec(&a), selection(&a)) {
        (Ok(t), Ok(s)) => (t, s),
        (Err(e), _) | (_, Err(e)) => return fail_usage(e),
    };
    let fuzz = match fuzz {
        Some(mut f) => {
            if selection.suites.iter().any(|s| *s != Suite::Fuzz) {
                return fail_usage("cricket fuzz runs the fuzz suite only; drop --suite");
            }
            selection.suites = vec![Suite::Fuzz];
            f.seed = a.seed;
            if let Some(path) = a.replay.take() {
                if let Err(e) = cricket_suites::fuzz::finding::Finding::load(&path) {
                    return fail_usage(format!("--replay: {e}"));
                }
                f.replay = Some(path);
            }
            f
        }
        None => FuzzOptions {
            seed: a.seed,
            ..FuzzOptions::default()
        },
    };
    if let Some(path) = &a.replay {
        // A replay runs the one property the file was saved from.
        let case = match cricket_suites::property::replay_case(path) {
            Ok(c) => c,
            Err(e) => return fail_usage(format!("--replay: {e}")),
        };
        if !selection.suites.is_empty() && !selection.suites.contains(&Suite::Property) {
            return fail_usage("--replay needs --suite property");
        }
        selection.suites = vec![Suite::Property];
        selection.focus = vec![case.to_string()];
    }
    let jobs = a.jobs.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let req = RunRequest {
        target,
        selection,
        jobs,
        case_timeout: a.case_timeout,
        rpc_deadline: a.rpc_timeout,
        expectations: a.expectations,
        report_dir: a.report_dir,
        junit: a.junit,
        json: a.json,
        images: a.images,
        settings: SuiteSettings::default()
            .with(PropertyOptions {
                seed: a.seed,
                sequences: a.sequences,
                steps: a.steps,
                budget: a.budget,
                replay: a.replay,
            })
            .with(fuzz),
        bless: a.bless_expectations,
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail_usage(format!("cannot start the async runtime: {e}")),
    };
    let registry = cricket_suites::registry();
    match rt.block_on(session::run(req, &registry)) {
        Err(e) => fail_usage(e),
        Ok(result) => {
            println!(
                "reports: {} {}",
                result.junit.display(),
                result.json.display()
            );
            for p in &result.problems {
                eprintln!("cricket: {p}");
            }
            if let Some(b) = &result.blessed {
                println!(
                    "blessed: {} added, {} re-pinned, {} removed{}",
                    b.added.len(),
                    b.repinned.len(),
                    b.removed.len(),
                    if b.added.is_empty() {
                        String::new()
                    } else {
                        format!(" (added: {}; give them real reasons)", b.added.join(", "))
                    }
                );
                for r in &b.refused {
                    eprintln!("cricket: not blessed, fix it instead: {r}");
                }
                // A blessed file describes this run: the run is as expected unless something
                // could not be blessed.
                return if b.refused.is_empty() && result.problems.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                };
            }
            if result.summary.ok() && result.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}
