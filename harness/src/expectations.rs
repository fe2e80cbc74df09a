//! Per-target expected outcomes (`fixtures/expectations/<target>.toml`). Expectations are data,
//! not code: a runtime that cannot pass a case gets an `xfail` entry naming the check that
//! fails and why. The run fails as soon as that case passes (XPass) or fails at another check
//! ("failed differently than expected"), so an entry can neither go stale nor hide a second
//! fault in the same case.
//!
//! ```toml
//! [xfail]
//! "container.stats.cpu_grows" = { check = "container.stats.cpu_nonzero", reason = "containerd 1.6.20 reports cpu usage 0 under cgroup v1 hybrid" }
//!
//! [skip]
//! "image.pull.auth" = { check = "image.pull.auth_accepted", reason = "flaps on this target: …" }
//!
//! [tolerate]
//! "timestamps-ordered" = "finished_at before started_at for containers that exit at once"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::case::CaseDef;
use crate::event::{CaseRecord, Outcome};
use crate::failure::{Failure, FailureKind, is_check_id};

/// One expected failure: the check id it fails at, and why.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pinned {
    pub check: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Case id → the check it is expected to fail at on this target, and why.
    #[serde(default)]
    pub xfail: BTreeMap<String, Pinned>,
    /// Case id → the check that makes it unusable here (it flaps), and why it is not run.
    #[serde(default)]
    pub skip: BTreeMap<String, Pinned>,
    /// Property-model checks this target is known to break → why. Divergences of these kinds
    /// are counted in the property cases' notes instead of failing them, so the suite can look
    /// past a known bug for others. The property suite refuses names it does not know.
    #[serde(default)]
    pub tolerate: BTreeMap<String, String>,
}

/// What the built-in files say, per target kind (compiled in so `cricket` works from any
/// directory).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "bundled",
        include_str!("../../fixtures/expectations/bundled.toml"),
    ),
    (
        "bundled-builtin-pause",
        include_str!("../../fixtures/expectations/bundled.toml"),
    ),
    (
        "containerd",
        include_str!("../../fixtures/expectations/containerd.toml"),
    ),
];

/// How a case's result reads against its expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Failed at the pinned check: the expectation's reason, and the failure.
    Xfail(String, Failure),
    /// Failed with no expectation, or at another check than the pinned one (the failure then
    /// says so).
    Fail(Failure),
    /// Passed although pinned to fail.
    Xpass(Failure),
}

impl Expectations {
    /// The built-in expectations for a target kind (none for unknown kinds such as `endpoint`).
    pub fn builtin(kind: &str) -> Result<Self, String> {
        match BUILTIN.iter().find(|(k, _)| *k == kind) {
            Some((k, text)) => Self::parse(text, &format!("built-in expectations for {k}")),
            None => Ok(Self::default()),
        }
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read expectations file {}: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let exp: Self = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        for (id, p) in exp.xfail.iter().chain(&exp.skip) {
            if p.reason.trim().is_empty() {
                return Err(format!(
                    "{origin}: entry {id:?} has no reason; every expectation must say why"
                ));
            }
            if !is_check_id(&p.check) {
                return Err(format!(
                    "{origin}: entry {id:?} pins {:?}, which is not a check id (lower_snake parts joined by dots, no wildcards)",
                    p.check
                ));
            }
            if p.check.starts_with("harness.") {
                return Err(format!(
                    "{origin}: entry {id:?} pins the harness check {:?}: a harness error is cricket's fault, not the target's, and cannot be expected",
                    p.check
                ));
            }
            if exp.xfail.contains_key(id) && exp.skip.contains_key(id) {
                return Err(format!("{origin}: {id:?} is both xfail and skip"));
            }
        }
        for (name, reason) in &exp.tolerate {
            if reason.trim().is_empty() {
                return Err(format!(
                    "{origin}: entry {name:?} has no reason; every expectation must say why"
                ));
            }
        }
        Ok(exp)
    }

