//! Keeps the arrows of DESIGN.md ("Which way the arrows point") pointing one
//! way. It reads every file of src/, finds each path into the crate that the
//! file names (`use crate::...` with its groups, `super::...`, and inline
//! `crate::a::b` paths), and fails naming the file and the import when:
//! - the facade (api/) reaches a driver or the store;
//! - a driver reaches an actor, the facade or a domain module;
//! - an actor reaches the facade;
//! - a domain module reaches an actor or the facade;
//! - the store, the events or a leaf helper reaches anything above them;
//! - modules import each other in a circle (a module: a file of src/, or a
//!   folder below a layer's folder, such as actors/container/).
//! daemon.rs and main.rs wire everything together and may import anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Root,
    Api,
    Actors,
    Domain,
    Drivers,
    Bottom,
    Leaf,
}

fn layer_of(module: &[String]) -> Layer {
    match module.first().map(String::as_str) {
        None | Some("daemon") | Some("main") => Layer::Root,
        Some("api") => Layer::Api,
        Some("actors") => Layer::Actors,
        Some("containers" | "images" | "networks" | "volumes" | "builder" | "registry") => {
            Layer::Domain
        }
        Some("drivers") => Layer::Drivers,
        Some("store" | "events") => Layer::Bottom,
        Some(_) => Layer::Leaf,
    }
}

/// Why an import from `from` into `to` breaks the arrows, if it does.
fn forbidden(from: Layer, to: Layer) -> Option<&'static str> {
    use Layer::*;
    match (from, to) {
        (Api, Drivers) => {
            Some("the facade never reaches a driver: ask an actor or a domain function")
        }
        (Drivers, Actors | Api | Domain) => {
            Some("drivers never call up: take plain arguments, keep shared types in the driver")
        }
        (Actors, Api) => Some("actors never import the facade"),
        (Domain, Actors | Api) => Some("domain modules never import actors or the facade"),
        (Bottom | Leaf, Api | Actors | Domain | Drivers | Root) => {
            Some("the store, the events and leaf helpers import nothing above them")
        }
        (_, Root) if from != Root => Some("nothing imports the daemon's wiring"),
        _ => None,
    }
}

/// The facade may read the projection (events) but not the store.
fn api_reaches_store(from: &[String], to: &[String]) -> bool {
    layer_of(from) == Layer::Api && to.first().map(String::as_str) == Some("store")
}

/// Comments and string literals blanked, so paths in them do not count.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('"', '\n'); lifetimes ('a) are left alone.
            let end = src[i + 1..].find('\'').map_or(b.len(), |e| i + 2 + e);
            i = end;
            out.push_str("' '");
        } else {
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The paths a `use` tree names, each as its segments (groups expanded).
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    fn parse(s: &[char], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        let mut seg = String::new();
        while *i < s.len() {
            let c = s[*i];
            if c == '{' {
                *i += 1;
                if !seg.is_empty() {
                    path.push(std::mem::take(&mut seg));
                }
                loop {
                    parse(s, i, &path, out);
                    while *i < s.len() && s[*i].is_whitespace() {
                        *i += 1;
                    }
                    match s.get(*i) {
                        Some(',') => *i += 1,
                        Some('}') => {
                            *i += 1;
                            break;
                        }
                        _ => break,
                    }
                    while *i < s.len() && s[*i].is_whitespace() {
                        *i += 1;
                    }
                    if s.get(*i) == Some(&'}') {
                        *i += 1;
                        break;
                    }
                }
                return;
            }
            if c == ',' || c == '}' {
                break;
            }
            if c == ':' {
                if !seg.is_empty() {
                    path.push(std::mem::take(&mut seg));
                }
            } else if c.is_whitespace() {
                // `x as y`: the name is x.
                let rest: String = s[*i..].iter().take(4).collect();
                if rest.trim_start().starts_with("as ") {
                    while *i < s.len() && s[*i] != ',' && s[*i] != '}' {
                        *i += 1;
                    }
                    break;
                }
            } else {
                seg.push(c);
            }
            *i += 1;
        }
        if !seg.is_empty() {
            path.push(seg);
        }
        out.push(path);
    }
    let chars: Vec<char> = tree.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    parse(&chars, &mut i, &[], &mut out);
    out
}

