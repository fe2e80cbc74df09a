//! `results.json`: the whole run as data (schema `cricket.results/v1`, described in
//! `harness/schema/results.schema.json`), for `cricket diff`, dashboards and scripts.

use std::path::PathBuf;

use serde::Serialize;

use super::write_atomically;
use crate::event::{CaseRecord, Event, RESULTS_SCHEMA, Reporter, RunMeta, RunSummary};

pub struct JsonReporter {
    path: PathBuf,
    meta: Option<RunMeta>,
    cases: Vec<CaseRecord>,
}

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    run: &'a RunMeta,
    cases: &'a [CaseRecord],
    summary: &'a RunSummary,
}

impl JsonReporter {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            meta: None,
            cases: Vec::new(),
        }
    }
}

impl Reporter for JsonReporter {
    fn on_event(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::RunStarted(meta) => self.meta = Some(meta.clone()),
            Event::CaseFinished(rec) => self.cases.push(rec.clone()),
            Event::RunFinished(summary) => {
                let Some(run) = &self.meta else { return Ok(()) };
                self.cases.sort_by(|a, b| a.id.cmp(&b.id));
                let doc = Document {
                    schema: RESULTS_SCHEMA,
                    run,
                    cases: &self.cases,
                    summary,
                };
                let mut bytes = serde_json::to_vec_pretty(&doc)?;
                bytes.push(b'\n');
                write_atomically(&self.path, &bytes)?;
            }
            Event::CaseStarted { .. } => {}
        }
        Ok(())
    }
}
