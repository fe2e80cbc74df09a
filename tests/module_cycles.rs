//! No module imports a module that imports it back, through any number of steps (DESIGN.md:
//! "one direction of data"). Cargo already refuses cycles between crates; this test refuses
//! them between the files of one crate.
//!
//! The graph: every `use` tree and every `crate::` / `super::` / `self::` path in a file's
//! non-test code is an edge to the deepest module file it names. Edges between a module and
//! its own ancestors are the module tree itself (a parent declares and re-exports its children,
//! children use what the parent defines) and are not counted; everything else is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each crate's source root, relative to the workspace root.
const CRATES: &[&str] = &[
    "src",
    "proto/src",
    "harness/src",
    "suites/src",
    "runtime/src",
    "fixtures/src",
    "fixtures/probe/src",
];

type Module = Vec<String>;

fn module_of(root: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(root).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments, string contents and its `#[cfg(test)]` module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            // Skip a string literal (raw strings in this code base hold no `"` that matters).
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{d, e as f}}`) into its paths.
fn expand_use(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut base = prefix.to_vec();
        base.extend(head);
        let mut depth = 0;
        let mut start = 0;
        for (i, ch) in inner.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&base, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(&base, &inner[start..], out);
    } else {
        let path = tree.split(" as ").next().unwrap_or_default();
        let mut p = prefix.to_vec();
        p.extend(
            path.split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "*")
                .map(String::from),
        );
        if !p.is_empty() {
            out.push(p);
        }
    }
}

/// Every path a file's code names: use trees and inline `crate::`/`super::`/`self::` paths.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let after = &rest[i + 4..];
        if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            && let Some(end) = after.find(';')
        {
            expand_use(&[], &after[..end], &mut out);
        }
        rest = after;
    }
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let is_start = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        if is_start && bytes[i].is_alphabetic() {
            let mut j = i;
            while j < bytes.len()
                && (bytes[j].is_alphanumeric() || bytes[j] == '_' || bytes[j] == ':')
            {
                j += 1;
            }
            let word: String = bytes[i..j].iter().collect();
            let first = word.split("::").next().unwrap_or_default();
            if matches!(first, "crate" | "super" | "self") && word.contains("::") {
                out.push(
                    word.split("::")
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                );
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn is_ancestor(a: &Module, b: &Module) -> bool {
    a.len() < b.len() && b[..a.len()] == a[..]
}

/// The module graph of one crate: module → the modules it uses.
fn graph(root: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeMap<Module, PathBuf> = files
        .iter()
        .map(|f| (module_of(root, f), f.clone()))
        .collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let set = edges.entry(m.clone()).or_default();
        for path in paths_in(&code_of(&text)) {
            let (mut full, rest): (Module, &[String]) = match path[0].as_str() {
                "crate" => (Vec::new(), &path[1..]),
                "self" => (m.clone(), &path[1..]),
                "super" => {
                    let mut base = m.clone();
                    let mut k = 0;
                    while path.get(k).is_some_and(|p| p == "super") {
                        base.pop();
                        k += 1;
                    }
                    (base, &path[k..])
                }
                first => {
                    // A path relative to this module names a child module.
                    let mut child = m.clone();
                    child.push(first.to_string());
                    if modules.contains_key(&child) {
                        (m.clone(), &path[..])
                    } else {
                        continue;
                    }
                }
            };
            full.extend(rest.iter().cloned());
            let target = (0..=full.len())
                .rev()
                .map(|k| full[..k].to_vec())
                .find(|p| modules.contains_key(p));
            if let Some(t) = target
                && &t != m
                && !is_ancestor(&t, m)
                && !is_ancestor(m, &t)
            {
                set.insert(t);
            }
        }
    }
    edges
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct S<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut S<'a>, v: &'a Module) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            let Some((w, _)) = edges.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = S {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "<crate root>".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    let mut modules = 0;
    for krate in CRATES {
        let edges = graph(&ws.join(krate));
        modules += edges.len();
        for comp in cycles(&edges) {
            let links: Vec<String> = comp
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|b| comp.contains(b))
                        .map(move |b| format!("{} -> {}", name(a), name(b)))
                })
                .collect();
            problems.push(format!("{krate}: {}", links.join(", ")));
        }
    }
    assert!(modules > 100, "the scan found only {modules} modules");
    assert!(
        problems.is_empty(),
        "module cycles (move the shared item into a module both can use):\n  {}",
        problems.join("\n  ")
    );
}

/// The check itself finds cycles: two siblings that use each other, a three-module ring, and
/// a `super::` path; a child using its parent is not one.
#[test]
fn the_check_finds_cycles_of_any_length() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let write = |p: &str, s: &str| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, s).expect("write");
    };
    write(
        "lib.rs",
        "mod a; mod b; mod ring; pub use a::A;\nfn f() { crate::b::g(); }\n",
    );
    write("a.rs", "use crate::b::B;\npub struct A;\n");
    write(
        "b.rs",
        "pub struct B;\npub fn g() { let _ = crate::a::A; }\n",
    );
    write(
        "ring/mod.rs",
        "pub mod x; pub mod y; pub mod z;\npub struct P;\n",
    );
    write(
        "ring/x.rs",
        "use super::y::Y;\nuse super::P;\npub struct X;\n",
    );
    write("ring/y.rs", "use crate::ring::{z::{Z}};\npub struct Y;\n");
    write(
        "ring/z.rs",
        "// use super::x::X; (a comment is no edge)\npub struct Z;\nfn f() { let _ = super::x::X; }\n#[cfg(test)]\nmod tests { use crate::a::A; }\n",
    );
    let edges = graph(root);
    let mut found: Vec<Vec<String>> = cycles(&edges)
        .iter()
        .map(|c| c.iter().map(name).collect())
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            vec!["a".to_string(), "b".to_string()],
            vec![
                "ring::x".to_string(),
                "ring::y".to_string(),
                "ring::z".to_string()
            ],
        ],
        "{edges:?}"
    );
}