    /// Ids that name no registered case: a renamed or deleted case must not leave a silent
    /// entry behind.
    pub fn check_known(&self, cases: &[&CaseDef]) -> Result<(), String> {
        let unknown: Vec<&str> = self
            .xfail
            .keys()
            .chain(self.skip.keys())
            .filter(|id| !cases.iter().any(|c| c.id == id.as_str()))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "expectations name unknown case ids: {}",
                unknown.join(", ")
            ))
        }
    }

    pub fn xfail(&self, id: &str) -> Option<&Pinned> {
        self.xfail.get(id)
    }

    pub fn skip_reason(&self, id: &str) -> Option<&str> {
        self.skip.get(id).map(|p| p.reason.as_str())
    }

    /// Judges a case's result (after cleanup) against its expectation.
    pub fn judge(&self, id: &str, result: Result<(), Failure>) -> Verdict {
        match (result, self.xfail(id)) {
            (Ok(()), None) => Verdict::Pass,
            (Ok(()), Some(p)) => Verdict::Xpass(Failure::new(
                FailureKind::Xpass,
                crate::failure::checks::XPASS,
                format!(
                    "expected to fail at `{}` on this target ({}) but passed: remove the xfail entry",
                    p.check, p.reason
                ),
            )),
            (Err(f), None) => Verdict::Fail(f),
            (Err(f), Some(p)) if f.check == p.check && f.kind != FailureKind::Harness => {
                Verdict::Xfail(p.reason.clone(), f)
            }
            (Err(mut f), Some(p)) => {
                f.message = format!(
                    "failed differently than expected: expected `{}`, got `{}`\n{}",
                    p.check, f.check, f.message
                );
                Verdict::Fail(f)
            }
        }
    }
}

/// What `--bless-expectations` changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Blessed {
    /// Entries added for cases that failed without one.
    pub added: Vec<String>,
    /// Entries whose check changed (the reason is kept).
    pub repinned: Vec<String>,
    /// Entries removed for cases that passed.
    pub removed: Vec<String>,
    /// Failures that cannot be blessed (harness errors, interrupted cases): the file keeps
    /// whatever it said about them.
    pub refused: Vec<String>,
}

