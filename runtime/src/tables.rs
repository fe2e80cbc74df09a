//! The engine's tables: every pod and container the runtime knows, as records (persisted in
//! `state.json`) plus the CRI config exactly as received. Shared by the engine, which keeps
//! them, and the CRI views, which read them.

use std::collections::HashMap;
use std::path::PathBuf;

use cricket_proto::v1 as cri;
use tokio::io::BufReader;
use tokio::process::ChildStdout;

use crate::state::{CtrRecord, PodRecord};

pub struct Pod {
    pub rec: PodRecord,
    pub config: cri::PodSandboxConfig,
    pub dir: PathBuf,
}

pub struct Ctr {
    pub rec: CtrRecord,
    pub config: cri::ContainerConfig,
    pub dir: PathBuf,
    /// The shim's protocol pipe, kept from CreateContainer to StartContainer.
    pub shim_out: Option<BufReader<ChildStdout>>,
}

#[derive(Default)]
pub struct Tables {
    pub pods: HashMap<String, Pod>,
    pub ctrs: HashMap<String, Ctr>,
}
