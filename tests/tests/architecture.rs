//! The crates' shape, checked: no import circle between the top-level modules of any crate
//! (a module that needs what needs it is two modules that can only change together).

#![allow(clippy::unwrap_used)] // tests: a panic is a failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of the crate in `src` and the top-level modules of the same crate it
/// names through `crate::…` (comments and `#[cfg(test)]` parts left out).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or("");
            let uses = graph.entry(top.clone()).or_default();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                // `$crate::` in a macro is the crate itself, like `crate::`.
                for after in line.split("crate::").skip(1) {
                    let name: String = after
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != top {
                        uses.insert(name);
                    }
                }
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|m| modules.contains(m));
    }
    graph
}

/// The circles in `graph`: each strongly connected set of two or more modules.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for n in &graph[&m] {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reaches(m))).collect();
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for (m, r) in &reach {
        let set: BTreeSet<String> = r
            .iter()
            .filter(|n| reach[n].contains(*m))
            .cloned()
            .chain(std::iter::once((*m).clone()))
            .collect();
        if set.len() > 1 && !found.contains(&set) {
            found.push(set);
        }
    }
    found
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut all = Vec::new();
    for e in std::fs::read_dir(&crates).unwrap() {
        let src = e.unwrap().path().join("src");
        if src.is_dir() {
            for c in circles(&module_graph(&src)) {
                all.push(format!("{}: {c:?}", src.display()));
            }
        }
    }
    assert!(all.is_empty(), "import circles:\n{}", all.join("\n"));
}

/// The check finds a circle when there is one (two modules naming each other).
#[test]
fn the_circle_check_finds_a_circle() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("lib.rs"), "mod a; mod b; mod c;").unwrap();
    std::fs::write(
        d.path().join("a.rs"),
        "use crate::b::B;\n// crate::c in a comment\n",
    )
    .unwrap();
    std::fs::create_dir(d.path().join("b")).unwrap();
    std::fs::write(
        d.path().join("b/mod.rs"),
        "pub struct B;\nfn f() { crate::a::g() }\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("c.rs"),
        "use crate::a;\n#[cfg(test)]\nuse crate::c::x;\n",
    )
    .unwrap();
    let found = circles(&module_graph(d.path()));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0], ["a".to_string(), "b".to_string()].into());
}
