//! The context a case runs with: a timed client bound to this case's recorder, the run id and
//! label every object must carry, unique names, and named steps.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use cricket_fixtures::catalog::Catalog;

use crate::client::CriClient;
use crate::failure::CaseError;
use crate::record::Recorder;
use crate::target::TargetInfo;

/// Label every object created by a run carries; its value is the run id.
pub const RUN_LABEL: &str = "cricket.run";
/// Label naming the case that created an object, for reading leak reports.
pub const CASE_LABEL: &str = "cricket.case";

/// Run-wide settings some suites read: where the run writes its reports (replay files go
/// beside them), the runtime process when cricket started it, the model checks the target's
/// expectations tolerate, and each suite's own knobs.
#[derive(Debug, Clone, Default)]
pub struct SuiteOptions {
    pub report_dir: Option<std::path::PathBuf>,
    pub target_pid: Option<u32>,
    /// Property-model checks the target's expectations tolerate (`[tolerate]`), with reasons.
    pub tolerate: std::collections::BTreeMap<String, String>,
    pub settings: SuiteSettings,
}

/// Each suite's own settings, one value per type. Suites define the types (the property
/// suite's seed and budget, the fuzz suite's corpus); the harness carries them to the cases
/// without knowing them, so it never depends on a suite.
#[derive(Clone, Default)]
pub struct SuiteSettings(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl SuiteSettings {
    /// Adds (or replaces) the settings of type `T`.
    pub fn with<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
        self
    }

    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

impl std::fmt::Debug for SuiteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SuiteSettings({} set)", self.0.len())
    }
}

pub struct Cx {
    client: CriClient,
    run_id: Arc<str>,
    case_id: &'static str,
    target: Arc<TargetInfo>,
    images: Arc<Catalog>,
    options: Arc<SuiteOptions>,
}

impl Cx {
    pub fn new(
        client: CriClient,
        run_id: Arc<str>,
        case_id: &'static str,
        target: Arc<TargetInfo>,
        images: Arc<Catalog>,
        options: Arc<SuiteOptions>,
    ) -> Self {
        Self {
            client,
            run_id,
            case_id,
            target,
            images,
            options,
        }
    }

    pub fn options(&self) -> &SuiteOptions {
        &self.options
    }

    /// The settings of type `T` the run was given, or their defaults.
    pub fn settings<T: Any + Default + Clone>(&self) -> T {
        self.options
            .settings
            .get::<T>()
            .cloned()
            .unwrap_or_default()
    }

    /// Records a figure for this case's report (JUnit property `note.<key>`, results.json
    /// `notes`); the `summary` note is also shown beside the outcome in the terminal.
    pub fn note(&self, key: &str, value: impl Into<String>) {
        self.recorder().note(key, value);
    }

    /// The reference of a fixture image by logical name (`probe`, `pause`, `user-1002`…),
    /// from the run's catalogue: the embedded registry, or the user's `--images` map.
    pub fn image(&self, name: &str) -> Result<String, CaseError> {
        self.images.get(name).map(str::to_string).ok_or_else(|| {
            CaseError::harness(
                "harness.fixture",
                format!("no fixture image named {name:?} in the catalogue"),
            )
        })
    }

    /// A host directory for this case (log directories, volume sources), created on first use
    /// and removed by the runner after the case. The runtime must run on this host.
    pub fn scratch(&self) -> Result<std::path::PathBuf, CaseError> {
        let dir = scratch_dir(&self.run_id, self.case_id);
        std::fs::create_dir_all(&dir).map_err(|e| {
            CaseError::harness(
                "harness.scratch",
                format!("cannot create scratch dir {}: {e}", dir.display()),
            )
        })?;
        Ok(dir)
    }

    /// The timed CRI client; every call lands in this case's record.
    pub fn cri(&self) -> &CriClient {
        &self.client
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn case_id(&self) -> &'static str {
        self.case_id
    }

    pub fn target(&self) -> &TargetInfo {
        &self.target
    }

    fn recorder(&self) -> &Recorder {
        self.client.recorder()
    }

    /// A name no other object of this run uses: `<base>-<n>-<run id>`, within the 63-character
    /// limit Kubernetes puts on names.
    pub fn unique_name(&self, base: &str) -> String {
        // One counter for the whole process: cases of one run never collide.
        static NAMES: AtomicU32 = AtomicU32::new(0);
        let n = NAMES.fetch_add(1, Ordering::Relaxed);
        let mut name = format!("{base}-{n}-{}", self.run_id);
        name.truncate(63);
        name
    }

    /// The labels that tie an object to this run and case; cases add their own on top.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (RUN_LABEL.to_string(), self.run_id.to_string()),
            (CASE_LABEL.to_string(), self.case_id.replace('.', "_")),
        ])
    }

    /// Runs one named step of an ordered scenario: its duration is recorded, and a failure
    /// inside it names the step.
    pub async fn step<T>(
        &self,
        name: &str,
        body: impl Future<Output = Result<T, CaseError>>,
    ) -> Result<T, CaseError> {
        let started = self.recorder().begin_step(name);
        let result = body.await;
        self.recorder().end_step(name, started, result.is_ok());
        result.map_err(|e| match e {
            CaseError::Fail(mut f) => {
                f.step.get_or_insert_with(|| name.to_string());
                CaseError::Fail(f)
            }
            skip => skip,
        })
    }
}

/// Where a run keeps its host-side scratch files.
pub fn run_scratch_root(run_id: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cricket-run-{run_id}"))
}

/// The scratch directory of one case.
pub fn scratch_dir(run_id: &str, case_id: &str) -> std::path::PathBuf {
    run_scratch_root(run_id).join(case_id)
}
