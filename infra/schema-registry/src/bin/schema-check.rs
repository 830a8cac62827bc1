//! Checks that every `schemas/*.avsc` in the working tree stays BACKWARD_TRANSITIVE compatible
//! with every version of it on the base branch, so consumers on the new schema read all data
//! ever written. Usage: `schema-check [--base REF] [--dir schemas]` (base: `origin/main` if it
//! exists, else `main`). Exits 1 on any incompatibility, printing each problem.

use std::{path::Path, process::Command};

use apache_avro::Schema;
use schema_registry::compat::{Level, check};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let dir = flag("--dir").unwrap_or_else(|| "schemas".into());
    let base = flag("--base").unwrap_or_else(|| {
        if git(&["rev-parse", "--verify", "--quiet", "origin/main"]).is_some() { "origin/main".into() } else { "main".into() }
    });
    if git(&["rev-parse", "--verify", "--quiet", &base]).is_none() {
        println!("schema-check: base {base} not found; nothing to compare against");
        return;
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "avsc"))
        .collect();
    files.sort();
    let (mut problems, mut compared) = (0, 0);
    for path in &files {
        let name = path.to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(path).expect("readable schema");
        let new = match Schema::parse_str(&text) {
            Ok(s) => s,
            Err(e) => {
                println!("FAIL {name}: does not parse: {e}");
                problems += 1;
                continue;
            }
        };
        // Every version of the file on the base branch, oldest first.
        let revisions = git(&["log", "--reverse", "--format=%H", &base, "--", &name]).unwrap_or_default();
        let old: Vec<Schema> = revisions
            .lines()
            .filter_map(|rev| git(&["show", &format!("{rev}:{name}")]))
            .filter_map(|t| Schema::parse_str(&t).ok())
            .collect();
        compared += old.len();
        match check(Level::BackwardTransitive, &new, &old) {
            Ok(()) => println!("ok   {name} (against {} version(s) on {base})", old.len()),
            Err(messages) => {
                problems += messages.len();
                for m in messages {
                    println!("FAIL {name}: {m}");
                }
            }
        }
    }
    for removed in git(&["ls-tree", "--name-only", &format!("{base}:{dir}")]).unwrap_or_default().lines() {
        if removed.ends_with(".avsc") && !Path::new(&dir).join(removed).exists() {
            println!("FAIL {dir}/{removed}: exists on {base} but was removed; retire a topic with a new .vN instead");
            problems += 1;
        }
    }
    println!("schema-check: {} schema(s), {compared} earlier version(s) compared, {problems} problem(s)", files.len());
    if problems > 0 {
        std::process::exit(1);
    }
}