struct Source {
    file: PathBuf,
    module: Vec<String>,
}

fn sources(root: &Path) -> Vec<Source> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<Source>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).unwrap_or(&p).with_extension("");
                let mut module: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                    module.pop();
                }
                out.push(Source { file: p, module });
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// The module a path lands in: its longest prefix that is a file of src/.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// Every module of the crate that `src` names.
fn imports(src: &Source, text: &str, modules: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    let mut add = |path: Vec<String>| {
        if let Some(m) = resolve(&path, modules) {
            if m != src.module && !m.is_empty() {
                found.insert(m);
            }
        }
    };
    // `use crate::...;` and `use super::...;`, groups included.
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        let tree = rest[..end].trim();
        for path in expand_use(tree) {
            add(absolute(&src.module, &path));
        }
    }
    // Inline paths: `crate::a::b::c`, `super::x` and `child::x` anywhere.
    let children: Vec<String> = modules
        .iter()
        .filter(|m| m.len() == src.module.len() + 1 && m.starts_with(&src.module))
        .filter_map(|m| m.last().map(|c| format!("{c}::")))
        .collect();
    let starts = ["crate::".to_string(), "super::".to_string()];
    for start in starts.iter().chain(&children) {
        let start = start.as_str();
        let mut at = 0;
        while let Some(i) = text[at..].find(start) {
            let i = at + i;
            at = i + start.len();
            if text[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let path: Vec<String> = text[i..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            add(absolute(&src.module, &path));
        }
    }
    found
}

/// A path as the crate names it (`crate::` and `super::` resolved).
fn absolute(module: &[String], path: &[String]) -> Vec<String> {
    match path.first().map(String::as_str) {
        Some("crate") => path[1..].to_vec(),
        Some("super") => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let mut base = module[..module.len().saturating_sub(ups)].to_vec();
            base.extend(path[ups..].iter().cloned());
            base
        }
        // A child module's path is relative; an external crate's is not ours.
        Some(_) => {
            let mut p = module.to_vec();
            p.extend(path.iter().cloned());
            p
        }
        None => Vec::new(),
    }
}

/// The unit a circle is counted between: a file, or a folder below a
/// layer's folder (its files are one module split by concern).
fn unit(module: &[String]) -> Vec<String> {
    module[..module.len().min(2)].to_vec()
}

fn check(root: &Path) -> Vec<String> {
    let srcs = sources(root);
    let modules: BTreeSet<Vec<String>> = srcs.iter().map(|s| s.module.clone()).collect();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for src in &srcs {
        let Ok(text) = std::fs::read_to_string(&src.file) else {
            problems.push(format!("{}: cannot be read", src.file.display()));
            continue;
        };
        // A file's own tests (`#[cfg(test)] mod tests`, at its end) are not
        // part of the engine, and their `super::` is the file itself.
        let text = strip(&text);
        let text = text
            .find("#[cfg(test)]\nmod ")
            .map_or(&text[..], |at| &text[..at]);
        for to in imports(src, text, &modules) {
            let (a, b) = (layer_of(&src.module), layer_of(&to));
            let why = if api_reaches_store(&src.module, &to) {
                Some("the facade never reaches the store: it reads the projection or asks an actor")
            } else {
                forbidden(a, b)
            };
            if let Some(why) = why {
                problems.push(format!(
                    "{}: imports crate::{} ({why})",
                    src.file.display(),
                    to.join("::")
                ));
            }
            let (ua, ub) = (unit(&src.module), unit(&to));
            if ua != ub && layer_of(&src.module) != Layer::Root {
                graph.entry(ua).or_default().insert(ub);
            }
        }
    }
    for circle in circles(&graph) {
        let names: Vec<String> = circle.iter().map(|m| m.join("::")).collect();
        problems.push(format!(
            "import circle between modules: {}",
            names.join(" -> ")
        ));
    }
    problems
}

