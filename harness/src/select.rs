//! Choosing cases: suites, `--focus`/`--skip` globs on ids, and `--tags`.

use crate::case::{CaseDef, Suite, Tag};

#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Empty = conformance and property (benchmarks run through `cricket bench`, fuzzing
    /// through `cricket fuzz`: both load the target for a long time).
    pub suites: Vec<Suite>,
    pub focus: Vec<String>,
    pub skip: Vec<String>,
    /// A case is selected when it has any of these tags (empty = no tag filter).
    pub tags: Vec<Tag>,
}

impl Selection {
    pub fn matches(&self, case: &CaseDef) -> bool {
        let suite_ok = if self.suites.is_empty() {
            !matches!(case.suite, Suite::Bench | Suite::Fuzz)
        } else {
            self.suites.contains(&case.suite)
        };
        suite_ok
            && (self.focus.is_empty() || self.focus.iter().any(|p| id_matches(p, case.id)))
            && !self.skip.iter().any(|p| id_matches(p, case.id))
            && (self.tags.is_empty() || case.tags.iter().any(|t| self.tags.contains(t)))
    }

    pub fn apply<'a>(&self, cases: &[&'a CaseDef]) -> Vec<&'a CaseDef> {
        cases.iter().copied().filter(|c| self.matches(c)).collect()
    }
}

/// A pattern with `*` or `?` is a glob over the whole id; a plain pattern matches that id and
/// every id below it (`pod` selects `pod.sandbox.run`, not `podman.x`).
pub fn id_matches(pattern: &str, id: &str) -> bool {
    if pattern.contains(['*', '?']) {
        glob(pattern.as_bytes(), id.as_bytes())
    } else {
        id == pattern
            || id
                .strip_prefix(pattern)
                .is_some_and(|rest| rest.starts_with('.'))
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_patterns_match_id_and_children() {
        assert!(id_matches("runtime", "runtime.version.fields"));
        assert!(id_matches(
            "runtime.version.fields",
            "runtime.version.fields"
        ));
        assert!(!id_matches("run", "runtime.version.fields"));
        assert!(!id_matches(
            "runtime.version.field",
            "runtime.version.fields"
        ));
    }

    #[test]
    fn globs_match_whole_ids() {
        assert!(id_matches("*.version.*", "runtime.version.fields"));
        assert!(id_matches("runtime.*", "runtime.status.conditions"));
        assert!(id_matches(
            "runtime.?ersion.fields",
            "runtime.version.fields"
        ));
        assert!(!id_matches("*.status", "runtime.status.conditions"));
        assert!(id_matches("*", "a"));
        assert!(id_matches("a*b*c", "aXbYbZc"));
    }
}
