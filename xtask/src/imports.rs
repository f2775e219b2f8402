//! The kernel crate's modules import one way: no circle, and no module imports the
//! module it lives in (or an ancestor): a part never reaches back into its whole.
//! Checked by `cargo xtask lint` from the `use` declarations of `leakguard-ebpf/src`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::{bail, Context as _, Result};

/// A module's path from the crate root (`["scan", "skip"]`); the root is `[]`.
type Module = Vec<String>;

/// Checks `src` (a crate's `src` directory); fails naming the circle or the upward import.
pub fn check(src: &Path) -> Result<()> {
    let mut deps: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    let mut files = Vec::new();
    collect(src, src, &mut files)?;
    for (module, text) in &files {
        let mut out = BTreeSet::new();
        for path in use_paths(text) {
            let target = resolve(module, &path);
            if let Some(t) = target {
                // Only modules of this crate, at the depth that exists as a file.
                let t = files
                    .iter()
                    .map(|(m, _)| m)
                    .filter(|m| t.starts_with(m) && !m.is_empty())
                    .max_by_key(|m| m.len())
                    .cloned();
                if let Some(t) = t {
                    if &t != module {
                        if module.starts_with(&t) {
                            bail!(
                                "{} imports {}, a module it lives in: imports run one way",
                                name(module),
                                name(&t)
                            );
                        }
                        out.insert(t);
                    }
                }
            }
        }
        deps.insert(module.clone(), out);
    }
    // A circle: depth-first search with the path on the stack.
    fn visit(
        m: &Module,
        deps: &BTreeMap<Module, BTreeSet<Module>>,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Result<()> {
        if done.contains(m) {
            return Ok(());
        }
        if let Some(i) = stack.iter().position(|s| s == m) {
            let circle: Vec<String> = stack[i..].iter().chain([m]).map(name).collect();
            bail!("an import circle: {}", circle.join(" → "));
        }
        stack.push(m.clone());
        for d in deps.get(m).into_iter().flatten() {
            visit(d, deps, stack, done)?;
        }
        stack.pop();
        done.insert(m.clone());
        Ok(())
    }
    let mut done = BTreeSet::new();
    for m in deps.keys() {
        visit(m, &deps, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Every `.rs` file under `dir` with its module path.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(Module, String)>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            collect(root, &p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(root)?.with_extension("");
            let mut m: Module = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if matches!(m.last().map(String::as_str), Some("mod" | "main" | "lib")) {
                m.pop();
            }
            out.push((m, std::fs::read_to_string(&p)?));
        }
    }
    Ok(())
}

/// The paths of every `use` declaration, flattened (`use a::{b, c::d};` → `a::b`,
/// `a::c::d`).
fn use_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let l = line.trim_start();
        let Some(decl) = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|k| l.strip_prefix(k))
        else {
            continue;
        };
        // A declaration may span lines: up to its `;`.
        let mut d = decl.to_owned();
        while !d.contains(';') {
            let Some(next) = lines.next() else { break };
            d.push_str(next);
        }
        let end = d.find(';').unwrap_or(d.len());
        flatten("", &d[..end], &mut out);
    }
    out
}

fn flatten(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let prefix = join(prefix, head);
        let mut depth = 0;
        let mut last = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    flatten(&prefix, &inner[last..i], out);
                    last = i + 1;
                }
                _ => {}
            }
        }
        flatten(&prefix, &inner[last..], out);
    } else if !tree.is_empty() {
        let t = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(join(prefix, t));
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}::{b}"),
    }
}

/// The module path a `use` path names, from inside `module`; None outside the crate.
fn resolve(module: &Module, path: &str) -> Option<Module> {
    let mut parts = path.split("::");
    let mut at: Module = match parts.next()? {
        "crate" => Vec::new(),
        "self" => module.clone(),
        "super" => module[..module.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    for p in parts {
        if p == "super" {
            at.pop();
        } else {
            at.push(p.to_owned());
        }
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_trees_flatten_and_resolve() {
        let paths = use_paths("use crate::{a::{b, c as d}, e};\nuse super::f::g;\n");
        assert_eq!(
            paths,
            ["crate::a::b", "crate::a::c", "crate::e", "super::f::g"]
        );
        let m = vec!["scan".to_owned(), "skip".to_owned()];
        assert_eq!(
            resolve(&m, "super::line::after_lf"),
            Some(vec!["scan".into(), "line".into(), "after_lf".into()])
        );
        assert_eq!(resolve(&m, "leakguard_common::swar"), None);
    }
}

#[cfg(test)]
mod trees {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "xtask-imports-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn circles_and_upward_imports_are_found() {
        let ok = tree(&[
            ("main.rs", "mod a;\nmod b;\nuse crate::a::f;\n"),
            ("a/mod.rs", "mod x;\nmod y;\npub use x::f;\n"),
            ("a/x.rs", "use super::y::g;\nuse crate::b::h;\n"),
            ("a/y.rs", ""),
            ("b.rs", ""),
        ]);
        check(&ok).unwrap();
        let circle = tree(&[
            ("main.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use crate::b::{g, h};\n"),
            ("b.rs", "use crate::{a::f};\n"),
        ]);
        let e = check(&circle).unwrap_err().to_string();
        assert!(e.contains("circle") && e.contains("a → b → a"), "{e}");
        let upward = tree(&[
            ("main.rs", "mod a;\n"),
            ("a/mod.rs", "mod x;\npub fn f() {}\n"),
            ("a/x.rs", "use super::f;\n"),
            ("x.rs", ""),
            ("y.rs", ""),
        ]);
        let e = check(&upward).unwrap_err().to_string();
        assert!(e.contains("a::x imports a, a module it lives in"), "{e}");
        for d in [ok, circle, upward] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