/// The strongly connected parts of more than one module (Tarjan), each as a
/// path through it, for the message.
fn circles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    struct T<'a> {
        g: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<Vec<String>, usize>,
        low: BTreeMap<Vec<String>, usize>,
        stack: Vec<Vec<String>>,
        on: BTreeSet<Vec<String>>,
        out: Vec<Vec<Vec<String>>>,
    }
    impl T<'_> {
        fn visit(&mut self, v: &Vec<String>) {
            let n = self.index.len();
            self.index.insert(v.clone(), n);
            self.low.insert(v.clone(), n);
            self.stack.push(v.clone());
            self.on.insert(v.clone());
            for w in self.g.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut part = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(&w);
                    let done = &w == v;
                    part.push(w);
                    if done {
                        break;
                    }
                }
                if part.len() > 1 {
                    part.sort();
                    self.out.push(part);
                }
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn imports_point_one_way() {
    let root = project_dir().join("src");
    // A missing tree would pass with nothing to read.
    assert!(
        root.join("lib.rs").is_file(),
        "no {}",
        root.join("lib.rs").display()
    );
    let problems = check(&root);
    assert!(
        problems.is_empty(),
        "{} import(s) against DESIGN.md's arrows:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The check itself finds what it must: a small tree with one import of
/// each forbidden kind, and a circle.
#[test]
fn the_check_finds_each_kind_of_wrong_import() {
    let dir = std::env::temp_dir().join(format!("berth-layering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files: &[(&str, &str)] = &[
        ("lib.rs", "pub mod api; pub mod actors; pub mod drivers; pub mod store; pub mod containers; pub mod clock;"),
        ("api/mod.rs", "pub mod images;"),
        ("api/images.rs", "use crate::{drivers::storage::overlay2::cache_id, events};\nfn f() { crate::store::eventlog::now_ns(); }"),
        ("actors/mod.rs", "pub mod image_service; pub mod a; pub mod b;"),
        ("actors/image_service.rs", "use crate::api::images;"),
        ("actors/a.rs", "use super::b::X; // crate::api in a comment does not count\nconst S: &str = \"crate::api\";"),
        ("actors/b.rs", "pub struct X; use super::a;"),
        ("drivers/mod.rs", "pub mod storage;"),
        ("drivers/storage/mod.rs", "pub mod overlay2;"),
        ("drivers/storage/overlay2.rs", "fn g() -> crate::containers::config::X { todo!() }"),
        ("containers/mod.rs", "pub mod config;"),
        ("containers/config.rs", "use crate::actors::a as b;"),
        ("store/mod.rs", "pub mod eventlog;"),
        ("store/eventlog.rs", "use crate::clock;"),
        ("events/mod.rs", ""),
        ("clock.rs", "use crate::drivers::storage;"),
    ];
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
    }
    let problems = check(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let has = |file: &str, target: &str| {
        problems
            .iter()
            .any(|p| p.contains(file) && p.contains(&format!("imports crate::{target} ")))
    };
    assert!(
        has("api/images.rs", "drivers::storage::overlay2"),
        "{problems:#?}"
    );
    assert!(has("api/images.rs", "store::eventlog"), "{problems:#?}");
    assert!(
        has("actors/image_service.rs", "api::images"),
        "{problems:#?}"
    );
    assert!(
        has("drivers/storage/overlay2.rs", "containers::config"),
        "{problems:#?}"
    );
    assert!(has("containers/config.rs", "actors::a"), "{problems:#?}");
    assert!(has("clock.rs", "drivers::storage"), "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("circle") && p.contains("actors::a") && p.contains("actors::b")),
        "{problems:#?}"
    );
    // Allowed: the facade reads events; the store uses a leaf; comments and strings.
    assert!(!has("api/images.rs", "events"), "{problems:#?}");
    assert!(!has("store/eventlog.rs", "clock"), "{problems:#?}");
    assert!(!has("actors/a.rs", "api"), "{problems:#?}");
    assert_eq!(problems.len(), 7, "{problems:#?}");
}

/// The project's directory, as cargo gives it when it runs the test (the
/// compile-time value names wherever the binary was built).
fn project_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
