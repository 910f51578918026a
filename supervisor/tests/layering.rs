//! The daemon's module dependencies point one way: this test reads every
//! `crate::…` path in the sources and fails on a cycle between modules (an
//! actor module, `actors::NAME`, or a top-level one such as `config`), and
//! on a foundation module (`sys`, `config`, `reload`, `output`, `probe`) reaching up into the
//! actors. Test code is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `actors::registry` for `src/actors/registry.rs` or anything under
/// `src/actors/registry/`; `config` for `src/config/…`; `None` for the
/// crate roots and the actors' `mod.rs`.
fn unit_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [one] if one == "lib" || one == "main" => None,
        [actors, name, ..] if actors == "actors" && name != "mod" => {
            Some(format!("actors::{name}"))
        }
        [actors, ..] if actors == "actors" => None,
        [first, ..] => Some(first.clone()),
        [] => None,
    }
}

/// The units named by `crate::a::b` paths in `text`.
fn uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let word = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let first = word(rest);
        if first == "actors" {
            let second = word(rest.get("actors::".len()..).unwrap_or(""));
            if !second.is_empty() {
                found.insert(format!("actors::{second}"));
            }
        } else if !first.is_empty() && first.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            found.insert(first);
        }
    }
    found
}

fn graph() -> std::io::Result<BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let Some(unit) = unit_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file)?;
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        // Comments (doc links included) are not dependencies.
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let targets = edges.entry(unit.clone()).or_default();
        for used in uses(&code) {
            if used != unit {
                targets.insert(used);
            }
        }
    }
    Ok(edges)
}

/// A cycle through `start`, if any, as the list of units along it.
fn cycle_from(
    start: &str,
    at: &str,
    edges: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in edges.get(at).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(start.to_string());
            return Some(cycle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(c) = cycle_from(start, next, edges, path, seen) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_module_depends_on_itself_through_others() -> std::io::Result<()> {
    let edges = graph()?;
    assert!(
        edges.contains_key("actors::registry") && edges.contains_key("config"),
        "the scan found too little to be right: {edges:?}"
    );
    let mut cycles = Vec::new();
    for unit in edges.keys() {
        let mut path = vec![unit.clone()];
        if let Some(c) = cycle_from(unit, unit, &edges, &mut path, &mut BTreeSet::new()) {
            cycles.push(c.join(" -> "));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
    Ok(())
}

#[test]
fn foundation_modules_do_not_reach_into_the_actors() -> std::io::Result<()> {
    let edges = graph()?;
    let wrong: Vec<String> = edges
        .iter()
        .filter(|(unit, _)| {
            matches!(
                unit.as_str(),
                "sys" | "config" | "reload" | "output" | "probe"
            )
        })
        .flat_map(|(unit, used)| {
            used.iter()
                .filter(|u| u.starts_with("actors::"))
                .map(move |u| format!("{unit} -> {u}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}
