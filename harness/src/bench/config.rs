//! What a `cricket bench` run is asked to measure: the workload groups and their knobs. Plain
//! data, read by the workloads (`cricket-suites`) and by the bench session here.

/// The groups of measurements `--workloads` selects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    /// Pod startup and teardown (1 and 3 containers) and each lifecycle RPC and status.
    Pods,
    /// ExecSync round trips in a running container.
    Exec,
    /// ListPodSandbox / ListContainers with N objects present.
    Lists,
    /// Cold and warm pulls, ImageStatus, ListImages, RemoveImage.
    Images,
    /// Pod startup at several concurrency levels.
    Sweep,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::Pods,
        Workload::Exec,
        Workload::Lists,
        Workload::Images,
        Workload::Sweep,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Pods => "pods",
            Workload::Exec => "exec",
            Workload::Lists => "lists",
            Workload::Images => "images",
            Workload::Sweep => "sweep",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown workload {s:?} (known: {})",
                    Self::ALL.map(Workload::name).join(", ")
                )
            })
    }
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Measured samples per metric (pods per pod metric, calls per RPC metric).
    pub samples: usize,
    /// Samples taken first and thrown away, per loop.
    pub warmup: usize,
    /// Measured cold pulls of the large image (each one is tens of MiB).
    pub pulls: usize,
    /// Object counts the List benchmarks run at, ascending.
    pub list_sizes: Vec<usize>,
    /// Concurrency levels of the sweep.
    pub concurrency: Vec<usize>,
    pub workloads: Vec<Workload>,
    /// A small image whose `/bin/probe` the containers run (pre-pulled). Set by the session
    /// from the fixture catalogue.
    pub image: String,
    /// A large image for cold pulls (set by the session).
    pub large_image: String,
    /// Labels every object, so leftovers of this run can be found and removed.
    pub run_id: String,
}

impl BenchConfig {
    pub fn wants(&self, w: Workload) -> bool {
        self.workloads.contains(&w)
    }
}