/// Rewrites an expectations file from a run's records: a failing case gets (or keeps) an
/// `xfail` entry pinned to the check it failed at, keeping any reason already written; a case
/// that passed loses its entry. Comments, `[skip]`, `[tolerate]` and entries of cases this run
/// did not run are kept as they are.
pub fn bless(text: &str, records: &[CaseRecord]) -> Result<(String, Blessed), String> {
    use toml_edit::{DocumentMut, InlineTable, Item, Table, Value};
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| format!("cannot parse the expectations file: {e}"))?;
    if !doc.contains_key("xfail") {
        doc.insert("xfail", Item::Table(Table::new()));
    }
    let skips: Vec<String> = doc
        .get("skip")
        .and_then(Item::as_table_like)
        .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default();
    let xfail = doc
        .get_mut("xfail")
        .and_then(Item::as_table_like_mut)
        .ok_or("[xfail] is not a table")?;
    let mut out = Blessed::default();
    let mut records: Vec<&CaseRecord> = records.iter().collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    for r in records {
        if skips.contains(&r.id) {
            continue;
        }
        match r.outcome {
            Outcome::Pass | Outcome::Xpass => {
                if xfail.remove(&r.id).is_some() {
                    out.removed.push(r.id.clone());
                }
            }
            Outcome::Skip | Outcome::Xfail => {}
            Outcome::Fail => {
                let Some(f) = &r.failure else { continue };
                if matches!(
                    f.kind,
                    FailureKind::Harness | FailureKind::Interrupted | FailureKind::Xpass
                ) {
                    out.refused
                        .push(format!("{} ({}: {})", r.id, f.kind, f.check));
                    continue;
                }
                let old_reason = xfail
                    .get(&r.id)
                    .and_then(|i| i.as_table_like())
                    .and_then(|t| t.get("reason"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                let reason = match &old_reason {
                    Some(r) => r.clone(),
                    None => format!(
                        "blessed from a run: {}",
                        f.message.lines().next().unwrap_or_default()
                    ),
                };
                let mut t = InlineTable::new();
                t.insert("check", Value::from(f.check.as_str()));
                t.insert("reason", Value::from(reason));
                if old_reason.is_some() {
                    out.repinned.push(r.id.clone());
                } else {
                    out.added.push(r.id.clone());
                }
                xfail.insert(&r.id, Item::Value(Value::InlineTable(t)));
            }
        }
    }
    // Entries whose check did not change are not "repinned".
    let before = Expectations::parse(text, "the expectations file").unwrap_or_default();
    let text = doc.to_string();
    let after = Expectations::parse(&text, "the blessed expectations")?;
    out.repinned.retain(|id| {
        before.xfail.get(id).map(|p| &p.check) != after.xfail.get(id).map(|p| &p.check)
    });
    Ok((text, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(check: &str, reason: &str) -> Pinned {
        Pinned {
            check: check.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn parses_both_tables() {
        let e = Expectations::parse(
            "[xfail]\n\"a.b.c\" = { check = \"a.b.x\", reason = \"broken\" }\n[skip]\n\"d.e.f\" = { check = \"d.e.y\", reason = \"flaps\" }\n",
            "t",
        )
        .expect("valid");
        assert_eq!(e.xfail("a.b.c"), Some(&pin("a.b.x", "broken")));
        assert_eq!(e.skip_reason("d.e.f"), Some("flaps"));
        assert_eq!(e.xfail("d.e.f"), None);
    }

    #[test]
    fn rejects_unknown_tables_unpinned_entries_and_empty_reasons() {
        let err = Expectations::parse("[xfails]\n\"a\" = \"b\"\n", "t").expect_err("typo table");
        assert!(err.contains("xfails"), "{err}");
        let err = Expectations::parse("[xfail]\n\"a.b\" = \"old style\"\n", "t")
            .expect_err("an entry without a check");
        assert!(err.contains("a.b"), "{err}");
        let err = Expectations::parse(
            "[xfail]\n\"a\" = { check = \"x.y\", reason = \" \" }\n",
            "t",
        )
        .expect_err("empty reason");
        assert!(err.contains("no reason"), "{err}");
        let err = Expectations::parse(
            "[xfail]\n\"a\" = { check = \"x.*\", reason = \"r\" }\n",
            "t",
        )
        .expect_err("wildcard");
        assert!(err.contains("no wildcards"), "{err}");
        let err = Expectations::parse(
            "[xfail]\n\"a\" = { check = \"harness.fixture\", reason = \"r\" }\n",
            "t",
        )
        .expect_err("harness check");
        assert!(err.contains("cricket's fault"), "{err}");
        let err = Expectations::parse(
            "[xfail]\n\"a\" = { check = \"x.y\", reason = \"r\" }\n[skip]\n\"a\" = { check = \"x.y\", reason = \"s\" }\n",
            "t",
        )
        .expect_err("both");
        assert!(err.contains("both"), "{err}");
    }

    #[test]
    fn builtin_files_parse() {
        for (kind, _) in BUILTIN {
            Expectations::builtin(kind).expect("built-in expectations parse");
        }
        assert_eq!(
            Expectations::builtin("endpoint"),
            Ok(Expectations::default())
        );
    }

    fn failing(check: &str, kind: FailureKind) -> Failure {
        Failure::new(kind, check, "it broke")
    }

    #[test]
    fn judging_against_a_pin() {
        let mut e = Expectations::default();
        e.xfail.insert(
            "c.a.s".into(),
            pin("image.status.image_id_set", "old runtime"),
        );
        assert_eq!(e.judge("other.case", Ok(())), Verdict::Pass);
        assert_eq!(
            e.judge(
                "c.a.s",
                Err(failing("image.status.image_id_set", FailureKind::Mismatch))
            ),
            Verdict::Xfail(
                "old runtime".into(),
                failing("image.status.image_id_set", FailureKind::Mismatch)
            )
        );
        let Verdict::Fail(f) = e.judge(
            "c.a.s",
            Err(failing(
                "container.status.image_ref_is_id",
                FailureKind::Mismatch,
            )),
        ) else {
            panic!("another check fails the run");
        };
        assert!(
            f.message.starts_with("failed differently than expected: expected `image.status.image_id_set`, got `container.status.image_ref_is_id`"),
            "{}",
            f.message
        );
        assert_eq!(f.check, "container.status.image_ref_is_id");
        let Verdict::Xpass(f) = e.judge("c.a.s", Ok(())) else {
            panic!("a pass is an xpass");
        };
        assert_eq!(f.kind, FailureKind::Xpass);
        // A harness error never satisfies an expectation, whatever its check.
        let mut e2 = Expectations::default();
        e2.xfail.insert("h.a.s".into(), pin("harness.fixture", "x"));
        assert!(matches!(
            e2.judge(
                "h.a.s",
                Err(failing("harness.fixture", FailureKind::Harness))
            ),
            Verdict::Fail(_)
        ));
    }

    fn record(id: &str, outcome: Outcome, failure: Option<Failure>) -> CaseRecord {
        CaseRecord {
            id: id.into(),
            suite: crate::case::Suite::Conformance,
            area: id.split('.').next().unwrap_or_default().into(),
            summary: String::new(),
            outcome,
            reason: None,
            failure,
            duration_us: 0,
            steps: Vec::new(),
            rpcs: Vec::new(),
            rpcs_omitted: 0,
            notes: BTreeMap::new(),
        }
    }

    #[test]
    fn blessing_keeps_reasons_and_comments() {
        let text = "# header comment\n[xfail]\n\"a.b.kept\" = { check = \"a.b.old\", reason = \"known since 1.6\" }\n\"a.b.fixed\" = { check = \"a.b.x\", reason = \"was broken\" }\n\"a.b.unrun\" = { check = \"a.b.y\", reason = \"not in this selection\" }\n\n[skip]\n\"a.b.skipped\" = { check = \"a.b.z\", reason = \"flaps\" }\n";
        let records = vec![
            record(
                "a.b.kept",
                Outcome::Fail,
                Some(failing("a.b.new", FailureKind::Mismatch)),
            ),
            record("a.b.fixed", Outcome::Xpass, None),
            record(
                "a.b.fresh",
                Outcome::Fail,
                Some(failing("rpc.version.ok", FailureKind::Status)),
            ),
            record(
                "a.b.harness",
                Outcome::Fail,
                Some(failing("harness.fixture", FailureKind::Harness)),
            ),
            record("a.b.skipped", Outcome::Skip, None),
        ];
        let (out, what) = bless(text, &records).expect("blesses");
        assert!(out.starts_with("# header comment\n"), "{out}");
        let e = Expectations::parse(&out, "blessed").expect("parses");
        assert_eq!(
            e.xfail("a.b.kept"),
            Some(&pin("a.b.new", "known since 1.6"))
        );
        assert_eq!(e.xfail("a.b.fixed"), None);
        assert_eq!(
            e.xfail("a.b.fresh"),
            Some(&pin("rpc.version.ok", "blessed from a run: it broke"))
        );
        assert_eq!(
            e.xfail("a.b.unrun"),
            Some(&pin("a.b.y", "not in this selection"))
        );
        assert_eq!(e.xfail("a.b.harness"), None);
        assert_eq!(e.skip_reason("a.b.skipped"), Some("flaps"));
        assert_eq!(what.added, vec!["a.b.fresh".to_string()]);
        assert_eq!(what.repinned, vec!["a.b.kept".to_string()]);
        assert_eq!(what.removed, vec!["a.b.fixed".to_string()]);
        assert_eq!(what.refused.len(), 1);
    }
}
