//! Per-target expected outcomes (`fixtures/expectations/<target>.toml`). Expectations are data,
//! not code: a runtime that cannot pass a case gets an `xfail` entry with the reason, and the
//! run fails as soon as that case starts passing (XPass), so the lists cannot go stale.
//!
//! ```toml
//! [xfail]
//! "container.stats.cpu_grows" = "containerd 1.6.20 reports cpu usage 0 under cgroup v1 hybrid"
//!
//! [skip]
//! "image.pull.auth" = "registry auth not configured on this target"
//!
//! [tolerate]
//! "timestamps-ordered" = "finished_at before started_at for containers that exit at once"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::case::CaseDef;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Case id → why it is expected to fail on this target.
    #[serde(default)]
    pub xfail: BTreeMap<String, String>,
    /// Case id → why it must not run on this target.
    #[serde(default)]
    pub skip: BTreeMap<String, String>,
    /// Property-model checks this target is known to break → why. Divergences of these kinds
    /// are counted in the property cases' notes instead of failing them, so the suite can look
    /// past a known bug for others. The property suite refuses names it does not know.
    #[serde(default)]
    pub tolerate: BTreeMap<String, String>,
}

/// What the built-in files say, per target kind (compiled in so `cricket` works from any
/// directory).
const BUILTIN: &[(&str, &str)] = &[
    (
        "bundled",
        include_str!("../../fixtures/expectations/bundled.toml"),
    ),
    (
        "containerd",
        include_str!("../../fixtures/expectations/containerd.toml"),
    ),
];

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
        for (id, reason) in exp.xfail.iter().chain(&exp.skip).chain(&exp.tolerate) {
            if reason.trim().is_empty() {
                return Err(format!(
                    "{origin}: entry {id:?} has no reason; every expectation must say why"
                ));
            }
            if exp.xfail.contains_key(id) && exp.skip.contains_key(id) {
                return Err(format!("{origin}: {id:?} is both xfail and skip"));
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

    pub fn xfail_reason(&self, id: &str) -> Option<&str> {
        self.xfail.get(id).map(String::as_str)
    }

    pub fn skip_reason(&self, id: &str) -> Option<&str> {
        self.skip.get(id).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_tables() {
        let e = Expectations::parse(
            "[xfail]\n\"a.b.c\" = \"broken\"\n[skip]\n\"d.e.f\" = \"no auth\"\n",
            "t",
        )
        .expect("valid");
        assert_eq!(e.xfail_reason("a.b.c"), Some("broken"));
        assert_eq!(e.skip_reason("d.e.f"), Some("no auth"));
        assert_eq!(e.xfail_reason("d.e.f"), None);
    }

    #[test]
    fn rejects_unknown_tables_and_empty_reasons() {
        let err = Expectations::parse("[xfails]\n\"a\" = \"b\"\n", "t").expect_err("typo table");
        assert!(err.contains("xfails"), "{err}");
        let err = Expectations::parse("[xfail]\n\"a\" = \" \"\n", "t").expect_err("empty reason");
        assert!(err.contains("no reason"), "{err}");
        let err = Expectations::parse("[xfail]\n\"a\" = \"x\"\n[skip]\n\"a\" = \"y\"\n", "t")
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
}
